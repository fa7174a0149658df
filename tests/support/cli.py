"""Running ``aeroseg``: in-process (fast) or as real processes (one, or two under torchrun)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from aeroseg_cli.app import main
from tests.support.paths import ROOT


def single_process(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``aeroseg ARGS`` in one process with the environment torchrun workers get (one thread: same float order)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "aeroseg_cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def torchrun(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m aeroseg_cli ARGS`` on CPU (gloo), one thread per process. The
    rendezvous takes a free port of its own (no fixed port to collide with another run); torchrun's temporary
    folders (``torchelastic_*``) go into a folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aeroseg-torchrun-") as tmp:
        return _torchrun(args, timeout, tmp)


def _torchrun(args, timeout: int, tmp: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TMPDIR": tmp}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "aeroseg_cli",
        *map(str, args),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@dataclass
class CLIResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CLIResult:
    """Run ``aeroseg ARGS`` in-process (fast: no interpreter start-up) and capture its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return CLIResult(code, out.getvalue(), err.getvalue())
