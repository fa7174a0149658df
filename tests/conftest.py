"""Fixtures shared by the tests; the helpers themselves are in ``tests/support/``."""

from __future__ import annotations

from pathlib import Path

import pytest

# Re-exported while branches that still import helpers from here are merged; import from tests.support instead.
from tests.support.cli import CLIResult, run_cli, single_process, torchrun  # noqa: F401
from tests.support.paths import DUBAI, GEOTIFF, ROOT, SHARED_DATA  # noqa: F401
from tests.support.scenes import smooth_scene, write_scene  # noqa: F401
from tests.support.toys import ConvModel, PixelModel  # noqa: F401


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
