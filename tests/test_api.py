"""The Python API as a notebook uses it: only names exported by ``aeroseg_cli`` (typed arguments, result objects,
errors worded with parameter names, no process setting changed on import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

import aeroseg_cli
from tests.support.paths import ROOT
from tests.support.scenes import write_scene


def test_import_is_light_and_changes_no_process_setting() -> None:
    """``import aeroseg_cli`` (and resolving the API's names) loads no torch, rasterio or GDAL setting."""
    code = (
        "import os, sys; before = dict(os.environ); import aeroseg_cli; "
        "aeroseg_cli.segment, aeroseg_cli.vectorize, aeroseg_cli.SegmentRequest, aeroseg_cli.AerosegError; "
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items()); "
        "heavy = [m for m in ('torch', 'rasterio', 'geopandas') if m in sys.modules]; assert not heavy, heavy"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


def test_vectorize_returns_a_result_and_errors_name_parameters(tmp_path: Path) -> None:
    labels = np.zeros((1, 64, 96), np.uint8)
    labels[0, 10:40, 20:70] = 1
    src = write_scene(tmp_path / "labels.tif", labels)
    result = aeroseg_cli.vectorize(src, tmp_path / "out.gpkg", min_area=0.0)
    assert isinstance(result, aeroseg_cli.VectorizeResult)
    assert result.output == tmp_path / "out.gpkg" and result.format == "gpkg" and result.features == 2
    assert len(gpd.read_file(result.output, layer="labels")) == 2
    with pytest.raises(aeroseg_cli.UsageError) as err:
        aeroseg_cli.vectorize(src, tmp_path / "bad.gpkg", min_area=-1.0)
    assert str(err.value) == "min_area and simplify must not be negative"  # the CLI says --min-area and --simplify
    with pytest.raises(aeroseg_cli.UsageError, match=r"exists \(use overwrite=True to replace it\)"):
        aeroseg_cli.vectorize(src, tmp_path / "out.gpkg")
    with pytest.raises(TypeError):
        aeroseg_cli.vectorize(src, tmp_path / "x.gpkg", min_aera=1.0)  # a misspelt option is not ignored
