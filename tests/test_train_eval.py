"""Datasets, metrics, training (resume, NaN stop, torchrun/gloo) and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import models
from aeroseg_cli.datasets.readers import DUBAI_SPLIT, IGNORE, load_dataset
from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.training.augment import train_augment
from aeroseg_cli.training.config import TrainConfig
from aeroseg_cli.training.evaluation import Metrics, confusion, harmonic
from aeroseg_cli.training.loop import train
from aeroseg_cli.training.sampling import SeededStream
from tests.support.cli import run_cli, torchrun
from tests.support.scenes import write_scene

# -- datasets -------------------------------------------------------------------------------------------------------


def test_dubai_real_data_split_and_colour_decoding(shared_dubai: Path) -> None:
    train_set = load_dataset("dubai", shared_dubai, "train")
    val_set = load_dataset("dubai", shared_dubai, "val")
    assert len(train_set) == 9 * len(DUBAI_SPLIT["train"]) and len(val_set) == 9 * len(DUBAI_SPLIT["val"])
    assert not {s.image for s in train_set.samples} & {s.image for s in val_set.samples}
    image, mask = val_set.load(0)
    assert image.dtype == np.uint8 and image.shape[:2] == mask.shape
    values = set(np.unique(mask))
    assert values <= {0, 1, 2, 3, 4, IGNORE} and len(values - {IGNORE}) >= 2
    assert (mask != IGNORE).mean() > 0.95  # only the unlabeled/stray colours are ignored


def _folder(root: Path, n: int = 4, size: int = 64, classes=("a", "b", "*c"), bad_value: int | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[:, size // 3 :] = 1
        mask[size // 2 :, : size // 2] = 2
        img[mask == 1] //= 3  # learnable: class 1 is darker
        if bad_value is not None and i == n - 1:
            mask[0, 0] = bad_value
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def test_folder_dataset_and_clear_errors(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ds")
    data = load_dataset("folder", root, "train")
    assert data.spec.classes == ("a", "b", "c") and data.spec.unseen == ("c",) and data.spec.seen == ("a", "b")
    (tmp_path / "classes.txt").write_text("a\n")
    with pytest.raises(UsageError, match=r"expected folder .*images"):
        load_dataset("folder", tmp_path, "train")
    (root / "images" / "orphan.png").write_bytes((root / "images" / "im0.png").read_bytes())
    with pytest.raises(UsageError, match="have no mask"):
        load_dataset("folder", root, "train")
    bad = _folder(tmp_path / "bad", bad_value=7)
    with pytest.raises(UsageError, match="mask value 7 outside the 3 classes"):
        load_dataset("folder", bad, "train").load(3)
    with pytest.raises(UsageError, match=r"expected .*DLRSD|expected .*train"):
        load_dataset("dlrsd", tmp_path, "train")
    with pytest.raises(UsageError, match="split list"):
        load_dataset("openearthmap", tmp_path, "train")
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset("coco", tmp_path, "train")


def test_paper_layouts_read(tmp_path: Path) -> None:
    """iSAID/DLRSD (imgs + D2masks) and OpenEarthMap (regions, split lists, label 0 -> ignore, k -> k-1)."""
    for name, ext in (("isaid", ".png"), ("dlrsd", ".jpg")):
        base = tmp_path / name / "val"
        (base / "imgs").mkdir(parents=True)
        (base / "D2masks").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(base / "imgs" / f"x{ext}")
        Image.fromarray(np.full((8, 8), 3, np.uint8)).save(base / "D2masks" / "x.png")
        data = load_dataset(name, tmp_path / name, "val")
        assert len(data) == 1 and (data.load(0)[1] == 3).all()
    oem = tmp_path / "oem"
    for region in ("aachen", "zanzibar"):
        (oem / region / "images").mkdir(parents=True)
        (oem / region / "labels").mkdir()
        write_scene(oem / region / "images" / f"{region}_1.tif", np.zeros((3, 8, 8), np.uint8))
        lab = np.zeros((1, 8, 8), np.uint8)
        lab[0, :, 4:] = 8
        write_scene(oem / region / "labels" / f"{region}_1.tif", lab)
    (oem / "val.txt").write_text("zanzibar_1.tif\n")
    data = load_dataset("openearthmap", oem, "val")
    assert len(data) == 1 and data.samples[0].image.parent.parent.name == "zanzibar"
    mask = data.load(0)[1]
    assert (mask[:, :4] == IGNORE).all() and (mask[:, 4:] == 7).all()  # 0 -> ignore, 8 (building) -> 7
    assert data.spec.seen == ("bareland", "rangeland", "road", "building")


def test_augmentation_shapes_padding_and_determinism() -> None:
    image = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    mask = np.zeros((100, 150), np.int64)
    a = train_augment(image, mask, 128, np.random.default_rng(5))
    b = train_augment(image, mask, 128, np.random.default_rng(5))
    assert a[0].shape == (128, 128, 3) and a[1].shape == (128, 128)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_seeded_stream_resumes_and_shards() -> None:
    full = SeededStream(10, seed=3)
    items = [x for _, x in zip(range(25), iter(full), strict=False)]
    later = [x for _, x in zip(range(5), iter(SeededStream(10, 3, start=20)), strict=False)]
    assert later == items[20:]
    r0 = [x for _, x in zip(range(5), iter(SeededStream(10, 3, rank=0, world=2)), strict=False)]
    r1 = [x for _, x in zip(range(5), iter(SeededStream(10, 3, rank=1, world=2)), strict=False)]
    assert r0 == items[0:10:2] and r1 == items[1:10:2]
    assert sorted(i for i, _ in items[:10]) == list(range(10))  # each epoch is a permutation


# -- metrics --------------------------------------------------------------------------------------------------------


def test_metrics_against_hand_computed_confusion() -> None:
    gt = np.array([[0, 0, 1, 1], [1, 1, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [1, 0, 255, 0]])
    m = confusion(pred, gt, 3)
    # rows = prediction (row 3: no class), cols = ground truth; the ignore pixel is left out
    expected = np.array([[1, 1, 0], [1, 3, 0], [0, 0, 0], [0, 0, 1]])
    assert np.array_equal(m, expected)
    metrics = Metrics(["a", "b", "c"], ["c"], m)
    # a: tp 1, gt 2, pred 2 -> 1/3; b: tp 3, gt 4, pred 4 -> 3/5; c: tp 0, gt 1, pred 0 -> 0
    np.testing.assert_allclose(metrics.iou, [1 / 3, 3 / 5, 0.0])
    s = metrics.summary()
    assert s["s-mIoU"] == pytest.approx((1 / 3 + 3 / 5) / 2 * 100)
    assert s["u-mIoU"] == pytest.approx(0.0)
    assert s["pixel_accuracy"] == pytest.approx(4 / 7 * 100)


def test_class_absent_from_ground_truth_is_left_out_even_if_predicted() -> None:
    gt = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 2, 1])  # class 2 never in the ground truth but predicted once
    metrics = Metrics(["a", "b", "c"], ["b"], confusion(pred, gt, 3))
    assert np.isnan(metrics.iou[2])
    assert metrics.summary()["mIoU"] == pytest.approx((2 / 3 + 1.0) / 2 * 100)  # detectron2's rule


def test_harmonic_mean() -> None:
    assert harmonic(0.6, 0.4) == pytest.approx(0.48)
    assert np.isnan(harmonic(0.5, float("nan")))


def test_evaluate_raster_pair(tmp_path: Path) -> None:
    gt = np.array([[0, 0, 1, 1]] * 4, np.uint8)
    pred = np.array([[0, 1, 1, 1]] * 4, np.uint8)
    a = write_scene(tmp_path / "pred.tif", pred[None], nodata=255)
    b = write_scene(tmp_path / "gt.tif", gt[None], nodata=255)
    r = run_cli("evaluate", "--pred", a, "--label", b, "--classes", "x,y", "--json", "-", "-q")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["iou"]["x"] == pytest.approx(50.0) and out["iou"]["y"] == pytest.approx(200 / 3)
    c = write_scene(tmp_path / "other.tif", gt[None], crs="EPSG:4326")
    r = run_cli("evaluate", "--pred", a, "--label", c, "--classes", "x,y")
    assert r.code == 2 and "different CRSs" in r.stderr


# -- training -------------------------------------------------------------------------------------------------------


def _cfg(root: Path, out: Path, **kw) -> TrainConfig:
    base = {
        "dataset": "folder",
        "data_root": str(root),
        "preset": "tiny",
        "iters": 4,
        "batch_size": 2,
        "num_workers": 0,
        "output": str(out),
        "ckpt_every": 2,
        "log_every": 1,
        "precision": "fp32",
        "model_overrides": {"crop_size": 128, "sam_input_size": 128},
    }
    return TrainConfig(**{**base, **kw})


def test_interrupted_and_resumed_training_gives_the_same_weights(tmp_path: Path, monkeypatch) -> None:
    root = _folder(tmp_path / "ds", n=5)
    data = load_dataset("folder", root, "train")
    train(_cfg(root, tmp_path / "full"), data, "cpu", quiet=True)
    # interrupted run: same schedule (iters=4) stopped after 2 iterations by a failing data step
    cfg = _cfg(root, tmp_path / "part")

    class Stop(Exception):
        pass

    import aeroseg_cli.training.sampling as tr

    original = tr.TrainSamples.__getitem__
    calls = {"n": 0}

    def flaky(self, key):
        calls["n"] += 1
        if calls["n"] > 4:  # 2 iterations x batch 2 succeed, then the "machine dies"
            raise Stop
        return original(self, key)

    with monkeypatch.context() as dying, pytest.raises(Stop):
        dying.setattr(tr.TrainSamples, "__getitem__", flaky)
        train(cfg, data, "cpu", quiet=True)
    assert torch.load(tmp_path / "part" / "train_state.pt", weights_only=True)["iteration"] == 2
    train(cfg, data, "cpu", resume=True, quiet=True)
    a = models.load_checkpoint(tmp_path / "full" / "checkpoint.pt")[0].state_dict()
    b = models.load_checkpoint(tmp_path / "part" / "checkpoint.pt")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log] == [1, 2, 3, 4]
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["seen_classes"] == ["a", "b"] and config["iters"] == 4


def test_only_seen_classes_are_trained_and_params_grouped(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ds")
    data = load_dataset("folder", root, "train")
    res = train(_cfg(root, tmp_path / "run", iters=2), data, "cpu", quiet=True)
    model, ckpt = models.load_checkpoint(res.checkpoint)
    assert ckpt["class_names"] == ["a", "b"] and model.backproj.num_classes == 2
    assert all(not p.requires_grad for p in model.sam.parameters())


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ds")
    data = load_dataset("folder", root, "train")
    with pytest.raises(CLIError, match=r"loss became (nan|inf).*last good checkpoint"):
        train(_cfg(root, tmp_path / "run", iters=6, ckpt_every=1, lr=1e15, clip_grad=0.0), data, "cpu", quiet=True)
    model, _ = models.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow  # trains 15 s
def test_tiny_learns_on_a_fixed_subset_and_beats_a_constant(tmp_path: Path) -> None:
    """Loss decreases and the seen-class mIoU beats predicting the most frequent class everywhere."""
    root = _folder(tmp_path / "ds", n=4, size=96, classes=("a", "b", "c"))
    data = load_dataset("folder", root, "train")
    res = train(
        # 150: the BCE sits at the class prior for about 60 iterations before it falls (every model variant)
        _cfg(root, tmp_path / "run", iters=150, ckpt_every=150, lr=2e-3, backbone_lr=2e-3, clip_grad=0.0),
        data,
        "cpu",
        quiet=True,
    )
    assert res.last_loss < res.first_loss
    from aeroseg_cli.training.evaluation import evaluate_dataset

    model, _ = models.load_checkpoint(res.checkpoint)
    result = evaluate_dataset(model, data, torch.device("cpu"))
    k = len(data.spec.classes)
    constant = np.zeros((k + 1, k), np.int64)
    for i in range(len(data)):
        _, gt = data.load(i)
        constant += confusion(np.zeros_like(gt), gt, k)  # class "a" everywhere
    baseline = Metrics(list(data.spec.classes), [], constant).iou
    assert np.nanmean(result.metrics.iou) > np.nanmean(baseline) + 0.1


def test_train_cli_errors(tmp_path: Path) -> None:
    r = run_cli("train", "--dataset", "dlrsd", "--data-root", tmp_path)
    assert r.code == 2 and "expected" in r.stderr and "D2masks" in r.stderr
    r = run_cli("train", "--dataset", "nope", "--data-root", tmp_path)
    assert r.code == 2 and "--dataset must be one of" in r.stderr
    (tmp_path / "c.toml").write_text("bogus = 1\n")
    r = run_cli("train", "--config", tmp_path / "c.toml")
    assert r.code == 2 and "unknown setting" in r.stderr


def test_train_options_over_the_config_file_over_the_defaults(tmp_path: Path) -> None:
    """Each setting: the option given on the command line wins over the --config file, the file over TrainConfig's
    default; a setting the command line never names (log_every, model_overrides) comes from the file too."""
    root = _folder(tmp_path / "ds", n=2)
    (tmp_path / "c.toml").write_text(
        'preset = "demo"\niters = 3\nlr = 1e-3\nseed = 7\nlog_every = 1\nprecision = "fp32"\nnum_workers = 0\n'
        "[model_overrides]\ncrop_size = 128\nsam_input_size = 128\n"
    )
    out = tmp_path / "run"
    r = run_cli("train", "--config", tmp_path / "c.toml", "-d", "folder", "--data-root", root, "--preset", "tiny",
                "--iters", "1", "-b", "1", "--seed", "0", "-o", out, "--device", "cpu", "-q", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["iterations"] == 1
    written = json.loads((out / "config.json").read_text())
    given = {"dataset": "folder", "data_root": str(root), "preset": "tiny", "iters": 1, "batch_size": 1, "seed": 0}
    from_file = {"lr": 1e-3, "log_every": 1, "precision": "fp32", "num_workers": 0}
    assert {k: written[k] for k in given} == given and {k: written[k] for k in from_file} == from_file
    assert written["model_overrides"] == {"crop_size": 128, "sam_input_size": 128}
    defaults = TrainConfig()
    assert written["backbone_lr"] == defaults.backbone_lr and written["ckpt_every"] == defaults.ckpt_every
    (tmp_path / "bad.toml").write_text('iters = "ten"\n')
    r = run_cli("train", "--config", tmp_path / "bad.toml", "-d", "folder", "--data-root", root)
    assert r.code == 2 and "setting iters must be a whole number" in r.stderr


@pytest.mark.slow
def test_torchrun_gloo_two_processes_match_one(tmp_path: Path) -> None:
    """DDP with 2 CPU processes (per-rank batch 1) gives the weights of one process with batch 2."""
    root = _folder(tmp_path / "ds", n=4)
    common = [
        "train",
        "--dataset",
        "folder",
        "--data-root",
        str(root),
        "--preset",
        "tiny",
        "--iters",
        "2",
        "--batch-size",
        "2",
        "--num-workers",
        "0",
        "--precision",
        "fp32",
        "--ckpt-every",
        "2",
        "-q",
        "--device",
        "cpu",
    ]
    cfgfile = tmp_path / "small.toml"
    cfgfile.write_text("[model_overrides]\ncrop_size = 128\nsam_input_size = 128\n")
    single = run_cli(*common, "--config", cfgfile, "--output", tmp_path / "one")  # in-process: one torch thread too
    assert single.code == 0, single.stderr[-2000:]
    multi = torchrun(*common, "--config", str(cfgfile), "--output", str(tmp_path / "two"))
    assert multi.returncode == 0, multi.stderr[-3000:]
    a = models.load_checkpoint(tmp_path / "one" / "checkpoint.pt")[0].state_dict()
    b = models.load_checkpoint(tmp_path / "two" / "checkpoint.pt")[0].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2


def test_train_with_missing_official_weights_names_every_file_at_once(tmp_path: Path, monkeypatch) -> None:
    """The paper preset needs CLIP ViT-B/16 and SAM ViT-L: both are named in one line, with sizes and one command."""
    root = _folder(tmp_path / "ds")
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "empty-cache"))
    r = run_cli("train", "--dataset", "folder", "--data-root", root, "--output", tmp_path / "run", "--device", "cpu")
    assert r.code == 1, r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "clip-vit-b-16" in line and "sam-vit-l" in line and "MB" in line
    assert "aeroseg weights download clip-vit-b-16 sam-vit-l" in line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# -- train --init ---------------------------------------------------------------------------------------------------
TINY_128 = {"crop_size": 128, "sam_input_size": 128}


def _saved(path: Path, seed: int, **overrides) -> Path:
    torch.manual_seed(seed)
    model = models.build("tiny", **{**TINY_128, **overrides})
    models.save_checkpoint(path, model, ["a", "b"], self_contained=True)
    return path


def test_init_with_the_same_architecture_takes_every_tensor_and_logs_it(tmp_path: Path, capsys) -> None:
    from aeroseg_cli.training.init import init_from

    src = _saved(tmp_path / "src.pt", 5, backproj_classes=2)
    torch.manual_seed(6)
    target = models.build("tiny", backproj_classes=2, **TINY_128)
    report = init_from(target, src)
    assert report.fresh == [] and report.unused == [] and len(report.taken) == len(target.state_dict())
    source = models.load_checkpoint(src)[0].state_dict()
    assert all(torch.equal(v, source[k]) for k, v in target.state_dict().items())
    root = _folder(tmp_path / "ds")
    train(_cfg(root, tmp_path / "run", iters=1, init=str(src)), load_dataset("folder", root, "train"), "cpu")
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["init"]
    assert first["source"] == str(src) and first["fresh"] == {} and sum(first["taken"].values()) == len(report.taken)
    assert f"--init {src}: {len(report.taken)} tensors taken, 0 start fresh" in capsys.readouterr().err


def test_init_across_architectures_takes_the_shared_parts(tmp_path: Path) -> None:
    """A CAT-Seg-like network (CLIP guidance, no rotations, one prompt, plain decoder fusion) into the paper-like
    one (SAM guidance, rotations, four prompts, attention-aware fusion, back-projection)."""
    from aeroseg_cli.training.init import init_from, module_of

    catseg = {"guidance": "clip", "rotations": False, "prompts": "generic", "decoder_fusion": "concat"}
    src = _saved(tmp_path / "catseg.pt", 5, backproj=False, **catseg)
    target = models.build("tiny", backproj_classes=2, **TINY_128)
    report = init_from(target, src)
    taken, fresh, unused = ({module_of(k) for k in keys} for keys in (report.taken, report.fresh, report.unused))
    assert {
        "clip.model.visual",
        "clip.model.transformer",
        "text_guidance.0",
        "spatial_blocks.0",
        "class_blocks.1",
    } <= taken
    assert {"decoder.up1", "decoder.head"} <= taken
    assert {"sam.encoder.blocks", "correlation.conv", "backproj.mlp"} <= fresh  # 16 cost-volume channels, not 1
    assert any(".fusion." in k for k in report.fresh) and not any(".fusion." in k for k in report.taken)
    assert {"guidance_upsample.up1", "guidance_upsample.up2"} <= unused
    source = models.load_checkpoint(src)[0].state_dict()
    assert all(torch.equal(target.state_dict()[k], source[k]) for k in report.taken)


def test_init_errors(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ds")
    r = run_cli("train", "--dataset", "folder", "--data-root", root, "--init", tmp_path / "nope.pt")
    assert r.code == 2 and "--init" in r.stderr and "no such checkpoint file" in r.stderr
    with pytest.raises(UsageError, match="give only one"):
        train(_cfg(root, tmp_path / "run", init=str(_saved(tmp_path / "s.pt", 1))), None, "cpu", resume=True)
    torch.save({"model": {"upsample1.weight": torch.zeros(1)}}, tmp_path / "raw.pth")
    with pytest.raises(CLIError, match=r"--init: .*not an AerOSeg checkpoint.*aeroseg weights convert catseg\|ovrs"):
        train(
            _cfg(root, tmp_path / "run2", init=str(tmp_path / "raw.pth")), load_dataset("folder", root, "train"), "cpu"
        )
