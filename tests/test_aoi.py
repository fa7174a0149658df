"""``segment --aoi``: only windows touching the polygons run, pixels outside them are 255, the labels inside equal a
whole-scene run bit for bit, the AOI is part of the resume fingerprint, and a bad AOI is one line before any work."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from rasterio.features import geometry_mask
from shapely.geometry import Point, Polygon, box

from aeroseg_cli.segment.aoi import read_aoi, scene_aoi
from aeroseg_cli.segment.engine import SegmentOptions, segment_scene
from aeroseg_cli.segment.predictor import Predictor
from aeroseg_cli.segment.reader import inspect_scene
from tests.support.cli import run_cli
from tests.support.scenes import corrupt_full_resolution_tile, smooth_scene, write_scene
from tests.support.toys import ConvModel

ORIGIN = (500000.0, 4000000.0)  # write_scene's default: EPSG:32633, 2 m pixels
PIXEL = 2.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("aoi") / "scene.tif", smooth_scene(700, 900, seed=3))


def utm(col: float, row: float) -> tuple[float, float]:
    return ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL


def aoi_file(path: Path, polygons: list, crs: str = "EPSG:4326", **kw) -> Path:
    """Polygons given in scene pixel coordinates, written in ``crs`` (reprojected from the scene's UTM zone)."""
    shapes = [Polygon([utm(c, r) for c, r in p.exterior.coords]) for p in polygons]
    gpd.GeoSeries(shapes, crs="EPSG:32633").to_crs(crs).to_file(path, **kw)
    return path


def run(scene: Path, out: Path, aoi_path: Path | None, **kw) -> tuple[object, ConvModel]:
    info = inspect_scene(scene, None, None, None, False)
    aoi = scene_aoi(read_aoi(aoi_path), aoi_path, info) if aoi_path else None
    model = ConvModel()
    opts = SegmentOptions(tile=128, overlap=0.25, batch_size=4, chunk_rows=512, probabilities=out.with_suffix(".p.tif"),
                          **kw)  # fmt: skip
    predictor = Predictor(model, ["a", "b", "c"], torch.device("cpu"))
    result = segment_scene(info, predictor, out, opts, {}, {}, aoi=aoi)
    return result, model


def test_only_windows_touching_the_aoi_run_and_inside_it_the_labels_are_the_whole_scenes(scene, tmp_path) -> None:
    """A model with spatial context (3x3 convolution): pixels near the AOI's edge still see every window that covers
    them, so inside the AOI the labels and probabilities equal a whole-scene run; outside they are nodata."""
    polygons = [Polygon([(130.3, 90.7), (410.2, 120.4), (380.6, 330.1), (150.4, 300.8)]), box(700.3, 500.6, 860.2,
                690.4)]  # fmt: skip
    path = aoi_file(tmp_path / "aoi.gpkg", polygons, "EPSG:32633")  # (reprojection: the CLI test below)
    full, full_model = run(scene, tmp_path / "full.tif", None)
    part, part_model = run(scene, tmp_path / "part.tif", path)
    with rasterio.open(tmp_path / "full.tif") as a, rasterio.open(tmp_path / "part.tif") as b:
        whole, cut, transform = a.read(1), b.read(1), a.transform
    with rasterio.open(tmp_path / "full.p.tif") as a, rasterio.open(tmp_path / "part.p.tif") as b:
        whole_p, cut_p = a.read(), b.read()
    shapes = gpd.read_file(path).to_crs("EPSG:32633").geometry  # independently: GDAL's rule, pixel centres inside
    inside = geometry_mask(shapes, out_shape=whole.shape, transform=transform, invert=True)
    assert 0.1 < inside.mean() < 0.5
    assert np.array_equal(cut[inside], whole[inside]) and (cut[~inside] == 255).all()
    assert np.array_equal(cut_p[:, inside], whole_p[:, inside]) and (cut_p[:, ~inside] == 0).all()
    runs = part.windows["done"]
    assert part.windows["outside_aoi"] > 0 and runs == part.windows["total"] - part.windows["skipped"]
    assert runs < full.windows["done"] and part.windows["outside_aoi"] <= part.windows["skipped"]
    sent = len({img.numpy().tobytes() for img in torch.cat(part_model.seen)})  # batches are padded with copies
    assert sent == runs < len({img.numpy().tobytes() for img in torch.cat(full_model.seen)})
    assert any("of the work saved" in note for note in part.notes)


def test_a_damaged_tile_outside_the_aoi_is_never_read(tmp_path) -> None:
    """One row of windows reads the damaged tile together with windows inside the AOI; the retry window by window
    leaves out those outside it, so the run that would fail without the AOI succeeds with it."""
    from aeroseg_cli.files.errors import CLIError

    scene = write_scene(tmp_path / "damaged.tif", smooth_scene(700, 900, seed=5), compress="deflate", tiled=True,
                        blockxsize=128, blockysize=128, interleave="band")  # fmt: skip
    with rasterio.open(scene, "r+") as ds:
        ds.build_overviews([2, 4])  # the scene-wide sample is read from them, not from the damaged tile
    corrupt_full_resolution_tile(scene, 1, 6)  # rows 128-255, columns 768-895
    # (decode threads: GDAL's own multi-threaded decoding reads a tile that failed once as zeros the second time)
    with pytest.raises(CLIError, match=r"window\(s\) failed"):
        run(scene, tmp_path / "all.tif", None, io_threads=2)
    aoi = aoi_file(tmp_path / "aoi.gpkg", [box(10.5, 10.5, 300.5, 400.5)])
    result, _ = run(scene, tmp_path / "aoi.tif", aoi, io_threads=2)
    assert result.windows["failed"] == 0 and result.windows["done"] > 0


def test_cli_summary_says_what_the_aoi_saved_and_the_resume_fingerprint_holds_it(scene, tmp_path) -> None:
    shp = aoi_file(tmp_path / "aoi.shp", [box(10.2, 10.2, 200.4, 150.6)], "EPSG:3857")  # a shapefile, Web Mercator
    args = ["segment", scene, "-c", "a,b", "-m", "tiny", "--tile", "128", "-o", tmp_path / "o.tif", "--aoi", shp]
    r = run_cli(*args, "--json", "-q")
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["windows"]["outside_aoi"] > summary["windows"]["done"] > 0
    assert "of the work saved" in " ".join(summary["notes"])
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.tags()["AEROSEG_AOI"] == "aoi.shp"
        labels = ds.read(1)
    assert (labels[200:] == 255).all() and (labels[20:140, 20:190] != 255).all()
    r = run_cli(*args, "--overwrite")
    assert r.code == 0 and "of the work saved" in r.stderr and "outside --aoi" in r.stderr
    from aeroseg_cli.segment.fingerprint import scene_settings
    from aeroseg_cli.segment.plan import plan
    from aeroseg_cli.segment.request import SegmentRequest

    def fingerprint(aoi: Path | None) -> dict:
        job = plan(SegmentRequest([str(scene)], classes="a", output=tmp_path / "f.tif", model="tiny", aoi=aoi))
        return scene_settings(job, job.infos[0], ["a"], 128, 4, {})

    other = aoi_file(tmp_path / "other.gpkg", [box(10.2, 10.2, 300.4, 150.6)])
    assert fingerprint(None)["aoi"] is None
    assert fingerprint(shp)["aoi"] != fingerprint(other)["aoi"]  # a --resume with another AOI is refused
    same = aoi_file(tmp_path / "same.geojson", [box(10.2, 10.2, 200.4, 150.6)], "EPSG:32633")
    assert fingerprint(same)["aoi"] != fingerprint(None)["aoi"]


def test_bad_aoi_is_one_line_before_the_model_loads(scene, tmp_path, monkeypatch) -> None:
    from aeroseg_cli.segment import runner as segment_runner

    def no_model(*args, **kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(segment_runner, "load", no_model)
    base = ["segment", scene, "-c", "a", "-m", "tiny", "-o", tmp_path / "o.tif", "--aoi"]
    far = aoi_file(tmp_path / "far.gpkg", [box(5000, 5000, 5100, 5100)])
    nocrs = tmp_path / "nocrs.shp"
    gpd.GeoSeries([box(*utm(10, 100), *utm(100, 10))]).to_file(nocrs)
    points = tmp_path / "points.geojson"
    gpd.GeoSeries([Point(utm(10, 10))], crs="EPSG:32633").to_file(points)
    two = aoi_file(tmp_path / "two.gpkg", [box(10, 10, 50, 50)], layer="a")
    aoi_file(two, [box(60, 60, 90, 90)], layer="b")
    (tmp_path / "text.gpkg").write_text("not a vector file")
    for path, match in [
        (tmp_path / "missing.gpkg", "no such file"),
        (tmp_path / "text.gpkg", "not a vector file GDAL can read"),
        (nocrs, "has no CRS"),
        (points, "has no polygons"),
        (two, "2 layers (a, b)"),
        (far, "does not overlap scene.tif"),
    ]:
        r = run_cli(*base, path)
        assert r.code == 2 and match in r.stderr, (path, r.stderr)
        assert r.stderr.startswith("aeroseg: error: --aoi") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "o.tif").exists()
    ungeo = write_scene(tmp_path / "plain.tif", smooth_scene(64, 64), crs=None, transform=rasterio.Affine.identity())
    r = run_cli("segment", ungeo, "-c", "a", "-m", "tiny", "-o", tmp_path / "u.tif", "--allow-ungeoreferenced",
                "--aoi", far)  # fmt: skip
    assert r.code == 2 and "--aoi needs georeferenced scenes" in r.stderr
    ok = aoi_file(tmp_path / "ok.gpkg", [box(10, 10, 50, 50)])
    r = run_cli(*base[:-3], "-o", tmp_path / "ok.tif", "--vector", ok, "--aoi", ok, "--overwrite")
    assert r.code == 2 and "is the input" in r.stderr  # the AOI is an input: no output may replace it
