"""``aeroseg segment``: seam-free blending, invariance, nodata, real scenes, outputs, resume and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import models
from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.segment.engine import CALL_OUTPUT_CAP, SegmentOptions, segment_scene, windows_per_call
from aeroseg_cli.segment.predictor import Predictor
from aeroseg_cli.segment.reader import inspect_scene
from aeroseg_cli.segment.writer import partial_paths
from tests.support.cli import run_cli
from tests.support.scenes import smooth_scene, write_scene
from tests.support.toys import ConvModel, PixelModel

NAMES = ["a", "b", "c"]


def run_engine(scene: Path, out: Path, model, resume: bool = False, **kw) -> object:
    info = inspect_scene(scene, None, None, None, False)
    opts = SegmentOptions(**{"tile": 64, "overlap": 0.25, "batch_size": 4, "chunk_rows": 512, **kw}, resume=resume)
    predictor = Predictor(model, NAMES[: model.conv.out_channels], torch.device("cpu"))
    return segment_scene(info, predictor, out, opts, tags={"TEST": "1"}, settings={"test": 1})


def whole_scene_probs(scene: Path, model) -> np.ndarray:
    with rasterio.open(scene) as ds:
        image = torch.from_numpy(ds.read([1, 2, 3]).astype(np.float32) / 255)[None]
    with torch.no_grad():
        return model.probabilities(model(image, NAMES))[0].numpy()


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", smooth_scene(1100, 700))


# -- engine correctness ----------------------------------------------------------------------------------------
def test_tiled_blended_output_equals_single_pass(scene: Path, tmp_path: Path) -> None:
    model = PixelModel()
    res = run_engine(scene, tmp_path / "out.tif", model, probabilities=tmp_path / "p.tif")
    reference = whole_scene_probs(scene, model)
    with rasterio.open(tmp_path / "out.tif") as ds:
        labels = ds.read(1)
    with rasterio.open(tmp_path / "p.tif") as ds:
        probs = ds.read()
    assert res.windows["done"] == res.windows["total"] > 100
    assert max(len(batch) for batch in model.seen) == 4  # batches of --batch-size, never more
    assert np.array_equal(labels, reference.argmax(0))
    assert np.abs(probs.astype(int) - np.rint(reference * 255).astype(int)).max() <= 1


def test_convolutional_model_blends_without_seams(scene: Path, tmp_path: Path) -> None:
    """A model with spatial context differs from a single pass only where the blend weight is near its floor."""
    model = ConvModel()
    run_engine(scene, tmp_path / "out.tif", model, probabilities=tmp_path / "p.tif")
    reference = np.rint(whole_scene_probs(scene, model) * 255)
    with rasterio.open(tmp_path / "p.tif") as ds:
        diff = np.abs(ds.read().astype(float) - reference)
    assert diff.max() <= 2, diff.max()  # a seam would show as errors of tens of levels along window borders


def test_result_does_not_depend_on_block_or_batch_size(scene: Path, tmp_path: Path) -> None:
    outputs = []
    for i, (chunk, batch) in enumerate([(512, 1), (1536, 4), (512, 7)]):
        run_engine(scene, tmp_path / f"o{i}.tif", PixelModel(), chunk_rows=chunk, batch_size=batch)
        with rasterio.open(tmp_path / f"o{i}.tif") as ds:
            outputs.append(ds.read(1))
    assert all(np.array_equal(outputs[0], o) for o in outputs[1:])


def test_model_calls_shrink_with_many_classes_so_their_output_stays_bounded() -> None:
    """254 classes at 384 px are 150 MB of probabilities a window: a batch of 8 would be 1.2 GB per tensor."""
    assert windows_per_call(8, 15, 384) == 8  # the usual class lists keep the batch asked for
    assert windows_per_call(8, 254, 384) == 1
    for k in (1, 15, 60, 254, 1000):
        n = windows_per_call(8, k, 384)
        assert 1 <= n <= 8 and (n == 1 or n * 4 * k * 384 * 384 <= CALL_OUTPUT_CAP)


def test_nodata_windows_never_reach_the_model_and_stay_nodata(tmp_path: Path) -> None:
    data = smooth_scene(400, 400)
    data[:, :200, :] = 0  # the top half is nodata (0 in every band)
    scene = write_scene(tmp_path / "nd.tif", data, nodata=0)
    model = PixelModel()
    res = run_engine(scene, tmp_path / "out.tif", model)
    assert res.windows["skipped"] > 0
    seen = torch.cat(model.seen)  # batches are padded to their full size with copies of a window: count distinct ones
    assert len({img.numpy().tobytes() for img in seen}) == res.windows["done"]
    assert res.windows["done"] == res.windows["total"] - res.windows["skipped"]
    assert all((img.abs().sum(0) > 0).any() for img in seen)  # every window sent has valid pixels
    with rasterio.open(tmp_path / "out.tif") as ds:
        labels = ds.read(1)
        assert ds.nodata == 255
    assert (labels[:200] == 255).all() and (labels[200:] != 255).all()


@pytest.mark.parametrize("io", ["on", "off"])
def test_failed_window_fails_the_run_unless_skip(scene: Path, tmp_path: Path, io: str) -> None:
    class Flaky(PixelModel):
        def forward(self, images, class_names):
            if (images[:, 0].mean(dim=(1, 2)) > 0.6).any():
                raise RuntimeError("simulated device error")
            return super().forward(images, class_names)

    from aeroseg_cli.files.errors import CLIError

    with pytest.raises(CLIError, match=r"window\(s\) failed"):
        run_engine(scene, tmp_path / "out.tif", Flaky(), io_threads=io)
    assert sorted(os.listdir(tmp_path)) == []  # nothing written, no partial files
    res = run_engine(scene, tmp_path / "out.tif", Flaky(), on_error="skip", io_threads=io)
    assert res.windows["failed"] > 0 and (tmp_path / "out.tif").exists()


@pytest.mark.parametrize("io", ["on", "off"])
def test_interrupted_run_resumes_to_the_same_result(scene: Path, tmp_path: Path, io: str) -> None:
    class Interrupted(PixelModel):
        def forward(self, images, class_names):
            if len(self.seen) >= 200:
                raise KeyboardInterrupt
            return super().forward(images, class_names)

    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        run_engine(scene, out, Interrupted(), batch_size=1, io_threads=io)
    assert not out.exists()  # never a truncated file at the output path
    partial, sidecar = partial_paths(out)
    assert partial.exists() and json.loads(sidecar.read_text())["blocks"][0][2] >= 512
    model = PixelModel()
    res = run_engine(scene, out, model, resume=True, io_threads=io)
    assert res.resumed_from_row >= 512 and len(torch.cat(model.seen)) < res.windows["total"]
    run_engine(scene, tmp_path / "ref.tif", PixelModel())
    with rasterio.open(out) as a, rasterio.open(tmp_path / "ref.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
    assert not partial.exists() and not sidecar.exists()


# -- real scenes through the CLI with the tiny preset ------------------------------------------------------------
REAL_SCENES = [
    ("naip_2020_rgbn_utm14n.tif", []),
    ("landsat7_rgb_utm18n.tif", []),
    ("spacenet_pan_uint16_utm16n.tif", []),
    ("cog_float64_4band.tif", ["--bands", "1,2,3"]),
]


@pytest.mark.parametrize(("name", "extra"), REAL_SCENES)
def test_real_scenes_keep_georeferencing_and_legend(shared_geotiff: Path, tmp_path: Path, name: str, extra) -> None:
    src_path = shared_geotiff / name
    out = tmp_path / "labels.tif"
    r = run_cli(
        "segment",
        src_path,
        "-c",
        "building,road,tree|forest",
        "-o",
        out,
        "--model",
        "tiny",
        "--tile",
        "256",
        "--cog",
        "-q",
        "--json",
        *extra,
    )
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["windows"]["done"] > 0 and summary["device"] == "cpu"
    with rasterio.open(src_path) as src, rasterio.open(out) as ds:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert json.loads(ds.tags()["CLASS_NAMES"]) == ["building", "road", "tree|forest"]
        assert ds.tags()["AEROSEG_MODEL"] == "tiny" and ds.tags()["AEROSEG_TILE"] == "256"
        assert ds.colormap(1)[255][3] == 0
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        if max(ds.shape) > 512:  # GDAL adds overview levels only above one 512-pixel tile
            assert ds.overviews(1), "COG needs overviews"
        labels = ds.read(1)
        src_mask = src.dataset_mask()
        assert (labels[src_mask == 0] == 255).all()  # nodata stays nodata
        assert set(np.unique(labels[src_mask > 0])) <= {0, 1, 2}
        if src.dtypes[0] != "uint8":
            assert ds.tags()["AEROSEG_RADIOMETRY"].startswith("percentile 2-98 (scene-wide)")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # the COG copy gets normal permissions, not mkstemp's 0600
    aux = (tmp_path / "labels.tif.aux.xml").read_text()
    assert "<Category>tree|forest</Category>" in aux


def test_target_gsd_probabilities_and_unknown_threshold(shared_geotiff: Path, tmp_path: Path) -> None:
    src_path = shared_geotiff / "naip_2020_rgbn_utm14n.tif"
    r = run_cli(
        "segment",
        src_path,
        "-c",
        "a,b",
        "-o",
        tmp_path / "l.tif",
        "--model",
        "tiny",
        "--tile",
        "128",
        "--target-gsd",
        "10",
        "--probabilities",
        tmp_path / "p.tif",
        "--unknown-threshold",
        "0.999",
        "-q",
    )
    assert r.code == 0, r.stderr
    with (
        rasterio.open(src_path) as src,
        rasterio.open(tmp_path / "l.tif") as ds,
        rasterio.open(tmp_path / "p.tif") as p,
    ):
        assert ds.crs == src.crs and ds.transform.a == 10.0 and ds.width == round(src.width / 2)
        assert (ds.transform.c, ds.transform.f) == (src.transform.c, src.transform.f)
        assert p.count == 2 and p.dtypes[0] == "uint8" and p.shape == ds.shape
        labels, probs = ds.read(1), p.read()
    unknown = labels == 255
    assert unknown.any()
    assert (probs.max(0)[unknown] < 255).all()  # unknown pixels really had no confident class


def test_cli_end_to_end_json_and_overwrite(shared_geotiff: Path, tmp_path: Path) -> None:
    scene = shared_geotiff / "landsat7_rgb_utm18n.tif"
    out = tmp_path / "x.tif"
    args = ["segment", scene, "--classes", "water,land", "-o", out, "--model", "tiny", "--json", "-q"]
    r = run_cli(*args)
    assert r.code == 0 and json.loads(r.stdout)["outputs"] == [str(out)]
    r = run_cli(*args)
    assert r.code == 2 and "exists" in r.stderr and r.stderr.count("\n") == 1
    assert run_cli(*args, "--overwrite").code == 0


def test_checkpoint_class_names_are_the_default(scene: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "m.pt"
    models.save_checkpoint(ckpt, models.build("tiny"), ["water", "land"])
    r = run_cli("segment", scene, "-o", tmp_path / "o.tif", "--model", ckpt, "--tile", "128", "-q", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["classes"] == ["water", "land"]


# -- bad input: one line, the right exit code, nothing written ----------------------------------------------
def _bad(tmp_path: Path, *args: str, code: int, match: str) -> None:
    r = run_cli(*args)
    assert r.code == code, (r.code, r.stderr)
    assert match in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.suffix in (".tif", ".json") and not p.name.startswith("in")]
    assert leftovers == []


def test_bad_input(scene: Path, tmp_path: Path, shared_geotiff: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.tif"
    base = ["-o", out, "--model", "tiny"]
    _bad(tmp_path, "segment", tmp_path / "missing.tif", "-c", "a", *base, code=2, match="no such file")
    (tmp_path / "in.txt").write_text("not a raster")
    _bad(tmp_path, "segment", tmp_path / "in.txt", "-c", "a", *base, code=2, match="not a raster")
    plain = write_scene(tmp_path / "in_plain.tif", smooth_scene(64, 64), crs=None, transform=rasterio.Affine.identity())
    _bad(tmp_path, "segment", plain, "-c", "a", *base, code=2, match="--allow-ungeoreferenced")
    assert run_cli("segment", plain, "-c", "a", *base, "--allow-ungeoreferenced", "-q").code == 0
    for written in (out, tmp_path / "out.tif.aux.xml", tmp_path / "out.qml"):
        written.unlink()
    naip = shared_geotiff / "naip_2020_rgbn_utm14n.tif"
    _bad(tmp_path, "segment", naip, "-c", "a", "--bands", "1,2,5", *base, code=2, match="the scene has 4 band(s)")
    _bad(tmp_path, "segment", scene, "-c", "a,,b", *base, code=2, match="empty class name")
    _bad(tmp_path, "segment", scene, "-c", " , ", *base, code=2, match="empty class name")
    _bad(tmp_path, "segment", scene, "-c", "a,b,A", *base, code=2, match="listed twice")
    many = ",".join(f"c{i}" for i in range(255))
    _bad(tmp_path, "segment", scene, "-c", many, *base, code=2, match="at most 254")
    _bad(
        tmp_path,
        "segment",
        scene,
        "-c",
        "a",
        *base,
        "--tile",
        "64",
        "--overlap",
        "0.999",
        code=2,
        match="larger than the overlap",
    )
    _bad(
        tmp_path,
        "segment",
        scene,
        "-c",
        "a",
        "-o",
        tmp_path / "nodir" / "o.tif",
        "--model",
        "tiny",
        code=2,
        match="does not exist",
    )
    _bad(tmp_path, "segment", scene, "-c", "a", "-o", out, "--model", "no-such-preset", code=2, match="preset")
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    _bad(tmp_path, "segment", scene, "-c", "a", "-o", out, "--model", "aeroseg-vitb16-samvitl", code=2,
         match="is untrained")  # fmt: skip
    _bad(tmp_path, "segment", scene, "-c", "a", "-o", out, code=1,
         match="no model is on this machine; get one: `aeroseg weights download ")  # fmt: skip
    _bad(tmp_path, "segment", scene, "-c", "a", "-o", out, "--model", "zeroshot-vitb16", code=1,
         match="aeroseg weights download clip-vit-b-16")  # fmt: skip
    if not torch.cuda.is_available():
        _bad(tmp_path, "segment", scene, "-c", "a", *base, "--device", "cuda", code=1, match="CUDA is not available")
    out.write_bytes(b"keep me")
    r = run_cli("segment", scene, "-c", "a", *base)
    assert r.code == 2 and "exists" in r.stderr and out.read_bytes() == b"keep me"
    out.unlink()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    _bad(tmp_path, "segment", scene, "-c", "a", *base, code=2, match="not writable")


class BatchSensitive(PixelModel):
    """Each window's logits depend on the other windows of its model call (a batch-mean term), as real kernels'
    float results can depend on the batch shape; it runs out of "GPU memory" on call ``oom_at`` or above ``fits``."""

    def __init__(self, oom_at: int | None = None, fits: int = 1 << 30) -> None:
        super().__init__()
        self.calls, self.oom_at, self.fits = 0, oom_at, fits

    def forward(self, images, class_names):
        self.calls += 1
        if self.calls == self.oom_at or len(images) > self.fits:
            raise torch.cuda.OutOfMemoryError("simulated: out of GPU memory")
        batch_mean = images.mean(dim=(0, 2, 3))[None, : len(class_names), None, None]
        return super().forward(images, class_names) + 4 * batch_mean


def test_out_of_memory_midway_stops_resumable_and_never_mixes_call_shapes(scene: Path, tmp_path: Path) -> None:
    """An out-of-memory error after windows were kept ends the run (a smaller batch from then on would make a map of
    two kinds of windows); --resume then completes it to the uninterrupted map, bit for bit."""
    run_engine(scene, tmp_path / "ref.tif", BatchSensitive(), batch_size=8)
    with pytest.raises(CLIError, match=r"after \d+ of \d+ windows: CUDA out of memory .* --resume"):
        run_engine(scene, tmp_path / "out.tif", BatchSensitive(oom_at=4), batch_size=8)
    assert not (tmp_path / "out.tif").exists()
    model = BatchSensitive()
    run_engine(scene, tmp_path / "out.tif", model, resume=True, batch_size=8)
    assert model.seen and {len(b) for b in model.seen} == {8}
    with rasterio.open(tmp_path / "out.tif") as a, rasterio.open(tmp_path / "ref.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))


def test_a_batch_that_does_not_fit_is_lowered_before_any_window() -> None:
    """``settle`` (probed on CUDA before the run, by ``segment.run.load``) halves the batch until one call fits, so
    the whole map is made with that one call shape."""
    predictor = Predictor(BatchSensitive(fits=2), NAMES[:3], torch.device("cpu"))
    assert predictor.settle(64, 8, probe=True) == 2
    assert predictor.settle(64, 8) == 8  # no probe on a CPU device: its out-of-memory is not recoverable
    with pytest.raises(CLIError, match="does not fit"):
        Predictor(BatchSensitive(fits=0), NAMES[:3], torch.device("cpu")).settle(64, 8, probe=True)


def test_batch_size_auto_on_cpu(scene: Path, tmp_path: Path) -> None:
    r = run_cli(
        "segment",
        scene,
        "-c",
        "a,b",
        "-o",
        tmp_path / "o.tif",
        "--model",
        "tiny",
        "--batch-size",
        "auto",
        "--tile",
        "128",
        "-q",
    )
    assert r.code == 0, r.stderr
    r = run_cli("segment", scene, "-c", "a,b", "-o", tmp_path / "p.tif", "--model", "tiny", "--batch-size", "0")
    assert r.code == 2 and "--batch-size" in r.stderr


def test_background_and_inline_io_give_identical_output(scene: Path, tmp_path: Path) -> None:
    for mode in ("on", "off"):
        run_engine(scene, tmp_path / f"{mode}.tif", PixelModel(), io_threads=mode)
    with rasterio.open(tmp_path / "on.tif") as a, rasterio.open(tmp_path / "off.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
