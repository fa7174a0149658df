"""Issue #11, "never lose or corrupt a user's data": bad inputs to every writing command, table-driven.

Each case builds its files in a fresh workspace, runs ``aeroseg`` in-process and is checked by the harness
(``tests/support/reliability.py``): every input byte-identical (SHA-256 and mtime), the exit code as expected and
never 0 for a failure, stderr exactly one ``aeroseg: error: ...`` line with no traceback or library warning, nothing
at the output path unless the case succeeds, no temporary or partial file left, an existing output untouched.
The faults that need real processes (signals, file-size limits, concurrency, damaged tiles) are in
``test_reliability_faults.py``.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from tests.support.docs import DOCS, with_generated, write_generated
from tests.support.paths import ROOT
from tests.support.reliability import (
    Expect,
    Setup,
    Snapshot,
    Workspace,
    check_outcome,
    fifo_released,
    held_lock,
    run_in_process,
)
from tests.support.scenes import smooth_scene, write_scene

TINY = ["--model", "tiny", "--tile", "128", "-q"]


class Payload:
    """A pickled object that would run code if unpickled."""

    def __reduce__(self):
        return (print, ("arbitrary code ran",))


# -- the table ----------------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    command: str
    what: str
    outcome: str  # for the table in docs/reliability.md
    build: Callable[[Workspace], list | Setup]
    expect: Expect


CASES: list[Case] = []


def case(command: str, what: str, outcome: str, **expect) -> Callable:
    def register(fn: Callable[[Workspace], list | Setup]) -> Callable:
        CASES.append(Case(fn.__name__, command, what, outcome, fn, Expect(**expect)))
        return fn

    return register


SAME = "is the input"  # what check_outputs says when an output would replace an input

# segment ---------------------------------------------------------------------------------------------------------


@case("segment", "`-o` is the scene (`--overwrite`)", "exit 2, scene untouched", code=2, match=[SAME])
def segment_output_is_input(ws):
    s = ws.scene()
    return ["segment", s, "-c", "a,b", "-o", s, "--overwrite", *TINY]


@case("segment", "`-o` is a symlink to the scene", "exit 2, scene untouched", code=2, match=[SAME])
def segment_output_symlink_to_input(ws):
    s = ws.scene()
    return ["segment", s, "-c", "a,b", "-o", ws.link(s, "link.tif"), "--overwrite", *TINY]


@case("segment", "`-o` is a hard link to the scene", "exit 2, scene untouched", code=2, match=[SAME])
def segment_output_hardlink_to_input(ws):
    s = ws.scene()
    return ["segment", s, "-c", "a,b", "-o", ws.hardlink(s, "hard.tif"), "--overwrite", *TINY]


@case("segment", "`--probabilities` is the scene", "exit 2, scene untouched", code=2, match=[SAME])
def segment_probabilities_is_input(ws):
    s = ws.scene()
    return ["segment", s, "-c", "a,b", "-o", ws / "o.tif", "--probabilities", s, "--overwrite", *TINY]


@case("segment", "`--probabilities` is a hard link to the scene", "exit 2", code=2, match=[SAME])
def segment_probabilities_hardlink_to_input(ws):
    s = ws.scene()
    p = ws.hardlink(s, "p.tif")
    return ["segment", s, "-c", "a,b", "-o", ws / "o.tif", "--probabilities", p, "--overwrite", *TINY]


@case("segment", "`--probabilities` equal to `-o`", "exit 2 before any work, nothing written", code=2,
      match=["the output and the probabilities raster are the same file"])  # fmt: skip
def segment_probabilities_equals_output(ws):
    s = ws.scene()
    return ["segment", s, "-c", "a,b", "-o", ws / "o.tif", "--probabilities", ws / "o.tif", *TINY]


@case("segment", "`--probabilities` is the `--model` checkpoint", "exit 2, checkpoint untouched", code=2,
      match=[SAME])  # fmt: skip
def segment_probabilities_is_model(ws):
    s, m = ws.scene(), ws.checkpoint()
    return ["segment", s, "-c", "a,b", "-o", ws / "o.tif", "--probabilities", m, "--overwrite", "--model", m, "-q"]


@case("segment", "`-o` is the `--classes-file`", "exit 2, class list untouched", code=2, match=[SAME])
def segment_output_is_classes_file(ws):
    s, names = ws.scene(), ws.write("names.tif", "a\nb\n")
    return ["segment", s, "--classes-file", names, "-o", names, "--overwrite", *TINY]


@case("segment", "existing `-o` without `--overwrite`", "exit 2, the old file byte-identical", code=2,
      match=["exists (use --overwrite"])  # fmt: skip
def segment_existing_output(ws):
    s, out = ws.scene(), ws.write("o.tif", b"an earlier result")
    return ["segment", s, "-c", "a,b", "-o", out, *TINY]


@case("segment", "finished output with `--resume`, no `--overwrite`", "exit 2 before any work, output untouched",
      code=2, match=["exists (use --overwrite"])  # fmt: skip
def segment_resume_onto_finished_output(ws):
    s, out = ws.scene(), ws.write("o.tif", b"a finished result")
    return ["segment", s, "-c", "a,b", "-o", out, "--resume", *TINY]


@case("segment", "`--tile 0`", "exit 2", code=2, match=["--tile must be at least"])
def segment_tile_zero(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", "tiny", "--tile", "0"]


@case("segment", "`--overlap 1.5`", "exit 2", code=2, match=["--overlap"])
def segment_bad_overlap(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--overlap", "1.5", *TINY]


@case("segment", "`-o x.png` for one scene", "exit 2, no `x.png/` folder made", code=2, match=["GeoTIFF"],
      absent=["x.png"])  # fmt: skip
def segment_png_output(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "x.png", *TINY]


@case("segment", "folder `-o` for two scenes, unknown `--model`", "exit 2, the folder not created", code=2,
      match=["neither a checkpoint file nor a preset"], absent=["new"])  # fmt: skip
def segment_new_folder_bad_model(ws):
    return ["segment", ws.scene("a.tif"), ws.scene("b.tif"), "-c", "a,b", "-o", ws / "new", "--model", "nope"]


@case("segment", "folder `-o` for two scenes, `--tile` not a multiple of the patch", "exit 2, folder not created",
      code=2, match=["--tile must be a multiple"], absent=["new"])  # fmt: skip
def segment_new_folder_bad_tile(ws):
    return ["segment", ws.scene("a.tif"), ws.scene("b.tif"), "-c", "a,b", "-o", ws / "new" / "sub",
            "--model", "tiny", "--tile", "100", "-q"]  # fmt: skip


@case("segment", "two scenes, `-o` an existing plain file", "exit 2, the file untouched", code=2,
      match=["output folder"])  # fmt: skip
def segment_two_scenes_output_is_file(ws):
    out = ws.write("out", b"not a folder")
    return ["segment", ws.scene("a.tif"), ws.scene("b.tif"), "-c", "a,b", "-o", out, *TINY]


@case("segment", "binary `--classes-file`", "exit 2", code=2, match=["not a text file"])
def segment_binary_classes_file(ws):
    names = ws.write("names.txt", bytes(range(256)))
    return ["segment", ws.scene(), "--classes-file", names, "-o", ws / "o.tif", *TINY]


@case("segment", "scene does not exist", "exit 2", code=2, match=["no such file"])
def segment_missing_scene(ws):
    return ["segment", ws / "missing.tif", "-c", "a", "-o", ws / "o.tif", *TINY]


@case("segment", "scene is not a raster", "exit 2", code=2, match=["not a raster"])
def segment_not_a_raster(ws):
    return ["segment", ws.write("in.tif", "text, not a raster"), "-c", "a", "-o", ws / "o.tif", *TINY]


@case("segment", "ungeoreferenced scene with `--vector`, no `--allow-ungeoreferenced`", "exit 2, nothing written",
      code=2, match=["--allow-ungeoreferenced"])  # fmt: skip
def segment_ungeoreferenced_refused(ws):
    return ["segment", ws.png(), "-c", "a,b", "--vector", ws / "X.gpkg", *TINY]


def _check_pixel_polygons(ws) -> Callable:
    def verify(_result) -> None:
        import geopandas as gpd

        polygons = gpd.read_file(ws / "X.gpkg")
        assert len(polygons) > 0 and polygons.crs is None
        assert polygons.total_bounds[2] <= 170 and polygons.total_bounds[3] <= 150  # pixel coordinates

    return verify


@case("segment", "`X.png --allow-ungeoreferenced --vector X.gpkg`", "exit 0: labels and polygons in pixel units",
      code=0, lines=None, created=["X.labels.tif", "X.labels.tif.aux.xml", "X.labels.qml", "X.gpkg"])  # fmt: skip
def segment_ungeoreferenced_vector(ws):
    args = ["segment", ws.png(), "-c", "a,b", "--allow-ungeoreferenced", "--vector", ws / "X.gpkg", *TINY]
    return Setup(args, verify=_check_pixel_polygons(ws))


@case("segment", "`--vector` folder does not exist", "exit 2 before any work, no labels written", code=2,
      match=["does not exist"])  # fmt: skip
def segment_vector_folder_missing(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--vector", ws / "no" / "v.gpkg", *TINY]


def _nan_is_nodata(ws) -> Callable:
    def verify(_result) -> None:
        with rasterio.open(ws / "o.tif") as ds:
            labels = ds.read(1)
        assert (labels[:60] == 255).all() and (labels[60:] != 255).all()

    return verify


@case("segment", "NaN pixels, no nodata declared", "exit 0, NaN pixels are nodata (255)", code=0, lines=None,
      created=["o.tif", "o.tif.aux.xml", "o.qml"])  # fmt: skip
def segment_nan_without_nodata(ws):
    data = smooth_scene(160, 160).astype(np.float32)
    data[:, :60] = np.nan
    s = write_scene(ws / "nan.tif", data, nodata=None)
    return Setup(["segment", s, "-c", "a,b", "-o", ws / "o.tif", *TINY], verify=_nan_is_nodata(ws))


@case("segment", "`/vsizip//abs/path/x.zip/scene.tif` scene", "exit 0 offline", code=0, lines=None,
      created=["z.tif", "z.tif.aux.xml", "z.qml"])  # fmt: skip
def segment_vsizip(ws):
    with zipfile.ZipFile(ws / "x.zip", "w") as z:
        z.write(ws.scene("inner.tif"), "scene.tif")
    (ws / "inner.tif").unlink()
    return ["segment", f"/vsizip/{ws / 'x.zip'}/scene.tif", "-c", "a,b", "-o", ws / "z.tif", *TINY]


@case("segment", "unreachable `/vsicurl/http://127.0.0.1:9/x.tif`", "exit 2: cannot open the remote raster",
      code=2, match=["cannot open this remote or virtual raster"])  # fmt: skip
def segment_vsicurl_unreachable(ws):
    return ["segment", "/vsicurl/http://127.0.0.1:9/x.tif", "-c", "a,b", "-o", ws / "o.tif", *TINY]


@case("segment", "`--model` a pickle that runs code", "exit 1: refused, never advises `weights_only=False`",
      code=1, match=["evil.pth"], forbid=["weights_only", "\x1b["])  # fmt: skip
def segment_pickled_model(ws):
    evil = ws.write("evil.pth", pickle.dumps(Payload()))
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", evil, "-q"]


@case("segment", "`--model` an AerOSeg-looking checkpoint holding a pickled object", "exit 1: refused", code=1,
      match=["evil.pt"], forbid=["weights_only", "\x1b["])  # fmt: skip
def segment_pickled_object_in_checkpoint(ws):
    import torch

    torch.save({"format": "aeroseg-checkpoint", "payload": Payload()}, ws / "evil.pt")
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", ws / "evil.pt", "-q"]


@case("segment", "`-o` being written by another process", "exit 1 naming that process, nothing written", code=1,
      match=["being written by another aeroseg run (process {held})"])  # fmt: skip
def segment_output_locked(ws):
    return Setup(
        ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", *TINY], context=lambda: held_lock(ws / "o.tif")
    )


@case("segment", "`--vector` being written by another process", "exit 1, no labels written either", code=1,
      match=["(process {held})"])  # fmt: skip
def segment_vector_locked(ws):
    args = ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--vector", ws / "v.gpkg", *TINY]
    return Setup(args, context=lambda: held_lock(ws / "v.gpkg"))


# segment: outputs that are not files, inputs that would block, sizes that cannot run (issue #20) --------------------

NOT_A_FILE = "not a regular file; it is never replaced"


@case("segment", "`-o` a device node (`--overwrite`)", "exit 2, the node untouched", code=2,
      match=["is a character device", NOT_A_FILE])  # fmt: skip
def segment_output_device(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws.node("o.tif"), "--overwrite", *TINY]


@case("segment", "`-o` a FIFO (no `--overwrite`)", "exit 2 at once, the FIFO untouched", code=2,
      match=["is a FIFO", NOT_A_FILE])  # fmt: skip
def segment_output_fifo(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws.node("o.tif", "fifo"), *TINY]


@case("segment", "`-o` a socket (`--overwrite`)", "exit 2", code=2, match=["is a socket", NOT_A_FILE])
def segment_output_socket(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws.node("o.tif", "socket"), "--overwrite", *TINY]


@case("segment", "`-o NODE` (a device node, no `.tif`)", "exit 2 naming it, not \"folder does not exist\"", code=2,
      match=["-o", "full is a character device", NOT_A_FILE])  # fmt: skip
def segment_output_device_no_suffix(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws.node("full", "full"), "--overwrite", *TINY]


@case("segment", "`-o`'s `.aux.xml` is a folder (`--overwrite`)", "exit 2", code=2,
      match=["o.tif.aux.xml is a folder", NOT_A_FILE])  # fmt: skip
def segment_aux_is_folder(ws):
    (ws / "o.tif.aux.xml").mkdir()
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--overwrite", *TINY]


@case("segment", "`--probabilities` a device node (`--overwrite`)", "exit 2, the node untouched", code=2,
      match=["probabilities raster", "is a character device"])  # fmt: skip
def segment_probabilities_device(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--probabilities", ws.node("p.tif"),
            "--overwrite", *TINY]  # fmt: skip


@case("segment", "`--vector` a device node `.gpkg` (`--overwrite`)", "exit 2, no labels written", code=2,
      match=["vector output", "is a character device"])  # fmt: skip
def segment_vector_device(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--vector", ws.node("v.gpkg"), "--overwrite",
            *TINY]  # fmt: skip


@case("segment", "the scene is a FIFO", "exit 2 at once (no hang)", code=2, match=["is a FIFO", "not a file"])
def segment_scene_fifo(ws):
    fifo = ws.node("in.tif", "fifo")
    return Setup(["segment", fifo, "-c", "a,b", "-o", ws / "o.tif", *TINY], context=lambda: fifo_released(fifo))


@case("segment", "the scene is a device node", "exit 2", code=2, match=["is a character device"])
def segment_scene_device(ws):
    return ["segment", ws.node("in.tif"), "-c", "a,b", "-o", ws / "o.tif", *TINY]


@case("segment", "`--classes-file` a FIFO", "exit 2 at once (no hang)", code=2, match=["--classes-file", "is a FIFO"])
def segment_classes_file_fifo(ws):
    fifo = ws.node("names.txt", "fifo")
    args = ["segment", ws.scene(), "--classes-file", fifo, "-o", ws / "o.tif", *TINY]
    return Setup(args, context=lambda: fifo_released(fifo))


@case("segment", "`--model` a FIFO", "exit 2 at once (no hang)", code=2, match=["--model", "is a FIFO"])
def segment_model_fifo(ws):
    fifo = ws.node("m.pt", "fifo")
    args = ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", fifo, "-q"]
    return Setup(args, context=lambda: fifo_released(fifo))


def _class_names_are(ws, names: list[str]) -> Callable:
    def verify(_result) -> None:
        with rasterio.open(ws / "o.tif") as ds:
            assert json.loads(ds.tags()["CLASS_NAMES"]) == names

    return verify


@case("segment", "`--classes-file` with a UTF-8 BOM and `#` comment lines", "exit 0: the BOM dropped, `#` lines "
      "skipped (documented)", code=0, lines=None, created=["o.tif", "o.tif.aux.xml", "o.qml"])  # fmt: skip
def segment_classes_file_bom(ws):
    names = ws.write("names.txt", "\ufeffbuilding\n# roads are left out\n  # an indented comment\nwater\n")
    return Setup(["segment", ws.scene(), "--classes-file", names, "-o", ws / "o.tif", *TINY],
                 verify=_class_names_are(ws, ["building", "water"]))  # fmt: skip


def _nodata_where(ws, rows: slice) -> Callable:
    def verify(_result) -> None:
        with rasterio.open(ws / "o.tif") as ds:
            labels = ds.read(1)
        inside = np.zeros(labels.shape, bool)
        inside[rows] = True
        assert (labels[inside] == 255).all() and (labels[~inside] != 255).all()

    return verify


@case("segment", "+inf and -inf pixels", "exit 0, they are nodata (255) as NaN is", code=0, lines=None,
      created=["o.tif", "o.tif.aux.xml", "o.qml"])  # fmt: skip
def segment_inf_is_nodata(ws):
    data = smooth_scene(160, 160).astype(np.float32)
    data[0, :40], data[1, 40:80] = np.inf, -np.inf
    s = write_scene(ws / "inf.tif", data, nodata=None)
    return Setup(["segment", s, "-c", "a,b", "-o", ws / "o.tif", *TINY], verify=_nodata_where(ws, slice(0, 80)))


NO_VALID = "every pixel read for the scene-wide sample is nodata"


def _all_nodata(ws) -> Callable:
    def verify(_result) -> None:
        with rasterio.open(ws / "o.tif") as ds:
            assert (ds.read(1) == 255).all()

    return verify


@case("segment", "an all-nodata uint8 scene", "exit 0: a valid all-255 map, with a warning", code=0, lines=None,
      match=[NO_VALID], created=["o.tif", "o.tif.aux.xml", "o.qml"])  # fmt: skip
def segment_all_nodata_uint8(ws):
    s = write_scene(ws / "empty.tif", np.zeros((3, 160, 160), np.uint8), nodata=0)
    return Setup(["segment", s, "-c", "a,b", "-o", ws / "o.tif", "--model", "tiny", "--tile", "128"],
                 verify=_all_nodata(ws))  # fmt: skip


@case("segment", "an all-NaN float scene", "exit 0: the same all-255 map and warning as all-nodata uint8", code=0,
      lines=None, match=[NO_VALID], created=["o.tif", "o.tif.aux.xml", "o.qml"])  # fmt: skip
def segment_all_nan(ws):
    s = write_scene(ws / "nan.tif", np.full((3, 160, 160), np.nan, np.float32))
    return Setup(["segment", s, "-c", "a,b", "-o", ws / "o.tif", "--model", "tiny", "--tile", "128"],
                 verify=_all_nodata(ws))  # fmt: skip


@case("segment", "a scene with ground control points only", "exit 2 saying so, with the `gdalwarp` line", code=2,
      match=["4 ground control points", "gdalwarp -r bilinear"])  # fmt: skip
def segment_gcp_only(ws):
    from rasterio.control import GroundControlPoint as Gcp

    gcps = [Gcp(r, c, 500000 + 2 * c, 4000000 - 2 * r) for r in (0, 159) for c in (0, 159)]
    with rasterio.open(ws / "gcp.tif", "w", driver="GTiff", width=160, height=160, count=3, dtype="uint8",
                       gcps=gcps, crs="EPSG:32633") as dst:  # fmt: skip
        dst.write(smooth_scene(160, 160))
    return ["segment", ws / "gcp.tif", "-c", "a,b", "-o", ws / "o.tif", *TINY]


@case("segment", "`--tile 100000`", "exit 2 before any work, naming the memory one batch needs", code=2,
      match=["--tile 100000", "needs at least", "of memory available"])  # fmt: skip
def segment_runaway_tile(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", "tiny", "--tile", "100000", "-q"]


@case("segment", "`--target-gsd 0.0001` (a 1e13-pixel grid)", "exit 2 at once, naming the limit", code=2,
      match=["--target-gsd 0.0001 makes a", "give a coarser --target-gsd"])  # fmt: skip
def segment_runaway_target_gsd(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--target-gsd", "0.0001", *TINY]


@case("segment", "`--max-memory 64M` below one window's blender", "exit 2 naming --max-memory", code=2,
      match=["--max-memory", "cannot hold the blender"])  # fmt: skip
def segment_max_memory_below_one_window(ws):
    return ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", "tiny", "--tile", "2048",
            "--max-memory", "64M", "-q"]  # fmt: skip


@case("segment", "`--overlap 0.9`", "exit 0 with a warning: every pixel runs through ~100 windows", code=0,
      lines=None, match=["--overlap 0.9 runs every pixel through about"],
      created=["o.tif", "o.tif.aux.xml", "o.qml"])  # fmt: skip
def segment_overlap_warning(ws):
    return ["segment", ws.scene(height=64, width=64), "-c", "a,b", "-o", ws / "o.tif", "--model", "tiny", "--tile",
            "64", "--overlap", "0.9"]  # fmt: skip


@case("segment", "`--aoi` a FIFO", "exit 2 at once (no hang)", code=2, match=["--aoi", "is a FIFO"])
def segment_aoi_fifo(ws):
    fifo = ws.node("aoi.gpkg", "fifo")
    args = ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--aoi", fifo, *TINY]
    return Setup(args, context=lambda: fifo_released(fifo))


@case("segment", "`-o` locked by another process, `--model` a damaged checkpoint", "exit 1 naming the other "
      "process: the lock is taken before the model loads", code=1, match=["(process {held})"],
      forbid=["m.pt", "loading model"])  # fmt: skip
def segment_lock_before_model(ws):
    args = ["segment", ws.scene(), "-c", "a,b", "-o", ws / "o.tif", "--model", ws.write("m.pt", b"not a model")]
    return Setup(args, context=lambda: held_lock(ws / "o.tif"))


# vectorize -------------------------------------------------------------------------------------------------------


@case("vectorize", "`L.tif -o L.tif --format gpkg --overwrite`", "exit 2, labels untouched", code=2,
      match=["L.tif"])  # fmt: skip
def vectorize_output_is_input_gpkg(ws):
    return ["vectorize", ws.labels(), "-o", ws / "L.tif", "--format", "gpkg", "--overwrite", "-q"]


@case("vectorize", "`L.tif -o L.tif --format geojson --overwrite`", "exit 2, labels untouched", code=2,
      match=[SAME])  # fmt: skip
def vectorize_output_is_input_geojson(ws):
    return ["vectorize", ws.labels(), "-o", ws / "L.tif", "--format", "geojson", "--overwrite", "-q"]


@case("vectorize", "`-o` a symlink to the labels", "exit 2", code=2, match=[SAME])
def vectorize_output_symlink_to_input(ws):
    labels = ws.labels()
    return ["vectorize", labels, "-o", ws.link(labels, "v.geojson"), "--overwrite", "-q"]


@case("vectorize", "`-o` a hard link to the labels", "exit 2", code=2, match=[SAME])
def vectorize_output_hardlink_to_input(ws):
    labels = ws.labels()
    return ["vectorize", labels, "-o", ws.hardlink(labels, "v.geojson"), "--overwrite", "-q"]


@case("vectorize", "a shapefile sibling (`out.dbf`) is the input", "exit 2, input untouched", code=2, match=[SAME])
def vectorize_shapefile_sibling_is_input(ws):
    labels = ws.labels("out.dbf")  # GDAL opens by content, whatever the name
    return ["vectorize", labels, "-o", ws / "out.shp", "--overwrite", "-q"]


@case("vectorize", "`-o` is the `--probabilities` raster", "exit 2", code=2, match=[SAME])
def vectorize_output_is_probabilities(ws):
    probs = write_scene(ws / "P.tif", np.full((3, 64, 64), 100, np.uint8), transform=from_origin(600000, 5000000, 2, 2))
    return ["vectorize", ws.labels(), "--probabilities", probs, "-o", probs, "--format", "geojson", "--overwrite"]


@case("vectorize", "`--format geojson -o x.gpkg`", "exit 2", code=2, match=["contradicts the extension"])
def vectorize_format_contradicts_extension(ws):
    return ["vectorize", ws.labels(), "-o", ws / "x.gpkg", "--format", "geojson"]


@case("vectorize", "existing `-o` without `--overwrite`", "exit 2, the old file byte-identical", code=2,
      match=["exists (use --overwrite"])  # fmt: skip
def vectorize_existing_output(ws):
    return ["vectorize", ws.labels(), "-o", ws.write("v.gpkg", b"earlier polygons")]


@case("vectorize", "float raster (not labels)", "exit 2", code=2, match=["expected a label raster"])
def vectorize_float_raster(ws):
    floats = write_scene(ws / "f.tif", np.random.default_rng(0).random((1, 20, 20)).astype(np.float32))
    return ["vectorize", floats, "-o", ws / "f.gpkg"]


@case("vectorize", "ungeoreferenced labels, no `--allow-ungeoreferenced`", "exit 2", code=2,
      match=["--allow-ungeoreferenced"])  # fmt: skip
def vectorize_ungeoreferenced_refused(ws):
    return ["vectorize", ws.labels(georeferenced=False), "-o", ws / "v.gpkg"]


@case("vectorize", "ungeoreferenced labels with `--allow-ungeoreferenced`", "exit 0, no pyogrio CRS warning",
      code=0, lines=None, created=["v.gpkg"])  # fmt: skip
def vectorize_ungeoreferenced_allowed(ws):
    return ["vectorize", ws.labels(georeferenced=False), "-o", ws / "v.gpkg", "--allow-ungeoreferenced", "-q"]


@case("vectorize", "`--probabilities` on another grid", "exit 2, nothing written", code=2,
      match=["is not on the grid"])  # fmt: skip
def vectorize_probabilities_other_grid(ws):
    probs = write_scene(ws / "P.tif", np.full((3, 32, 32), 100, np.uint8))
    return ["vectorize", ws.labels(), "--probabilities", probs, "-o", ws / "v.gpkg"]


@case("vectorize", "output folder does not exist", "exit 2", code=2, match=["does not exist"])
def vectorize_missing_folder(ws):
    return ["vectorize", ws.labels(), "-o", ws / "no" / "v.gpkg"]


@case("vectorize", "`-o` being written by another process", "exit 1 naming it", code=1, match=["(process {held})"])
def vectorize_output_locked(ws):
    return Setup(["vectorize", ws.labels(), "-o", ws / "v.gpkg"], context=lambda: held_lock(ws / "v.gpkg"))


@case("vectorize", "`-o` a device node `.gpkg` (`--overwrite`)", "exit 2, the node untouched", code=2,
      match=["is a character device", "never replaced"])  # fmt: skip
def vectorize_output_device(ws):
    return ["vectorize", ws.labels(), "-o", ws.node("v.gpkg"), "--overwrite", "-q"]


@case("vectorize", "the labels are a FIFO", "exit 2 at once (no hang)", code=2, match=["is a FIFO"])
def vectorize_labels_fifo(ws):
    fifo = ws.node("L.tif", "fifo")
    return Setup(["vectorize", fifo, "-o", ws / "v.gpkg", "-q"], context=lambda: fifo_released(fifo))


@case("vectorize", "unreachable `http://127.0.0.1:9/L.tif`", "exit 2 naming the URL as given (not `http:/`)",
      code=2, match=["http://127.0.0.1:9/L.tif", "cannot open this remote or virtual raster"])  # fmt: skip
def vectorize_unreachable_url(ws):
    return ["vectorize", "http://127.0.0.1:9/L.tif", "-o", ws / "v.gpkg", "-q"]


@case("vectorize", "`--min-area 1e12`", "exit 2: larger than the whole raster", code=2,
      match=["--min-area 1e+12 is larger than the whole raster"])  # fmt: skip
def vectorize_min_area_beyond_raster(ws):
    return ["vectorize", ws.labels(), "-o", ws / "v.gpkg", "--min-area", "1e12", "-q"]


# evaluate --------------------------------------------------------------------------------------------------------


def _pair(ws, label_ids: np.ndarray | None = None, label_shape=(8, 8)) -> tuple[Path, Path]:
    pred = write_scene(ws / "pred.tif", np.tile(np.array([0, 1], np.uint8), (8, 4))[None], nodata=255)
    gt = label_ids if label_ids is not None else np.tile(np.array([0, 0, 1, 1], np.uint8), (label_shape[0], 2))
    return pred, write_scene(ws / "label.tif", gt[None].astype(np.uint8), nodata=255)


@case("evaluate", "label ids >= the number of classes", "exit 2 naming the ids and their share", code=2,
      match=["class ids 5, 7", "25.0 % of the labelled ones"])  # fmt: skip
def evaluate_label_ids_out_of_range(ws):
    ids = np.tile(np.array([0, 1, 5, 7], np.uint8), (8, 2))  # 16 of 64 pixels are 5, 16 are 7: 50 % beyond
    ids[:, 6:] = 1
    pred, label = _pair(ws, ids)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q"]


@case("evaluate", "prediction and label on different grids", "exit 2 saying which is which", code=2,
      match=["the prediction pred.tif and the label label.tif are not on the same grid", "prediction 8x8",
             "label 8x9"])  # fmt: skip
def evaluate_grid_mismatch(ws):
    pred, label = _pair(ws, label_shape=(9, 8))
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q"]


@case("evaluate", "`--json` is the prediction raster", "exit 2, prediction untouched", code=2, match=[SAME])
def evaluate_json_is_prediction(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json", pred]


@case("evaluate", "`--json` a symlink to the label raster", "exit 2, label untouched", code=2, match=[SAME])
def evaluate_json_symlink_to_label(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json", ws.link(label, "m.json")]


@case("evaluate", "`--json` is the `--model` checkpoint (dataset mode)", "exit 2 before any work, checkpoint "
      "untouched", code=2, match=[SAME])  # fmt: skip
def evaluate_json_is_model(ws):
    m = ws.checkpoint()
    return ["evaluate", "--dataset", "folder", "--data-root", ws.dataset(), "--model", m, "--split", "train",
            "--device", "cpu", "-q", "--json", m]  # fmt: skip


@case("evaluate", "`--json` into a missing folder", "exit 2, nothing written", code=2, match=["does not exist"])
def evaluate_json_missing_folder(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json", ws / "no" / "m.json"]


@case("evaluate", "`--pred` without `--label`", "exit 2", code=2, match=["--pred and --label go together"])
def evaluate_pred_without_label(ws):
    return ["evaluate", "--pred", _pair(ws)[0], "--classes", "x,y"]


@case("evaluate", "`--json` a device node (`--overwrite`)", "exit 2, the node untouched", code=2,
      match=["metrics file", "is a character device"])  # fmt: skip
def evaluate_json_device(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json", ws.node("m.json"),
            "--overwrite"]  # fmt: skip


@case("evaluate", "`--json` a full device (`/dev/full`'s node)", "exit 2 at once (it is not a file)", code=2,
      match=["is a character device"])  # fmt: skip
def evaluate_json_full_device(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json", ws.node("full", "full")]


@case("evaluate", "existing `--json` file without `--overwrite`", "exit 2, the old file byte-identical", code=2,
      match=["exists (use --overwrite"])  # fmt: skip
def evaluate_json_exists(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json",
            ws.write("m.json", "{}\n")]  # fmt: skip


@case("evaluate", "existing `--json` file with `--overwrite`", "exit 0, replaced", code=0, lines=None,
      replaced=["m.json"])  # fmt: skip
def evaluate_json_overwrite(ws):
    pred, label = _pair(ws)
    return ["evaluate", "--pred", pred, "--label", label, "--classes", "x,y", "-q", "--json",
            ws.write("m.json", "{}\n"), "--overwrite"]  # fmt: skip


@case("evaluate", "`--pred` a FIFO", "exit 2 at once (no hang)", code=2, match=["is a FIFO"])
def evaluate_pred_fifo(ws):
    _, label = _pair(ws)
    fifo = ws.node("p.tif", "fifo")
    args = ["evaluate", "--pred", fifo, "--label", label, "--classes", "x,y", "-q"]
    return Setup(args, context=lambda: fifo_released(fifo))


# train -----------------------------------------------------------------------------------------------------------


def _train(ws, *extra) -> list:
    return ["train", "--dataset", "folder", "--data-root", ws.dataset(), "--preset", "tiny", "--iters", "1",
            "--batch-size", "2", "--num-workers", "0", "--device", "cpu", "-q", *extra]  # fmt: skip


@case("train", "malformed TOML `--config`", "exit 2, one plain line", code=2, match=["malformed TOML"])
def train_malformed_toml(ws):
    return _train(ws, "--config", ws.write("c.toml", "iters = = 3\n"), "--output", ws / "run")


@case("train", "malformed YAML `--config`", "exit 2", code=2, match=["malformed YAML"])
def train_malformed_yaml(ws):
    return _train(ws, "--config", ws.write("c.yaml", "lr: [1,\n"), "--output", ws / "run")


@case("train", 'wrong-type config value (`lr = "fast"`)', "exit 2", code=2, match=["setting lr must be a number"])
def train_wrong_type(ws):
    return _train(ws, "--config", ws.write("c.toml", 'lr = "fast"\n'), "--output", ws / "run")


@case("train", "unknown `model_overrides` key", "exit 2", code=2, match=["no_such_knob"])
def train_unknown_override(ws):
    return _train(ws, "--config", ws.write("c.toml", "[model_overrides]\nno_such_knob = 1\n"), "--output", ws / "run")


@case("train", "binary `--config`", "exit 2", code=2, match=["not a text file"])
def train_binary_config(ws):
    return _train(ws, "--config", ws.write("c.toml", bytes(range(256))), "--output", ws / "run")


@case("train", "`--output` is a file", "exit 2, the file untouched", code=2, match=["is a file"])
def train_output_is_file(ws):
    return _train(ws, "--output", ws.write("run", b"a file"))


@case("train", "`--output` inside the dataset", "exit 2, nothing created in the dataset", code=2,
      match=["inside the dataset folder"])  # fmt: skip
def train_output_inside_dataset(ws):
    return _train(ws, "--output", ws / "ds" / "runs" / "x")


@case("train", "`--output` a symlink to the dataset", "exit 2", code=2, match=["inside the dataset folder"])
def train_output_symlink_to_dataset(ws):
    args = _train(ws)
    return [*args, "--output", ws.link(ws / "ds", "run")]


@case("train", "existing run without `--resume`", "exit 2, the run's files byte-identical", code=2,
      match=["already holds a run"])  # fmt: skip
def train_existing_run(ws):
    ws.write("run/checkpoint.pt", b"weights of an earlier run")
    ws.write("run/metrics.jsonl", '{"iter": 1}\n')
    return _train(ws, "--output", ws / "run")


@case("train", "`--resume` with no training state", "exit 2, no run folder created", code=2,
      match=["no training state"], absent=["run"])  # fmt: skip
def train_resume_without_state(ws):
    return _train(ws, "--output", ws / "run", "--resume")


@case("train", "run folder being written by another process", "exit 1 naming it, its files untouched", code=1,
      match=["(process {held})"])  # fmt: skip
def train_run_folder_locked(ws):
    ws.write("run/config.json", "{}\n")
    return Setup(_train(ws, "--output", ws / "run"), context=lambda: held_lock(ws / "run"))


@case("train", "`--lr nan`", "exit 2", code=2, match=["--lr must be a positive number, got nan"], absent=["run"])
def train_lr_nan(ws):
    return _train(ws, "--lr", "nan", "--output", ws / "run")


@case("train", "`--lr -1`", "exit 2", code=2, match=["--lr must be a positive number, got -1"], absent=["run"])
def train_lr_negative(ws):
    return _train(ws, "--lr", "-1", "--output", ws / "run")


@case("train", "`--num-workers -1`", "exit 2, no run folder (no `config.json` left)", code=2,
      match=["--num-workers must not be negative"], absent=["run"])  # fmt: skip
def train_negative_workers(ws):
    args = _train(ws, "--output", ws / "run")
    args[args.index("--num-workers") + 1] = "-1"
    return args


@case("train", "a class listed twice in `classes.txt`", "exit 2 before any work (`segment` would refuse the "
      "checkpoint)", code=2, match=["'a' listed twice"], absent=["run"])  # fmt: skip
def train_duplicate_classes(ws):
    args = _train(ws, "--output", ws / "run")
    (ws / "ds" / "classes.txt").write_text("a\nb\nA\n")
    return args


@case("train", "masks 100 % ignore (255)", "exit 2 before any work: nothing to train on", code=2,
      match=["is 255 (ignore): there is nothing to train on"], absent=["run"])  # fmt: skip
def train_all_ignore(ws):
    args = _train(ws, "--output", ws / "run")
    for mask in (ws / "ds" / "masks").iterdir():
        Image.fromarray(np.full((64, 64), 255, np.uint8)).save(mask)
    return args


@case("train", "`--output` a device node", "exit 2, the node untouched", code=2, match=["is a character device"])
def train_output_device(ws):
    return _train(ws, "--output", ws.node("run"))


@case("train", "`--config` a FIFO", "exit 2 at once (no hang)", code=2, match=["--config", "is a FIFO"])
def train_config_fifo(ws):
    fifo = ws.node("c.toml", "fifo")
    return Setup(_train(ws, "--config", fifo, "--output", ws / "run"), context=lambda: fifo_released(fifo))


# weights ---------------------------------------------------------------------------------------------------------


CACHE = ["home/weights"]  # the (empty) cache folder may be made; no file may appear in it


def _home(ws) -> dict[str, str]:
    return {"AEROSEG_HOME": str(ws / "home")}


@case("weights", "`import NAME DIR`", "exit 2: it is a folder", code=2, match=["is a folder; give the weights file"])
def weights_import_folder(ws):
    (ws / "dl").mkdir()
    return Setup(["weights", "import", "sam-vit-b", ws / "dl"], env=_home(ws))


@case("weights", "`import` a file that is not the official one", "exit 1, nothing in the cache", code=1,
      match=["refused"], may_create=CACHE)  # fmt: skip
def weights_import_wrong_file(ws):
    return Setup(["weights", "import", "sam-vit-b", ws.write("sam.pth", b"not sam")], env=_home(ws))


@case("weights", "`import` a damaged cached file onto itself (hard link)", "exit 1, the file untouched", code=1,
      match=["refused"])  # fmt: skip
def weights_import_cached_onto_itself(ws):
    cached = ws.write("home/weights/sam_vit_b_01ec64.pth", b"damaged")
    return Setup(["weights", "import", "sam-vit-b", ws.hardlink(cached, "copy.pth")], env=_home(ws))


@case("weights", "`import` an unknown name", "exit 2", code=2, match=["unknown weights"])
def weights_import_unknown(ws):
    return Setup(["weights", "import", "sam-vit-x", ws.write("w.pth", b"x")], env=_home(ws))


@case("weights", "`download` from an unreachable mirror", "exit 1, nothing in the cache", code=1,
      match=["aeroseg weights import sam-vit-b"], may_create=CACHE)  # fmt: skip
def weights_download_unreachable(ws):
    return Setup(["weights", "download", "sam-vit-b", "-q", "--mirror", (ws / "nowhere").as_uri()], env=_home(ws))


@case("weights", "`download` a file whose SHA-256 does not match", "exit 1, nothing in the cache", code=1,
      match=["checksum mismatch"], may_create=CACHE)  # fmt: skip
def weights_download_mismatch(ws):
    ws.write("mirror/sam_vit_b_01ec64.pth", b"not the official file")
    return Setup(["weights", "download", "sam-vit-b", "-q", "--mirror", (ws / "mirror").as_uri()], env=_home(ws))


@case("weights", "`verify` a damaged cached file", "exit 1, the file untouched", code=1,
      match=["failed verification"])  # fmt: skip
def weights_verify_damaged(ws):
    ws.write("home/weights/sam_vit_l_0b3195.pth", b"damaged")
    return Setup(["weights", "verify"], env=_home(ws))


@case("weights", "`AEROSEG_HOME` is a file", "exit 2, one plain line", code=2,
      match=["AEROSEG_HOME", "is not a folder"])  # fmt: skip
def weights_home_is_file(ws):
    return Setup(["weights", "download", "sam-vit-b", "-q"], env={"AEROSEG_HOME": str(ws.write("home", "a file"))})


@case("weights", "`import` onto a cache entry that is a FIFO", "exit 2, the FIFO untouched (no hang)", code=2,
      match=["is a FIFO"])  # fmt: skip
def weights_import_onto_fifo(ws):
    fifo = ws.node("home/weights/sam_vit_b_01ec64.pth", "fifo")
    return Setup(["weights", "import", "sam-vit-b", ws.write("sam.pth", b"x")], env=_home(ws),
                 context=lambda: fifo_released(fifo))  # fmt: skip


# preview ---------------------------------------------------------------------------------------------------------


@case("preview", "`-o` is the scene (`--overwrite`)", "exit 2, scene untouched", code=2, match=[SAME])
def preview_output_is_scene(ws):
    x = ws.png()
    return ["preview", x, ws.labels(), "-o", x, "--overwrite"]


@case("preview", "`-o` a symlink to the scene", "exit 2", code=2, match=[SAME])
def preview_output_symlink_to_scene(ws):
    x = ws.png()
    return ["preview", x, ws.labels(), "-o", ws.link(x, "p.png"), "--overwrite"]


@case("preview", "`-o` a hard link to the scene", "exit 2", code=2, match=[SAME])
def preview_output_hardlink_to_scene(ws):
    x = ws.png()
    return ["preview", x, ws.labels(), "-o", ws.hardlink(x, "p.png"), "--overwrite"]


@case("preview", "`-o x.jpg`", "exit 2", code=2, match=["the preview is a PNG"])
def preview_not_png(ws):
    return ["preview", ws.png(), ws.labels(), "-o", ws / "x.jpg"]


@case("preview", "existing `-o` without `--overwrite`", "exit 2, the old file byte-identical", code=2,
      match=["exists (use --overwrite"])  # fmt: skip
def preview_existing_output(ws):
    return ["preview", ws.png(), ws.labels(), "-o", ws.write("p.png", b"an earlier picture")]


@case("preview", "labels not a raster", "exit 2, nothing written", code=2, match=["not a raster"])
def preview_labels_not_raster(ws):
    return ["preview", ws.png(), ws.write("L.tif", "text"), "-o", ws / "p.png"]


@case("preview", "`-o` being written by another process", "exit 1 naming it", code=1, match=["(process {held})"])
def preview_output_locked(ws):
    scene, labels = ws.png(height=64, width=64), ws.labels(georeferenced=False)  # the same 64 x 64 pixel grid
    return Setup(["preview", scene, labels, "-o", ws / "p.png"], context=lambda: held_lock(ws / "p.png"))


@case("preview", "labels on another area than the scene", "exit 2 naming both grids, nothing written", code=2,
      match=["are not on the area of the scene"])  # fmt: skip
def preview_labels_other_grid(ws):
    return ["preview", ws.scene(), ws.labels(), "-o", ws / "p.png"]


@case("preview", "`-o` a device node `.png` (`--overwrite`)", "exit 2, the node untouched", code=2,
      match=["is a character device"])  # fmt: skip
def preview_output_device(ws):
    return ["preview", ws.png(), ws.labels(), "-o", ws.node("p.png"), "--overwrite"]


# check -----------------------------------------------------------------------------------------------------------


@case("check", "scene does not exist", "exit 2", code=2, match=["no such file"])
def check_missing(ws):
    return ["check", ws / "missing.tif"]


@case("check", "the scene is a FIFO", "exit 2 at once (no hang)", code=2, match=["is a FIFO"])
def check_fifo(ws):
    fifo = ws.node("in.tif", "fifo")
    return Setup(["check", fifo], context=lambda: fifo_released(fifo))


# export ----------------------------------------------------------------------------------------------------------


@case("export", "`-o` a device node (`--overwrite`)", "exit 2, the node untouched", code=2,
      match=["is a character device"])  # fmt: skip
def export_output_device(ws):
    return ["export", ws.checkpoint(), "-o", ws.node("out.pt"), "--overwrite", "-q"]


# datasets --------------------------------------------------------------------------------------------------------


@case("datasets", "`check` on masks 100 % ignore", "exit 1: flagged as blocking", code=1,
      match=["is 255 (ignore)"])  # fmt: skip
def datasets_check_all_ignore(ws):
    root = ws.dataset()
    for mask in (root / "masks").iterdir():
        Image.fromarray(np.full((64, 64), 255, np.uint8)).save(mask)
    return ["datasets", "check", "folder", "--data-root", root]


# -- the test -----------------------------------------------------------------------------------------------------


# qgis-plugin ------------------------------------------------------------------------------------------------------


@case("qgis-plugin", "`install --profile-root` a file", "exit 2, the file untouched", code=2, match=["not a folder"])
def qgis_plugin_profile_root_is_a_file(ws):
    return ["qgis-plugin", "install", "--profile-root", ws.write("qgis3", b"not a folder"), "-q"]


@case("qgis-plugin", "`install` over a plugin folder aeroseg did not install", "exit 2, that folder untouched",
      code=2, match=["was not installed by aeroseg"])  # fmt: skip
def qgis_plugin_foreign_folder(ws):
    ws.write("qgis3/profiles/default/python/plugins/aeroseg_qgis/__init__.py", b"# someone else's plugin\n")
    return ["qgis-plugin", "install", "--profile-root", ws / "qgis3", "-q"]


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_changes_nothing(c: Case, tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    setup = c.build(ws)
    setup = setup if isinstance(setup, Setup) else Setup(setup)
    with setup.context() if setup.context else contextlib.nullcontext() as held:
        before = Snapshot.take(tmp_path, setup.extra_inputs)  # with the other process's lock file, if any
        result = run_in_process(setup.args, setup.env)
        after = Snapshot.take(tmp_path, setup.extra_inputs)  # that lock file must be untouched
    expect = c.expect
    if held is not None:
        expect = Expect(**{**expect.__dict__, "match": [m.format(held=held) for m in expect.match]})
    check_outcome(result, before, after, expect)
    if setup.verify is not None:
        setup.verify(result)


def test_the_table_covers_every_command() -> None:
    """Every command of the command table (``aeroseg_cli.commands.COMMANDS``) has bad-input cases here."""
    from aeroseg_cli.commands import COMMANDS

    assert {c.command for c in CASES} == {c.name for c in COMMANDS}
    assert len({c.id for c in CASES}) == len(CASES)


def table_rows() -> list[str]:
    """The table of bad inputs in ``docs/reliability.md``, one row per case, in the table's order: that part of the
    page is generated from here (``python -m tests.test_reliability --write``; without ``--write`` it is printed)."""
    return ["| command | bad input | what it gets |", "|---|---|---|"] + [
        f"| `{c.command}` | {c.what} | {c.outcome} |" for c in CASES
    ]


RELIABILITY_PAGE = DOCS / "reliability.md"
GENERATOR = "tests.test_reliability --write"


def test_the_reliability_page_lists_every_case() -> None:
    text = RELIABILITY_PAGE.read_text(encoding="utf-8")
    missing = [row for row in table_rows() if row not in text]
    assert not missing, f"docs/reliability.md's table lacks {len(missing)} case(s), e.g. {missing[0]}"


def test_the_reliability_page_is_generated_from_the_table() -> None:
    """No row added, changed, reordered or left over by hand: the page's part is exactly what the table gives."""
    text = RELIABILITY_PAGE.read_text(encoding="utf-8")
    assert text == with_generated(text, GENERATOR, table_rows()), (
        f"docs/reliability.md differs from the test table: run python -m {GENERATOR}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        changed = write_generated(RELIABILITY_PAGE, GENERATOR, table_rows())
        print(f"{RELIABILITY_PAGE.relative_to(ROOT)}: {'rewritten' if changed else 'already up to date'}")
    else:
        print("\n".join(table_rows()))
