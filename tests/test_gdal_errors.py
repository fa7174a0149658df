"""GDAL's raw errors reach the pipeline as rasterio's public ``RasterioIOError``: nothing imports rasterio's private
``rasterio._err`` (issue 24)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import rasterio.shutil
from rasterio.errors import RasterioIOError

from aeroseg_cli.files.errors import WriteError
from aeroseg_cli.files.gdalread import public_errors
from aeroseg_cli.segment.cog import place_as_cog


def test_a_failing_copy_raises_the_public_error_with_gdals_words(tmp_path: Path) -> None:
    """rasterio.shutil.copy lets GDAL's own CPLE_OpenFailedError out (a class with no public name, derived from
    Exception only); inside ``public_errors`` it is a RasterioIOError whose cause is GDAL's error."""
    with pytest.raises(Exception) as raw:
        rasterio.shutil.copy(tmp_path / "missing.tif", tmp_path / "out.tif", driver="COG")
    assert not isinstance(raw.value, RasterioIOError)  # what the guard is for (rasterio 1.4)
    with pytest.raises(RasterioIOError, match=r"missing\.tif") as public, public_errors():
        rasterio.shutil.copy(tmp_path / "missing.tif", tmp_path / "out.tif", driver="COG")
    assert type(public.value.__cause__) is type(raw.value)
    with pytest.raises(ValueError, match="not GDAL's"), public_errors():  # any other error passes unchanged
        raise ValueError("not GDAL's")


def test_a_cog_copy_of_a_damaged_partial_is_a_write_error_and_leaves_nothing(tmp_path: Path) -> None:
    partial = tmp_path / "scene.labels.tif.partial"
    partial.write_bytes(b"II*\x00" + os.urandom(4096))  # a TIFF header and noise: GDAL cannot open it
    target = tmp_path / "scene.labels.tif"
    with pytest.raises(WriteError, match=re.escape(f"writing {target} as a COG failed")):
        place_as_cog(partial, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [partial.name]  # the partial kept, nothing half-written
