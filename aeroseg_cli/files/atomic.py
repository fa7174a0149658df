"""Files that appear whole or not at all: write beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aeroseg_cli.files.safety import refuse_non_file

_UMASK = os.umask(0)
os.umask(_UMASK)


def default_permissions(path: str | Path) -> None:
    """Give a file made by ``mkstemp`` (0600) the permissions a plain ``open`` would have given it."""
    os.chmod(path, 0o666 & ~_UMASK)


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
