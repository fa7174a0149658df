"""Fixtures and hooks shared by the tests, nothing else: the helpers are in ``tests/support/`` and test files import
them from there (never from here or from each other: tests/test_architecture.py checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import DUBAI, GEOTIFF


def pytest_configure(config) -> None:
    """One torch thread in the test process, as in the subprocesses the tests start (OMP_NUM_THREADS=1): the tests'
    small models are dominated by per-operation overhead, which a second thread only adds to (measured with
    ``python benchmarks/threads.py``), and every in-process float order then matches a subprocess's."""
    import torch

    torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config) -> int | None:
    """``-n auto`` (pyproject's addopts): xdist's one worker per core, but none for a command line that names one
    test file (``pytest tests/test_x.py[::test]``): with ``--dist loadfile`` a file never spans workers, so it runs
    in this process, without starting workers. ``None``: xdist's own count."""
    named = {arg.split("::")[0] for arg in config.args}
    if len(named) == 1 and next(iter(named)).endswith(".py"):
        return 0
    return None


def _shared(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"needs the real data of ../shared/data ({path} is absent)")
    return path


@pytest.fixture(scope="session")
def shared_geotiff() -> Path:
    """``../shared/data/geotiff``: the real georeferenced scenes (the test is skipped without them)."""
    return _shared(GEOTIFF)


@pytest.fixture(scope="session")
def shared_dubai() -> Path:
    """``../shared/data/dubai-aerial-cc0``: the real Dubai images and masks (the test is skipped without them)."""
    return _shared(DUBAI)
