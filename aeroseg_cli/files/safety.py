"""Output safety, checked before any work starts: no output is an input or another output of the same run, nothing
is replaced without ``--overwrite``, nothing that is not a regular file (a device node, a FIFO, a socket, a folder)
is ever replaced, and one run at a time writes an output (an exclusive lock beside it). Local inputs must be regular
files: a FIFO or a device given as a scene would block or never end.

Every command that writes goes through ``check_outputs`` and ``exclusive``: segment (labels, probabilities, vectors),
vectorize, train (the run folder), preview, export, weights import and datasets prepare.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.sidecars import owners, sidecars

URL_SCHEMES = ("http://", "https://", "ftp://", "s3://", "gs://", "az://")


def is_remote(text: str | Path) -> bool:
    """A GDAL virtual or remote path (``/vsicurl/...``, ``/vsizip/...``, ``s3://...``): not a local file to stat."""
    s = str(text)
    return s.startswith("/vsi") or s.lower().startswith(URL_SCHEMES)


FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def file_kind(path: str | Path) -> str | None:
    """What an existing path that is not a regular file is ("a FIFO (named pipe)", "a character device", ...,
    symlinks followed); None for a regular file or a path that does not exist."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in FILE_KINDS if test(mode)), "not a regular file")


def check_input_file(path: str | Path, what: str) -> None:
    """A local input given as a file: it exists and is a regular file (a FIFO would block, a device never end)."""
    kind = file_kind(path)
    if kind is not None:
        raise UsageError(f"{what} {path} is {kind}, not a file")
    if not Path(path).exists():
        raise UsageError(f"{what} {path}: no such file")


def refuse_non_file(path: Path, what: str = "output") -> None:
    """An existing output path that is not a regular file is never replaced, with or without ``--overwrite``."""
    kind = file_kind(path)
    if kind is not None:
        raise UsageError(f"{what} {path} is {kind}, not a regular file; it is never replaced: give a file path")


@dataclass(frozen=True)
class Output:
    """A file a command will write, what to call it in messages, and the files written beside it."""

    path: Path
    what: str = "output"
    siblings: tuple[Path, ...] = ()  # e.g. a shapefile's .shx/.dbf/.prj, a GeoTIFF's .aux.xml

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.path, *self.siblings)


def same_file(a: Path, b: Path) -> bool:
    """The same file by resolved path (symlinks followed) or, when both exist, by device and inode (hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(
    outputs: Sequence[Output],
    inputs: Sequence[Path | str],
    overwrite: bool,
    new_folder: Path | None = None,
) -> None:
    """Refuse (exit 2) an output that is an input or another output, an existing file without ``overwrite``, a
    folder, device, FIFO or socket where a file is expected (with or without ``overwrite``), and a missing or
    read-only folder; ``new_folder`` is one the run will create. An input's sidecars (its QGIS style, its GDAL
    ``.aux.xml``) count as the input, and a style another existing file shares (``x.qml`` of ``x.tif`` for an
    output ``x.tiff``) is never replaced, with or without ``overwrite``."""
    if new_folder is not None and new_folder.exists() and not new_folder.is_dir():
        raise UsageError(f"output folder {new_folder} is {file_kind(new_folder) or 'a file'}, not a folder")
    local = [Path(i) for i in inputs if not is_remote(i)]
    for out in outputs:
        for f in out.files:
            for i in local:
                if same_file(f, i):
                    raise UsageError(f"{out.what} {f} is the input {i}; choose another output path")
    _refuse_input_sidecars(outputs, local)
    for n, a in enumerate(outputs):
        for b in outputs[n + 1 :]:
            shared = next((x for x in a.files for y in b.files if same_file(x, y)), None)
            if shared == a.path:
                raise UsageError(f"the {a.what} and the {b.what} are the same file ({a.path}); give each its own path")
            if shared is not None:
                raise UsageError(f"the {a.what} and the {b.what} would both write {shared}; {OWN_NAME}")
    _refuse_shared_sidecars(outputs)
    for out in outputs:
        _check_writable(out, overwrite, new_folder)


OWN_NAME = "give each a name of its own (QGIS takes NAME.qml as the style of every NAME.* file)"


def _refuse_input_sidecars(outputs: Sequence[Output], inputs: Sequence[Path]) -> None:
    """An output file that is a sidecar of an input (``vectorize l.tif -o l.shp`` writes l.qml, the raster's
    style): replacing it would change how the input opens."""
    for out in outputs:
        for f in out.files:
            for i in inputs:
                kind = next((k for s, k in sidecars(i).items() if same_file(f, s)), None)
                if kind is not None:
                    raise UsageError(
                        f"{out.what} {out.path} would write {f}, the {kind} of the input {i}; give the output a "
                        "name of its own (QGIS takes NAME.qml as the style of every NAME.* file)"
                    )


def _refuse_shared_sidecars(outputs: Sequence[Output]) -> None:
    """A sidecar an output writes that also belongs to an existing file this run does not write (``x.qml`` of an
    earlier ``x.tif`` when the output is ``x.tiff``): the other file would open with this output's style."""
    ours = {f.resolve() for out in outputs for f in out.files}
    for out in outputs:
        for f in out.files:
            other = next((p for p in owners(f) if p.resolve() not in ours), None)
            if other is not None:
                kind = sidecars(other).get(f, "sidecar")
                raise UsageError(
                    f"{out.what} {out.path} would write {f.name}, which is also the {kind} of {other} (not written "
                    f"by this run); give the output a name of its own, or remove {other.name} and {f.name} first"
                )


def _check_writable(out: Output, overwrite: bool, new_folder: Path | None) -> None:
    if out.path.is_dir():
        raise UsageError(f"{out.what} {out.path} is a folder; give a file name")
    for f in out.files:
        refuse_non_file(f, out.what)
    existing = next((p for p in out.files if p.exists()), None)
    if existing is not None and not overwrite:
        which = "" if existing == out.path else f": {existing.name}, written with it, already"
        raise UsageError(f"{out.what} {out.path}{which} exists (use --overwrite to replace it)")
    parent = out.path.parent
    if new_folder is not None and (same_file(parent, new_folder) or new_folder.resolve() in parent.resolve().parents):
        parent = nearest_existing(new_folder)  # created by the run, with its missing parents
    check_folder(parent, out.what)


def nearest_existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folder(folder: Path, what: str = "output") -> None:
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{what} folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{what} folder {folder} is not writable")


def lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


def _acquire(path: Path, advice: str) -> int:
    """An exclusive, non-blocking lock on ``.NAME.lock`` beside ``path``; its file holds our process id."""
    lock = lock_path(path)
    check_folder(path.parent)
    while True:
        if file_kind(lock) is not None:  # never open a device or FIFO someone put there
            raise UsageError(f"the lock file {lock} is {file_kind(lock)}, not a file; remove it")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CLIError(f"{path} is being written by another aeroseg run (process {holder}); {advice}") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:  # not unlinked by a finishing run meanwhile
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def exclusive(paths: Sequence[Path], advice: str = "wait for it to finish or choose another output") -> Iterator[None]:
    """Hold one lock per output for the whole run: a second run on any of them fails at once, naming this one and
    what to do (``advice``)."""
    held: list[tuple[int, Path]] = []
    try:
        for path in sorted({p.resolve() for p in paths}):
            held.append((_acquire(path, advice), lock_path(path)))
        yield
    finally:
        for fd, lock in reversed(held):
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # unlinked while still held, so a waiter never locks a stale file
            os.close(fd)


def check_output(path: Path, overwrite: bool, what: str = "output", also: Sequence[Path] = ()) -> None:
    """One output and its sibling files, with no inputs to compare (kept for callers that have none)."""
    check_outputs([Output(path, what, tuple(also))], [], overwrite)
