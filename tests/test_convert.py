"""CAT-Seg's released checkpoints and OVRS checkpoints, converted: the converted models equal the reference code.

How the fixtures were made: ``/work/scratch/h22-catseg/gen_fixtures.py`` (outside this repository) builds the
reference ``CATSeg`` with the reference's own code (detectron2 ``build_model`` on ``cvlab-kaist/CAT-Seg`` at the
commit in each fixture's record, ``configs/vitb_384.yaml`` / ``vitl_336.yaml`` with ``POOLING_SIZES [1,1]`` as its
``eval.sh``; OVRS: ``caoql98/OVRS`` with its ``*_ours`` files over the defaults, ``configs/vitb_384.yaml``),
replaces every tensor of its state dict with ``tests.support.catseg_layouts.seeded_state(layout, seed 22)``, runs
``CATSeg.forward`` on ``seeded_image(384, seed)`` (as 0..255 floats, detectron2's image tensor) for the classes
"ship", "harbor", "storage tank", and stores: the layout (every key, shape, dtype of the state dict, and what
detectron2's DefaultTrainer checkpoint holds beside "model", saved and read back with ``weights_only=True``), the
head's logits (B, K, 96, 96) captured by a forward hook on ``sem_seg_head``, the probabilities ``CATSeg.forward``
returns (sigmoid, then ``sem_seg_postprocess`` to 384) at ``[:, :, 3::8, 3::8]``, and the shifted-window mask
buffer. The tests rebuild the released file from the layout and the seed, so the converter reads the exact released
key names and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import models
from aeroseg_cli.commands.weights import _convert_summary
from models import hub
from models.checkpoint import read_checkpoint
from models.convert import CONVERTERS
from models.convert.catseg import build_model, read_source
from models.convert.catseg_layout import map_state
from models.decoder import Up
from models.factory import construct
from tests.support.catseg_layouts import load_fixture, released_file, seeded_image, seeded_state
from tests.support.cli import run_cli

CLASSES = ["ship", "harbor", "storage tank"]


def reference_inputs(fixture: dict) -> tuple[torch.Tensor, list[str]]:
    rec = fixture["record"]
    images = [torch.from_numpy(seeded_image(384, s)).float() / 255 for s in rec["image_seeds"]]
    return torch.stack(images), rec["class_names"]


def assert_equals_reference(model: torch.nn.Module, fixture: dict) -> None:
    """``model(x)`` = the reference head's logits resized to 384 as CAT-Seg's sliding window resizes each window's
    (bilinear, align_corners=False), to 1e-3; ``predict_proba`` = ``CATSeg.forward``'s probabilities (sigmoid at
    96 x 96, then resized) for the first image, to 1e-5 (the two orders differ by more than that here)."""
    x, names = reference_inputs(fixture)
    with torch.no_grad():
        logits = model(x, names)
        probs = model.predict_proba(x[:1], names)  # the first image (a second forward, so only one)
    want = F.interpolate(torch.from_numpy(fixture["logits"]), size=(384, 384), mode="bilinear", align_corners=False)
    assert logits.shape == want.shape == (len(x), len(names), 384, 384)
    assert float((logits - want).abs().max()) < 1e-3
    want_probs = torch.from_numpy(fixture["probs"][:1])
    assert float((probs[:, :, 3::8, 3::8] - want_probs).abs().max()) < 1e-5
    assert float((torch.sigmoid(logits[:1])[:, :, 3::8, 3::8] - want_probs).abs().max()) > 1e-5


@pytest.fixture(scope="module")
def empty_cache(tmp_path_factory: pytest.TempPathFactory):
    """No official weights in the cache: conversions are self-contained."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AEROSEG_HOME", str(tmp_path_factory.mktemp("empty-home")))
        yield


@pytest.fixture(scope="module")
def catseg_b(tmp_path_factory: pytest.TempPathFactory, empty_cache) -> dict:
    """The random full-size model_base.pth, converted once (self-contained): fixture, paths and report."""
    fixture = load_fixture("catseg_vitb16.npz")
    tmp = tmp_path_factory.mktemp("catseg-b")
    src = released_file(fixture, tmp / "model_base.pth")
    report = CONVERTERS["catseg"](src, tmp / "catseg-vitb16.pt")
    return {"fixture": fixture, "src": src, "out": tmp / "catseg-vitb16.pt", "report": report, "tmp": tmp}


def test_catseg_vitb16_equals_catseg_inference(catseg_b: dict) -> None:
    """Fixture ``catseg_vitb16.npz``: CAT-Seg ViT-B/16 (see the module docstring), two images in one batch."""
    model, ckpt = models.load_checkpoint(catseg_b["out"])
    assert model.cfg.to_dict() == models.preset_config("catseg-vitb16").to_dict()
    assert ckpt["vocabulary"].open and ckpt["class_names"] == []
    assert "COCO-Stuff" in ckpt["meta"]["trained_on"]
    assert_equals_reference(model, catseg_b["fixture"])


def test_report_accounts_for_every_tensor(catseg_b: dict) -> None:
    report = catseg_b["report"]
    layout = catseg_b["fixture"]["record"]["layout"]
    assert report["variant"] == "catseg-vitb16" and report["tensors"] == len(layout) == 484
    assert report["tensors_used"] + len(report["tensors_ignored"]) == report["tensors"]
    assert sorted(report["tensors_ignored"]) == [
        f"sem_seg_head.predictor.transformer.layers.{i}.swin_block.block_2.attn_mask" for i in (0, 1)
    ]
    assert all("(the same values)" in why for why in report["tensors_ignored"].values())
    assert set(report["top_level_ignored"]) == {"trainer", "iteration"}  # what detectron2's trainer writes
    assert report["self_contained"] and "clip-vit-b-16" in report["self_contained_because"]
    assert report["source_sha256"] == hub.sha256_file(catseg_b["src"])


def test_lean_conversion_and_the_cli(catseg_b: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With the official CLIP file in the cache (a stand-in: CAT-Seg's CLIP with other q/v weights, as the real
    OpenAI file differs from CAT-Seg's), ``aeroseg weights convert`` writes a lean checkpoint of the same model."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    official = map_state(read_source(catseg_b["src"])[0]).clip  # open_clip names, the 14 x 14 position grid
    for key, value in official.items():
        if key.endswith("attn.in_proj_weight"):
            d = value.shape[1]
            value[:d].mul_(0.5)  # the q rows (and below the v rows) are the ones CAT-Seg fine-tuned
            value[2 * d :].mul_(0.5)
    spec = hub.REGISTRY["clip-vit-b-16"]
    path = hub.cached_path(spec)
    path.parent.mkdir(parents=True)
    torch.save(official, path)
    monkeypatch.setitem(hub.REGISTRY, spec.name, hub.WeightSpec(**{**spec.__dict__, "sha256": hub.sha256_file(path)}))
    out = tmp_path / "lean.pt"
    r = run_cli("weights", "convert", "catseg", catseg_b["src"], "-o", out, "--json")
    assert r.code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["self_contained"] is False and report["tensors_used"] == 482
    assert "lean (references the official CLIP file)" in _convert_summary(report)
    assert out.stat().st_size < 0.2 * catseg_b["out"].stat().st_size
    _, ckpt = models.load_checkpoint(out)  # rebuilt from the stand-in and checked against its full digest
    assert [ref["name"] for ref in ckpt["references"]] == ["clip-vit-b-16"]
    assert ckpt["full_digest"] == read_checkpoint(catseg_b["out"])["full_digest"]  # the same weights
    r = run_cli("weights", "convert", "catseg", catseg_b["src"], "-o", out)
    assert r.code == 2 and "exists (use --overwrite" in r.stderr


def _partial(layout: dict, keys: list[str], path: Path, **extra) -> Path:
    """A small file holding only ``keys`` of ``layout`` (enough for the converter's checks that come first)."""
    state = seeded_state({k: layout[k] for k in keys}, 0)
    torch.save({"model": {**state, **extra}}, path)
    return path


def test_other_layouts_are_refused_in_one_line(tmp_path: Path) -> None:
    layout = load_fixture("ovrs_vitb16.npz")["record"]["layout"]
    clip = "sem_seg_head.predictor.clip_model.visual."
    agg = "sem_seg_head.predictor.transformer."
    detect_keys = [clip + "conv1.weight", clip + "positional_embedding"]
    detect_keys += [k for k in layout if k.startswith(agg) and "layers" not in k] + [
        "upsample1.weight",
        "upsample2.weight",
    ]
    cases = {
        "is an OVRS checkpoint (4 rotations and attention-aware fusion)": _partial(layout, detect_keys, tmp_path / "o"),
        "no sem_seg_head.predictor.clip_model.visual.conv1.weight": _partial(layout, detect_keys[1:], tmp_path / "n"),
        "is already an AerOSeg checkpoint": tmp_path / "a.pt",
        "holds no detectron2 'model' state dict": tmp_path / "list.pth",
        "cannot read": tmp_path / "text.pth",
    }
    models.save_checkpoint(tmp_path / "a.pt", models.build("tiny"), CLASSES, self_contained=True)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    for expected, path in cases.items():
        r = run_cli("weights", "convert", "catseg", path, "-o", tmp_path / "out.pt")
        assert r.code == 1 and expected in r.stderr and r.stderr.count("\n") == 1, (expected, r.stderr)
        assert not (tmp_path / "out.pt").exists() and not list(tmp_path.glob(".out.pt.*"))
    extra = {"sem_seg_head.predictor.clip_model.visual.transformer.prompt_tokens": torch.zeros(1, 4, 768)}
    keys = [k for k in detect_keys if "cconv" not in k and "sconv" not in k and "conv1" not in k.removeprefix(clip)]
    path = _partial(layout, [*keys, clip + "conv1.weight"], tmp_path / "vpt", **extra)
    state, _ = read_source(path)
    state[agg + "conv1.weight"] = torch.zeros(128, 1, 7, 7)
    torch.save({"model": state}, path)
    r = run_cli("weights", "convert", "catseg", path, "-o", tmp_path / "out.pt")
    assert r.code == 1 and "fit no part of CAT-Seg's network (first: " in r.stderr and "prompt_tokens" in r.stderr
    r = run_cli("weights", "convert", "nope", path, "-o", tmp_path / "out.pt")
    assert r.code == 2 and "choose one of: catseg, ovrs" in r.stderr


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    fixture = load_fixture("catseg_vitb16.npz")
    rec = fixture["record"]
    state = seeded_state(rec["layout"], 0)
    del state["sem_seg_head.predictor.transformer.layers.1.attention.norm2.bias"]
    missing = r"lacks 1 tensor\(s\) of the network \(first: AerOSeg's class_blocks.1.norm2.bias"
    with pytest.raises(models.WeightsError, match=missing):
        build_model(state, "catseg", tmp_path / "x.pth")


@pytest.mark.slow  # a full-size random OVRS file: 96 s here (2 loaded cores), 3 GB
def test_ovrs_vitb16_equals_ovrs_inference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture ``ovrs_vitb16.npz``: OVRS (rotations + attention-aware decoder), see the module docstring."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    fixture = load_fixture("ovrs_vitb16.npz")
    src = released_file(fixture, tmp_path / "ovrs.pth")
    with pytest.raises(models.WeightsError, match="convert it with `aeroseg weights convert ovrs`"):
        CONVERTERS["catseg"](src, tmp_path / "x.pt")
    report = CONVERTERS["ovrs"](src, tmp_path / "ovrs.pt")
    assert report["variant"] == "ovrs-vitb16" and report["tensors_used"] == report["tensors"] - 2
    model, _ = models.load_checkpoint(tmp_path / "ovrs.pt")
    assert model.cfg.rotations and model.cfg.decoder_fusion == "attention"
    assert_equals_reference(model, fixture)


@pytest.mark.slow  # a full-size random model_large.pth (1.7 GB): 145 s here, 6 GB
def test_catseg_vitl14_equals_catseg_inference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture ``catseg_vitl14.npz``: CAT-Seg ViT-L/14@336px; 384 x 384 input, which CAT-Seg resizes to 336."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    fixture = load_fixture("catseg_vitl14.npz")
    src = released_file(fixture, tmp_path / "model_large.pth")
    report = CONVERTERS["catseg"](src, tmp_path / "catseg-vitl14.pt")
    src.unlink()
    assert report["variant"] == "catseg-vitl14" and report["tensors_used"] == report["tensors"] - 2
    assert "clip-vit-l-14-336" in report["self_contained_because"]
    model, _ = models.load_checkpoint(tmp_path / "catseg-vitl14.pt")
    assert model.cfg.to_dict() == models.preset_config("catseg-vitl14").to_dict()
    assert model.clip.guidance_taps == (8, 16)  # CAT-Seg's hooks on resblocks 7 and 15
    assert_equals_reference(model, fixture)


@pytest.mark.slow  # the paper preset at full size (random SAM ViT-L): 36 s here, 4.5 GB
def test_train_init_of_the_paper_preset_takes_catseg_s_shared_parts(catseg_b: dict) -> None:
    """``train --init`` from the converted CAT-Seg model: the paper preset takes CLIP (with CAT-Seg's q/v), the
    refinement blocks, the text guidance and the decoder's convolutions; SAM and what depends on it start fresh."""
    from aeroseg_cli.training.init import init_from, module_of

    cfg = models.preset_config("aeroseg-vitb16-samvitl", clip_weights=None, sam_weights=None, backproj_classes=9)
    target = construct(cfg)
    report = init_from(target, catseg_b["out"])
    taken, fresh = ({module_of(k) for k in keys} for keys in (report.taken, report.fresh))
    assert all(k in report.taken for k in target.state_dict() if k.startswith("clip.model."))
    assert {
        "text_guidance.0",
        "spatial_blocks.1",
        "class_blocks.1",
        "decoder.up1",
        "decoder.up2",
        "decoder.head",
    } <= taken
    assert {"sam.encoder.blocks", "correlation.conv", "spatial_guidance.0", "decoder_guidance1.0"} <= fresh
    assert {"backproj.mlp"} <= fresh and not any(".fusion." in k for k in report.taken)
    assert {module_of(k) for k in report.unused} == {
        "correlation.conv",
        "spatial_guidance.0",
        "decoder_guidance1.0",
        "decoder_guidance2.0",
        "guidance_upsample.up1",
        "guidance_upsample.up2",
    }


# -- the decoder fusion --------------------------------------------------------------------------------------------
def test_plain_concatenation_is_the_attention_fusion_at_zero() -> None:
    """CAT-Seg's decoder = OVRS's attention-aware decoder with the fusion's 1x1 convolutions at zero, bit for bit."""
    torch.manual_seed(0)
    concat, attention = Up(32, 16, 8, "concat"), Up(32, 16, 8, "attention")
    assert not any("fusion" in k for k in concat.state_dict())
    attention.load_state_dict(concat.state_dict(), strict=False)
    x, g = torch.randn(6, 32, 12, 12), torch.randn(2, 8, 24, 24)  # B=2 images, K=3 classes
    with torch.no_grad():
        assert not torch.equal(attention(x, g), concat(x, g))  # random fusion weights: a different decoder
        for p in attention.fusion.parameters():
            p.zero_()
        assert torch.equal(attention(x, g), concat(x, g))
    base = dict(guidance="clip", rotations=False, clip_guidance="catseg")
    torch.manual_seed(1)
    a = models.build("tiny", decoder_fusion="concat", **base).eval()
    b = models.build("tiny", decoder_fusion="attention", **base).eval()
    missing = b.load_state_dict(a.state_dict(), strict=False).missing_keys
    assert missing and all(".fusion." in k for k in missing)
    with torch.no_grad():
        for k in missing:
            b.state_dict()[k].zero_()
        x = torch.rand(2, 3, 384, 384)
        assert torch.equal(a(x, CLASSES), b(x, CLASSES))


def test_clip_resolution_resizes_what_clip_sees() -> None:
    """``clip_resolution``: any input size is resized (bilinear) to the CLIP grid, the output keeps the input size."""
    torch.manual_seed(0)
    model = models.build("tiny", clip_resolution=256).eval()
    assert model.cfg.input_multiple == 1 and model.clip.model.visual.positional_embedding.shape[0] == 16 * 16 + 1
    seen = {}
    model.clip.model.visual.conv1.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    x = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        assert model(x, CLASSES).shape == (1, 3, 300, 300)
    assert seen["x"].shape[-2:] == (256, 256)
    with pytest.raises(ValueError, match="clip_resolution 250 must be 0 or a multiple"):
        models.preset_config("tiny", clip_resolution=250)
