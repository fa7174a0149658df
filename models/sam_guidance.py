"""SAM guidance encoder: segment_anything's ImageEncoderViT, frozen, tapped after two blocks and the neck.

The weights layout is segment_anything's own (an official ``sam_vit_*.pth`` loads as is). The forward is ours only to
read the taps and, optionally, to run attention through ``scaled_dot_product_attention`` with the same weights.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import (
    Attention,
    Block,
    ImageEncoderViT,
    add_decomposed_rel_pos,
    get_rel_pos,
    window_partition,
    window_unpartition,
)
from torch import nn

from .config import SAMConfig

SAM_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
SAM_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)


def build_sam_encoder(cfg: SAMConfig) -> ImageEncoderViT:
    """segment_anything's image encoder with the sizes of ``cfg`` (the official builders' other settings)."""
    return ImageEncoderViT(
        img_size=cfg.pretrain_img_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=4,
        out_chans=cfg.out_chans,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        global_attn_indexes=cfg.global_attn_indexes,
        window_size=cfg.window_size,
    )


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """SAM's decomposed relative-position term as an additive attention bias: q (N, h*w, C) -> (N, h*w, h*w)."""
    h, w = size
    rh = get_rel_pos(h, h, rel_pos_h).to(q.dtype)
    rw = get_rel_pos(w, w, rel_pos_w).to(q.dtype)
    r_q = q.reshape(q.shape[0], h, w, -1)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    return (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(q.shape[0], h * w, h * w)


def sdpa_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """SAM ``Attention.forward`` through ``scaled_dot_product_attention``: x (B, H, W, C) -> (B, H, W, C)."""
    b, h, w, _ = x.shape
    qkv = attn.qkv(x).reshape(b, h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, L, C)
    bias = None
    if attn.use_rel_pos:
        flat_q = q.reshape(b * attn.num_heads, h * w, -1)
        bias = decomposed_rel_pos_bias(flat_q, attn.rel_pos_h, attn.rel_pos_w, (h, w))
        bias = bias.reshape(b, attn.num_heads, h * w, h * w)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return attn.proj(out.permute(0, 2, 1, 3).reshape(b, h, w, -1))


def reference_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """segment_anything's own attention (kept callable for the equality test and the reference benchmark)."""
    b, h, w, _ = x.shape
    qkv = attn.qkv(x).reshape(b, h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, b * attn.num_heads, h * w, -1).unbind(0)
    a = (q * attn.scale) @ k.transpose(-2, -1)
    if attn.use_rel_pos:
        a = add_decomposed_rel_pos(a, q, attn.rel_pos_h, attn.rel_pos_w, (h, w), (h, w))
    a = a.softmax(dim=-1)
    out = (a @ v).view(b, attn.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return attn.proj(out)


def block_forward(block: Block, x: torch.Tensor, sdpa: bool) -> torch.Tensor:
    """SAM ``Block.forward`` with a choice of attention kernel: x (B, H, W, C) -> (B, H, W, C)."""
    shortcut = x
    x = block.norm1(x)
    if block.window_size > 0:
        h, w = x.shape[1], x.shape[2]
        x, pad_hw = window_partition(x, block.window_size)
    x = sdpa_attention(block.attn, x) if sdpa else block.attn(x)
    if block.window_size > 0:
        x = window_unpartition(x, block.window_size, pad_hw, (h, w))
    x = shortcut + x
    return x + block.mlp(block.norm2(x))


class SAMGuidance(nn.Module):
    """Frozen SAM image encoder with taps.

    forward(x): x (B, 3, S, S) SAM-normalised at the SAM input size S ->
    (neck (B, 256, S/16, S/16), early tap (B, C, S/16, S/16), late tap (B, C, S/16, S/16)).
    Taps are the outputs of blocks depth/3 and 2*depth/3 (blocks 8 and 16 of ViT-L, 1-based).
    """

    def __init__(self, cfg: SAMConfig, finetune: bool = False, sdpa: bool = True) -> None:
        super().__init__()
        self.encoder = build_sam_encoder(cfg)
        self.taps = (max(1, cfg.depth // 3), max(1, 2 * cfg.depth // 3))
        self.finetune = finetune
        self.sdpa = sdpa
        self.out_dims = (cfg.out_chans, cfg.embed_dim, cfg.embed_dim)
        for p in self.encoder.parameters():
            p.requires_grad_(finetune)

    def train(self, mode: bool = True) -> SAMGuidance:
        super().train(mode)
        if not self.finetune:
            self.encoder.eval()  # frozen: never in training mode
        return self

    def _pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        pos = self.encoder.pos_embed
        if pos.shape[1:3] == grid:
            return pos
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=grid, mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            x = self.encoder.patch_embed(x)
            x = x + self._pos_embed(tuple(x.shape[1:3])).to(x.dtype)
            tapped = []
            for i, block in enumerate(self.encoder.blocks, start=1):
                x = block_forward(block, x, self.sdpa)
                if i in self.taps:
                    tapped.append(x.permute(0, 3, 1, 2))
            neck = self.encoder.neck(x.permute(0, 3, 1, 2))
        return neck, tapped[0], tapped[1]
