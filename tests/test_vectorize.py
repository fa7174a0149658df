"""``aeroseg vectorize``: exact shapes, seams, coverage-safe simplification, formats, real round trip, bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from pyproj import CRS, Geod, Transformer
from rasterio.transform import from_origin

from aeroseg_cli.polygons.measure import SCALE_TOLERANCE, measure_for, scale_error
from aeroseg_cli.polygons.vectorize import VectorizeOptions, vectorize_raster
from aeroseg_cli.progress import progress_display
from tests.support.cli import run_cli, single_process
from tests.support.scenes import write_scene

PIXEL = 2.0  # metres


def label_array() -> np.ndarray:
    """100 x 80 labels: background 0; a 20x20 square of class 1 with a 4x4 hole; a tall class-2 bar crossing
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
    return a


def labels_raster(tmp_path: Path, name: str = "labels.tif", crs: str | None = "EPSG:32633", **kw) -> Path:
    """The label_array() scene in UTM 33N at 45 N, 2 m pixels, with class names."""
    a = label_array()
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


@pytest.mark.slow
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
    scene = write_scene(tmp_path / "scene.tif", np.random.randint(0, 255, (4, 20, 20), np.uint8))  # the scene itself
    bad(scene, "-o", tmp_path / "s.gpkg", code=2, match="expected a label raster (one band of class ids), got 4 bands")
    assert not (tmp_path / "s.gpkg").exists()
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
        r = run_cli("vectorize", empty, "-o", tmp_path / f"e_{ext}.{ext}", "--json")  # (each its own e_EXT.qml)
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["features"] == 0
        g = read(tmp_path / f"e_{ext}.{ext}")
        assert len(g) == 0 and g.crs.to_epsg() == (4326 if ext == "geojson" else 32633)  # GeoJSON: RFC 7946
        if ext != "geojson":  # GeoJSON has no schema: an empty FeatureCollection cannot name its fields
            assert {"class_id", "class_name", "area", "perimeter"} <= set(g.columns)


# --- true areas in every CRS -------------------------------------------------------------------------------------

GEOD = Geod(ellps="WGS84")
FTUS = 1200 / 3937  # metres per US survey foot
PIXEL_COUNTS = {"house": 384, "road": 540, "river": 520}  # from label_array()


def scene_at(tmp_path: Path, crs: str, lon: float, lat: float, pixel: float) -> Path:
    """label_array() in ``crs`` with its top-left corner at (lon, lat) and square pixels of ``pixel`` map units."""
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    path = write_scene(tmp_path / "scene.tif", label_array()[None], crs=crs, transform=from_origin(x, y, pixel, pixel))
    with rasterio.open(path, "r+") as ds:
        ds.nodata = 255
        ds.update_tags(CLASS_NAMES=json.dumps(["background", "house", "road", "river"]))
    return path


def geodesic(poly: shapely.Polygon) -> tuple[float, float]:
    """Area and perimeter on the WGS 84 ellipsoid of a lon/lat polygon, holes included in both (pyproj subtracts a
    hole's area only when rings are oriented, and counts only the exterior in the perimeter)."""
    area = GEOD.geometry_area_perimeter(shapely.geometry.polygon.orient(poly, 1.0))[0]
    perimeter = sum(GEOD.geometry_area_perimeter(ring)[1] for ring in (poly.exterior, *poly.interiors))
    return area, perimeter


TRUE_AREA_CASES = {
    # name: (CRS, lon, lat of the top-left corner, pixel in map units, measured in the CRS's own units?)
    "web-mercator-39.6N": ("EPSG:3857", -0.4, 39.6, 10.0, False),  # areal scale 1.68 here
    "utm-zone-edge-equator": ("EPSG:32633", 18.0, 0.0, 10.0, True),  # 3 degrees from the central meridian: 0.2 %
    "utm-9-degrees-outside": ("EPSG:32633", 24.0, 10.0, 10.0, False),  # 2.4 %: over the limit
    "us-feet": ("EPSG:2263", -74.0, 40.7, 10.0, True),  # NAD83 / New York Long Island (ftUS)
    "geographic": ("EPSG:4326", 10.0, 50.0, 0.0001, False),
}


@pytest.mark.parametrize("case", TRUE_AREA_CASES)
def test_areas_and_perimeters_are_true_ground_metres(tmp_path: Path, case: str) -> None:
    crs, lon, lat, pixel, own_units = TRUE_AREA_CASES[case]
    src = scene_at(tmp_path, crs, lon, lat, pixel)
    summary = vectorize_raster(src, tmp_path / "out.gpkg", VectorizeOptions(block_rows=16))
    g = read(tmp_path / "out.gpkg")
    assert g.crs == rasterio.open(src).crs and len(g) == summary["features"] == 5
    lonlat = g.to_crs("EPSG:4326")
    for row, poly in zip(g.itertuples(), lonlat.geometry, strict=True):
        true_area, true_perimeter = geodesic(poly)
        assert row.area == pytest.approx(true_area, rel=0.005), row.class_name
        assert row.perimeter == pytest.approx(true_perimeter, rel=0.005), row.class_name
    note = summary["measured_in"]
    if own_units:  # no reprojection: exactly pixel counts x pixel area, converted to metres
        metres = pixel * (FTUS if crs == "EPSG:2263" else 1.0)
        for name, count in PIXEL_COUNTS.items():
            assert g[g.class_name == name]["area"].iloc[0] == pytest.approx(count * metres**2, rel=1e-12)
        assert "equal-area" not in note and "scale error" in note
    else:
        assert note.startswith("metres in Lambert azimuthal equal-area centred at"), note
    if crs == "EPSG:2263":
        assert "converted from US survey foot" in note
    if crs == "EPSG:3857":  # measured in its own units, the house would be 68 % too large
        assert "Pseudo-Mercator is off true scale by up to 68." in note and "over the 0.5% limit" in note
        house = g[g.class_name == "house"]
        assert house.geometry.area.iloc[0] / house["area"].iloc[0] == pytest.approx(1.687, abs=0.002)


def test_scale_error_decides_where_to_measure() -> None:
    def around(crs: str, lon: float, lat: float, half: float = 5000.0) -> tuple[float, float, float, float]:
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        return (x - half, y - half, x + half, y + half)

    web = CRS.from_epsg(3857)
    assert scale_error(web, around("EPSG:3857", -0.4, 39.6)) == pytest.approx(0.686, abs=0.002)
    assert measure_for(web, around("EPSG:3857", -0.4, 39.6)).crs is not None  # local equal-area
    assert measure_for(web, around("EPSG:3857", 10.0, 0.0)).crs is None  # at the equator Web Mercator is true scale
    utm = CRS.from_epsg(32633)
    assert scale_error(utm, around("EPSG:32633", 15.0, 45.0)) == pytest.approx(0.0008, abs=1e-5)  # central meridian
    assert scale_error(utm, around("EPSG:32633", 18.0, 0.0)) < SCALE_TOLERANCE  # zone edge, equator: about 0.2 %
    assert measure_for(utm, around("EPSG:32633", 18.0, 0.0)).crs is None
    assert measure_for(CRS.from_epsg(4326), (10.0, 50.0, 10.01, 50.01)).crs is not None
    assert measure_for(None, (0, 0, 10, 10), pixel_coords=True).note == "pixel units (no CRS)"


# --- format and extension ----------------------------------------------------------------------------------------


def test_format_must_agree_with_the_extension(tmp_path: Path) -> None:
    src = labels_raster(tmp_path)
    r = run_cli("vectorize", src, "-o", tmp_path / "x.gpkg", "--format", "geojson")
    assert r.code == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "--format geojson" in r.stderr and "x.gpkg" in r.stderr and "contradicts" in r.stderr
    r = run_cli("vectorize", src, "-o", tmp_path / "x.json", "--format", "parquet")
    assert r.code == 2 and "contradicts" in r.stderr
    for name, fmt in (("noext", "gpkg"), ("x.data", "shp")):  # these two need their own extension
        r = run_cli("vectorize", src, "-o", tmp_path / name, "--format", fmt)
        assert r.code == 2 and f"*.{fmt}" in r.stderr, r.stderr
    assert not list(tmp_path.glob("x.*")) and not (tmp_path / "noext").exists()
    assert run_cli("vectorize", src, "-o", tmp_path / "same.gpkg", "--format", "gpkg", "-q").code == 0
    # one self-describing file, read back by its content: any name will do
    assert run_cli("vectorize", src, "-o", tmp_path / "polygons.txt", "--format", "geojson", "-q").code == 0
    assert (tmp_path / "polygons.txt").read_text().lstrip().startswith("{")
    assert len(gpd.read_file(tmp_path / "polygons.txt")) == 5
    assert run_cli("vectorize", src, "-o", tmp_path / "table", "--format", "parquet", "-q").code == 0
    assert len(gpd.read_parquet(tmp_path / "table")) == 5


# --- no library warnings on stderr -------------------------------------------------------------------------------


def ungeoreferenced(path: Path, data: np.ndarray, **profile) -> Path:
    """A GeoTIFF with neither CRS nor geotransform (as a camera or a plain image tool writes it)."""
    count, height, width = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype, **profile
    ) as d:
        d.write(data)
    return path


def test_ungeoreferenced_run_prints_no_library_warnings(tmp_path: Path) -> None:
    """A real process, so warnings reach stderr exactly as a user would see them."""
    a = label_array()
    src = ungeoreferenced(tmp_path / "plain.tif", a[None], nodata=255)
    probs = ungeoreferenced(tmp_path / "probs.tif", np.full((4, *a.shape), 200, np.uint8))
    r = single_process("vectorize", src, "-o", tmp_path / "p.gpkg", timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Warning" not in r.stderr, r.stderr
    args = ("--allow-ungeoreferenced", "--probabilities", probs, "--block-rows", "7")
    r = single_process("vectorize", src, "-o", tmp_path / "p.gpkg", *args, "--json", timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # no warnings, and progress only past 5 s
    summary = json.loads(r.stdout)
    assert summary["crs"] is None and summary["coordinates"].startswith("pixel coordinates")
    g = read(tmp_path / "p.gpkg")
    assert g.crs is None and g.total_bounds.tolist() == [0, 0, 80, 100]  # x = column, y = row
    assert g[g.class_id == 1]["area"].iloc[0] == 384 and g.confidence.max() == pytest.approx(200 / 255)
    r = run_cli("vectorize", src, "-o", tmp_path / "s.shp", *args)  # the line for people says so too (not p.shp:
    # its p.qml would also be the style QGIS gives p.gpkg)
    assert r.code == 0 and r.stderr.count("\n") == 1, r.stderr
    assert "in pixel coordinates" in r.stderr and "area and perimeter in pixel units" in r.stderr


def test_dst_crs_needs_a_georeferenced_raster(tmp_path: Path) -> None:
    src = ungeoreferenced(tmp_path / "plain.tif", label_array()[None])
    r = run_cli("vectorize", src, "-o", tmp_path / "p.gpkg", "--allow-ungeoreferenced", "--dst-crs", "EPSG:4326")
    assert r.code == 2 and "--dst-crs needs a georeferenced raster" in r.stderr
    assert not (tmp_path / "p.gpkg").exists()


# --- progress ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("simplify", [0.0, 2.0])
def test_progress_is_reported_after_each_strip(tmp_path: Path, simplify: float) -> None:
    src = labels_raster(tmp_path)
    calls: list[tuple[int, int, int]] = []
    opts = VectorizeOptions(block_rows=7, simplify=simplify)
    summary = vectorize_raster(src, tmp_path / "o.gpkg", opts, lambda *a: calls.append(a))
    assert [rows for _, rows, _ in calls] == [*range(7, 100, 7), 100]  # one call per strip
    assert {total for *_, total in calls} == {100}
    features = [n for n, *_ in calls]
    assert features == sorted(features) and features[-1] == summary["features"] == 5


def test_progress_display_picks_bar_lines_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    with progress_display("scene.tif", unit="rows", stream=out, interval=0) as update:
        update(10, 40, polygons=1234)
        update(40, 40, polygons=5000)
    assert out.getvalue().splitlines() == [
        "scene.tif: 10/40 rows (25 %), polygons 1,234, 0 s",
        "scene.tif: 40/40 rows (100 %), polygons 5,000, 0 s",
    ]
    out = io.StringIO()
    with progress_display("scene.tif", unit="rows", stream=out) as update:  # a short run in a log: no lines
        update(40, 40, polygons=1)
    assert out.getvalue() == ""
    out = io.StringIO()
    with progress_display("scene.tif", unit="rows", stream=out, quiet=True, interval=0) as update:
        update(40, 40, polygons=1)
    assert out.getvalue() == ""
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats the stream as a terminal: the bar
    out = io.StringIO()
    with progress_display("scene.tif", unit="rows", stream=out) as update:
        update(40, 40, polygons=7)
    assert "scene.tif" in out.getvalue() and "40/40" in out.getvalue() and "polygons 7" in out.getvalue()


def test_command_progress_in_a_log_and_quiet(tmp_path: Path) -> None:
    src = labels_raster(tmp_path)
    r = run_cli("vectorize", src, "-o", tmp_path / "o.gpkg", "--block-rows", "7")
    assert r.code == 0 and r.stderr.count("\n") == 1 and r.stderr.startswith("5 polygons -> "), r.stderr
    r = run_cli("vectorize", src, "-o", tmp_path / "q.gpkg", "-q")
    assert r.code == 0 and r.stderr == "" and r.stdout == ""
