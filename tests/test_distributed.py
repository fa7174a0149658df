"""``aeroseg segment`` under torchrun (gloo, 2 CPU processes): same outputs as one process, failures fail the run.

The one-process runs are in-process: the test process has one torch thread (conftest.py), as each torchrun worker
has (OMP_NUM_THREADS=1), so the float order, and the maps bit for bit, are the same as a separate process's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.support.cli import run_cli, torchrun
from tests.support.scenes import corrupt_full_resolution_tile, smooth_scene, write_scene

pytestmark = pytest.mark.slow  # torchrun: two interpreters per run

COMMON = ["-c", "water,land,road", "--tile", "128", "-q", "--device", "cpu"]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


@pytest.fixture(scope="module")
def common(tmp_path_factory) -> list[str]:
    """The options of every run, with one saved model for every process (the comparison must not depend on how a
    preset is initialised); a new list, so ``COMMON`` stays as written."""
    import torch

    import models

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.manual_seed(123)
    models.save_checkpoint(path, models.build("tiny"), ["water", "land", "road"])
    return [*COMMON, "--model", str(path)]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("scenes")
    return [write_scene(d / f"s{i}.tif", smooth_scene(300 + 40 * i, 260, seed=i)) for i in range(3)]


def test_scenes_sharded_across_ranks_equal_single_process(
    scenes: list[Path], common: list[str], tmp_path: Path
) -> None:
    single = run_cli("segment", *scenes, "-o", tmp_path / "one", *common)
    assert single.code == 0, single.stderr
    r = torchrun("segment", *scenes, "-o", tmp_path / "two", *common, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)  # one combined summary, from rank 0 only
    assert sorted(Path(s["scene"]).name for s in summary) == ["s0.tif", "s1.tif", "s2.tif"]
    assert all(s["processes"] == 2 for s in summary)
    for s in scenes:
        name = f"{s.stem}.labels.tif"
        assert np.array_equal(read(tmp_path / "one" / name), read(tmp_path / "two" / name))
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix == ".tif") == [
        "s0.labels.tif",
        "s1.labels.tif",
        "s2.labels.tif",
    ]


def test_one_scene_row_bands_sharded_equal_single_process(common: list[str], tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "tall.tif", smooth_scene(1300, 300, seed=7))
    single = run_cli("segment", scene, "-o", tmp_path / "one.tif", *common, "--probabilities", tmp_path / "p1.tif")
    assert single.code == 0, single.stderr
    r = torchrun(
        "segment",
        scene,
        "-o",
        tmp_path / "two.tif",
        *common,
        "--probabilities",
        tmp_path / "p2.tif",
        "--cog",
        "--json",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "row bands" in json.loads(r.stdout)["notes"][0]
    assert np.array_equal(read(tmp_path / "one.tif"), read(tmp_path / "two.tif"))
    assert np.array_equal(read(tmp_path / "p1.tif"), read(tmp_path / "p2.tif"))
    with rasterio.open(tmp_path / "two.tif") as ds, rasterio.open(scene) as src:
        assert ds.transform == src.transform and ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert json.loads(ds.tags()["CLASS_NAMES"]) == ["water", "land", "road"]
    assert not [p for p in tmp_path.iterdir() if ".rank" in p.name or ".partial" in p.name]


def test_a_failing_rank_fails_the_whole_run(scenes: list[Path], common: list[str], tmp_path: Path) -> None:
    bad = write_scene(
        tmp_path / "corrupt.tif", smooth_scene(300, 2100), compress="deflate", tiled=True, blockxsize=128,
        blockysize=128, interleave="band",
    )  # fmt: skip
    with rasterio.open(bad, "r+") as ds:
        ds.build_overviews([2, 4])
    corrupt_full_resolution_tile(bad, 1, 8)
    r = torchrun("segment", scenes[0], bad, "-o", tmp_path / "out", *common)
    assert r.returncode != 0
    assert "processes failed" in r.stderr and "rerun with --resume" in r.stderr
    assert "IReadBlock failed" in r.stderr  # GDAL's own cause, not "Read failed. See previous exception"
    assert not (tmp_path / "out" / "corrupt.labels.tif").exists()
