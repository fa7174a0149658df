"""Files that appear whole: a finished output gets the permissions a plain ``open`` would give it under the
process's umask as it is when the file is written (a program may change it after importing aeroseg), and importing
aeroseg never touches the umask (the ``os.umask`` round trip sets it to 0 for every thread meanwhile)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aeroseg_cli.files.atomic import atomic_output, current_umask
from tests.support.paths import ROOT


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask_of_the_moment(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        target = tmp_path / "out.bin"
        with atomic_output(target) as partial:
            Path(partial).write_bytes(b"x")
        assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    finally:
        os.umask(old)


def test_importing_the_file_helpers_leaves_the_umask_alone() -> None:
    """os.umask is replaced by a recorder before the import: no call."""
    code = (
        "import os; calls = []; real = os.umask\n"
        "os.umask = lambda m: (calls.append(m), real(m))[1]\n"
        "import aeroseg_cli.files.atomic, aeroseg_cli.segment.writer\n"
        "assert calls == [], calls"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert r.returncode == 0, r.stderr
