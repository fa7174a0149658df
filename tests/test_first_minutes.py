"""A new user's first minutes: the design card's command as written, honest models, warnings on rasters that are not
imagery, a summary a log file can hold, readable help."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio

from tests.support.cli import run_cli
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene

DEMO = ROOT / "sample_data" / "demo_model.pt"


def test_output_defaults_to_stem_labels_tif_beside_each_scene(shared_geotiff: Path, tmp_path: Path) -> None:
    """`aeroseg segment scene.tif --classes ...` without -o: the labels land beside the scene and the summary says
    where."""
    a = shutil.copy(shared_geotiff / "landsat7_rgb_utm18n.tif", tmp_path / "a.tif")
    (tmp_path / "sub").mkdir()
    b = write_scene(tmp_path / "sub" / "b.tif", smooth_scene(200, 260))
    r = run_cli("segment", a, b, "--classes", "water,land", "--model", "tiny", "--tile", "128")
    assert r.code == 0, r.stderr
    for scene in (Path(a), b):
        out = scene.with_name(f"{scene.stem}.labels.tif")
        assert out.is_file() and str(out) in r.stderr
        with rasterio.open(out) as ds, rasterio.open(scene) as src:
            assert ds.transform == src.transform and ds.crs == src.crs


def test_summary_has_rates_and_is_never_wrapped(tmp_path: Path) -> None:
    long_dir = tmp_path / ("a-rather-long-folder-name-that-pushes-paths-past-eighty-columns-" * 2)
    long_dir.mkdir()
    scene = write_scene(long_dir / "scene.tif", smooth_scene(300, 300))
    r = run_cli("segment", scene, "-c", "a,b", "--model", "tiny", "--tile", "128")
    assert r.code == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("scene.tif:"))
    assert "windows/s" in line and "Mpx/s" in line and str(long_dir / "scene.labels.tif") in line and len(line) > 160
    assert any(x.startswith("done in ") and "model load" in x and "segment" in x for x in r.stderr.splitlines())
    r = run_cli("segment", scene, "-c", "a,b", "--model", "tiny", "--tile", "128", "--json", "-q", "--overwrite")
    summary = json.loads(r.stdout)
    assert summary["windows_per_s"] > 0 and summary["megapixels_per_s"] > 0 and summary["wall_seconds"] > 0
    assert {"checks", "model_load", "segment"} <= set(summary["stages"])


def test_elevation_and_mask_rasters_are_warned_about(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:200, 0:200]
    dsm = write_scene(tmp_path / "dsm.tif", (120 + 30 * np.sin(yy / 20) + xx / 10).astype(np.float32)[None])
    r = run_cli("segment", dsm, "-c", "a,b", "--model", "tiny", "--tile", "128")
    assert r.code == 0, r.stderr
    warning = [x for x in r.stderr.splitlines() if x.startswith("aeroseg: warning:")]
    assert len(warning) == 1 and "elevation" in warning[0] and "--bands" in warning[0] and "--scale" in warning[0]
    mask = write_scene(tmp_path / "mask.tif", ((xx > 90) * 255).astype(np.uint8)[None])
    r = run_cli("segment", mask, "-c", "a,b", "--model", "tiny", "--tile", "128")
    assert r.code == 0 and "looks like a mask" in r.stderr and "0 and 255" in r.stderr
    rgb = write_scene(tmp_path / "rgb.tif", smooth_scene(200, 200))
    r = run_cli("segment", rgb, "-c", "a,b", "--model", "tiny", "--tile", "128")
    assert r.code == 0 and "warning" not in r.stderr  # imagery is not warned about
    r = run_cli("segment", dsm, "-c", "a,b", "--model", "tiny", "--tile", "128", "--scale", "0,300", "--overwrite")
    assert r.code == 0 and "warning" not in r.stderr  # an explicit stretch says the user knows


def test_closed_vocabulary_model_refuses_names_it_cannot_know(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(300, 300))
    r = run_cli("segment", scene, "-c", "ship,harbor", "--model", DEMO, "-o", tmp_path / "o.tif")
    assert r.code == 2 and r.stderr.count("\n") == 1
    assert "building, land, road, vegetation, water" in r.stderr and "'ship', 'harbor'" in r.stderr
    assert not (tmp_path / "o.tif").exists()
    r = run_cli("segment", scene, "-c", "water,Building", "--model", DEMO, "-o", tmp_path / "o.tif", "-q")
    assert r.code == 0, r.stderr  # its own names (any case) are fine


def test_help_reads_like_other_tools() -> None:
    r = run_cli("segment", "--help")
    usage = r.stdout.splitlines()[0]
    assert usage == "Usage: aeroseg segment [OPTIONS] SCENE..."
    assert "<list" not in r.stdout and "{" not in usage
    assert "test/measurement presets" in " ".join(r.stdout.split())
