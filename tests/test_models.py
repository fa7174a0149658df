"""The network: shapes, rotations, equivariance, trainable parameters, class counts, presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import models
from models.aeroseg import AerOSegOutput
from models.backprojection import SemanticBackProjection
from models.class_refinement import ClassRefinement, LinearAttention
from models.clip_backbone import rotate_back, rotate_batch, split_class_name
from models.correlation import CorrelationEmbedding, cost_volume
from models.decoder import AttentionAwareFusion, Decoder
from models.sam_guidance import SAMGuidance, block_forward, reference_attention, sdpa_attention
from models.spatial_refinement import SpatialRefinement, window_mask

CLASSES = ["ship", "harbor", "water|lake|river"]


def tiny(**overrides) -> models.AerOSeg:
    torch.manual_seed(0)
    return models.build("tiny", **overrides)


# -- module shapes -------------------------------------------------------------------------------------------------
def test_module_shapes() -> None:
    torch.manual_seed(0)
    b, r, p, k, d, h = 2, 4, 4, 3, 32, 24
    img = F.normalize(torch.randn(b, r, d, h, h), dim=2)
    txt = F.normalize(torch.randn(k, p, d), dim=-1)
    corr = cost_volume(img, txt)
    assert corr.shape == (b, r * p, k, h, h)
    assert corr.abs().max() <= 1 + 1e-5  # raw cosine
    x = CorrelationEmbedding(r * p, 32)(corr)
    assert x.shape == (b, k, 32, h, h)
    assert SpatialRefinement(32, 16, 2, 12)(x, torch.randn(b, 16, h, h)).shape == x.shape
    assert ClassRefinement(32, 16, 2, 256, 2).train()(x, torch.randn(1, k, 16)).shape == x.shape
    assert SemanticBackProjection(k, 32, 64, 256)(x).shape == (b, 256, h, h)
    dec = Decoder(32, (16, 8), (8, 4))
    assert dec(x, torch.randn(b, 8, 2 * h, 2 * h), torch.randn(b, 4, 4 * h, 4 * h)).shape == (b, k, 4 * h, 4 * h)
    fusion = AttentionAwareFusion(24, 8)
    assert fusion(torch.randn(b * k, 24, 48, 48), torch.randn(b, 8, 48, 48)).shape == (b * k, 8, 48, 48)


def test_sam_guidance_taps_and_shapes() -> None:
    cfg = models.preset_config("tiny")
    sam = SAMGuidance(cfg.sam)
    neck, early, late = sam(torch.randn(1, 3, 256, 256))
    assert neck.shape == (1, 32, 16, 16)
    assert early.shape == late.shape == (1, 48, 16, 16)
    assert sam.taps == (1, 2)
    with torch.device("meta"):  # the paper's SAM ViT-L, built without allocating its 308 M weights
        assert SAMGuidance(models.preset_config("aeroseg-vitb16-samvitl").sam).taps == (8, 16)  # blocks 8, 16 (1-based)


def test_model_output_shapes_eval_and_train() -> None:
    model = tiny(backproj_classes=3).eval()
    x = torch.rand(2, 3, 384, 384)
    with torch.no_grad():
        logits = model(x, CLASSES)
    assert logits.shape == (2, 3, 384, 384)
    model.train()
    out = model(x, CLASSES)
    assert isinstance(out, AerOSegOutput)
    assert out.logits.shape == (2, 3, 384, 384)
    assert out.backproj.shape == (2, 32, 24, 24)  # SAM neck width of the tiny preset
    assert out.backproj_target.shape == (2, 32, 24, 24)  # the SAM neck (16x16 at SAM input 256) on the same grid


def test_non_square_grid_sizes_work() -> None:
    """A tile that is not 384 (grid 20x20, not a multiple of the Swin window) still works, output at input size."""
    model = tiny().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 320, 320), CLASSES).shape == (1, 3, 320, 320)


def test_window_mask_blocks_padding_and_foreign_regions() -> None:
    m = window_mask(20, 20, 12, 6, torch.device("cpu"))
    assert m.shape == (4, 144, 144)
    assert (m == 0).any() and (m < 0).any()
    assert window_mask(24, 24, 12, 0, torch.device("cpu")) is None


# -- rotations -----------------------------------------------------------------------------------------------------
def test_rotate_back_is_exact_inverse() -> None:
    x = torch.randn(3, 5, 24, 24)
    maps = rotate_batch(x)
    assert torch.equal(rotate_back(maps, 3), x.unsqueeze(1).expand(3, 4, 5, 24, 24))


def test_rotated_features_are_one_batched_forward_equal_to_separate_passes() -> None:
    backbone = tiny().clip.eval()
    x = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        batched, _ = backbone.image_features(x)
        for k in range(4):
            dense, _ = backbone._encode_dense(torch.rot90(x, k, dims=(-2, -1)), ())
            single = torch.rot90(F.normalize(dense, dim=1), -k, dims=(-2, -1))
            torch.testing.assert_close(batched[:, k], single, rtol=1e-4, atol=1e-5)


def test_rotating_the_input_cycles_the_rotation_channels() -> None:
    """F(rot x)_k = rot(F(x)_{k+1}): the rotated copies are the same set, so rotating the input permutes them."""
    backbone = tiny().clip.eval()
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        f, _ = backbone.image_features(x)
        f_rot, _ = backbone.image_features(torch.rot90(x, 1, dims=(-2, -1)))
    for k in range(4):
        expected = torch.rot90(f[:, (k + 1) % 4], 1, dims=(-2, -1))
        torch.testing.assert_close(f_rot[:, k], expected, rtol=1e-4, atol=1e-4)


# -- class handling ------------------------------------------------------------------------------------------------
def test_whole_model_is_equivariant_to_class_order() -> None:
    model = tiny().eval()
    x = torch.rand(1, 3, 384, 384)
    names = ["ship", "harbor", "water", "road", "tree"]
    perm = [3, 0, 4, 2, 1]
    with torch.no_grad():
        a = model(x, names)
        b = model(x, [names[i] for i in perm])
    torch.testing.assert_close(b, a[:, perm], rtol=1e-4, atol=1e-4)


def test_class_refinement_alone_is_equivariant() -> None:
    torch.manual_seed(0)
    block = ClassRefinement(32, 16, 2, 256, 2)
    x, g = torch.randn(2, 6, 32, 8, 8), torch.randn(1, 6, 16)
    perm = torch.tensor([5, 2, 0, 1, 4, 3])
    for mode in (True, False):
        block.train(mode)
        torch.testing.assert_close(block(x[:, perm], g[:, perm]), block(x, g)[:, perm], rtol=1e-5, atol=1e-5)


def test_linear_attention_padding_shortcut_equals_explicit_padding() -> None:
    torch.manual_seed(0)
    attn = LinearAttention(32, 16, 4)
    x, g = torch.randn(5, 7, 32), torch.randn(5, 7, 16)
    px, pg = torch.randn(1, 1, 32), torch.randn(1, 1, 16)
    pad = 249
    explicit = attn(torch.cat([x, px.expand(5, pad, 32)], 1), torch.cat([g, pg.expand(5, pad, 16)], 1))[:, :7]
    torch.testing.assert_close(attn(x, g, px, pg, pad), explicit, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 15, 300])
def test_any_number_of_classes(k: int) -> None:
    model = tiny().eval()
    names = [f"class {i}" for i in range(k)]
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 256, 256), names)
    assert logits.shape == (1, k, 256, 256)
    assert torch.isfinite(logits).all()
    if k > 256:  # CAT-Seg rule: 256 refined, the rest pinned to -100
        pinned = (logits == -100).flatten(2).all(-1)[0]
        assert int(pinned.sum()) == k - 256


def test_synonyms_average_embeddings() -> None:
    backbone = tiny().clip.eval()
    assert split_class_name(" water | lake ") == ["water", "lake"]
    with pytest.raises(ValueError):
        split_class_name("water||lake")
    with torch.no_grad():
        both = backbone.text_features(["water|lake"])
        parts = backbone.text_features(["water", "lake"])
    torch.testing.assert_close(both[0], F.normalize(parts.mean(0), dim=-1), rtol=1e-5, atol=1e-6)
    assert both.shape == (1, 4, 32)  # 4 remote-sensing prompts


def test_text_embeddings_are_cached_at_inference_only() -> None:
    backbone = tiny().clip
    backbone.eval()
    first = backbone.text_features(CLASSES)
    assert backbone.text_features(CLASSES) is first
    backbone.train()
    assert backbone.text_features(CLASSES) is not backbone.text_features(CLASSES)
    assert backbone.text_features(CLASSES).requires_grad


def test_generic_prompt_option() -> None:
    model = tiny(prompts="generic")
    assert model.clip.text_features(["ship"]).shape[1] == 1
    assert model.correlation.conv.in_channels == 4  # 4 rotations x 1 prompt


# -- gradients -----------------------------------------------------------------------------------------------------
def test_only_clip_q_and_v_rows_learn_sam_frozen_and_backproj_target_detached() -> None:
    model = tiny(backproj_classes=3).train()
    out = model(torch.rand(1, 3, 384, 384), CLASSES)
    assert not out.backproj_target.requires_grad
    loss = models.total_loss(out, torch.randint(0, 3, (1, 384, 384)))["loss"]
    loss.backward()
    qv = 0
    for name, p in model.clip.model.named_parameters():
        if name.endswith("attn.in_proj_weight"):
            d = p.shape[1]
            assert p.grad is not None, name
            assert p.grad[d : 2 * d].abs().sum() == 0, f"key rows of {name} got gradient"
            assert p.grad[2 * d :].abs().sum() > 0, name
            last_visual = name.startswith(
                f"visual.transformer.resblocks.{len(model.clip.model.visual.transformer.resblocks) - 1}."
            )
            # the last visual block runs the dense value-only path: its q is unused, so only there q gets none
            assert (p.grad[:d].abs().sum() > 0) != last_visual, name
            qv += 1
        else:
            assert not p.requires_grad and p.grad is None, name
    assert qv == 2 + 1  # every attention block of the vision (2) and text (1) towers
    assert all(p.grad is None and not p.requires_grad for p in model.sam.parameters())
    assert model.correlation.conv.weight.grad is not None and model.backproj.mlp[0].weight.grad is not None


def test_backprojection_target_is_detached_even_when_sam_is_finetuned() -> None:
    model = tiny(backproj_classes=3, finetune_guidance=True).train()
    x = torch.rand(1, 3, 384, 384)
    out = model(x, CLASSES)
    neck, _, _ = model.sam(torch.rand(1, 3, 256, 256))
    assert neck.requires_grad  # SAM really is trainable here...
    assert not out.backproj_target.requires_grad and out.backproj_target.grad_fn is None  # ...the target is not
    models.backprojection_loss(out.backproj, out.backproj_target).backward()
    assert model.backproj.mlp[0].weight.grad is not None


def test_bce_loss_exclude_ignores_255_pixels() -> None:
    logits = torch.randn(1, 2, 4, 4)
    target = torch.randint(0, 2, (1, 4, 4))
    ignored = target.clone()
    ignored[0, :2] = 255
    changed = logits.clone()
    changed[0, :, :2] = 1e4  # huge logits on ignored pixels must not matter
    ex = {"ignore_pixels": "exclude"}
    assert torch.isclose(models.bce_loss(changed, ignored, **ex), models.bce_loss(logits, ignored, **ex))
    manual = F.binary_cross_entropy_with_logits(logits[0, :, 2:], F.one_hot(target[0, 2:], 2).permute(2, 0, 1).float())
    assert torch.isclose(models.bce_loss(logits, ignored, **ex), manual)


def test_bce_loss_default_makes_255_pixels_negatives_for_every_class() -> None:
    """CAT-Seg's training branch: zeros everywhere, one-hot where labelled, BCE mean over every pixel and class."""
    logits = torch.randn(2, 3, 5, 5, requires_grad=True)
    target = torch.randint(0, 3, (2, 5, 5))
    target[:, :2] = 255
    reference = torch.zeros(2, 5, 5, 3)
    valid = target != 255
    reference[valid] = F.one_hot(target[valid], 3).float()
    expected = F.binary_cross_entropy_with_logits(logits.permute(0, 2, 3, 1), reference)
    loss = models.bce_loss(logits, target)
    assert torch.isclose(loss, expected)
    loss.backward()
    assert (logits.grad[:, :, :2] > 0).all()  # every class is pushed down on the 255 pixels
    logits.grad = None
    models.bce_loss(logits, target, ignore_pixels="exclude").backward()
    assert (logits.grad[:, :, :2] == 0).all()


# -- ablation switches and presets -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        {"guidance": "clip", "backproj_target": "clip"},
        {"guidance": "none", "backproj_target": "rgb"},
        {"backproj_target": "rgb"},
        {"backproj_target": "clip"},
        {"rotations": False},
        {"backproj": False},
    ],
)
def test_ablation_switches_build_and_train(overrides: dict) -> None:
    model = tiny(backproj_classes=2, **overrides).train()
    out = model(torch.rand(1, 3, 256, 256), ["a", "b"])
    models.total_loss(out, torch.randint(0, 2, (1, 256, 256)))["loss"].backward()
    assert out.logits.shape == (1, 2, 256, 256)
    assert (out.backproj is None) == (overrides.get("backproj") is False)


@pytest.mark.slow
def test_zeroshot_preset_has_no_learned_layers() -> None:
    model = models.build("zeroshot-vitb16", clip_weights=None).eval()
    own = {n for n, _ in model.named_parameters() if not n.startswith("clip.")}
    assert own == set()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 384, 384), ["a", "b"])
    assert logits.shape == (1, 2, 384, 384)
    torch.testing.assert_close(model.probabilities(logits).sum(1), torch.ones(1, 384, 384))


def test_unknown_preset_and_field_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        models.build("nope")
    with pytest.raises(ValueError, match="unknown model config field"):
        models.build("tiny", no_such_field=1)
    with pytest.raises(ValueError, match="guidance"):
        models.build("tiny", guidance="dino")


def test_build_never_changes_the_callers_config() -> None:
    """``build(cfg, **overrides)`` builds from a copy: the caller's config, nested ones included, stays as it was,
    and the model's config is not the caller's object (changing one later cannot change the other)."""
    cfg = models.preset_config("tiny")
    before = cfg.to_dict()
    model = models.build(cfg, backproj_classes=3, num_heads=4, sdpa=False)
    assert cfg.to_dict() == before
    assert model.cfg.backproj_classes == 3 and model.cfg.num_heads == 4 and not model.cfg.sdpa
    assert model.cfg is not cfg and model.cfg.clip is not cfg.clip
    with pytest.raises(ValueError, match="unknown model config field"):
        models.build(cfg, no_such_field=1)
    assert cfg.to_dict() == before and not hasattr(cfg, "no_such_field")


def test_preset_registry_gives_fresh_keyword_configs() -> None:
    from models.presets import STATUSES

    names = models.list_presets()
    assert names == list(models.PRESETS) and names[0] == "aeroseg-vitb16-samvitl"
    assert {"demo", "tiny", "zeroshot-vitb16", "segearth-ov-vitb16", "catseg-vitb16", "catseg-vitl14"} <= set(names)
    for name in names:
        preset = models.get_preset(name)
        assert preset.name == name and preset.status in STATUSES and preset.description
        assert models.PRESET_STATUS[name] == preset.status == models.preset_status(name)
        first = preset.config()
        first.clip.vision_layers, first.sam.depth, first.decoder_dims = 99, 99, (1, 1)  # a caller's own changes
        assert preset.config().to_dict() == models.preset_config(name).to_dict() != first.to_dict()
    with pytest.raises(ValueError, match="unknown preset 'nope'; choose one of: aeroseg-vitb16-samvitl"):
        models.get_preset("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        models.preset_status("nope")


def test_configs_are_built_with_keyword_arguments_only() -> None:
    """Presets and variants name every field (open_clip's style): a positional ``CLIPConfig(...)`` breaks silently
    when a field is added or moved."""
    import ast

    from tests.support.paths import ROOT

    config_classes = {"AerOSegConfig", "CLIPConfig", "SAMConfig", "SegEarthConfig"}
    positional = []
    for path in sorted((ROOT / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in config_classes and node.args:
                positional.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert positional == []


@pytest.mark.slow
def test_paper_preset_parameter_counts_and_cpu_forward() -> None:
    """CLIP ViT-B/16 149.6 M and the SAM ViT-L image encoder 308.3 M (segment-anything's "308M"; 304.1 M without
    its 64x64 absolute position embedding); one forward on CPU with SAM at 256."""
    torch.manual_seed(0)
    model = models.build("aeroseg-vitb16-samvitl", clip_weights=None, sam_weights=None, sam_input_size=256).eval()
    clip_params = (
        sum(p.numel() for p in model.clip.model.parameters()) - model.clip.model.visual.positional_embedding.numel()
    )
    clip_params += 197 * 768  # count the published 224-px position embedding, as the 149.6 M figure does
    sam_params = sum(p.numel() for p in model.sam.encoder.parameters())
    assert abs(clip_params / 1e6 - 149.6) < 0.5, clip_params
    assert abs(sam_params / 1e6 - 308.3) < 0.5, sam_params
    assert abs((sam_params - model.sam.encoder.pos_embed.numel()) / 1e6 - 304.1) < 0.5
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 384, 384), ["ship", "harbor"])
    assert logits.shape == (1, 2, 384, 384) and torch.isfinite(logits).all()


def test_sdpa_sam_attention_equals_segment_anything() -> None:
    """Our SDPA path gives segment_anything's own attention, windowed and global, to fp32 tolerance."""
    torch.manual_seed(0)
    sam = SAMGuidance(models.preset_config("tiny").sam)
    for p in sam.parameters():  # non-zero relative position tables so the bias matters
        p.data.normal_(0, 0.05)
    x = torch.randn(2, 16, 16, 48)
    for block in sam.encoder.blocks:
        windows = torch.randn(3, 4, 4, 48) if block.window_size else x
        torch.testing.assert_close(
            sdpa_attention(block.attn, windows), reference_attention(block.attn, windows), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(block_forward(block, x, True), block(x), rtol=1e-5, atol=1e-5)


def test_reference_style_rotations_one_at_a_time_give_the_same_logits() -> None:
    batched = tiny().eval()
    single = tiny(batch_rotations=False).eval()
    single.load_state_dict(batched.state_dict())
    x = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(single(x, CLASSES), batched(x, CLASSES), rtol=1e-5, atol=1e-5)
