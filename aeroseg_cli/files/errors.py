"""Errors that end a command with one line on stderr: usage problems exit 2, runtime failures exit 1, signals 128+N."""

from __future__ import annotations

import contextvars
import errno
import os
import resource
import shutil
import signal
from collections.abc import Callable
from pathlib import Path


class CLIError(Exception):
    """A runtime failure the user can act on (exit code 1 on the command line; ``AerosegError`` in the Python API)."""

    exit_code = 1


AerosegError = CLIError  # the name the Python API exports (aeroseg_cli.AerosegError)


class UsageError(CLIError):
    """Bad arguments or input the user must change (exit code 2)."""

    exit_code = 2


class AerosegWarning(UserWarning):
    """Something the user should know that does not stop the work (a scene that looks like an elevation model, an
    overlap that only repeats work): the CLI shows it as ``aeroseg: warning: ...``, Python callers filter it."""


# How the library's warnings are worded: None for the command line's flags; the Python API sets a function that
# rewrites them into its parameter names while it runs (a context variable: threads and tasks keep their own).
WARNING_WORDING: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar(
    "aeroseg_warning_wording", default=None
)


def worded(message: str) -> str:
    """``message`` as the caller reads it (see ``WARNING_WORDING``)."""
    wording = WARNING_WORDING.get()
    return wording(message) if wording else message


class WriteError(CLIError):
    """Writing an output failed (full disk, file-size limit, I/O error); the verified rows stay resumable."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the command stops, keeps what can be resumed, and exits 130 or 143.

    A ``KeyboardInterrupt`` so that libraries which handle Ctrl-C (torch's data-loader workers) treat it as one.
    ``detail`` says what was done and how to continue, e.g. "after 812 of 3249 windows; rerun with --resume".
    """

    def __init__(self, signum: int = signal.SIGINT, detail: str = "") -> None:
        super().__init__(signum, detail)
        self.signum, self.detail = int(signum), detail

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def with_detail(self, detail: str) -> Interrupted:
        return Interrupted(self.signum, detail)

    def __str__(self) -> str:
        name = "interrupted" if self.signum == signal.SIGINT else f"stopped by {signal.Signals(self.signum).name}"
        return f"{name} {self.detail}".strip()


def diagnose(path: Path, cause: str, needs: int = 0) -> str:
    """The OS reason behind a failed write, in the words users know ("No space left on device"). ``needs``: the
    least the file must hold, for a copy that GDAL deleted when it failed (its size is gone with it)."""
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    size = max(path.stat().st_size if path.exists() else 0, needs)
    if soft != resource.RLIM_INFINITY and size >= soft - (1 << 16):
        return f"{os.strerror(errno.EFBIG)} (this process may write files of at most {soft} bytes)"
    free = shutil.disk_usage(path.parent).free
    if free < (64 << 20):
        return f"{os.strerror(errno.ENOSPC)} ({free >> 20} MiB free in {path.parent})"
    return cause
