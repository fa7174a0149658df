"""Files that appear whole or not at all: write beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aeroseg_cli.files.safety import refuse_non_file


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc/self/status``, kernel 4.7+): the
    ``os.umask`` round trip briefly sets it to 0 for every thread of the program, so it is only the fallback. Read
    at each use, not at import: a program may change its umask after importing aeroseg."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_permissions(path: str | Path) -> None:
    """Give a file made by ``mkstemp`` (0600) the permissions a plain ``open`` would have given it."""
    os.chmod(path, 0o666 & ~current_umask())


@contextmanager
def atomic_output(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``: on success it gets default permissions and replaces ``path``; on any failure
    it is removed. Never a truncated or half-written file at ``path``, and never a device, FIFO, socket or folder
    replaced (checked again at the rename: one may have been put there since the command's checks)."""
    path = Path(path)
    refuse_non_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        default_permissions(tmp)
        refuse_non_file(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
