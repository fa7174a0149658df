"""Fidelity to the reference code (CAT-Seg, OVRS): every switch of issue #14 at its reference default, and its v1 value
still reachable; the probe preset; fast imports."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

import models
from aeroseg_cli.training.augment import train_augment
from aeroseg_cli.training.coloraug import color_aug_ssd, hsv_to_rgb, rgb_to_hsv
from aeroseg_cli.training.config import TrainConfig
from aeroseg_cli.training.evaluation import eval_resize, sliding_window_probs
from aeroseg_cli.training.recipe import param_groups
from models.clip_backbone import build_open_clip
from models.config import LEGACY, CLIPConfig
from models.factory import load_clip_weights
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene

CLASSES = ["ship", "harbor", "water"]


def tiny(**overrides) -> models.AerOSeg:
    torch.manual_seed(0)
    return models.build("tiny", **overrides)


# -- 1. loss on 255 pixels -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["negative", "exclude"])
def test_255_pixels_get_gradient_as_negatives_by_default_and_none_with_exclude(mode: str) -> None:
    overrides = {} if mode == "negative" else {"ignore_pixels": "exclude"}
    model = tiny(backproj_classes=3, backproj=False, **overrides).train()
    assert model.cfg.ignore_pixels == mode
    out = model(torch.rand(1, 3, 384, 384), CLASSES)
    out.logits.retain_grad()
    target = torch.randint(0, 3, (1, 384, 384))
    target[:, :100] = 255  # unseen classes / ignore / crop padding
    models.total_loss(out, target)["loss"].backward()
    grad = out.logits.grad[:, :, :100]
    if mode == "negative":
        assert (grad > 0).all()  # every seen class pushed down on every 255 pixel
    else:
        assert (grad == 0).all()
    assert out.logits.grad[:, :, 100:].abs().sum() > 0


# -- 2. decoder guidance order ---------------------------------------------------------------------------------------
def _block_outputs(model: models.AerOSeg) -> dict[int, torch.Tensor]:
    """Output of SAM blocks (1-based) = the input of the next block's first LayerNorm, captured by forward hooks."""
    seen: dict[int, torch.Tensor] = {}
    for i, block in enumerate(model.sam.encoder.blocks[1:], start=1):
        block.norm1.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, a[0].permute(0, 3, 1, 2)))
    return seen


@pytest.mark.parametrize("order", ["early_coarse", "late_coarse"])
def test_first_decoder_stage_receives_the_early_sam_tap(order: str) -> None:
    """SAM block depth/3 (block 8 of ViT-L's 24) feeds the first, 2x decoder stage; block 2*depth/3 the second."""
    model = tiny(decoder_guidance_order=order).eval()
    early, late = model.sam.taps
    assert (early, late) == (1, 2)  # tiny: depth 3; the paper preset's (8, 16) is tested in test_models
    blocks = _block_outputs(model)
    fed = {}
    model.decoder_guidance1.register_forward_pre_hook(lambda m, a: fed.__setitem__(1, a[0]))
    model.decoder_guidance2.register_forward_pre_hook(lambda m, a: fed.__setitem__(2, a[0]))
    with torch.no_grad():
        model(torch.rand(1, 3, 384, 384), CLASSES)
    first, second = (early, late) if order == "early_coarse" else (late, early)
    assert torch.equal(fed[1], blocks[first]) and torch.equal(fed[2], blocks[second])
    assert not torch.equal(blocks[early], blocks[late])


def test_clip_guidance_baseline_uses_learned_transposed_convolutions() -> None:
    model = tiny(guidance="clip").eval()
    up = model.guidance_upsample
    assert (up.up1.kernel_size, up.up1.stride, up.up2.kernel_size, up.up2.stride) == ((2, 2), (2, 2), (4, 4), (4, 4))
    shapes = {}
    model.decoder_guidance1.register_forward_pre_hook(lambda m, a: shapes.__setitem__(1, a[0].shape))
    model.decoder_guidance2.register_forward_pre_hook(lambda m, a: shapes.__setitem__(2, a[0].shape))
    with torch.no_grad():
        model(torch.rand(1, 3, 384, 384), CLASSES)
    assert shapes == {1: (1, 32, 48, 48), 2: (1, 16, 96, 96)}  # ConvTranspose outputs: no resizing left to do
    assert not hasattr(tiny(guidance="clip", clip_guidance="v1"), "guidance_upsample")


def test_sam_maps_are_shrunk_with_antialiasing() -> None:
    model = tiny(sam_input_size=1024).eval()  # SAM grid 64 -> 24 (spatial) and 48 (first stage): shrinking
    got = {}
    model.spatial_guidance[0].register_forward_pre_hook(lambda m, a: got.__setitem__("in", a[0]))
    model.sam.register_forward_hook(lambda m, a, out: got.__setitem__("neck", out[0]))
    with torch.no_grad():
        model(torch.rand(1, 3, 384, 384), CLASSES)
    resize = {aa: F.interpolate(got["neck"], size=(24, 24), mode="bilinear", antialias=aa) for aa in (True, False)}
    torch.testing.assert_close(got["in"], resize[True])
    assert not torch.allclose(got["in"], resize[False])


@pytest.mark.parametrize("preset", ["aeroseg-vitb16-samvitl", "aeroseg-vitl14-samvitl", "aeroseg-vitb16-samvitb"])
def test_sam_sees_the_crop_so_that_its_maps_lie_on_clips_grid(preset: str) -> None:
    """The paper's Eq. 10 upsamples SAM's guidance x2 to the first decoder stage: SAM's maps on CLIP's 24 x 24
    grid, i.e. SAM fed 384 px (ViT-L/14 at 336 px has a 24 x 24 grid too)."""
    cfg = models.preset_config(preset)
    assert cfg.sam_input_size == 384
    assert cfg.sam_input_size // cfg.sam.patch_size == cfg.crop_size // cfg.clip.patch_size == 24


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_guidance_is_enlarged_to_the_decoder_stages_by_nearest_neighbour(mode: str) -> None:
    model = tiny(sam_input_size=384, guidance_upsample=mode).eval()  # SAM grid 24 = CLIP grid: x2 and x4 only
    got = {}
    model.decoder_guidance1[0].register_forward_pre_hook(lambda m, a: got.__setitem__("first", a[0]))
    model.decoder_guidance2[0].register_forward_pre_hook(lambda m, a: got.__setitem__("second", a[0]))
    model.sam.register_forward_hook(lambda m, a, out: got.__setitem__("taps", out[1:]))
    with torch.no_grad():
        model(torch.rand(1, 3, 384, 384), CLASSES)
    early, late = got["taps"]
    assert early.shape[-2:] == (24, 24)
    if mode == "nearest":
        assert torch.equal(got["first"], early.repeat_interleave(2, -1).repeat_interleave(2, -2))
        assert torch.equal(got["second"], late.repeat_interleave(4, -1).repeat_interleave(4, -2))
    else:
        torch.testing.assert_close(got["first"], F.interpolate(early, size=(48, 48), mode="bilinear"))
        assert not torch.equal(got["first"], early.repeat_interleave(2, -1).repeat_interleave(2, -2))


# -- 3. crop ---------------------------------------------------------------------------------------------------------
def test_crop_constraint_is_off_by_default_one_random_crop_as_detectron2() -> None:
    assert TrainConfig().max_category_area == 1.0
    h, w, crop = 128, 400, 128  # shortest edge = crop: no resizing, so mask positions are kept
    mask = (np.arange(h * w).reshape(h, w) % 251).astype(np.int64)  # position-coded, so the crop is identifiable
    image = np.zeros((h, w, 3), np.uint8)
    for seed in range(8):
        rng = np.random.default_rng(seed)
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        _, out = train_augment(image, mask, crop, np.random.default_rng(seed))
        window = mask[y : y + crop, x : x + crop]
        assert np.array_equal(out, window) or np.array_equal(out, window[:, ::-1])  # the first draw, maybe flipped


def test_crop_constraint_below_one_retries() -> None:
    mask = np.zeros((128, 384), np.int64)
    mask[:, 300:] = 1  # only crops reaching x >= 300 hold two classes
    image = np.zeros((128, 384, 3), np.uint8)
    hits = [
        len(np.unique(train_augment(image, mask, 128, np.random.default_rng(s), max_category_area=0.99)[1])) > 1
        for s in range(20)
    ]
    plain = [
        len(np.unique(train_augment(image, mask, 128, np.random.default_rng(s), max_category_area=1.0)[1])) > 1
        for s in range(20)
    ]
    assert sum(hits) > sum(plain)


# -- 4. precision ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fp32", [True, False])
def test_correlation_and_logits_are_fp32_under_bf16_autocast(fp32: bool) -> None:
    model = tiny(fp32_correlation=fp32).eval()
    dtypes = {}
    model.correlation.register_forward_hook(lambda m, a, out: dtypes.update(corr_in=a[0].dtype, corr_out=out.dtype))
    attn = model.spatial_blocks[0].blocks[0].attn
    attn.q.register_forward_hook(lambda m, a, out: dtypes.update(refine=out.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(1, 3, 256, 256), CLASSES)
    if fp32:
        assert dtypes["corr_in"] == dtypes["corr_out"] == logits.dtype == torch.float32
        assert dtypes["refine"] == torch.bfloat16  # the refinement's layers keep the autocast dtype
        assert model.clip.text_features(CLASSES).dtype == torch.float32
    else:
        assert dtypes["corr_in"] == torch.bfloat16  # the v1 behaviour the switch keeps


def test_losses_and_probabilities_are_fp32() -> None:
    logits = torch.randn(1, 2, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    target = torch.randint(0, 2, (1, 4, 4))
    assert models.bce_loss(logits, target).dtype == torch.float32
    assert models.AerOSeg.probabilities(logits).dtype == torch.float32


# -- latent bugs -----------------------------------------------------------------------------------------------------
def test_backprojection_without_class_count_raises_in_training() -> None:
    model = tiny().train()  # backproj=True (preset default) but no backproj_classes
    assert model.backproj is None
    with pytest.raises(ValueError, match="backproj_classes"):
        model(torch.rand(1, 3, 256, 256), CLASSES)
    tiny(backproj=False).train()(torch.rand(1, 3, 256, 256), CLASSES)  # explicitly off: fine
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 256, 256), CLASSES)  # inference never needs it


def test_text_cache_is_invalidated_by_loading_weights() -> None:
    a, b = tiny().eval(), models.build("tiny").eval()  # different random weights
    first = a.clip.text_features(CLASSES)
    assert a.clip.text_features(CLASSES) is first  # cached
    a.load_state_dict(b.state_dict())
    after = a.clip.text_features(CLASSES)
    assert after is not first and torch.equal(after, b.clip.text_features(CLASSES))
    with torch.no_grad():  # any in-place change of a weight also invalidates it
        a.clip.model.token_embedding.weight.mul_(2)
    assert not torch.equal(a.clip.text_features(CLASSES), after)


# -- issue 21: CLIP position embedding and prompts ---------------------------------------------------------------
POS_FIXTURE = ROOT / "tests" / "fixtures" / "catseg_pos_embed.npz"
POS_CLIP = CLIPConfig("custom", 8, 8, 1, 2, 16, 8, 1, 2)  # width 8, as the fixture


def _clip_224_state(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A 224-px CLIP file's tensors (14 x 14 grid) whose position embedding is the fixture's."""
    torch.manual_seed(4)
    state = build_open_clip(POS_CLIP, 224).state_dict()
    state["visual.positional_embedding"] = torch.from_numpy(np.load(POS_FIXTURE)["pos_224"])
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


@pytest.mark.parametrize(("crop", "key"), [(384, "resized_24"), (256, "resized_16")])
def test_clip_position_embedding_is_resized_as_catseg(crop: int, key: str) -> None:
    """CAT-Seg resizes the 14 x 14 embedding bicubically without antialiasing. The fixture holds the output of
    ``VisualTransformer.resized_pos_embed`` of cvlab-kaist/CAT-Seg 6d3a188a (``cat_seg/third_party/model.py``) on a
    seeded random embedding (width 8, torch seed 21), made by /work/scratch/h21-network/gen_pos_embed_fixture.py."""
    expected = torch.from_numpy(np.load(POS_FIXTURE)[key])
    model = build_open_clip(POS_CLIP, crop)
    load_clip_weights(model, _clip_224_state(), "bicubic")
    torch.testing.assert_close(model.visual.positional_embedding.detach(), expected, rtol=0, atol=1e-7)
    old = build_open_clip(POS_CLIP, crop)
    load_clip_weights(old, _clip_224_state(), "antialias")  # format-2 checkpoints: open_clip's antialiased resize
    reference_aa = _clip_224_state()
    open_clip.model.resize_pos_embed(reference_aa, old)
    assert torch.equal(old.visual.positional_embedding.detach(), reference_aa["visual.positional_embedding"])
    assert (old.visual.positional_embedding.detach() - expected).abs().max() > 1e-4


@pytest.mark.parametrize("interp", ["bicubic", "antialias"])
def test_fp16_clip_position_embedding_loads(interp: str) -> None:
    """OpenAI's files hold fp16 tensors; CPUs have no fp16 antialiased resize. Resized in fp32, as CAT-Seg after
    ``.float()``: the result equals the resize of the fp16 values taken as fp32."""
    model, expected = build_open_clip(POS_CLIP, 384), build_open_clip(POS_CLIP, 384)
    load_clip_weights(model, _clip_224_state(torch.float16), interp)
    load_clip_weights(expected, {k: v.float() for k, v in _clip_224_state(torch.float16).items()}, interp)
    assert model.visual.positional_embedding.dtype == torch.float32
    assert torch.equal(model.visual.positional_embedding, expected.visual.positional_embedding)


def test_prompts_are_the_papers_without_a_period_and_the_old_ones_one_field_away() -> None:
    assert models.preset_config("aeroseg-vitb16-samvitl").templates == (
        "A satellite image of a {}",
        "A land use image of a {}",
        "A remote sensing image of a {}",
        "An aerial image of a {}",
    )
    assert models.preset_config("baseline-vitb16").templates == ("A photo of a {} in the scene",)  # CAT-Seg 'single'
    old = models.preset_config("aeroseg-vitb16-samvitl", template_period=True).templates
    assert old[0] == "A satellite image of a {}." and all(t.endswith(".") for t in old)
    new, dotted = tiny().eval(), tiny(template_period=True).eval()  # same seed: the same weights
    assert new.clip.templates[0] == "A satellite image of a {}"
    assert not torch.allclose(new.clip.text_features(CLASSES), dotted.clip.text_features(CLASSES))


# -- issue 21: evaluation resize -----------------------------------------------------------------------------------
def _box_smoothed(h: int, w: int, seed: int) -> np.ndarray:
    """The fixture's image recipe: seeded uint8 noise, 4 x 4 box mean (image-like content)."""
    raw = np.random.default_rng(seed).integers(0, 256, (h + 3, w + 3, 3)).astype(np.float64)
    c = np.pad(raw.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    return np.round(((c[4:, 4:] - c[:-4, 4:] - c[4:, :-4] + c[:-4, :-4]) / 16)[:h, :w]).astype(np.uint8)


def test_eval_resize_equals_detectron2s_test_transform() -> None:
    """``tests/fixtures/detectron2_test_resize.json``: facebookresearch/detectron2 02b5c4e2
    ``ResizeShortestEdge(S, M, "choice").get_transform(img).apply_image(img)`` (CAT-Seg's test mapper: 640, 2560) on
    the images of ``_box_smoothed``, run from the fetched code by /work/scratch/h21-network/gen_test_resize_fixture.py;
    output shapes, SHA-256 of the bytes and each output's top-left 8 x 8 block."""
    cases = json.loads((ROOT / "tests" / "fixtures" / "detectron2_test_resize.json").read_text())["cases"]
    for case in cases:
        out = eval_resize(_box_smoothed(case["h"], case["w"], case["seed"]), case["short"], case["max_size"])
        assert list(out.shape) == case["shape"], case
        assert np.array_equal(out[:8, :8], np.array(case["corner"], np.uint8)), case
        assert hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest() == case["sha256"], case


def test_evaluation_windows_are_cut_from_the_detectron2_resized_image() -> None:
    model = models.build("probe").eval()  # crop 384: 640 px, windows at 0 and 256, plus the global view
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    image = _box_smoothed(797, 644, 4)
    sliding_window_probs(model, image, CLASSES, torch.device("cpu"))
    resized = torch.from_numpy(eval_resize(image, 640, 2560)).permute(2, 0, 1)[None].float() / 255  # 792 x 640
    square = F.interpolate(resized, size=(640, 640), mode="bilinear", align_corners=False)
    batch = seen[0]
    assert batch.shape == (5, 3, 384, 384)
    torch.testing.assert_close(batch[0], square[0, :, :384, :384], rtol=0, atol=0)
    torch.testing.assert_close(batch[3], square[0, :, 256:, 256:], rtol=0, atol=0)
    torch.testing.assert_close(batch[4], F.interpolate(resized, size=(384, 384), mode="bilinear")[0], rtol=0, atol=0)
    direct = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, size=(640, 640))
    assert (batch[0] - direct[0, :, :384, :384]).abs().max() > 0.01  # the old single torch resize: can fail


# -- smaller departures ----------------------------------------------------------------------------------------------
def test_refinement_matches_catseg_layout_and_v1_keeps_its_own() -> None:
    cat, v1 = tiny(), tiny(refinement="v1")
    cat_keys, v1_keys = set(cat.state_dict()), set(v1.state_dict())
    assert "class_blocks.0.attn.proj.weight" in v1_keys - cat_keys  # CAT-Seg: no output projection
    assert "class_blocks.0.norm_g.weight" in v1_keys - cat_keys  # CAT-Seg: no LayerNorm on the text guidance
    assert "spatial_blocks.0.blocks.1.norm_g.weight" in v1_keys - cat_keys
    assert "spatial_blocks.0.norm_g.weight" in cat_keys - v1_keys  # one guidance norm shared by both Swin blocks
    assert torch.count_nonzero(cat.class_blocks[0].pad_token) == 0  # zero-initialised, as CAT-Seg
    assert cat.class_blocks[0].align_corners and not v1.class_blocks[0].align_corners
    text = cat.clip.text_features(CLASSES)
    got = {}
    cat.text_guidance.register_forward_pre_hook(lambda m, a: got.__setitem__("in", a[0]))
    cat._text_guidance(text, torch.float32)
    torch.testing.assert_close(got["in"].norm(dim=-1), torch.ones(len(CLASSES)))  # prompt mean re-normalised


def test_weight_decay_exemptions_are_catseg_s() -> None:
    model = tiny(backproj_classes=3)
    groups = {g["name"]: g for g in param_groups(model, TrainConfig())}
    named = {id(p): n for n, p in model.named_parameters()}
    no_decay = {named[id(p)] for p in groups["no_decay"]["params"]}
    decay = {named[id(p)] for p in groups["decay"]["params"]}
    assert all(".norm" in n or "decoder.up" in n for n in no_decay), no_decay  # LayerNorms and GroupNorms only
    assert "class_blocks.0.norm1.weight" in no_decay and "decoder.up1.conv.1.weight" in no_decay  # GroupNorm
    for name in ("decoder.head.weight", "decoder.head.bias", "class_blocks.0.pad_token", "correlation.conv.bias"):
        assert name in decay, name  # biases, padding tokens and first-dim-1 tensors decay, as in CAT-Seg
    assert groups["decay"]["weight_decay"] == 1e-4 and groups["no_decay"]["weight_decay"] == 0.0
    assert groups["clip_qv"]["weight_decay"] == 0.0  # packed q/k/v: decay would move the frozen k rows


def test_color_aug_ssd_semantics() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    back = hsv_to_rgb(rgb_to_hsv(img)).astype(int)
    assert np.abs(back - img).max() <= 5  # 8-bit HSV (H in 2-degree steps) loses this much, in OpenCV too
    red = np.array([[[255, 0, 0]]], np.uint8)
    hsv = rgb_to_hsv(red)
    assert tuple(hsv[0, 0]) == (0, 255, 255)
    hsv[..., 0] = 30  # +60 degrees: yellow
    assert tuple(hsv_to_rgb(hsv)[0, 0]) == (255, 255, 0)
    grey = np.full((8, 8, 3), 100, np.uint8)
    outs = [color_aug_ssd(grey, np.random.default_rng(s)) for s in range(40)]
    assert all(o.dtype == np.uint8 and (o == o[..., :1]).all() for o in outs)  # saturation/hue keep grey grey
    values = {int(o[0, 0, 0]) for o in outs}
    assert max(values) > 140 or min(values) < 60  # brightness / contrast (a plain multiplication) do act
    assert np.array_equal(color_aug_ssd(img, np.random.default_rng(7)), color_aug_ssd(img, np.random.default_rng(7)))


# -- legacy config values -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", sorted(LEGACY))
def test_new_fields_default_to_the_reference_and_old_configs_read_legacy_values(version: int) -> None:
    """A config of format ``version`` lacks every field added after it and reads each with its old value."""
    later = {k: v for fmt, table in LEGACY.items() if fmt >= version for k, v in table.items()}
    for preset in models.PRESETS:
        cfg = models.preset_config(preset)
        for key, legacy in later.items():
            assert getattr(cfg, key) != legacy, (preset, key)
    cfg = models.preset_config("aeroseg-vitb16-samvitl")
    old = {k: v for k, v in cfg.to_dict().items() if k not in later}
    read = models.AerOSegConfig.from_dict(old, format_version=version)
    assert all(getattr(read, k) == v for k, v in later.items())
    newer = {k: v for fmt, table in LEGACY.items() if fmt < version for k, v in table.items()}
    assert all(getattr(read, k) == getattr(cfg, k) for k in newer)  # fields the file has keep their stored values
    assert dataclasses.asdict(models.AerOSegConfig.from_dict(cfg.to_dict())) == cfg.to_dict()


# -- probe (issue #13 item 4) ----------------------------------------------------------------------------------------
def _scene_windows() -> torch.Tensor:
    img = torch.from_numpy(smooth_scene(768, 768)).float() / 255
    return torch.stack([img[:, :384, :384], img[:, 384:, 384:]])


def test_probe_has_the_model_interface_and_is_class_order_equivariant() -> None:
    model = models.build("probe").eval()
    assert model.cfg.crop_size == 384 and model.cfg.clip.patch_size == 16
    assert models.preset_status("probe") == "test"
    x = _scene_windows()
    names = ["water", "land", "road", "building", "tree"]
    with torch.no_grad():
        logits = model(x, names)
        permuted = model(x, [names[i] for i in (3, 0, 4, 2, 1)])
    assert logits.shape == (2, 5, 384, 384) and logits.dtype == torch.float32
    assert torch.equal(permuted, logits[:, [3, 0, 4, 2, 1]])
    assert logits.argmax(1).unique().numel() >= 3  # spatially varying label maps
    probs = model.probabilities(logits)
    assert ((probs > 0) & (probs < 1)).all()
    assert model(x[:, :, :320, :320], names).shape == (2, 5, 320, 320)


def test_probe_is_identical_in_another_process() -> None:
    code = (
        "import hashlib, torch, models; from tests.support.scenes import smooth_scene;"
        "x = torch.from_numpy(smooth_scene(384, 384)).float()[None] / 255;"
        "print(hashlib.sha256(models.build('probe')(x, ['water', 'road']).numpy().tobytes()).hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    x = torch.from_numpy(smooth_scene(384, 384)).float()[None] / 255
    here = hashlib.sha256(models.build("probe")(x, ["water", "road"]).numpy().tobytes()).hexdigest()
    assert out.stdout.strip() == here


def test_preset_status_for_every_preset() -> None:
    assert {p: models.preset_status(p) for p in models.PRESETS} == {
        "aeroseg-vitb16-samvitl": "untrained",
        "aeroseg-vitl14-samvitl": "untrained",
        "aeroseg-vitb16-samvitb": "untrained",
        "baseline-vitb16": "untrained",
        "zeroshot-vitb16": "training-free",
        "catseg-vitb16": "untrained",
        "catseg-vitl14": "untrained",
        "segearth-ov-vitb16": "training-free",
        "tiny": "test",
        "demo": "untrained",
        "probe": "test",
    }
    with pytest.raises(ValueError, match="unknown preset"):
        models.preset_status("nope")


# -- fast import (issue #15) -----------------------------------------------------------------------------------------
def test_hub_and_config_import_without_torch() -> None:
    code = (
        "import sys; from models import hub, config; import models;"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'open_clip'));"
        "print(heavy[:3])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
