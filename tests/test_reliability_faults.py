"""Issue #11, faults as they happen: a full disk (``RLIMIT_FSIZE`` in a real process), SIGINT and SIGTERM midway,
two processes on one output, ``--resume`` onto other settings or a damaged partial, a damaged tile in a real scene,
an interrupted vectorize and training run.

Every case ends with the harness's checks (``tests/support/reliability.py``): inputs byte-identical, the exit code,
one plain stderr line, nothing at the output path unless the run succeeded, no stray files, and where a resumable
partial is the documented outcome, ``--resume`` completing to exactly the uninterrupted output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from aeroseg_cli.segment.resume import partial_paths
from aeroseg_cli.segment.writer import LabelWriter
from tests.support.reliability import (
    ENV,
    LIBRARY_NOISE,
    Expect,
    Snapshot,
    Workspace,
    check_outcome,
    cli,
    finish,
    interrupt_when,
    range_server,
    run_in_process,
    run_process,
    spawn,
    tiny_checkpoint_bytes,
    wait_for,
)
from tests.support.scenes import corrupt_full_resolution_tile, smooth_scene, write_scene

SEG = ["-c", "a,b,c,d", "--model", "tiny", "--tile", "128", "-q"]
HEIGHT = 3072  # the tall scene: three 1024-row write chunks, so a fault can land between them


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process runs use one torch thread, as the real processes do (OMP_NUM_THREADS=1): the same float order, so
    a resumed map can be compared with an uninterrupted one bit for bit."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tall(tmp_path_factory) -> tuple[Path, Path]:
    """A 3072 x 256 scene and its uninterrupted labels (the reference every resumed run must equal)."""
    folder = tmp_path_factory.mktemp("tall")
    scene = write_scene(folder / "tall.tif", smooth_scene(HEIGHT, 256))
    reference = folder / "reference.tif"
    r = run_in_process(["segment", scene, *SEG, "-o", reference])
    assert r.code == 0, r.stderr
    return scene, reference


def assert_same_map(path: Path, reference: Path) -> None:
    """Pixels, grid, colour table and tags equal the reference's (the layout may differ: COG or not)."""
    with rasterio.open(path) as a, rasterio.open(reference) as b:
        assert a.read().tobytes() == b.read().tobytes(), "the map differs from the uninterrupted run"
        assert (a.crs, a.transform, a.nodata, a.tags(), a.colormap(1)) == (
            b.crs, b.transform, b.nodata, b.tags(), b.colormap(1)
        )  # fmt: skip


def rows_done(output: Path) -> int:
    """Rows of ``output`` recorded as safely written in its partial's sidecar (0 while there is none)."""
    sidecar = partial_paths(output)[1]
    try:
        return min(block[2] for block in json.loads(sidecar.read_text())["blocks"])
    except (OSError, ValueError):
        return 0


def partial_names(output: Path) -> list[str]:
    return [p.name for p in partial_paths(output)]


def resume_to_reference(scene: Path, reference: Path, out: Path, workspace: Path, *extra: str) -> None:
    """``--resume`` without the fault finishes the map exactly as the uninterrupted run made it, consuming the
    partial; the scene is untouched."""
    before = Snapshot.take(workspace, [scene])
    r = run_in_process(["segment", scene, *SEG, "-o", out, "--resume", *extra])
    expect = Expect(
        0,
        lines=None,
        created=[out.name, f"{out.name}.aux.xml", out.with_suffix(".qml").name],
        removed=partial_names(out),
    )
    check_outcome(r, before, Snapshot.take(workspace, [scene]), expect)
    assert_same_map(out, reference)


# -- a full disk ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_disk_full_keeps_a_resumable_partial_and_resume_completes(tall, tmp_path: Path) -> None:
    scene, reference = tall
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [scene])
    r = run_process(["segment", scene, *SEG, "-o", out], fsize=int(reference.stat().st_size * 0.6))
    expect = Expect(1, match=[f"writing {out} failed", "File too large", "--resume"], created=partial_names(out),
                    absent=[out.name])  # fmt: skip
    check_outcome(r, before, Snapshot.take(tmp_path, [scene]), expect)
    assert 0 < rows_done(out) < HEIGHT  # stopped midway, with its finished rows on disk
    resume_to_reference(scene, reference, out, tmp_path)


@pytest.mark.slow
def test_disk_full_in_the_style_step_is_a_failure_not_a_broken_map(tall, tmp_path: Path) -> None:
    """A limit one byte below the finished file lets every row through but not the TIFF directory that the colour
    table and class names rewrite at the end: GDAL says nothing, and the map used to be placed at ``-o`` with exit 0
    and no longer opened ("TIFFReadDirectory: Failed to read directory"). Now: exit 1, nothing at ``-o``, resumable."""
    scene, reference = tall
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [scene])
    r = run_process(["segment", scene, *SEG, "-o", out], fsize=reference.stat().st_size - 1)
    expect = Expect(1, match=[f"writing {out} failed", "File too large", "--resume"], created=partial_names(out),
                    absent=[out.name])  # fmt: skip
    check_outcome(r, before, Snapshot.take(tmp_path, [scene]), expect)
    resume_to_reference(scene, reference, out, tmp_path)


@pytest.mark.slow
def test_disk_full_while_making_the_cog_then_resume(tall, tmp_path: Path) -> None:
    """The limit lets the partial finish but not the larger COG copy: the failure names the file and the OS error,
    no COG temporary is left, and ``--resume --cog`` only has to convert."""
    scene, reference = tall
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [scene])
    r = run_process(["segment", scene, *SEG, "-o", out, "--cog"], fsize=int(reference.stat().st_size * 1.15))
    expect = Expect(1, match=[f"writing {out} as a COG failed", "File too large", "--resume"],
                    created=partial_names(out), absent=[out.name])  # fmt: skip
    check_outcome(r, before, Snapshot.take(tmp_path, [scene]), expect)
    assert rows_done(out) == HEIGHT
    resume_to_reference(scene, reference, out, tmp_path, "--cog")
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


@pytest.fixture(scope="module")
def many_polygons(tmp_path_factory) -> Path:
    """512 x 512 labels in 8 x 8 blocks of 3 classes: about 2,500 polygons, a 480 kB GeoPackage."""
    ws = Workspace(tmp_path_factory.mktemp("polygons"))
    return ws.labels("L.tif", size=512)


@pytest.mark.parametrize(("ext", "limit"), [("gpkg", 200_000), ("geojson", 100_000), ("shp", 100_000),
                                            ("parquet", 20_000)])  # fmt: skip
def test_disk_full_vectorize(many_polygons: Path, tmp_path: Path, ext: str, limit: int) -> None:
    out = tmp_path / f"v.{ext}"
    before = Snapshot.take(tmp_path, [many_polygons])
    r = run_process(["vectorize", many_polygons, "-o", out, "-q"], fsize=limit)
    expect = Expect(1, match=[f"writing {out} failed", "File too large"], absent=[out.name])
    check_outcome(r, before, Snapshot.take(tmp_path, [many_polygons]), expect)


@pytest.mark.slow
def test_disk_full_in_the_vector_step_of_an_ungeoreferenced_run(tmp_path: Path) -> None:
    """``segment X.png --allow-ungeoreferenced --vector X.gpkg`` on a disk that takes the labels but not the
    GeoPackage: the labels stay (complete, as documented), the polygons fail in one line, no stray file."""
    ws = Workspace(tmp_path)
    png = ws.png()
    before = Snapshot.take(tmp_path)
    r = run_process(["segment", png, *SEG, "--allow-ungeoreferenced", "--vector", ws / "X.gpkg"], fsize=64_000)
    expect = Expect(1, match=["the labels are written to", "polygonising them failed", "X.gpkg", "File too large"],
                    created=["X.labels.tif", "X.labels.tif.aux.xml", "X.labels.qml"], absent=["X.gpkg"])  # fmt: skip
    check_outcome(r, before, Snapshot.take(tmp_path), expect)
    with rasterio.open(ws / "X.labels.tif") as ds:
        assert ds.read(1).shape == (150, 170) and ds.crs is None


# -- signals midway -------------------------------------------------------------------------------------------------

INTERRUPTED = re.compile(r"^aeroseg: (interrupted|stopped by SIGTERM) after (\d+) of (\d+) windows; "
                         r"rerun with --resume to continue$")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_midway_then_resume(tall, tmp_path: Path, signum: int, code: int) -> None:
    scene, reference = tall
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [scene])
    proc = spawn(["segment", scene, *SEG, "-o", out])
    r = interrupt_when(proc, lambda: rows_done(out) > 0, signum)  # a first chunk is on disk: provably midway
    expect = Expect(code, created=partial_names(out), absent=[out.name])
    check_outcome(r, before, Snapshot.take(tmp_path, [scene]), expect)
    m = INTERRUPTED.match(r.stderr.strip())
    assert m, r.stderr
    assert m.group(1) == ("interrupted" if signum == signal.SIGINT else "stopped by SIGTERM")
    assert 0 < int(m.group(2)) < int(m.group(3))
    assert 0 < rows_done(out) < HEIGHT
    resume_to_reference(scene, reference, out, tmp_path)


@pytest.mark.slow
def test_a_storm_of_sigterms_still_ends_in_143_with_a_resumable_partial(tall, tmp_path: Path) -> None:
    """A parent that dies sends several SIGTERMs (qgis_process did: three, seen with strace); the first stops the run,
    the later ones, arriving during the cleanup or after Python's exit put the default handlers back, must not
    break the cleanup nor kill the process by the signal (exit -15 instead of 143)."""
    scene, reference = tall
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [scene])
    proc = spawn(["segment", scene, *SEG, "-o", out])
    wait_for(lambda: rows_done(out) > 0, proc)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:  # until it has exited: every moment of its exit
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.0005)
    r = finish(proc)
    check_outcome(
        r, before, Snapshot.take(tmp_path, [scene]), Expect(143, created=partial_names(out), absent=[out.name])
    )
    assert INTERRUPTED.match(r.stderr.strip()), r.stderr
    resume_to_reference(scene, reference, out, tmp_path)


@pytest.mark.slow
def test_two_runs_on_one_output(tall, tmp_path: Path) -> None:
    """The second run fails at once naming the first's process id and touches nothing of it; the first (paused
    meanwhile with SIGSTOP, so the two really overlap) completes to the correct map, not a mixed one."""
    scene, reference = tall
    out = tmp_path / "o.tif"
    first = spawn(["segment", scene, *SEG, "-o", out])
    try:
        wait_for(lambda: partial_paths(out)[1].exists(), first)  # it holds the lock and has started writing
        first.send_signal(signal.SIGSTOP)
        before = Snapshot.take(tmp_path, [scene])
        second = run_process(["segment", scene, *SEG, "-o", out])
        expect = Expect(1, match=[f"{out} is being written by another aeroseg run (process {first.pid})"])
        check_outcome(second, before, Snapshot.take(tmp_path, [scene]), expect)
    finally:
        first.send_signal(signal.SIGCONT)
    r = finish(first)
    assert r.code == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.qml", "o.tif", "o.tif.aux.xml"]  # no lock, no partial
    assert_same_map(out, reference)


# -- --resume: fingerprint and damaged partials ----------------------------------------------------------------------

BASE = {"-c": "a,b", "--model": "tiny", "--tile": "128", "--batch-size": "4", "--overlap": "0.25"}


def segment_args(scene: Path, out: Path, **changed: str) -> list:
    options = {**BASE, **{k if k.startswith("-") else f"--{k.replace('_', '-')}": v for k, v in changed.items()}}
    return ["segment", scene, "-o", out, "-q", *[x for kv in options.items() for x in kv]]


def make_partial(scene: Path, out: Path) -> None:
    """An interrupted run's partial: a real SIGINT raised in this process once the first chunk is on disk."""
    flush = LabelWriter._flush

    def flush_then_interrupt(self, *args, **kwargs) -> None:
        flush(self, *args, **kwargs)
        if any(block.next_row > 0 for block in self.done.values()):
            signal.raise_signal(signal.SIGINT)

    with mock.patch.object(LabelWriter, "_flush", flush_then_interrupt):
        r = run_in_process([*segment_args(scene, out), "--io-threads", "off"])
    assert r.code == 130 and "rerun with --resume" in r.stderr, r.stderr
    assert 0 < rows_done(out) < 1536


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> tuple[Path, Path]:
    """A 1536 x 128 scene (16 windows) and its uninterrupted labels."""
    folder = tmp_path_factory.mktemp("short")
    scene = write_scene(folder / "short.tif", smooth_scene(1536, 128, seed=3))
    r = run_in_process(segment_args(scene, folder / "reference.tif"))
    assert r.code == 0, r.stderr
    return scene, folder / "reference.tif"


@pytest.fixture(scope="module")
def interrupted(short, tmp_path_factory) -> tuple[Path, Path]:
    """One partial shared by the refusals below (each must leave it byte-identical)."""
    folder = tmp_path_factory.mktemp("interrupted")
    (folder / "m.pt").write_bytes(tiny_checkpoint_bytes())
    make_partial(short[0], folder / "o.tif")
    return short[0], folder


FINGERPRINT = {
    "batch size": ({"batch_size": "2"}, "batch_size 4 -> 2"),
    "classes": ({"-c": "a,b,c"}, "classes ['a', 'b'] -> ['a', 'b', 'c']"),
    "tile": ({"tile": "64"}, "tile 128 -> 64"),
    "overlap": ({"overlap": "0.5"}, "overlap 0.25 -> 0.5"),
    "bands": ({"bands": "3,2,1"}, "bands [1, 2, 3] -> [3, 2, 1]"),
    "scale": ({"scale": "0,200"}, "scale None -> '0,200'"),
    "target GSD": ({"target_gsd": "2"}, "target_gsd None -> 2.0"),
    "unknown threshold": ({"unknown_threshold": "0.5"}, "unknown_threshold 0.0 -> 0.5"),
    "precision": ({"precision": "bf16"}, "precision 'fp32' -> 'bf16'"),
    "model": ({"model": "{folder}/m.pt"}, "model 'preset tiny"),
    "probabilities": ({"probabilities": "{folder}/p.tif"}, "probabilities False -> True"),
}


@pytest.mark.parametrize("what", FINGERPRINT)
def test_resume_with_other_settings_is_refused_up_front(interrupted, what: str) -> None:
    scene, folder = interrupted
    changed, named = FINGERPRINT[what]
    changed = {k: v.format(folder=folder) for k, v in changed.items()}
    before = Snapshot.take(folder, [scene])
    r = run_in_process([*segment_args(scene, folder / "o.tif", **changed), "--resume"])
    expect = Expect(2, match=["--resume: the partial result for o.tif was made with other settings", named])
    check_outcome(r, before, Snapshot.take(folder, [scene]), expect)


def test_resume_after_the_scene_changed_is_refused(short, tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "scene.tif", smooth_scene(1536, 128, seed=3))
    make_partial(scene, tmp_path / "o.tif")
    with rasterio.open(scene, "r+") as ds:  # the user edits the scene between the runs
        ds.update_tags(EDITED="yes")
    before = Snapshot.take(tmp_path)
    r = run_in_process([*segment_args(scene, tmp_path / "o.tif"), "--resume"])
    check_outcome(r, before, Snapshot.take(tmp_path), Expect(2, match=["other settings", "scene_"]))


def test_resume_of_a_partial_completes_to_the_uninterrupted_map(short, tmp_path: Path) -> None:
    scene, reference = short
    make_partial(scene, tmp_path / "o.tif")
    before = Snapshot.take(tmp_path, [scene])
    r = run_in_process([*segment_args(scene, tmp_path / "o.tif"), "--resume"])
    expect = Expect(
        0, lines=None, created=["o.tif", "o.tif.aux.xml", "o.qml"], removed=partial_names(tmp_path / "o.tif")
    )
    check_outcome(r, before, Snapshot.take(tmp_path, [scene]), expect)
    assert_same_map(tmp_path / "o.tif", reference)


def test_resume_onto_a_damaged_partial_never_publishes_a_broken_map(short, tmp_path: Path) -> None:
    """A finished tile of the partial is unreadable (a torn write, bit rot): ``--resume`` must not rename that
    file into place; it starts over and ends with the uninterrupted map."""
    scene, reference = short
    out = tmp_path / "o.tif"
    make_partial(scene, out)
    corrupt_full_resolution_tile(partial_paths(out)[0], 0, 0)
    before = Snapshot.take(tmp_path, [scene])
    r = run_in_process([*segment_args(scene, out), "--resume"])
    expect = Expect(0, lines=None, created=["o.tif", "o.tif.aux.xml", "o.qml"], removed=partial_names(out))
    check_outcome(r, before, Snapshot.take(tmp_path, [scene]), expect)
    assert_same_map(out, reference)


# -- a damaged tile in the middle of a real scene -------------------------------------------------------------------

BAD_ROW, BAD_COL = 2, 3  # tile (row, col) of 128 x 128 tiles: rows 256-383, columns 384-511 of the 934 x 723 scene


@pytest.fixture(scope="module")
def naip(tmp_path_factory, shared_geotiff: Path) -> tuple[Path, Path, Path]:
    """The real NAIP scene re-tiled at 128 (with its overview), a copy with one damaged full-resolution tile, and the
    labels of the intact copy."""
    folder = tmp_path_factory.mktemp("naip")
    intact, damaged = folder / "intact.tif", folder / "damaged.tif"
    source = shared_geotiff / "naip_2020_rgbn_utm14n.tif"
    for path in (intact, damaged):
        rasterio.shutil.copy(source, path, driver="GTiff", tiled=True, blockxsize=128, blockysize=128,
                             compress="deflate", COPY_SRC_OVERVIEWS="YES")  # fmt: skip
    corrupt_full_resolution_tile(damaged, BAD_ROW, BAD_COL)
    r = run_in_process(["segment", intact, *SEG, "-o", folder / "reference.tif"])
    assert r.code == 0, r.stderr
    return intact, damaged, folder / "reference.tif"


def test_damaged_tile_fails_with_gdal_cause_and_window(naip, tmp_path: Path, shared_geotiff: Path) -> None:
    _, damaged, _ = naip
    before = Snapshot.take(tmp_path, [damaged, shared_geotiff / "naip_2020_rgbn_utm14n.tif"])
    r = run_in_process(["segment", damaged, *SEG, "-o", tmp_path / "o.tif"])
    expect = Expect(1, match=["IReadBlock failed", "--on-error skip"], absent=["o.tif"])
    check_outcome(r, before, Snapshot.take(tmp_path, [damaged, shared_geotiff / "naip_2020_rgbn_utm14n.tif"]), expect)
    assert re.search(r"1 window\(s\) failed \(window at row \d+, col \d+: damaged\.tif, band 1: IReadBlock", r.stderr)


def test_damaged_tile_with_on_error_skip_is_nodata_and_the_rest_intact(naip, tmp_path: Path) -> None:
    _, damaged, reference = naip
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [damaged])
    r = run_in_process(["segment", damaged, *SEG, "-o", out, "--on-error", "skip"])
    expect = Expect(0, lines=None, created=["o.tif", "o.tif.aux.xml", "o.qml"])
    check_outcome(r, before, Snapshot.take(tmp_path, [damaged]), expect)
    with rasterio.open(out) as a, rasterio.open(reference) as b:
        got, want = a.read(1), b.read(1)
    r0, c0 = BAD_ROW * 128, BAD_COL * 128
    touching = lambda r, c: r < r0 + 128 and r + 128 > r0 and c < c0 + 128 and c + 128 > c0  # noqa: E731
    failed = failed_footprint(got.shape, 128, touching)
    assert np.array_equal(got, np.where(failed, 255, want))  # 255 over exactly the windows on the tile, the rest equal
    assert 0 < failed.mean() < 0.15  # 2 x 3 windows of 128 at stride 96


def test_check_lists_the_damaged_block(naip, tmp_path: Path) -> None:
    _, damaged, _ = naip
    before = Snapshot.take(tmp_path, [damaged])
    r = run_in_process(["check", damaged])
    match = [f"block at row {BAD_ROW * 128}, col {BAD_COL * 128} (128x128)", "IReadBlock failed", "1 damaged block"]
    check_outcome(r, before, Snapshot.take(tmp_path, [damaged]), Expect(1, match=match, lines=3))
    r = run_in_process(["check", damaged, "-q"])
    check_outcome(r, before, Snapshot.take(tmp_path, [damaged]), Expect(1, match=["1 damaged block(s)"]))


# -- interrupted vectorize and training -------------------------------------------------------------------------------


def test_vectorize_interrupted_leaves_nothing(tmp_path: Path) -> None:
    labels = Workspace(tmp_path).labels("L.tif", size=1536)
    out = tmp_path / "v.gpkg"
    before = Snapshot.take(tmp_path)
    proc = spawn(["vectorize", labels, "-o", out, "--block-rows", "128"])
    r = interrupt_when(proc, lambda: any(p.name.startswith(".v.gpkg.") for p in tmp_path.iterdir()))
    check_outcome(r, before, Snapshot.take(tmp_path), Expect(130, match=["aeroseg: interrupted"], absent=["v.gpkg"]))


@pytest.mark.slow
def test_training_interrupted_while_saving_keeps_a_resumable_run(tmp_path: Path) -> None:
    """SIGINT as the first checkpoint is being saved: the checkpoint and the training state are written together
    (or not at all), the message names the last checkpoint truly, and ``--resume`` continues the run."""
    ws = Workspace(tmp_path)
    config = ws.write("small.toml", "[model_overrides]\ncrop_size = 128\nsam_input_size = 128\n")
    run = tmp_path / "run"
    args = ["train", "--dataset", "folder", "--data-root", ws.dataset(), "--preset", "tiny", "--iters", "8",
            "--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--precision", "fp32", "--config", config,
            "--ckpt-every", "2", "--output", run, "-q"]  # fmt: skip
    before = Snapshot.take(tmp_path)
    proc = spawn(args)
    saving = lambda: run.is_dir() and any(p.name.startswith(".checkpoint.pt.") for p in run.iterdir())  # noqa: E731
    wait_for(saving, proc, poll=0.002)
    proc.send_signal(signal.SIGINT)
    r = finish(proc)
    files = ["run/checkpoint.pt", "run/train_state.pt", "run/config.json", "run/metrics.jsonl"]
    check_outcome(r, before, Snapshot.take(tmp_path), Expect(130, created=files))
    m = re.fullmatch(r"aeroseg: interrupted at iteration \d+; last checkpoint: iteration (\d+); rerun with --resume "
                     r"to continue", r.stderr.strip())  # fmt: skip
    assert m, r.stderr
    import torch

    import models

    _, ckpt = models.load_checkpoint(run / "checkpoint.pt")
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert ckpt["meta"]["iteration"] == state["iteration"] == int(m.group(1)) >= 2
    r = run_in_process([*args, "--resume"])
    assert r.code == 0, r.stderr
    assert torch.load(run / "train_state.pt", weights_only=True)["iteration"] == 8


# -- issue #20: a damaged, missing or changing input never becomes a map ---------------------------------------------

MID_BAD = (2, 0)  # tile (row, col) of 128 x 128 tiles damaged in the 768 x 768 scene: rows 256-383, columns 0-127


def failed_footprint(shape: tuple[int, int], tile: int, hit: Callable[[int, int], bool]) -> np.ndarray:
    """The union of the windows (segment's grid for ``tile`` at overlap 0.25) for which ``hit(row, col)`` holds."""
    from aeroseg_cli.segment.tiler import Grid

    mask = np.zeros(shape, bool)
    for w in Grid.from_overlap(*shape, tile, 0.25).windows():
        if hit(w.row, w.col):
            mask[w.row : w.row + tile, w.col : w.col + tile] = True
    return mask


@pytest.fixture(scope="module")
def mid(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A 768 x 768 deflate scene in 128 x 128 tiles (six per window row, so one read decodes several with GDAL's
    threads), a copy with one damaged tile, and the labels of the intact scene."""
    folder = tmp_path_factory.mktemp("mid")
    profile = {"compress": "deflate", "tiled": True, "blockxsize": 128, "blockysize": 128}
    intact = write_scene(folder / "intact.tif", smooth_scene(768, 768, seed=5), **profile)
    damaged = corrupt_full_resolution_tile(write_scene(folder / "mid.tif", smooth_scene(768, 768, seed=5), **profile),
                                           *MID_BAD)  # fmt: skip
    r = run_in_process(["segment", intact, *SEG, "-o", folder / "reference.tif"])
    assert r.code == 0, r.stderr
    with rasterio.open(folder / "reference.tif") as ds:
        return intact, damaged, ds.read(1)


@pytest.mark.parametrize("io_threads", ["off", "2"], ids=["inline reader", "decode threads"])
def test_damaged_tile_fails_the_run_whatever_the_reader(mid, tmp_path: Path, io_threads: str) -> None:
    """Inline, GDAL decodes a window row's tiles on its own threads; the damaged tile's read fails once and the
    retry on the same handle used to return it as zeros, classified, exit 0."""
    _, damaged, _ = mid
    before = Snapshot.take(tmp_path, [damaged])
    r = run_in_process(["segment", damaged, *SEG, "-o", tmp_path / "o.tif", "--io-threads", io_threads])
    expect = Expect(1, match=["window(s) failed (window at row 192, col 0:", "--on-error skip"], absent=["o.tif"])
    check_outcome(r, before, Snapshot.take(tmp_path, [damaged]), expect)


@pytest.mark.parametrize("io_threads", ["off", "2"], ids=["inline reader", "decode threads"])
def test_damaged_tile_with_skip_is_255_exactly_over_the_failed_windows(mid, tmp_path: Path, io_threads: str) -> None:
    _, damaged, reference = mid
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path, [damaged])
    r = run_in_process(["segment", damaged, *SEG, "-o", out, "--io-threads", io_threads, "--on-error", "skip"])
    expect = Expect(0, lines=None, created=[out.name, f"{out.name}.aux.xml", out.with_suffix(".qml").name])
    check_outcome(r, before, Snapshot.take(tmp_path, [damaged]), expect)
    r0, c0 = MID_BAD[0] * 128, MID_BAD[1] * 128
    failed = failed_footprint(reference.shape, 128, lambda r, c: r < r0 + 128 and r + 128 > r0 and c < c0 + 128)
    with rasterio.open(out) as ds:
        got = ds.read(1)
    assert np.array_equal(got, np.where(failed, 255, reference)), "255 must cover exactly the failed windows"


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A VRT mosaic of two 768 x 384 halves, the same VRT in a folder where the right half's file is missing, and the
    labels of the complete mosaic."""
    folder = tmp_path_factory.mktemp("mosaic")
    data = smooth_scene(768, 768, seed=6)
    vrt = ['<VRTDataset rasterXSize="768" rasterYSize="768"><SRS>EPSG:32633</SRS>'
           "<GeoTransform>500000, 2, 0, 4000000, 0, -2</GeoTransform>"]  # fmt: skip
    for band in (1, 2, 3):
        vrt.append(f'<VRTRasterBand dataType="Byte" band="{band}">')
        for name, x in (("left.tif", 0), ("right.tif", 384)):
            vrt.append(f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>{band}'
                       f'</SourceBand><SrcRect xOff="0" yOff="0" xSize="384" ySize="768"/><DstRect xOff="{x}" '
                       'yOff="0" xSize="384" ySize="768"/></SimpleSource>')  # fmt: skip
        vrt.append("</VRTRasterBand>")
    for sub in ("whole", "broken"):
        (folder / sub).mkdir()
        (folder / sub / "mosaic.vrt").write_text("".join(vrt) + "</VRTDataset>\n")
        for name, x in (("left.tif", 0), ("right.tif", 384)):
            if (sub, name) != ("broken", "right.tif"):
                write_scene(folder / sub / name, data[:, :, x : x + 384].copy())
    r = run_in_process(["segment", folder / "whole" / "mosaic.vrt", *SEG, "-o", folder / "reference.tif"])
    assert r.code == 0, r.stderr
    with rasterio.open(folder / "reference.tif") as ds:
        return folder / "broken", folder / "broken" / "mosaic.vrt", ds.read(1)


@pytest.mark.parametrize("io_threads", ["off", "2"], ids=["inline reader", "decode threads"])
def test_vrt_with_a_missing_source_fails(mosaic, tmp_path: Path, io_threads: str) -> None:
    """GDAL reports the missing source once per handle and then returns zeros for it."""
    folder, vrt, _ = mosaic
    before = Snapshot.take(folder)
    r = run_in_process(["segment", vrt, *SEG, "-o", tmp_path / "o.tif", "--io-threads", io_threads])
    expect = Expect(1, match=["right.tif: No such file or directory", "window(s) failed"])
    check_outcome(r, before, Snapshot.take(folder), expect)
    assert not (tmp_path / "o.tif").exists()


def test_vrt_with_a_missing_source_and_skip_is_255_over_it(mosaic, tmp_path: Path) -> None:
    _, vrt, reference = mosaic
    r = run_in_process(["segment", vrt, *SEG, "-o", tmp_path / "o.tif", "--on-error", "skip"])
    assert r.code == 0, r.stderr
    failed = failed_footprint(reference.shape, 128, lambda r, c: c + 128 > 384)
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert np.array_equal(ds.read(1), np.where(failed, 255, reference))


def test_check_lists_every_block_of_a_missing_vrt_source(mosaic) -> None:
    folder, vrt, _ = mosaic
    before = Snapshot.take(folder)
    r = run_in_process(["check", vrt, "-q"])
    blocks = (768 // 128) * (384 // 128)  # the VRT's 128 x 128 blocks over the right half
    check_outcome(r, before, Snapshot.take(folder), Expect(1, match=[f"{blocks} damaged block(s)", "right.tif"]))


# a remote scene whose server dies midway

REMOTE_SEG = ["-c", "a,b", "--model", "tiny", "--tile", "64", "-q"]
REMOTE_ENV = {"GDAL_HTTP_MAX_RETRY": "0", "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 2560 x 128 scene with overviews (the checks' sample comes from them, so most full-resolution bytes are
    fetched by the windows' reads) and its labels read locally."""
    folder = tmp_path_factory.mktemp("remote")
    scene = write_scene(folder / "remote.tif", smooth_scene(2560, 128, seed=8), compress="deflate", tiled=True,
                        blockxsize=128, blockysize=128)  # fmt: skip
    with rasterio.open(scene, "r+") as ds:
        ds.build_overviews([2, 4])
    r = run_in_process(["segment", scene, *REMOTE_SEG, "-o", folder / "reference.tif"])
    assert r.code == 0, r.stderr
    with rasterio.open(folder / "reference.tif") as ds:
        return scene, ds.read(1)


def made_of_windows(mask: np.ndarray, tile: int) -> bool:
    """``mask`` is the union of whole windows of the grid (what 255 over failed windows gives)."""
    whole = failed_footprint(mask.shape, tile, lambda r, c: mask[r : r + tile, c : c + tile].all())
    return np.array_equal(whole, mask)


@pytest.mark.parametrize("io_threads", ["off", "2"], ids=["inline reader", "decode threads"])
def test_remote_scene_whose_server_dies_with_skip(remote, tmp_path: Path, io_threads: str) -> None:
    """Every pixel that is not 255 is the local scene's label (nothing classified from bytes that never came), and
    255 covers whole windows."""
    scene, reference = remote
    out = tmp_path / "o.tif"
    with range_server(scene, budget=scene.stat().st_size // 2) as url:
        r = run_in_process(["segment", f"/vsicurl/{url}", *REMOTE_SEG, "-o", out, "--on-error", "skip",
                            "--io-threads", io_threads], env=REMOTE_ENV)  # fmt: skip
    assert r.code == 0, r.stderr
    assert not LIBRARY_NOISE.search(r.stderr) and "ERROR" not in r.stderr and "VSICURL" not in r.stderr, r.stderr
    with rasterio.open(out) as ds:
        got = ds.read(1)
    lost = got == 255
    assert 0 < lost.mean() < 1, f"the server should stop midway ({lost.mean():.0%} lost)"
    assert np.array_equal(got[~lost], reference[~lost]), "pixels classified from data that never arrived"
    assert made_of_windows(lost, 64)


def test_remote_scene_whose_server_dies_is_reported_as_the_http_failure(remote, tmp_path: Path) -> None:
    scene, _ = remote
    before = Snapshot.take(tmp_path)
    with range_server(scene, budget=scene.stat().st_size // 2) as url:
        r = run_in_process(["segment", f"/vsicurl/{url}", *REMOTE_SEG, "-o", tmp_path / "o.tif"], env=REMOTE_ENV)
    expect = Expect(1, match=[f"HTTP request for {url}", "failed: response code 0"], forbid=["ZIPDecode", "VSICURL"])
    check_outcome(r, before, Snapshot.take(tmp_path), expect)
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("prefix", ["/vsicurl/", ""], ids=["vsicurl", "http"])
def test_vectorize_reads_a_remote_raster(tmp_path: Path, prefix: str) -> None:
    labels = Workspace(tmp_path).labels("L.tif", size=64)
    local = run_in_process(["vectorize", labels, "-o", tmp_path / "local.geojson", "--json", "-q"])
    assert local.code == 0, local.stderr
    with range_server(labels) as url:
        r = run_in_process(["vectorize", prefix + url, "-o", tmp_path / "remote.geojson", "--json", "-q"])
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["features"] == json.loads(local.stdout)["features"] > 0


# the scene changes while it is read


@pytest.mark.parametrize("how", ["copied over", pytest.param("renamed over", marks=pytest.mark.slow)])
def test_scene_replaced_during_the_run_is_refused(tmp_path: Path, how: str) -> None:
    """A real run, stopped (SIGSTOP) once its first rows are on disk; the scene is replaced by another image; the
    run, continued, must not publish a map mixing the two: exit 1 naming the file, nothing at -o, no partial."""
    scene = write_scene(tmp_path / "scene.tif", smooth_scene(1536, 128, seed=3))
    other = write_scene(tmp_path.parent / f"{tmp_path.name}-other.tif", smooth_scene(1536, 128, seed=4))
    out = tmp_path / "o.tif"
    before = Snapshot.take(tmp_path)
    proc = spawn(["segment", scene, *SEG, "-o", out, "--io-threads", "off"])
    try:
        wait_for(lambda: rows_done(out) > 0, proc)
        proc.send_signal(signal.SIGSTOP)
        assert not out.exists(), "the run finished before the scene could be replaced"
        if how == "copied over":
            shutil.copyfile(other, scene)  # same inode, other bytes
        else:
            os.replace(other, scene)  # another file under the same name
    finally:
        proc.send_signal(signal.SIGCONT)
    r = finish(proc)
    expect = Expect(1, match=[f"the scene {scene} changed while it was read", "nothing was written"],
                    replaced=["scene.tif"], absent=["o.tif"])  # fmt: skip
    check_outcome(r, before, Snapshot.take(tmp_path), expect)


def test_json_to_a_full_device_is_one_line(tmp_path: Path) -> None:
    """stdout is a private copy of /dev/full (a real ENOSPC on every write): one plain line, exit 1."""
    ws = Workspace(tmp_path)
    scene, full = ws.scene(), ws.node("full", "full")
    with open(full, "w") as stdout:
        proc = subprocess.Popen(cli("check", scene, "--json", "-q"), stdout=stdout, stderr=subprocess.PIPE, text=True,
                                env=ENV)  # fmt: skip
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.strip() == "aeroseg: error: writing to standard output failed: No space left on device", err
