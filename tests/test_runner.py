"""``segment.runner.segment(request)``, the run both the command line and Python callers make: a result object back,
warnings through ``warnings.warn`` (never printed by the library), and the command line's ``aeroseg: warning:``
lines made from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from aeroseg_cli.files.errors import AerosegWarning
from aeroseg_cli.segment.fingerprint import scene_settings
from aeroseg_cli.segment.plan import plan
from aeroseg_cli.segment.request import SegmentRequest
from aeroseg_cli.segment.resume import settings_differences
from aeroseg_cli.segment.runner import segment
from tests.support.cli import run_cli
from tests.support.scenes import smooth_scene, write_scene

OVERLAP_WARNING = "--overlap 0.9 runs every pixel through about 114 windows"  # (64 / 6)², at tile 64


def test_segment_returns_what_it_did_and_warns_through_the_warnings_module(tmp_path: Path, capsys) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    request = SegmentRequest([str(scene)], ["a", "b"], output=tmp_path / "o.tif", model="tiny", tile=64, overlap=0.9,
                             quiet=True)  # fmt: skip
    with pytest.warns(AerosegWarning, match=OVERLAP_WARNING):
        run = segment(request)
    assert capsys.readouterr().err == ""  # the library says it through warnings, the command line prints it
    assert len(run.warnings) == 1 and run.warnings[0].startswith(OVERLAP_WARNING)
    assert (run.main, run.processes, run.device, run.classes) == (True, 1, "cpu", ["a", "b"])
    assert run.model_choice == "--model"
    assert {"checks", "model_load", "segment"} <= set(run.timings) and run.seconds > 0
    (result,) = run.results
    assert result.outputs == [str(tmp_path / "o.tif")] and result.windows["done"] == result.windows["total"] > 0
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.shape == (64, 64)


def test_the_command_line_shows_the_warnings_as_one_line_each_and_none_with_quiet(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    args = ["segment", scene, "-c", "a,b", "-m", "tiny", "--tile", "64", "--overlap", "0.9", "-o", tmp_path / "o.tif"]
    r = run_cli(*args)
    assert r.code == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("aeroseg: warning: ")]
    assert len(warned) == 1 and warned[0].startswith(f"aeroseg: warning: {OVERLAP_WARNING}")
    r = run_cli(*args, "--overwrite", "-q")
    assert r.code == 0 and r.stderr == "", r.stderr


def test_the_fingerprint_reads_back_from_its_sidecar_as_it_was_written(tmp_path: Path) -> None:
    """A partial's sidecar holds the settings as JSON: read back, they equal the run's own (a tuple, say the typed
    --scale, would read back as a list and refuse every --resume with --scale), and --scale keeps its text form."""
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    request = SegmentRequest([str(scene)], ["a"], output=tmp_path / "o.tif", model="tiny", tile=64, scale=(0.0, 200.0),
                             bands=[3, 2, 1], target_gsd=2.0)  # fmt: skip
    checked = plan(request)
    settings = scene_settings(checked, checked.infos[0], ["a"], 64, 4, {"model": "preset tiny", "precision": "fp32"})
    assert settings_differences(json.loads(json.dumps(settings)), settings) == []
    assert settings["scale"] == "0,200"


def test_a_reversed_scale_is_refused_by_the_plan_for_the_command_line_too(tmp_path: Path) -> None:
    """MIN < MAX is checked once, in the plan that the command line and the Python API share."""
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    r = run_cli("segment", scene, "-c", "a", "-m", "tiny", "--scale", "5,1", "-o", tmp_path / "o.tif")
    assert r.code == 2 and r.stderr == "aeroseg: error: --scale needs MIN < MAX, got 5,1\n", r.stderr
    assert not (tmp_path / "o.tif").exists()
