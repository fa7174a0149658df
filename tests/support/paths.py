"""Where the tests find the repository and the real data of ``../shared/data`` (absent in a bare checkout: the tests
that need it take the ``shared_geotiff`` / ``shared_dubai`` fixtures, which skip with a reason)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
GEOTIFF = SHARED_DATA / "geotiff"
DUBAI = SHARED_DATA / "dubai-aerial-cc0"
