"""The head equals its reference code (issue 21): the shifted-window mask as Swin builds it, and the whole cost
aggregation equal to OVRS's ``Aggregator`` given the same weights and inputs.

Fixtures (made outside the repository from the fetched reference code; nothing of it is copied here):

- ``tests/fixtures/swin_masks.npz`` by /work/scratch/h21-network/gen_swin_mask_fixture.py: the ``attn_mask`` of
  ``SwinTransformerBlock(dim=4, appearance_guidance_dim=0, input_resolution=(H, W), num_heads=1, window_size=WS,
  shift_size=S)`` of caoql98/OVRS aacbb104 ``cat_seg/modeling/transformer/model_ours.py`` (CAT-Seg's spatial
  aggregation block, unpadded grids: ``catseg_*``; ``none_*`` where it turns the shift off), and the ``mask_matrix``
  that ``BasicLayer(dim=4, depth=2, num_heads=1, window_size=WS)`` with ``shift_size = S`` of cvlab-kaist/CAT-Seg
  6d3a188a ``cat_seg/modeling/backbone/swin.py`` passes to its blocks (Swin's construction for padded grids:
  ``swin_*``); int8 (0 / -100).
- ``tests/fixtures/ovrs_aggregator.npz`` by /work/scratch/h21-network/gen_ovrs_aggregator_fixture.py: OVRS's
  ``Aggregator`` (``model_ours.py``: rotations + attention-aware decoder) with hidden 32, 4 heads, 2 layers, window 12
  on the 24 x 24 grid, 4 prompts, text 32-d, spatial guidance 24-d, decoder guidance 16-d projected to 8, decoder
  (32, 16); class pooling 2 x 2 in training mode and 1 x 1 in evaluation mode (the references' ``eval.sh`` sets
  ``POOLING_SIZES [1,1]``; here ``class_pool_train`` and no pooling at evaluation); every parameter from
  ``seeded_weights`` (below, the same recipe as the generator's; its buffers, the Swin masks, as it builds them),
  inputs from ``seeded_inputs`` (seeds 100 and 200). Stored: its logits (B, K, 96, 96) at every second pixel, in
  training and evaluation mode, with pad_len 8 (3 classes, batch 2) and pad_len 4 (6 classes: the top-4 selection).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
from models.aeroseg import UNSELECTED_LOGIT, GuidanceMaps
from models.clip_backbone import rotate_back
from models.config import AerOSegConfig, CLIPConfig, SAMConfig
from models.spatial_refinement import SpatialRefinement, window_geometry, window_mask

FIXTURES = Path(__file__).parent / "fixtures"
CPU = torch.device("cpu")


# -- the shifted-window mask -----------------------------------------------------------------------------------------
def _cases(prefix: str) -> list[tuple[str, tuple[int, ...]]]:
    stored = np.load(FIXTURES / "swin_masks.npz")
    out = []
    for key in stored.files:
        if key.startswith(prefix):
            grid, ws, s = key.removeprefix(prefix).split("_")
            h, w = map(int, grid.split("x"))
            out.append((key, (h, w, int(ws[1:]), int(s[1:]))))
    return out


@pytest.mark.parametrize(("key", "case"), _cases("catseg_"))
def test_shifted_window_mask_equals_catsegs_block(key: str, case: tuple[int, ...]) -> None:
    h, w, ws, s = case
    expected = torch.from_numpy(np.load(FIXTURES / "swin_masks.npz")[key]).float()
    assert window_geometry(h, w, ws, s) == (ws, s)
    assert torch.equal(window_mask(h, w, ws, s, CPU), expected)
    assert not torch.equal(window_mask(h, w, ws, s, CPU, "rolled"), expected)  # the old mask: can fail


@pytest.mark.parametrize(("key", "case"), _cases("swin_"))
def test_shifted_window_mask_on_padded_grids_equals_swins_and_masks_padding_keys(key: str, case: tuple[int, ...]):
    """Swin labels the padded grid's regions; this project also masks padding tokens as keys (its extension)."""
    h, w, ws, s = case
    expected = torch.from_numpy(np.load(FIXTURES / "swin_masks.npz")[key]).float()
    got = window_mask(h, w, ws, s, CPU)
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    padded = torch.zeros(hp, wp, dtype=torch.bool)
    padded[h:, :], padded[:, w:] = True, True
    pad = torch.roll(padded, (-s, -s), (0, 1)).reshape(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3)
    pad_key = pad.reshape(-1, 1, ws * ws).expand_as(got)
    assert torch.equal(got[~pad_key], expected[~pad_key])
    assert (got[pad_key] == -100).all()
    assert not torch.equal(window_mask(h, w, ws, s, CPU, "rolled")[~pad_key], expected[~pad_key])


def test_grid_no_larger_than_the_window_is_one_unshifted_window_as_catseg() -> None:
    (key, (h, w, ws, s)), *_ = _cases("none_")
    expected = tuple(int(v) for v in np.load(FIXTURES / "swin_masks.npz")[key])
    assert window_geometry(h, w, ws, s) == expected == (12, 0)
    assert window_mask(h, w, *expected, CPU) is None


@pytest.mark.parametrize(("style", "cells"), [("swin", 324), ("rolled", 144)])
def test_a_change_at_one_cell_reaches_324_cells_after_both_swin_blocks(style: str, cells: int) -> None:
    """24 x 24 grid, window 12, shift 6: cell (11, 11) reaches its 12 x 12 window in the first block and, through
    the four shifted windows around it, the 18 x 18 square [0, 18)^2 in the second; the rolled mask cut each
    shifted window into 6 x 6 quadrants that cannot attend to each other, so it never left the first window."""
    torch.manual_seed(0)
    block = SpatialRefinement(32, 16, 4, 12, "catseg", style).eval()
    x, g = torch.randn(1, 1, 32, 24, 24), torch.randn(1, 16, 24, 24)
    y = x.clone()
    y[0, 0, :, 11, 11] += torch.randn(32)  # not a constant over channels, which LayerNorm would remove
    with torch.no_grad():
        changed = (block(x, g) - block(y, g)).abs().amax(dim=(0, 1, 2)) > 1e-6
    assert int(changed.sum()) == cells
    side = 18 if style == "swin" else 12
    assert changed[:side, :side].all()


# -- the head against OVRS's Aggregator ------------------------------------------------------------------------------
def seeded_weights(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor for reference parameter ``name`` from a generator seeded by the name's SHA-256 (the generator's
    recipe, so both sides get the same weights bit for bit)."""
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    if len(shape) >= 2:
        return z / math.sqrt(math.prod(shape[1:]))
    if name.endswith("weight"):  # norm scales
        return 1 + 0.1 * z
    return 0.1 * z


def seeded_inputs(batch: int, classes: int, seed: int) -> dict[str, torch.Tensor]:
    """As the generator's: rotated-domain features (4, B, 32, 24, 24) and prompts (K, 4, 32), L2-normalised; guidance
    spatial (B, 24, 24, 24), stages (B, 16, 48, 48) and (B, 16, 96, 96)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "feats": F.normalize(torch.randn(4, batch, 32, 24, 24, generator=g), dim=2),
        "text": F.normalize(torch.randn(classes, 4, 32, generator=g), dim=-1),
        "spatial": torch.randn(batch, 24, 24, 24, generator=g),
        "stage1": torch.randn(batch, 16, 48, 48, generator=g),
        "stage2": torch.randn(batch, 16, 96, 96, generator=g),
    }


def reference_names() -> dict[str, str]:
    """This project's head tensors -> OVRS ``Aggregator`` state-dict names."""
    names = {
        "correlation.conv": "conv1",
        "spatial_guidance.0": "guidance_projection.0",
        "text_guidance.0": "text_guidance_projection.0",
        "decoder_guidance1.0": "decoder_guidance_projection.0.0",
        "decoder_guidance2.0": "decoder_guidance_projection.1.0",
        "decoder.head": "head",
    }
    for i in range(2):
        names[f"spatial_blocks.{i}.norm_g"] = f"layers.{i}.swin_block.guidance_norm"
        for j in range(2):
            ours, ref = f"spatial_blocks.{i}.blocks.{j}", f"layers.{i}.swin_block.block_{j + 1}"
            names.update({f"{ours}.{m}": f"{ref}.{m}" for m in ("norm1", "norm2", "attn.q", "attn.k", "attn.v")})
            names.update({f"{ours}.attn.proj": f"{ref}.attn.proj", f"{ours}.mlp.0": f"{ref}.mlp.fc1"})
            names[f"{ours}.mlp.2"] = f"{ref}.mlp.fc2"
        ours, ref = f"class_blocks.{i}", f"layers.{i}.attention"
        names.update({f"{ours}.attn.{m}": f"{ref}.attention.{m}" for m in ("q", "k", "v")})
        names.update({f"{ours}.{m}": f"{ref}.{m}" for m in ("norm1", "norm2")})
        names.update({f"{ours}.mlp.0": f"{ref}.MLP.0", f"{ours}.mlp.2": f"{ref}.MLP.2"})
        names.update({f"{ours}.pad_token": f"{ref}.padding_tokens", f"{ours}.pad_guidance": f"{ref}.padding_guidance"})
    for i in (1, 2):
        ours, ref = f"decoder.up{i}", f"decoder{i}"
        names.update({f"{ours}.up": f"{ref}.up", f"{ours}.fusion.channel": f"{ref}.cconv"})
        names[f"{ours}.fusion.spatial"] = f"{ref}.sconv"
        names.update({f"{ours}.conv.{m}": f"{ref}.conv.double_conv.{m}" for m in ("0", "1", "3", "4")})
    return names


def head_model(max_classes: int) -> models.AerOSeg:
    """The AerOSeg network at the fixture's widths, its head's tensors from the reference's names."""
    cfg = AerOSegConfig(
        clip=CLIPConfig("custom", 32, 32, 1, 2, 16, 32, 1, 2),
        clip_weights=None,
        sam=SAMConfig("custom", 16, 3, 2, (2,), 4, 16, 24, 256),
        sam_weights=None,
        sam_input_size=256,
        hidden_dim=32,
        guidance_dim=16,
        num_heads=4,
        max_classes=max_classes,
        backproj=False,
        decoder_dims=(32, 16),
        decoder_guidance_dims=(8, 8),
    )
    model = models.build(cfg)
    names = reference_names()
    own = model.state_dict()
    state = {}
    for key, value in own.items():
        module, _, leaf = key.rpartition(".")
        ref = names.get(module, names.get(key))
        if ref is not None:
            ref_key = f"{ref}.{leaf}" if module in names else ref
            state[key] = seeded_weights(ref_key, tuple(value.shape))
    head = [k for k in own if not k.startswith(("clip.", "sam."))]
    assert sorted(state) == sorted(head), set(head) ^ set(state)  # every head tensor has its reference
    model.load_state_dict(state, strict=False)
    return model


@pytest.fixture(scope="module")
def reference() -> np.lib.npyio.NpzFile:
    return np.load(FIXTURES / "ovrs_aggregator.npz")


@pytest.mark.parametrize(
    ("case", "max_classes", "batch", "classes", "seed", "mode"),
    [("pad", 8, 2, 3, 100, "train"), ("pad", 8, 2, 3, 100, "eval"), ("select", 4, 1, 6, 200, "eval")],
)
def test_head_equals_ovrs_aggregator(reference, case, max_classes, batch, classes, seed, mode) -> None:
    inp = seeded_inputs(batch, classes, seed)
    sums = np.array([float(inp[k].double().sum()) for k in sorted(inp)])
    np.testing.assert_allclose(sums, reference[f"{case}_input_sums"], rtol=1e-12)  # the same inputs as the generator
    model = head_model(max_classes).train(mode == "train")
    dense = rotate_back(inp["feats"].reshape(4 * batch, 32, 24, 24), batch)  # rotated back as CLIPBackbone does
    sources = GuidanceMaps(inp["spatial"], inp["stage1"], inp["stage2"])
    with torch.no_grad():
        logits, _, selected = model.aggregate(dense, inp["text"], sources)
    if selected is not None:
        full = logits.new_full((batch, classes, *logits.shape[-2:]), UNSELECTED_LOGIT)
        full[:, selected] = logits
        logits = full
    expected = torch.from_numpy(reference[f"{case}_{mode}"])
    torch.testing.assert_close(logits[..., ::2, ::2], expected, rtol=1e-4, atol=1e-4)
