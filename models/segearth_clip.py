"""CLIP as SegEarth-OV runs it (likyoo/SegEarth-OV ``open_clip/transformer.py``, ``model_type='SegEarth'``,
``ignore_residual=True``): dense patch features and the CLS token from a modified last block, and text features
averaged over the 80 OpenAI ImageNet prompt templates.

The last block keeps only its attention, with token mixing by q-q, k-k and v-v similarities (three softmaxes,
summed) instead of q-k, and neither the residual nor the MLP; ``ln_post`` and ``proj`` then map every token, the CLS
position included, into the joint space. The position embedding is resized only when the token count differs from
the pretrained one, as SegEarth-OV does: bicubic with a scale factor of (grid + 0.1) / pretrained grid (not a target
size), align_corners=False, no antialiasing.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from .clip_backbone import build_open_clip
from .config import AerOSegConfig
from .correlation import autocast_on

PRETRAINED_SIZE = 224  # OpenAI's ViT-B/16 and ViT-L/14 files: the grid their position embedding was trained at


def segearth_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """SegEarth-OV's last-block attention: (softmax(q q^T) + softmax(k k^T) + softmax(v v^T)) v, each scaled by
    head_dim^-0.5, then the output projection. x (N, L, C) after ``ln_1`` -> (N, L, C)."""
    n, length, c = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = (t.reshape(n, length, heads, c // heads).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    out = sum(F.scaled_dot_product_attention(t, t, v) for t in (q, k, v))
    return attn.out_proj(out.transpose(1, 2).reshape(n, length, c))


def segearth_pos_embed(pos: torch.Tensor, image_hw: tuple[int, int], patch: int) -> torch.Tensor:
    """pos (1 + n*n, C) -> (1 + gh*gw, C) for an image of ``image_hw``: unchanged when the token count matches (as
    the reference, whatever the aspect), else SegEarth-OV's ``interpolate_pos_encoding``."""
    gh, gw = image_hw[0] // patch, image_hw[1] // patch
    side = math.isqrt(pos.shape[0] - 1)
    if gh * gw == side * side:
        return pos
    grid = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = ((gh + 0.1) / side, (gw + 0.1) / side)
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)], dim=0)


class SegEarthCLIP(nn.Module):
    """``encode_image(x)``: x (N, 3, H, W) CLIP-normalised -> (CLS (N, D), patches (N, D, H/p, W/p)), neither
    normalised. ``query_features(queries)``: Q strings -> (Q, D) L2-normalised, cached while weights stay put."""

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = build_open_clip(cfg.clip, PRETRAINED_SIZE)
        self.model.requires_grad_(False)
        self.templates = cfg.templates
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._cache.clear())

    def encode_image(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        visual = self.model.visual
        tokens = visual.conv1(x)
        n, c, h, w = tokens.shape
        tokens = tokens.reshape(n, c, h * w).permute(0, 2, 1)
        cls = visual.class_embedding.to(tokens.dtype).expand(n, 1, c)
        pos = segearth_pos_embed(visual.positional_embedding, x.shape[-2:], visual.patch_size[0])
        tokens = visual.ln_pre(torch.cat([cls, tokens], dim=1) + pos.to(tokens.dtype))
        for block in visual.transformer.resblocks[:-1]:
            tokens = block(tokens)
        last = visual.transformer.resblocks[-1]
        tokens = visual.ln_post(segearth_attention(last.attn, last.ln_1(tokens))) @ visual.proj
        return tokens[:, 0], tokens[:, 1:].permute(0, 2, 1).reshape(n, -1, h, w)

    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        """open_clip's ``encode_text``, run only up to the longest prompt's end token: with causal attention the
        end tokens' features are the same as over all 77 positions, at a fraction of the cost."""
        model = self.model
        tokens = open_clip.tokenize(texts, context_length=self.cfg.clip.context_length)
        end = tokens.argmax(dim=-1)  # the end-of-text token has the highest id
        length = int(end.max()) + 1
        device = model.token_embedding.weight.device
        tokens, end = tokens[:, :length].to(device), end.to(device)
        x = model.token_embedding(tokens) + model.positional_embedding[:length]
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
        return x[torch.arange(len(texts), device=x.device), end] @ model.text_projection

    def _features(self, queries: list[str]) -> torch.Tensor:
        """Per query: its prompts' embeddings, each normalised, averaged, normalised again (SegEarth-OV's init)."""
        out = []
        for start in range(0, len(queries), 8):  # 8 queries x 80 prompts per text forward
            part = queries[start : start + 8]
            emb = self._encode_text([t.format(q) for q in part for t in self.templates]).float()
            emb = F.normalize(emb, dim=-1).reshape(len(part), len(self.templates), -1).mean(dim=1)
            out.append(F.normalize(emb, dim=-1))
        return torch.cat(out)

    def query_features(self, queries: list[str]) -> torch.Tensor:
        weight = self.model.token_embedding.weight
        kind = weight.device.type
        amp = torch.get_autocast_dtype(kind) if autocast_on(kind) else None
        version = sum(p._version for p in self.model.parameters())
        key = (tuple(queries), weight.device, weight.dtype, amp, version)
        if key not in self._cache:
            with torch.no_grad():
                self._cache[key] = self._features(list(queries))
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return self._cache[key]
