"""The reliability harness (issue #11): run a case, then check that no input changed, the exit code tells the truth,
stderr is one plain line, and nothing broken, mixed or temporary is left where a user would find it.

``Snapshot`` records every file under a folder (SHA-256 and mtime, symlinks by target) plus any extra inputs outside
it; ``check_outcome`` compares two snapshots against what the case may create. In-process runs go through
``run_in_process`` (warnings recorded as a script run would print them); faults that need a real process (signals,
file-size limits, concurrency) go through ``spawn``/``run_process``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from tests.support.cli import CLIResult, run_cli
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
LIBRARY_NOISE = re.compile(r"Traceback|\w+Warning\b|warnings\.warn|is not writable|was not provided")
ONE_LINE = re.compile(r"aeroseg: (error: \S|interrupted\b|stopped by SIG[A-Z]+\b)")


# -- snapshots ----------------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """Every entry under ``root`` (relative path -> ("file", sha256, mtime_ns) | ("dir",) | ("link", target) |
    ("node", type, device) for FIFOs, device nodes and sockets, never opened) and the same for ``extra`` files
    elsewhere (absolute paths, e.g. the shared real scenes)."""

    root: Path
    entries: dict[str, tuple]

    @classmethod
    def take(cls, root: Path, extra: Sequence[Path] = ()) -> Snapshot:
        entries: dict[str, tuple] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath) / name
                rel = str(path.relative_to(root))
                mode = path.lstat().st_mode
                if path.is_symlink():
                    entries[rel] = ("link", os.readlink(path))
                elif path.is_dir():
                    entries[rel] = ("dir",)
                elif not stat.S_ISREG(mode):
                    entries[rel] = ("node", stat.S_IFMT(mode), path.lstat().st_rdev)
                else:
                    entries[rel] = ("file", sha256(path), path.stat().st_mtime_ns)
        for path in extra:
            entries[str(Path(path).resolve())] = ("file", sha256(path), Path(path).stat().st_mtime_ns)
        return cls(root, entries)


def changes(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str], set[str]]:
    """(created, changed, removed) relative paths."""
    created = set(after.entries) - set(before.entries)
    removed = set(before.entries) - set(after.entries)
    changed = {k for k in set(before.entries) & set(after.entries) if before.entries[k] != after.entries[k]}
    return created, changed, removed


# -- expectations -------------------------------------------------------------------------------------------------
@dataclass
class Expect:
    """What a case must end with.

    ``code``: the exit code. ``match``: substrings stderr must hold. ``created``: paths (relative to the workspace)
    that must exist afterwards and are the only new entries allowed (outputs on success, or a documented resumable
    partial). ``replaced``: existing paths the case may change (``--overwrite`` successes, a resumed partial).
    ``absent``: paths (e.g. the output) that must not exist afterwards. ``lines``: stderr lines for a failure (1),
    or None for a success whose stderr may be empty or a summary.
    """

    code: int
    match: Sequence[str] = ()
    created: Sequence[str] = ()
    replaced: Sequence[str] = ()
    absent: Sequence[str] = ()
    forbid: Sequence[str] = ()  # substrings stderr must not hold
    may_create: Sequence[str] = ()  # new entries allowed but not required (e.g. the weights cache folder)
    removed: Sequence[str] = ()  # entries the case must remove (a resumed run consumes its partial files)
    lines: int | None = 1


def check_outcome(result: CLIResult, before: Snapshot, after: Snapshot, expect: Expect) -> None:
    """The invariants of issue #11, with a message that says which one broke."""
    err = result.stderr
    assert result.code == expect.code, f"exit code {result.code}, expected {expect.code}; stderr: {err[-2000:]}"
    assert not LIBRARY_NOISE.search(err), f"traceback or library warning on stderr: {err[-2000:]}"
    for text in expect.match:
        assert text in err, f"{text!r} not in stderr: {err}"
    for text in expect.forbid:
        assert text not in err, f"{text!r} in stderr: {err}"
    if expect.code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == (expect.lines or 1), f"stderr must be one line, got {len(lines)}: {err}"
        assert ONE_LINE.match(lines[-1]), f"not an 'aeroseg: error: ...' line: {lines[-1]!r}"
    created, changed, removed = changes(before, after)
    allowed = [*expect.created, *expect.may_create]
    allowed_new = set(allowed) | {str(Path(*Path(p).parts[:i])) for p in allowed for i in range(1, len(Path(p).parts))}
    assert created <= allowed_new, (
        f"unexpected new files or folders (temporary, partial, stray): {created - allowed_new}"
    )
    missing = {p for p in expect.created if p not in after.entries}
    assert not missing, f"expected outputs missing: {missing}"
    assert changed <= set(expect.replaced), f"files changed that must not (inputs, existing outputs): {changed}"
    assert removed == set(expect.removed), f"files removed: {removed}, expected {set(expect.removed)}"
    for p in expect.absent:
        assert p not in after.entries, f"{p} exists after the run"


# -- running ------------------------------------------------------------------------------------------------------
def run_in_process(args: Sequence, env: dict[str, str] | None = None) -> CLIResult:
    """``aeroseg ARGS`` in this process; the warnings a script would print are appended to its stderr (pytest would
    otherwise swallow them), so a library warning fails the one-line check as it would fail a user's log."""
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())  # the environment restored afterwards
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        for quiet in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", quiet)  # hidden by default in a script, as here
        result = run_cli(*map(str, args))
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return CLIResult(result.code, result.stdout, shown + result.stderr)


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "aeroseg_cli", *map(str, args)]


def spawn(args: Sequence, fsize: int | None = None, **kw) -> subprocess.Popen:
    """A real ``aeroseg`` process (one thread, like a torchrun worker), optionally under a file-size limit."""

    def limit() -> None:
        if fsize is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.Popen(
        cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=limit, **kw
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> CLIResult:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"process ran past {timeout} s; stderr: {err[-2000:]}") from None
    return CLIResult(proc.returncode, out, err)


def run_process(args: Sequence, fsize: int | None = None, timeout: float = 300) -> CLIResult:
    return finish(spawn(args, fsize), timeout)


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 180, poll: float = 0.02
) -> None:
    """Poll ``condition`` every ``poll`` seconds; fail if ``proc`` ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (exit {proc.returncode}) first: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(poll)


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[int]:
    """Another process (a plain Python one, no torch) holds aeroseg's own output lock on ``path`` as a running
    aeroseg command does; yields its process id."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom aeroseg_cli.files.safety import exclusive\n"
        "with exclusive([Path(sys.argv[1])]):\n    print('locked', flush=True)\n    sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@contextlib.contextmanager
def fifo_released(path: Path) -> Iterator[None]:
    """While the case runs, whoever opens the FIFO ``path`` for reading gets end-of-file at once instead of blocking
    forever (a writer opens and closes it), so code that wrongly reads a FIFO fails its test instead of hanging it."""
    done = threading.Event()

    def release() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):  # succeeds only once a reader waits
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            time.sleep(0.02)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def range_server(path: Path, budget: int = 1 << 62) -> Iterator[str]:
    """``tests/support/range_server.py`` serving ``path`` in its own process; yields the file's URL. After ``budget``
    bytes of ranges it stops answering, as a server that dies midway."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.range_server", str(path), str(budget)],
                            stdout=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)  # fmt: skip
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/{path.name}"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def interrupt_when(proc: subprocess.Popen, ready: Callable[[], bool], signum: int = signal.SIGINT) -> CLIResult:
    """Send ``signum`` once ``ready()`` holds (the run is provably midway), then collect the process."""
    wait_for(ready, proc)
    proc.send_signal(signum)
    return finish(proc)


@dataclass
class Setup:
    """What a table case runs: arguments, and optionally environment, a context held during the run, extra input
    files outside the workspace and a check of the result's content."""

    args: list
    env: dict[str, str] = field(default_factory=dict)
    context: Callable[[], contextlib.AbstractContextManager] | None = None
    extra_inputs: Sequence[Path] = ()
    verify: Callable[[CLIResult], None] | None = None
    expect_override: dict = field(default_factory=dict)


# -- workspaces ---------------------------------------------------------------------------------------------------
class Workspace:
    """Files a case needs, made in its own folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def scene(self, name: str = "in.tif", height: int = 160, width: int = 160, **kw) -> Path:
        return write_scene(self / name, smooth_scene(height, width), **kw)

    def labels(self, name: str = "L.tif", georeferenced: bool = True, size: int = 64) -> Path:
        """A label raster like segment's: uint8 ids in 8 x 8 blocks, 255 nodata, class names and colour table."""
        rng = np.random.default_rng(0)
        ids = np.kron(rng.integers(0, 3, (size // 8, size // 8)), np.ones((8, 8), int)).astype(np.uint8)
        geo = {"crs": "EPSG:32633", "transform": from_origin(600000, 5000000, 2, 2)} if georeferenced else {}
        with rasterio.open(self / name, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
                           nodata=255, **geo) as dst:  # fmt: skip
            dst.write(ids, 1)
            dst.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255)})
            dst.update_tags(CLASS_NAMES=json.dumps(["house", "road", "water"]))
        return self / name

    def png(self, name: str = "X.png", height: int = 150, width: int = 170) -> Path:
        Image.fromarray(np.moveaxis(smooth_scene(height, width), 0, -1)).save(self / name)
        return self / name

    def node(self, name: str, kind: str = "char") -> Path:
        """A path that is not a regular file, made in the workspace (never a real /dev entry): "char" (a private
        copy of the null device), "full" (of /dev/full: every write fails with ENOSPC), "fifo", "socket"."""
        path = self / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind in ("char", "full"):
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3 if kind == "char" else 7))
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(str(path))
        return path

    def link(self, target: Path, name: str) -> Path:
        (self / name).symlink_to(target)
        return self / name

    def hardlink(self, target: Path, name: str) -> Path:
        os.link(target, self / name)
        return self / name

    def write(self, name: str, content: str | bytes) -> Path:
        path = self / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def checkpoint(self, name: str = "m.pt") -> Path:
        return self.write(name, tiny_checkpoint_bytes())

    def dataset(self, name: str = "ds") -> Path:
        """A ``folder`` dataset: 2 images of 64 x 64 with masks of classes a, b."""
        root = self / name
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        for i in range(2):
            Image.fromarray(np.moveaxis(smooth_scene(64, 64, seed=i), 0, -1)).save(root / "images" / f"im{i}.png")
            Image.fromarray((np.arange(64)[None, :] >= 32).repeat(64, 0).astype(np.uint8)).save(
                root / "masks" / f"im{i}.png"
            )
        (root / "classes.txt").write_text("a\nb\n")
        return root


@functools.cache
def tiny_checkpoint_bytes() -> bytes:
    """A small AerOSeg checkpoint (the tiny architecture at a 128-pixel crop), made once per session."""
    import io

    import torch

    import models

    torch.manual_seed(0)
    buffer = io.BytesIO()
    models.save_checkpoint(buffer, models.build("tiny", crop_size=128, sam_input_size=128), ["a", "b"])
    return buffer.getvalue()
