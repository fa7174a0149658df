"""One memory formula (``aeroseg_cli/segment/memory.py``): the superblocks ``--max-memory`` gets keep the bound the
docs/memory.md states (``memory_bound``) within it, a budget that cannot hold even the narrowest superblock is refused
before any work, and however a scene is cut into superblocks its output is the same bit for bit."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.segment.engine import SegmentOptions, segment_scene
from aeroseg_cli.segment.memory import (
    BLENDER,
    BUDGETED,
    CHUNK_ROWS,
    blender_bytes,
    budget_bytes,
    check_budget,
    memory_bound,
    superblock_width,
)
from aeroseg_cli.segment.plan import plan
from aeroseg_cli.segment.predictor import Predictor
from aeroseg_cli.segment.reader import inspect_scene
from aeroseg_cli.segment.request import SegmentRequest
from aeroseg_cli.segment.tiler import BLOCK, Grid
from tests.support.cli import run_cli
from tests.support.scenes import smooth_scene, write_scene
from tests.support.toys import ConvModel

MIB = 1 << 20
TILES = [(384, 0.25), (224, 0.5), (128, 0.0)]
WIDTHS = [200, 512, 700, 1300, 4096, 20_000, 50_000, 150_000]
CLASSES = [1, 3, 15, 60, 254]
BUDGETS = [64 * MIB, 128 * MIB, 512 * MIB, 2048 * MIB, 8192 * MIB]


def budgeted_bound(grid: Grid, num_classes: int, width: int, probabilities: bool, queued: bool) -> int:
    """The terms of the stated bound that ``--max-memory`` holds, for superblocks of ``width`` owned columns."""
    bound = memory_bound(grid, num_classes, batch_size=4, probabilities=probabilities, bands=3, itemsize=1,
                         threads=2, width=width, queued=queued)  # fmt: skip
    return sum(bound[term] for term in BUDGETED)


def cases() -> itertools.product:
    """Tiles, scene widths, class counts, --probabilities off and on, the writer inline or on its thread, budgets."""
    return itertools.product(TILES, WIDTHS, CLASSES, (False, True), (False, True), BUDGETS)


def stated_over_budget(
    check: Callable[[Grid, int, bool, int], None],
    width_for: Callable[[Grid, int, int, bool, int, bool], int],
    bound_for: Callable[[Grid, int, int, bool, bool], int],
) -> tuple[list[str], int, int]:
    """Over the ``cases``: those whose superblocks' stated bound exceeds the budget, how many budgets were refused,
    how many scenes were cut into several superblocks."""
    over, refused, split = [], 0, 0
    for (tile, overlap), width, k, probs, queued, budget in cases():
        grid = Grid.from_overlap(3000, width, tile, overlap)
        try:
            check(grid, k, probs, budget)
        except UsageError:
            refused += 1
            continue
        blocks = grid.superblocks(width_for(grid, k, budget, probs, CHUNK_ROWS, queued))
        split += len(blocks) > 1
        need = max(bound_for(grid, k, owned, probs, queued) for owned in {b.x1 - b.x0 for b in blocks})
        if need > budget:
            case = f"tile {tile}, width {width}, {k} classes{', probabilities' if probs else ''}"
            over.append(f"{case}, {budget // MIB} MiB: bound {need / budget:.2f}x the budget")
    return over, refused, split


def test_the_chosen_superblocks_keep_the_stated_bound_within_the_budget() -> None:
    """Sizing and the stated bound are one arithmetic: no superblock's bound exceeds --max-memory, and budgets that
    cannot hold the narrowest superblock are refused (on the two formulas before, the bound reached 4.7x the budget
    with --probabilities: /work/scratch/house-segment/old_formulas.py)."""
    over, refused, split = stated_over_budget(check_budget, superblock_width, budgeted_bound)
    assert over == []
    assert refused > 0 and split > 0  # the grid reaches both the refusal and scenes cut into several superblocks


def test_superblocks_are_the_widest_that_fit_and_their_blender_is_within_the_bound() -> None:
    """Not needlessly narrow (one more 512-column step would not fit), and the blender of every real superblock (its
    strip with the halo, clipped at the scene's edges) is within the stated term."""
    for (tile, overlap), width, k, probs, queued, budget in cases():
        grid = Grid.from_overlap(3000, width, tile, overlap)
        try:
            check_budget(grid, k, probs, budget)
        except UsageError:
            continue
        chosen = superblock_width(grid, k, budget, probs, CHUNK_ROWS, queued)
        assert chosen == grid.width or budget_bytes(grid, k, chosen + BLOCK, probs, CHUNK_ROWS, queued) > budget
        for owned, strip in {(b.x1 - b.x0, b.width) for b in grid.superblocks(chosen)}:
            stated = memory_bound(grid, k, batch_size=4, probabilities=probs, bands=3, itemsize=1, threads=2,
                                  width=owned, queued=queued)[BLENDER]  # fmt: skip
            assert blender_bytes(grid, k, strip) <= stated


def test_a_budget_that_cannot_hold_the_narrowest_superblock_is_refused_before_any_work(tmp_path: Path) -> None:
    """20 classes with their probabilities at tile 384: one 512-column superblock's finished rows need more than
    64 MiB (exit 2, nothing written); without --probabilities the same budget passes the plan."""
    scene = write_scene(tmp_path / "s.tif", smooth_scene(96, 96))
    names = [f"c{i}" for i in range(20)]
    args = ["segment", scene, "-c", ",".join(names), "-m", "tiny", "--tile", "384", "--max-memory", "64M", "-q"]
    r = run_cli(*args, "-o", tmp_path / "o.tif", "--probabilities", tmp_path / "p.tif")
    assert r.code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--max-memory 0.0625 GiB cannot hold the blender" in r.stderr
    assert "finished rows and their probabilities of one superblock" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]
    request = SegmentRequest(
        [str(scene)], names, output=tmp_path / "o.tif", model="tiny", tile=384, max_memory=64 * MIB
    )
    assert plan(request).max_memory == 64 * MIB


def test_a_default_budget_too_small_for_the_narrowest_superblock_is_stated(tmp_path: Path) -> None:
    """Without --max-memory (512 MiB on CPU), 254 classes with their probabilities at tile 384 run in the narrowest
    superblocks anyway, with a warning saying how much they need; without probabilities they fit, no warning."""
    from aeroseg_cli.segment.loading import check_sizes

    scene = write_scene(tmp_path / "s.tif", smooth_scene(96, 96))
    request = SegmentRequest([str(scene)], [f"c{i}" for i in range(254)], output=tmp_path / "o.tif", model="tiny",
                             tile=384, probabilities=tmp_path / "p.tif")  # fmt: skip
    grids = [Grid.from_overlap(96, 96, 384, 0.25)]
    warned = check_sizes(plan(request), grids, 254, 1, torch.device("cpu"))
    assert len(warned) == 1 and warned[0] == (
        "the default --max-memory (0.5 GiB) cannot hold one superblock with 254 class(es) and their probabilities: "
        "running in superblocks of 512 columns, which need 0.989 GiB (give --max-memory to choose)"
    ), warned  # 0.989 GiB: 1021 bytes a pixel x (96 x 1280 + 384²) for the blender + 255 x 6016 x 512 finished
    assert check_sizes(plan(replace(request, probabilities=None)), grids, 254, 1, torch.device("cpu")) == []


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("wide") / "wide.tif", smooth_scene(300, 1300, seed=5))


def run_wide(scene: Path, out: Path, max_memory: int | None) -> tuple[object, np.ndarray, np.ndarray]:
    info = inspect_scene(scene, None, None, None, False)
    opts = SegmentOptions(tile=64, overlap=0.25, batch_size=4, chunk_rows=512, probabilities=out.with_suffix(".p.tif"),
                          max_memory=max_memory)  # fmt: skip
    predictor = Predictor(ConvModel(), ["a", "b", "c"], torch.device("cpu"))
    result = segment_scene(info, predictor, out, opts, tags={}, settings={"test": 1})
    with rasterio.open(out) as labels, rasterio.open(opts.probabilities) as probs:
        return result, labels.read(), probs.read()


def test_superblocks_give_the_bits_of_one_pass(wide: Path, tmp_path: Path) -> None:
    """A budget that cuts the scene into three superblocks (the last narrower) gives the labels and probabilities of
    one whole-width pass, bit for bit, with a model whose windows see their neighbours (a 3x3 convolution)."""
    one, labels, probs = run_wide(wide, tmp_path / "one.tif", None)
    three, labels3, probs3 = run_wide(wide, tmp_path / "three.tif", 8 * MIB)
    assert (one.superblocks, three.superblocks) == (1, 3)
    assert three.windows["run"] > one.windows["run"]  # the halo windows at the two inner edges ran twice
    assert np.array_equal(labels, labels3) and np.array_equal(probs, probs3)
