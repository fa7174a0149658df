"""Styled outputs: every file ``segment`` and ``vectorize`` write opens with the right legend, colours, names and
nodata, read back the way GIS software reads it (GDAL through rasterio and its C API, the QML as XML, the
GeoPackage's ``layer_styles`` row through sqlite3, GeoJSON as text) and, where Debian's QGIS is installed, in QGIS
itself (``tests/qgis_open.py`` run by QGIS's own Python on copies of the files)."""

from __future__ import annotations

import ctypes
import functools
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.warp import transform_bounds

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.segment.engine import SegmentOptions, segment_scene
from aeroseg_cli.segment.predictor import Predictor
from aeroseg_cli.segment.reader import inspect_scene
from aeroseg_cli.segment.resume import partial_paths
from aeroseg_cli.styles.palette import class_colors, conventional_color, load_palette, parse_color, split_class_colors
from tests.support.cli import run_cli
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene
from tests.support.toys import PixelModel

CLASSES = "water:#123456,building,tree|forest"
NAMES = ["water", "building", "tree|forest"]
QGIS_PYTHON = "/usr/bin/python3"


# -- palette ---------------------------------------------------------------------------------------------------
def _hue_family(rgb) -> str:
    r, g, b = rgb
    if max(rgb) - min(rgb) < 24:
        return "grey"
    if b > r and b >= g:
        return "blue"
    if g > r and g > b:
        return "green"
    if r > g and r > b and g < 0.6 * r:
        return "red"
    return "warm"


def test_conventional_colours_for_well_known_names() -> None:
    families = {"water": "blue", "sea": "blue", "river": "blue", "lake": "blue", "vegetation": "green",
                "tree": "green", "forest": "green", "grass": "green", "field": "green", "agriculture": "green",
                "building": "red", "road": "grey", "pavement": "grey", "parking lot": "grey", "bare soil": "warm",
                "sand": "warm", "bareland": "warm"}  # fmt: skip
    for name, family in families.items():
        assert _hue_family(conventional_color(name)) == family, name
    # plurals, case, separators, synonyms and head nouns find the same colour
    assert conventional_color("Buildings") == conventional_color("building")
    assert conventional_color("low_vegetation") == conventional_color("grass")
    assert conventional_color("small vehicle") == conventional_color("vehicle")
    assert conventional_color("zebra|tree") == conventional_color("tree")
    objects = [conventional_color(n) for n in ("ship", "plane", "vehicle", "storage tank", "harbor", "helicopter")]
    assert len(set(objects)) == len(objects)
    assert conventional_color("solar panel") is None


def test_colours_depend_on_names_not_positions_and_stay_distinct() -> None:
    alone = dict(zip(["water", "zebra crossing"], class_colors(["water", "zebra crossing"]), strict=True))
    mixed = dict(zip(["road", "zebra crossing", "x", "water"], class_colors(["road", "zebra crossing", "x", "water"]),
                     strict=True))  # fmt: skip
    assert alone["water"] == mixed["water"] and alone["zebra crossing"] == mixed["zebra crossing"]
    many = [f"object {i}" for i in range(60)] + ["tree", "forest", "woodland", "water", "Water body"]
    colors = class_colors(many)
    assert len(set(colors)) == len(many)  # shades for classes of one family, the palette, then hashed hues
    assert class_colors(list(reversed(many))) == list(reversed(colors))  # the set decides, not the order


@functools.cache
def lcms_lab():
    from PIL import ImageCms

    return ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")


def lab_by_lcms(colors) -> np.ndarray:
    """CIE L*a*b* (ICC, D50) of sRGB colours computed by LittleCMS (Pillow's ImageCms), not by the palette's own
    conversion. Pillow stores L as 0..255 and a, b as signed bytes."""
    from PIL import Image, ImageCms

    image = Image.fromarray(np.asarray(colors, np.uint8).reshape(1, -1, 3))
    raw = np.array(ImageCms.applyTransform(image, lcms_lab())).reshape(-1, 3)
    return np.stack([raw[:, 0] * (100 / 255), raw[:, 1].view(np.int8), raw[:, 2].view(np.int8)], axis=1)


def look_apart(colors) -> tuple[float, float]:
    """The smallest colour difference (CIE76) between two of ``colors``, and between one and white or black."""
    lab = lab_by_lcms(colors)
    pairs = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.diag(np.full(len(lab), np.inf))
    background = np.linalg.norm(lab[:, None] - lab_by_lcms([(255, 255, 255), (0, 0, 0)])[None], axis=-1)
    return float(pairs.min()), float(background.min())


APART, BACKGROUND = 10.0, 10.0  # CIE76; 2.3 is just noticeable, Kelly's palette is 15 apart, #ebebeb is 7 from white


def test_a_family_of_names_gets_colours_that_look_apart_and_its_own_name_the_family_colour() -> None:
    """Review 1, finding 10: street, roundabout and side street all got (235, 235, 235), invisible on white, and
    road a near-black shade while "dirt road" took the road grey."""
    names = ["road", "street", "highway", "motorway", "lane", "roadway", "roundabout", "main road", "side street",
             "dirt road"]  # fmt: skip
    colors = class_colors(names)
    assert colors[0] == conventional_color("road") and colors[-1] != conventional_color("road")
    apart, background = look_apart(colors)
    assert apart >= APART and background >= BACKGROUND, (apart, background, colors)
    assert class_colors(names[::-1]) == colors[::-1]
    water = class_colors(["lake", "water", "river", "water body"])  # lake's blue is 6 from water's
    assert water[1] == conventional_color("water") and min(look_apart(water)) >= APART


def random_names(rng: np.random.Generator, n: int) -> list[str]:
    """Class lists as users write them: conventional names, plurals, names with a qualifier, unknown words."""
    from aeroseg_cli.styles.palette import CONVENTIONAL

    known, qualifiers = sorted(CONVENTIONAL), ["dirt", "main", "old", "small", "large", "wet", "Dry", "side"]
    names = []
    for _ in range(n):
        kind, word = rng.integers(4), str(rng.choice(known))
        if kind == 1:
            word = f"{rng.choice(qualifiers)} {word}"
        elif kind == 2:
            word = f"{word.title()}s"
        elif kind == 3:
            word = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(3, 10)))
        names.append(word)
    return list(dict.fromkeys(names))


def test_every_list_of_names_gets_colours_that_look_apart_and_stand_out_from_white_and_black() -> None:
    rng = np.random.default_rng(23)
    for n in [*rng.integers(2, 13, 120), *rng.integers(13, 40, 40), 60, 120]:
        names = random_names(rng, int(n))
        colors = class_colors(names)
        assert len(set(colors)) == len(names)
        apart, background = look_apart(colors)
        assert apart >= APART and background >= BACKGROUND, (names, apart, background)
        assert dict(zip(names[::-1], class_colors(names[::-1]), strict=True)) == dict(zip(names, colors, strict=True))
        for name, color in zip(names, colors, strict=True):  # a family's own name keeps the family's colour
            if name in ("water", "building", "road", "tree", "vegetation", "ship"):
                assert color == conventional_color(name), (name, names)
    given = {"water": (31, 120, 180)}  # the user's colours are taken as given; the others keep apart from them
    colors = class_colors(["water", "lake", "sea", "river", "pond"], given)
    assert colors[0] == (31, 120, 180) and min(look_apart(colors)) >= APART


def test_user_colours_in_the_class_list_and_in_a_file(tmp_path: Path) -> None:
    names, given = split_class_colors(["water:#1f78b4", "tree|forest:green", "road", "field: 200,180,20"])
    assert names == ["water", "tree|forest", "road", "field"]
    assert class_colors(names, given) == [(31, 120, 180), (0, 128, 0), conventional_color("road"), (200, 180, 20)]
    assert class_colors(["forest"], {"tree|forest": (1, 2, 3)}) != [(1, 2, 3)]  # the whole name, or a synonym of it
    assert class_colors(["tree|forest"], {"forest": (1, 2, 3)}) == [(1, 2, 3)]
    with pytest.raises(UsageError, match="'bluish' in 'water:bluish' is not a colour"):
        split_class_colors(["water:bluish"])
    lines = tmp_path / "colors.txt"
    lines.write_text("# mine\nWater: #000080\nroad = grey\nbuilding\t255,0,0\n")
    assert load_palette(lines) == {"water": (0, 0, 128), "road": (128, 128, 128), "building": (255, 0, 0)}
    as_json = tmp_path / "colors.json"
    as_json.write_text(json.dumps({"water": "#000080", "tree": [0, 100, 0]}))
    assert load_palette(as_json) == {"water": (0, 0, 128), "tree": (0, 100, 0)}
    qgis = tmp_path / "qgis.txt"  # QGIS: layer properties > symbology > export colour map
    qgis.write_text("# QGIS Generated Color Map Export File\nINTERPOLATION:EXACT\n0,31,120,180,255,water\n")
    assert load_palette(qgis) == {"water": (31, 120, 180)}
    lines.write_text("water: nope\n")
    with pytest.raises(UsageError, match="line 1: 'nope' is not a colour"):
        load_palette(lines)
    assert parse_color("steelblue") == (70, 130, 180)


# -- the files of one segment run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One ``segment`` run (tiny preset) of a scene with a nodata collar: COG labels, probabilities, a GeoPackage."""
    folder = tmp_path_factory.mktemp("styled")
    data = smooth_scene(300, 260)
    data[:, :, :40] = 0  # the collar: nodata in every band
    scene = write_scene(folder / "scene.tif", data, nodata=0)
    args = ["segment", scene, "-c", CLASSES, "-m", "tiny", "--tile", "128", "-o", folder / "labels.tif", "--cog",
            "--probabilities", folder / "probs.tif", "--vector", folder / "polygons.gpkg", "-q", "--json"]  # fmt: skip
    r = run_cli(*args)
    assert r.code == 0, r.stderr
    colors = class_colors(NAMES, {"water": (0x12, 0x34, 0x56)})
    return {"folder": folder, "scene": scene, "colors": colors, "summary": json.loads(r.stdout), "args": args}


P, INT, STR = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
GDAL_API = {  # name: (result, arguments)
    "GDALOpen": (P, [STR, INT]),
    "GDALClose": (None, [P]),
    "GDALGetRasterBand": (P, [P, INT]),
    "GDALGetRasterCategoryNames": (ctypes.POINTER(STR), [P]),
    "GDALGetDefaultRAT": (P, [P]),
    "GDALRATGetTableType": (INT, [P]),
    "GDALRATGetColumnCount": (INT, [P]),
    "GDALRATGetRowCount": (INT, [P]),
    "GDALRATGetNameOfCol": (STR, [P, INT]),
    "GDALRATGetUsageOfCol": (INT, [P, INT]),
    "GDALRATGetValueAsString": (STR, [P, INT, INT]),
}


def gdal() -> ctypes.CDLL:
    """The GDAL library rasterio loaded (already registered), through its C API."""
    lib = ctypes.CDLL(glob.glob(str(Path(rasterio.__file__).parent.parent / "rasterio.libs" / "libgdal*.so*"))[0])
    for name, (result, args) in GDAL_API.items():
        getattr(lib, name).restype, getattr(lib, name).argtypes = result, args
    lib.GDALAllRegister()
    return lib


def gdal_band_table(path: Path) -> dict:
    """What GDAL itself reads for band 1: category names and the raster attribute table, which live in the PAM
    ``.aux.xml`` (rasterio has no API for either)."""
    lib = gdal()
    ds = lib.GDALOpen(str(path).encode(), 0)
    assert ds, f"GDAL cannot open {path}"
    try:
        band = lib.GDALGetRasterBand(ds, 1)
        rat = lib.GDALGetDefaultRAT(band)  # first: GDAL 3.10's GeoTIFF driver reads the .aux.xml only on this call
        names, cats = [], lib.GDALGetRasterCategoryNames(band)
        while cats and cats[len(names)] is not None:
            names.append(cats[len(names)].decode())
        if not rat:
            return {"categories": names, "rat": None}
        cols, rows = range(lib.GDALRATGetColumnCount(rat)), lib.GDALRATGetRowCount(rat)
        return {
            "categories": names,
            "thematic": lib.GDALRATGetTableType(rat) == 0,
            "columns": [lib.GDALRATGetNameOfCol(rat, c).decode() for c in cols],
            "usages": [lib.GDALRATGetUsageOfCol(rat, c) for c in cols],
            "rows": [[lib.GDALRATGetValueAsString(rat, r, c).decode() for c in cols] for r in range(rows)],
        }
    finally:
        lib.GDALClose(ds)


def qml_palette(path: Path) -> list[tuple[int, str, str, int]]:
    root = ET.parse(path).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    return [(int(e.get("value")), e.get("label"), e.get("color"), int(e.get("alpha")))
            for e in renderer.iter("paletteEntry")]  # fmt: skip


def test_label_raster_carries_names_colours_and_a_legend_of_exactly_its_classes(run: dict) -> None:
    folder, colors = run["folder"], run["colors"]
    assert colors[0] == (0x12, 0x34, 0x56)  # the colour given in --classes
    with rasterio.open(folder / "labels.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.nodata == 255
        cmap = ds.colormap(1)
        assert [cmap[i][:3] for i in range(3)] == colors and cmap[255] == (0, 0, 0, 0)
        assert ds.descriptions == ("class",) and json.loads(ds.tags()["CLASS_NAMES"]) == NAMES
        assert [ds.tags(1)[f"class_{i}"] for i in range(3)] == NAMES
    entries = qml_palette(folder / "labels.qml")  # QGIS's default style for labels.tif
    hexes = ["#{:02x}{:02x}{:02x}".format(*c) for c in colors]
    assert entries == [(0, "water", hexes[0], 255), (1, "building", hexes[1], 255), (2, "tree|forest", hexes[2], 255),
                       (255, "unknown / nodata", "#000000", 0)]  # fmt: skip
    table = gdal_band_table(folder / "labels.tif")  # the .aux.xml, as GDAL reads it with the raster
    assert table["categories"][:3] == NAMES and table["categories"][255] == "unknown / nodata"
    assert table["thematic"] and table["columns"] == ["Value", "Class", "Red", "Green", "Blue", "Alpha"]
    assert table["usages"] == [5, 2, 6, 7, 8, 9]  # min-max, name, red, green, blue, alpha
    expected = [[str(i), n, *map(str, c), "255"] for i, (n, c) in enumerate(zip(NAMES, colors, strict=True))]
    assert table["rows"] == [*expected, ["255", "unknown / nodata", "0", "0", "0", "0"]]


def test_class_names_stay_inside_the_geotiff_copied_alone(run: dict, tmp_path: Path) -> None:
    shutil.copy(run["folder"] / "labels.tif", tmp_path / "alone.tif")
    with rasterio.open(tmp_path / "alone.tif") as ds:
        assert json.loads(ds.tags()["CLASS_NAMES"]) == NAMES and ds.tags(1)["class_2"] == "tree|forest"
        assert ds.colormap(1)[0][:3] == (0x12, 0x34, 0x56)


def test_probability_raster_reads_as_p_with_nodata_where_the_scene_is(run: dict) -> None:
    folder = run["folder"]
    with rasterio.open(folder / "probs.tif") as ds, rasterio.open(run["scene"]) as scene:
        assert ds.descriptions == tuple(NAMES) and ds.nodata == 0
        assert ds.scales == (1 / 255,) * 3 and ds.offsets == (0.0,) * 3
        assert all(ci.name == "gray" or ci.name == "undefined" for ci in ds.colorinterp)  # not an RGB image
        probs, valid = ds.read(), ds.dataset_mask() > 0
        assert np.array_equal(valid, scene.dataset_mask() > 0)  # nodata exactly where the scene's collar is
        assert (probs[:, valid] >= 1).all() and (probs[:, ~valid] == 0).all()
        p = ds.read(1, masked=True) * ds.scales[0] + ds.offsets[0]  # what GDAL and QGIS show: p in [0, 1]
        assert p.min() > 0 and p.max() <= 1
    renderer = ET.parse(folder / "probs.qml").getroot().find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor" and renderer.get("band") == "1"
    assert (renderer.get("classificationMin"), renderer.get("classificationMax")) == ("0", "1")
    items = [float(i.get("value")) for i in renderer.iter("item")]
    assert items[0] == 0 and items[-1] == 1 and items == sorted(items)


def test_geopackage_opens_categorized_by_class_with_the_rasters_colours(run: dict) -> None:
    gpkg = run["folder"] / "polygons.gpkg"
    with sqlite3.connect(gpkg) as db:
        rows = db.execute("SELECT f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
                          "styleQML, useAsDefault FROM layer_styles").fetchall()  # fmt: skip
        layer, geometry_column = db.execute("SELECT table_name, column_name FROM gpkg_geometry_columns").fetchone()
        registered = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
        user_version = db.execute("PRAGMA user_version").fetchone()[0]
    assert registered == ("attributes",) and user_version == 10200  # GeoPackage 1.2: read by QGIS 3.22's GDAL
    assert len(rows) == 1
    catalog, schema, table, column, name, qml, default = rows[0]
    assert layer == "labels"  # the layer is named after the raster
    assert (catalog, schema, table, column, name, default) == ("", "", layer, geometry_column, layer, 1)
    root = ET.fromstring(qml.split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_id"
    cats = [(c.get("value"), c.get("label"), c.get("symbol")) for c in renderer.iter("category")]
    assert cats == [("0", "water", "0"), ("1", "building", "1"), ("2", "tree|forest", "2")]
    fills = {s.get("name"): s.find("layer/prop[@k='color']").get("v") for s in renderer.iter("symbol")}
    assert [fills[str(i)] for i in range(3)] == ["{},{},{},255".format(*c) for c in run["colors"]]
    import pyogrio

    frame = pyogrio.read_dataframe(gpkg, layer=layer)
    assert set(frame["color"]) <= {"#{:02x}{:02x}{:02x}".format(*c) for c in run["colors"]}


@pytest.mark.parametrize("fmt", ["shp", "geojson"])
def test_other_vector_formats_get_a_qml_beside_them(run: dict, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"poly.{fmt}"
    r = run_cli("vectorize", run["folder"] / "labels.tif", "-o", out, "--classes", "building,water", "-q")
    assert r.code == 0, r.stderr
    root = ET.parse(tmp_path / "poly.qml").getroot()
    cats = [(c.get("value"), c.get("label")) for c in root.iter("category")]
    assert cats == [("0", "water"), ("1", "building")]  # only the classes kept
    r = run_cli("vectorize", run["folder"] / "labels.tif", "-o", tmp_path / "other.gpkg", "-q")
    assert r.code == 0
    (tmp_path / "poly.qml").unlink()
    (tmp_path / "again.qml").write_text("mine")  # a style of the user's where the new one would go
    r = run_cli("vectorize", run["folder"] / "labels.tif", "-o", tmp_path / f"again.{fmt}", "-q")
    assert r.code == 2 and "again.qml" in r.stderr and "--overwrite" in r.stderr
    assert (tmp_path / "again.qml").read_text() == "mine" and not (tmp_path / f"again.{fmt}").exists()
    assert run_cli("vectorize", run["folder"] / "labels.tif", "-o", tmp_path / f"again.{fmt}", "-q",
                   "--overwrite").code == 0  # fmt: skip
    assert "categorizedSymbol" in (tmp_path / "again.qml").read_text()


def test_geojson_is_rfc7946_by_default_and_names_another_crs(run: dict, tmp_path: Path) -> None:
    labels = run["folder"] / "labels.tif"
    assert run_cli("vectorize", labels, "-o", tmp_path / "p.geojson", "-q").code == 0
    doc = json.loads((tmp_path / "p.geojson").read_text())
    assert "crs" not in doc
    with rasterio.open(labels) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    coords = np.array([xy for f in doc["features"] for ring in f["geometry"]["coordinates"] for xy in ring])
    assert (west - 1e-6 <= coords[:, 0]).all() and (coords[:, 0] <= east + 1e-6).all()  # longitude first
    assert (south - 1e-6 <= coords[:, 1]).all() and (coords[:, 1] <= north + 1e-6).all()
    import shapely

    exteriors = [shapely.LinearRing(f["geometry"]["coordinates"][0]) for f in doc["features"]]
    assert all(shapely.is_ccw(ring) for ring in exteriors)  # RFC 7946 section 3.1.6: the right-hand rule
    import pyogrio

    metric = pyogrio.read_dataframe(run["folder"] / "polygons.gpkg")  # areas measured as before, in metres
    ours = sorted(f["properties"]["area"] for f in doc["features"])
    assert np.allclose(ours, sorted(metric["area"]), rtol=1e-9)
    r = run_cli("vectorize", labels, "-o", tmp_path / "utm.geojson", "--dst-crs", "EPSG:32633", "-q", "--json")
    assert r.code == 0 and "not RFC 7946" in json.loads(r.stdout)["coordinates"]
    assert "32633" in json.dumps(json.loads((tmp_path / "utm.geojson").read_text())["crs"])


def test_preview_uses_the_same_colours(run: dict, tmp_path: Path) -> None:
    from PIL import Image

    from aeroseg_cli.commands.preview import GAP

    r = run_cli("preview", run["scene"], run["folder"] / "labels.tif", "-o", tmp_path / "p.png")
    assert r.code == 0, r.stderr
    image = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    with rasterio.open(run["folder"] / "labels.tif") as ds:
        h, w = ds.height, ds.width  # small enough to be drawn at full size
    labels_part = image[:h, w + GAP :].reshape(-1, 3)
    assert {tuple(c) for c in np.unique(labels_part, axis=0)} <= {*run["colors"], (0, 0, 0)}
    assert tuple(image[h + 13, w + GAP + 11]) == run["colors"][0]  # the legend's first swatch


def test_styles_are_replaced_with_overwrite_and_checked_before_work(run: dict, tmp_path: Path) -> None:
    out = tmp_path / "o.tif"
    base = ["segment", run["scene"], "-m", "tiny", "--tile", "128", "-o", out, "-q"]
    assert run_cli(*base, "-c", "a,b").code == 0
    assert [e[1] for e in qml_palette(tmp_path / "o.qml")] == ["a", "b", "unknown / nodata"]
    r = run_cli(*base, "-c", "road")
    assert r.code == 2 and "exists (use --overwrite" in r.stderr
    assert run_cli(*base, "-c", "road", "--overwrite").code == 0
    assert [e[1] for e in qml_palette(tmp_path / "o.qml")] == ["road", "unknown / nodata"]
    out.unlink()
    (tmp_path / "o.tif.aux.xml").unlink()
    r = run_cli(*base, "-c", "road")  # the .qml alone is still part of the output
    assert r.code == 2 and "o.qml" in r.stderr and not out.exists()
    r = run_cli(*base, "-c", "road", "--overwrite", "--vector", tmp_path / "o.shp")  # both would write o.qml
    assert r.code == 2 and "would both write" in r.stderr and "o.qml" in r.stderr


def test_a_colour_in_the_class_list_wins_over_the_colours_file(run: dict, tmp_path: Path) -> None:
    """As the help and docs/commands.md say (review 1, finding 11)."""
    colors = tmp_path / "colors.json"
    colors.write_text(json.dumps({"water": "red", "building": "#00ff00"}))
    out = tmp_path / "c.tif"
    args = ["segment", run["scene"], "-m", "tiny", "--tile", "128", "-q", "-o", out, "--colors", colors]
    assert run_cli(*args, "-c", "water:#123456,building").code == 0
    with rasterio.open(out) as ds:
        assert [ds.colormap(1)[i][:3] for i in range(2)] == [(0x12, 0x34, 0x56), (0, 255, 0)]
    text = run_cli("segment", "--help").stdout
    assert "wins over --colors" in " ".join(text.split()) and "--classes colours win" in " ".join(text.split())


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line_refusal(r, *words: str) -> bool:
    return r.code == 2 and r.stderr.strip().count("\n") == 0 and all(w in r.stderr for w in words)


def test_vectorize_never_replaces_the_style_or_metadata_of_its_input(run: dict, tmp_path: Path) -> None:
    """Review 1, finding 3: ``vectorize l.tif -o l.shp --overwrite`` turned l.qml into a vector style, and QGIS
    showed l.tif with 256 legend entries again."""
    labels = tmp_path / "l.tif"
    for src, dest in (("labels.tif", "l.tif"), ("labels.qml", "l.qml"), ("labels.tif.aux.xml", "l.tif.aux.xml")):
        shutil.copy(run["folder"] / src, tmp_path / dest)
    before = files_of(tmp_path)
    for out in ("l.shp", "l.geojson", "l.parquet"):
        for overwrite in ([], ["--overwrite"]):
            r = run_cli("vectorize", labels, "-o", tmp_path / out, *overwrite, "-q")
            assert one_line_refusal(r, "l.qml", "QGIS style of the input", "name of its own"), (out, r.stderr)
    r = run_cli("vectorize", labels, "-o", tmp_path / "l.tif.aux.xml", "--format", "geojson", "--overwrite", "-q")
    assert one_line_refusal(r, "GDAL metadata (.aux.xml) of the input"), r.stderr
    assert files_of(tmp_path) == before
    assert run_cli("vectorize", labels, "-o", tmp_path / "l.polygons.shp", "-q").code == 0  # a name of its own
    assert (tmp_path / "l.qml").read_bytes() == before["l.qml"] and (tmp_path / "l.polygons.qml").is_file()


def test_an_output_never_takes_over_the_style_another_file_shares(run: dict, tmp_path: Path) -> None:
    """``x.tif`` and ``x.tiff`` (or ``x.shp``) are both styled by ``x.qml``: a later output must not restyle an
    earlier file, not even with --overwrite; nor may it restyle its input scene."""
    base = ["segment", run["scene"], "-m", "tiny", "--tile", "128", "-q"]
    assert run_cli(*base, "-c", "a,b", "-o", tmp_path / "x.tif").code == 0
    before = files_of(tmp_path)
    for overwrite in ([], ["--overwrite"]):
        r = run_cli(*base, "-c", "road", "-o", tmp_path / "x.tiff", *overwrite)
        assert one_line_refusal(r, "x.qml", f"also the QGIS style of {tmp_path / 'x.tif'}", "not written"), r.stderr
        r = run_cli("vectorize", tmp_path / "x.tif", "-o", tmp_path / "x.geojson", *overwrite)
        assert one_line_refusal(r, "x.qml", "QGIS style of the input"), r.stderr
    assert files_of(tmp_path) == before
    scene = shutil.copy(run["scene"], tmp_path / "scene.tif")
    r = run_cli("segment", scene, "-m", "tiny", "--tile", "128", "-c", "road", "-o", tmp_path / "scene.tiff", "-q")
    assert one_line_refusal(r, "scene.qml", "QGIS style of the input"), r.stderr
    r = run_cli(*base, "-c", "road", "-o", tmp_path / "y.tif", "--probabilities", tmp_path / "y.tiff")
    assert one_line_refusal(r, "would both write", "y.qml", "name of its own"), r.stderr
    assert files_of(tmp_path) == {**before, "scene.tif": (tmp_path / "scene.tif").read_bytes()}


def test_overwrite_leaves_no_stale_statistics_beside_the_outputs(run: dict, tmp_path: Path) -> None:
    """Review 1, finding 6: QGIS (for a histogram) and ``gdalinfo -stats`` keep band statistics in the PAM
    ``.aux.xml``; after ``--overwrite`` the probability raster's still described the old raster."""
    labels, probs = tmp_path / "b.tif", tmp_path / "bp.tif"
    base = ["segment", run["scene"], "-m", "tiny", "--tile", "128", "-q", "-o", labels, "--probabilities", probs]
    assert run_cli(*base, "-c", "tree,building").code == 0
    for path in (labels, probs):
        with rasterio.open(path) as ds:
            ds.stats(indexes=1)  # what gdalinfo -stats does: STATISTICS_* kept in the .aux.xml on close
        assert "STATISTICS_MEAN" in Path(f"{path}.aux.xml").read_text()
    r = run_cli(*base, "-c", "water,road")
    assert one_line_refusal(r, "--overwrite"), r.stderr
    assert run_cli(*base, "-c", "water,road", "--overwrite").code == 0
    for path in (labels, probs):
        with rasterio.open(path) as ds:
            data = ds.read(1, masked=True).compressed().astype(np.float64)
            shown = ds.tags(1)  # what gdalinfo and QGIS show: the .aux.xml's statistics where it holds any
        if "STATISTICS_MEAN" in shown:
            assert float(shown["STATISTICS_MEAN"]) == pytest.approx(data.mean()), path
            assert float(shown["STATISTICS_MAXIMUM"]) == data.max(), path


def run_engine(scene: Path, out: Path, model, resume: bool = False, **kw) -> object:
    """The engine alone on a toy model (three classes), as ``segment`` runs it."""
    info = inspect_scene(scene, None, None, None, False)
    opts = SegmentOptions(tile=64, overlap=0.25, chunk_rows=512, resume=resume, **kw)
    predictor = Predictor(model, ["a", "b", "c"], torch.device("cpu"))
    return segment_scene(info, predictor, out, opts, tags={}, settings={"test": 1})


def test_a_resumed_run_carries_the_colours_of_the_run_that_finishes(tmp_path: Path) -> None:
    class Stops(PixelModel):
        def forward(self, images, class_names):
            if len(self.seen) >= 40:
                raise KeyboardInterrupt
            return super().forward(images, class_names)

    scene = write_scene(tmp_path / "s.tif", smooth_scene(1100, 300))
    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        run_engine(scene, out, Stops(), batch_size=1, colors=[(1, 1, 1), (2, 2, 2), (3, 3, 3)])
    assert partial_paths(out)[0].exists()
    run_engine(scene, out, PixelModel(), resume=True, colors=[(9, 9, 9), (8, 8, 8), (7, 7, 7)])
    with rasterio.open(out) as ds:
        assert [ds.colormap(1)[i][:3] for i in range(3)] == [(9, 9, 9), (8, 8, 8), (7, 7, 7)]
    assert [e[2] for e in qml_palette(tmp_path / "out.qml")][:3] == ["#090909", "#080808", "#070707"]


# -- in QGIS itself ---------------------------------------------------------------------------------------------
def qgis_available() -> bool:
    """Debian's PyQGIS for the system Python (``apt-get install qgis python3-qgis``), found without starting it."""
    return Path(QGIS_PYTHON).exists() and Path("/usr/lib/python3/dist-packages/qgis/core").is_dir()


def open_in_qgis(layers: list[dict]) -> list[dict]:
    spec = Path(layers[0]["path"]).parent / "spec.json"
    spec.write_text(json.dumps({"layers": layers}))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(spec.parent)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([QGIS_PYTHON, str(ROOT / "tests" / "qgis_open.py"), str(spec)], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["layers"]


@pytest.mark.skipif(not qgis_available(), reason="QGIS (Debian's python3-qgis) is not installed")
def test_qgis_opens_every_output_with_its_legend_colours_names_and_nodata(run: dict, tmp_path: Path) -> None:
    for name in ("labels.tif", "labels.tif.aux.xml", "labels.qml", "probs.tif", "probs.qml", "polygons.gpkg"):
        shutil.copy(run["folder"] / name, tmp_path / name)  # QGIS writes .aux.xml files: never the originals
    assert run_cli("vectorize", tmp_path / "labels.tif", "-o", tmp_path / "poly.shp", "-q").code == 0
    assert run_cli("vectorize", tmp_path / "labels.tif", "-o", tmp_path / "poly84.geojson", "-q").code == 0
    with rasterio.open(tmp_path / "labels.tif") as ds:
        collar, inside = ds.xy(150, 5), ds.xy(150, 200)
        inside_label = int(ds.read(1)[150, 200])
    with rasterio.open(tmp_path / "probs.tif") as ds:
        inside_p = ds.read(1)[150, 200] / 255
    labels, probs, gpkg, shp, geojson = open_in_qgis([
        {"path": str(tmp_path / "labels.tif"), "kind": "raster", "probe": [collar, inside]},
        {"path": str(tmp_path / "probs.tif"), "kind": "raster", "probe": [collar, inside]},
        {"path": str(tmp_path / "polygons.gpkg"), "kind": "vector"},
        {"path": str(tmp_path / "poly.shp"), "kind": "vector"},
        {"path": str(tmp_path / "poly84.geojson"), "kind": "vector"},
    ])  # fmt: skip
    hexes = ["#{:02x}{:02x}{:02x}".format(*c) for c in run["colors"]]
    assert labels["renderer"] == "paletted"
    assert labels["classes"] == [[i, n, hexes[i], 255] for i, n in enumerate(NAMES)] + [[255, "unknown / nodata",
                                                                                        "#000000", 0]]  # fmt: skip
    assert labels["probes"][0]["1"] is None and labels["probes"][1]["1"] == inside_label  # nodata, then a class
    assert probs["renderer"] == "singlebandpseudocolor" and (probs["band"], probs["min"], probs["max"]) == (1, 0, 1)
    assert probs["band_names"] == [f"Band {i + 1}: {n}" for i, n in enumerate(NAMES)]
    assert all(v is None for v in probs["probes"][0].values())  # the collar is nodata, not p = 0
    assert abs(probs["probes"][1]["1"] - inside_p) < 1e-6  # p itself (scale 1/255), not p x 255
    for layer in (gpkg, shp, geojson):
        assert layer["valid"] and layer["features"] > 0
        assert layer["renderer"] == "categorizedSymbol" and layer["attribute"] == "class_id"
        assert [[str(v), n, c] for v, n, c in layer["classes"]] == [[str(i), n, hexes[i]] for i, n in enumerate(NAMES)]
    assert geojson["crs"] == "EPSG:4326" and gpkg["crs"] == "EPSG:32633"
