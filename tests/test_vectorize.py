"""``aeroseg vectorize``: exact shapes, seams, coverage-safe simplification, formats, real round trip, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from pyproj import Geod
from rasterio.transform import from_origin

from aeroseg_cli.polygons.vectorize import VectorizeOptions, vectorize_raster
from tests.conftest import run_cli, write_scene

PIXEL = 2.0  # metres


def labels_raster(tmp_path: Path, name: str = "labels.tif", crs: str | None = "EPSG:32633", **kw) -> Path:
    """100 x 80 label raster: background 0; a 20x20 square of class 1 with a 4x4 hole; a tall class-2 bar crossing
    many strip seams and touching the square; a nodata (255) block; a U shape of class 3 whose arms join only in
    the last strip."""
    a = np.zeros((100, 80), np.uint8)
    a[10:30, 10:30] = 1
    a[18:22, 18:22] = 0  # hole
    a[5:95, 30:36] = 2  # touches the square on its right edge
    a[60:80, 50:70] = 255  # nodata
    a[40:90, 40:44] = 3  # U: left arm
    a[40:90, 74:78] = 3  # right arm
    a[86:90, 40:78] = 3  # joining bottom
    path = tmp_path / name
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=80,
        height=100,
        count=1,
        dtype="uint8",
        nodata=255,
        crs=crs,
        transform=from_origin(600000, 5000000, PIXEL, PIXEL),
        **kw,
    ) as dst:
        dst.write(a, 1)
        dst.update_tags(CLASS_NAMES=json.dumps(["background", "house", "road", "river"]))
    return path


def read(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)


def test_known_shapes_exact_areas_counts_and_hole(tmp_path: Path) -> None:
    src = labels_raster(tmp_path)
    summary = vectorize_raster(src, tmp_path / "out.gpkg", VectorizeOptions(block_rows=7))
    g = read(tmp_path / "out.gpkg")
    assert summary["features"] == len(g)
    by = g.groupby("class_name")
    assert by.size().to_dict() == {"background": 2, "house": 1, "road": 1, "river": 1}  # the hole is background too
    house = g[g.class_name == "house"].iloc[0]
    assert house.area == pytest.approx((400 - 16) * PIXEL**2)
    assert len(house.geometry.interiors) == 1  # hole kept
    assert house.perimeter == pytest.approx((80 + 16) * PIXEL)
    road = g[g.class_name == "road"].iloc[0]
    assert road.area == pytest.approx(90 * 6 * PIXEL**2) and road.geometry.geom_type == "Polygon"
    river = g[g.class_name == "river"].iloc[0]  # the U joins only in its last strip: still one polygon
    assert river.area == pytest.approx((50 * 4 * 2 + 4 * 30) * PIXEL**2)
    assert g.area.sum() == pytest.approx((8000 - 400) * PIXEL**2)  # everything but nodata
    assert g.crs.to_epsg() == 32633 and g.geometry.is_valid.all()
    assert set(g.columns) >= {"class_id", "class_name", "area", "perimeter", "color"}


def test_blockwise_equals_whole_raster(tmp_path: Path) -> None:
    src = labels_raster(tmp_path)
    frames = []
    for rows in (1, 7, 33, 100_000):
        out = tmp_path / f"o{rows}.gpkg"
        vectorize_raster(src, out, VectorizeOptions(block_rows=rows))
        frames.append(read(out).sort_values(["class_id", "area"]).reset_index(drop=True))
    whole = frames[-1]
    for f in frames[:-1]:
        assert len(f) == len(whole)
        assert (f.class_id.values == whole.class_id.values).all()
        assert all(a.equals(b) for a, b in zip(f.geometry, whole.geometry, strict=True))


def noisy_labels(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 4, (12, 12)).astype(np.uint8)
    a = np.kron(coarse, np.ones((10, 10), np.uint8))
    a[rng.random(a.shape) < 0.05] = 3  # speckle
    return write_scene(
        tmp_path / "noisy.tif", a[None], crs="EPSG:32633", transform=from_origin(600000, 5000000, 1.0, 1.0), nodata=255
    )


def test_simplified_coverage_has_no_gaps_or_overlaps(tmp_path: Path) -> None:
    src = noisy_labels(tmp_path)
    vectorize_raster(src, tmp_path / "raw.gpkg", VectorizeOptions(block_rows=16))
    vectorize_raster(src, tmp_path / "s.gpkg", VectorizeOptions(block_rows=16, simplify=2.0))
    raw, simple = read(tmp_path / "raw.gpkg"), read(tmp_path / "s.gpkg")
    assert (
        shapely.get_num_coordinates(simple.geometry.values).sum()
        < shapely.get_num_coordinates(raw.geometry.values).sum()
    )
    assert simple.union_all().area == pytest.approx(raw.union_all().area, rel=1e-9)
    tree = shapely.STRtree(simple.geometry.values)
    left, right = tree.query(simple.geometry.values, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(
        shapely.intersection(simple.geometry.values[left[pairs]], simple.geometry.values[right[pairs]])
    )
    assert overlap.max() < 1e-6


def test_min_area_merges_small_regions_into_neighbours(tmp_path: Path) -> None:
    a = np.ones((40, 40), np.uint8)
    a[10:12, 10:12] = 2  # a 2x2 speck inside class 1
    src = write_scene(tmp_path / "speck.tif", a[None], transform=from_origin(0, 40, 1, 1), nodata=255)
    vectorize_raster(src, tmp_path / "raw.gpkg", VectorizeOptions())
    vectorize_raster(src, tmp_path / "sieved.gpkg", VectorizeOptions(min_area=10, block_rows=8))
    raw, sieved = read(tmp_path / "raw.gpkg"), read(tmp_path / "sieved.gpkg")
    assert len(raw) == 2 and len(raw.geometry[raw.class_id == 1].iloc[0].interiors) == 1
    assert len(sieved) == 1 and len(sieved.geometry.iloc[0].interiors) == 0  # filled, not a hole
    assert sieved.area.sum() == raw.area.sum() == 1600


def test_confidence_from_probabilities(tmp_path: Path) -> None:
    src = labels_raster(tmp_path)
    probs = np.zeros((4, 100, 80), np.uint8)
    probs[1] = 204  # p(house) = 0.8 everywhere
    probs[2][:, :33] = 51
    probs[2][:, 33:] = 255  # road: half its columns at 0.2, half at 1.0
    p = write_scene(tmp_path / "probs.tif", probs, transform=from_origin(600000, 5000000, PIXEL, PIXEL))
    vectorize_raster(src, tmp_path / "c.gpkg", VectorizeOptions(probabilities=p, block_rows=9))
    g = read(tmp_path / "c.gpkg")
    assert g[g.class_name == "house"].confidence.iloc[0] == pytest.approx(0.8)
    assert g[g.class_name == "road"].confidence.iloc[0] == pytest.approx(0.6)


@pytest.mark.parametrize("ext", ["gpkg", "geojson", "shp", "parquet"])
def test_every_format_reads_back_with_crs(tmp_path: Path, ext: str) -> None:
    src = labels_raster(tmp_path)
    out = tmp_path / f"out.{ext}"
    r = run_cli("vectorize", src, "-o", out, "--json", "--dst-crs", "EPSG:4326")
    assert r.code == 0, r.stderr
    g = read(out)
    assert g.crs.to_epsg() == 4326 and len(g) == json.loads(r.stdout)["features"] == 5
    assert g[g.class_name == "house"]["area"].iloc[0] == pytest.approx(384 * PIXEL**2)  # measured before reprojection


def test_geographic_crs_measures_in_equal_area(tmp_path: Path) -> None:
    a = np.zeros((50, 50), np.uint8)
    a[10:40, 10:40] = 1
    src = write_scene(
        tmp_path / "geo.tif", a[None], crs="EPSG:4326", transform=from_origin(10.0, 50.0, 0.001, 0.001), nodata=255
    )
    summary = vectorize_raster(src, tmp_path / "g.gpkg", VectorizeOptions())
    assert "equal-area" in summary["measured_in"]
    g = read(tmp_path / "g.gpkg")
    poly = g[g.class_id == 1].geometry.iloc[0]
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(poly)[0])
    assert g[g.class_id == 1]["area"].iloc[0] == pytest.approx(geodesic, rel=2e-3)


def test_real_scene_label_raster_round_trips(shared_geotiff: Path, tmp_path: Path) -> None:
    labels = tmp_path / "naip_labels.tif"
    r = run_cli(
        "segment",
        shared_geotiff / "naip_2020_rgbn_utm14n.tif",
        "-c",
        "building,road,field,water",
        "-o",
        labels,
        "--model",
        "tiny",
        "-q",
        "--vector",
        tmp_path / "naip.gpkg",
    )
    assert r.code == 0, r.stderr
    g = read(tmp_path / "naip.gpkg")
    with rasterio.open(labels) as ds:
        original = ds.read(1)
        assert g.crs == ds.crs
        burned = rasterio.features.rasterize(
            zip(g.geometry, g.class_id, strict=True),
            out_shape=ds.shape,
            transform=ds.transform,
            fill=255,
            dtype="uint8",
        )
    assert np.array_equal(burned, original)
    assert set(g.class_name) <= {"building", "road", "field", "water"}


def test_bad_input(tmp_path: Path) -> None:
    src = labels_raster(tmp_path)

    def bad(*args, code: int, match: str) -> None:
        r = run_cli("vectorize", *args)
        assert r.code == code and match in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr

    floats = write_scene(tmp_path / "f.tif", np.random.rand(1, 20, 20).astype(np.float32))
    bad(floats, "-o", tmp_path / "f.gpkg", code=2, match="expected a label raster")
    nocrs = labels_raster(tmp_path, "nocrs.tif", crs=None)
    with rasterio.open(nocrs, "r+") as ds:
        ds.transform = rasterio.Affine.identity()
    bad(nocrs, "-o", tmp_path / "n.gpkg", code=2, match="--allow-ungeoreferenced")
    assert run_cli("vectorize", nocrs, "-o", tmp_path / "n.gpkg", "--allow-ungeoreferenced", "-q").code == 0
    (tmp_path / "exists.gpkg").write_text("x")
    bad(src, "-o", tmp_path / "exists.gpkg", code=2, match="exists")
    bad(src, "-o", tmp_path / "out.xyz", code=2, match="--format")
    bad(src, "-o", tmp_path / "out.gpkg", "--format", "kml", code=2, match="unknown format")
    bad(src, "-o", tmp_path / "no" / "out.gpkg", code=2, match="does not exist")
    bad(src, "-o", tmp_path / "o.gpkg", "--classes", "castle", code=2, match="not a class")
    assert not (tmp_path / "o.gpkg").exists() and not (tmp_path / "out.gpkg").exists()


def test_empty_result_is_a_valid_empty_layer(tmp_path: Path) -> None:
    empty = write_scene(tmp_path / "e.tif", np.full((1, 30, 30), 255, np.uint8), nodata=255)
    for ext in ("gpkg", "shp", "parquet", "geojson"):
        r = run_cli("vectorize", empty, "-o", tmp_path / f"e.{ext}", "--json")
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["features"] == 0
        g = read(tmp_path / f"e.{ext}")
        assert len(g) == 0 and g.crs.to_epsg() == 32633
        if ext != "geojson":  # GeoJSON has no schema: an empty FeatureCollection cannot name its fields
            assert {"class_id", "class_name", "area", "perimeter"} <= set(g.columns)
