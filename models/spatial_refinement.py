"""Spatial refinement: Swin window attention over each class's correlation map, guided by SAM features.

Query and key see the correlation and the guidance; the value sees the correlation only (CAT-Seg). CAT-Seg
normalises the guidance once for both Swin blocks (``variant="catseg"``); this project's v1 had one LayerNorm per block.
The shifted block's mask is Swin's (``mask="swin"``); ``"rolled"`` is the mask checkpoints of format 3 and older
were trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -100.0


def window_geometry(h: int, w: int, window: int, shift: int, style: str = "swin") -> tuple[int, int]:
    """(window, shift) a block uses on an h x w grid. ``"swin"``: as Swin and CAT-Seg, a grid no larger than the
    window is one unshifted window; ``"rolled"`` (format <= 3): the window shrinks to the grid, the shift is kept
    while the window is whole."""
    if style == "swin":
        return (min(h, w), 0) if min(h, w) <= window else (window, shift)
    small = min(window, h, w)
    return small, shift if small == window else 0


def window_mask(
    h: int, w: int, window: int, shift: int, device: torch.device, style: str = "swin"
) -> torch.Tensor | None:
    """Additive mask (nW, N, N) for the windows of an h x w grid padded to a multiple of ``window``, cyclically
    shifted by ``shift`` (the features are padded, then rolled by -shift, then cut into windows).

    ``"swin"``: the regions are labelled with Swin's slices (0, -window), (-window, -shift), (-shift, None) directly
    in the shifted frame, as Swin and CAT-Seg build ``attn_mask``; tokens of different regions get ``MASKED``, so a
    window never mixes tokens that the roll brought from opposite edges. ``"rolled"`` (format <= 3) labels them in
    the unshifted frame and rolls the labels, which cuts every shifted window into quadrants. Padding tokens (this
    project's extension for grids that are not a multiple of the window) are masked as keys in both.
    """
    hp, wp = -(-h // window) * window, -(-w // window) * window
    if not shift and (hp, wp) == (h, w):
        return None
    region = torch.zeros(hp, wp, device=device)
    padded = torch.zeros(hp, wp, dtype=torch.bool, device=device)
    padded[h:, :] = True
    padded[:, w:] = True
    if shift:
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        for label, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
            region[hs, ws] = label
        padded = torch.roll(padded, (-shift, -shift), dims=(0, 1))
        if style == "rolled":
            region = torch.roll(region, (-shift, -shift), dims=(0, 1))
    win = region.reshape(hp // window, window, wp // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    pad = padded.reshape(hp // window, window, wp // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    differ = win[:, None, :] != win[:, :, None]
    return torch.where(differ | pad[:, None, :], MASKED, 0.0)


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, H, W, C) with H, W multiples of window -> (N * nW, window*window, C)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def from_windows(x: torch.Tensor, n: int, h: int, w: int, window: int) -> torch.Tensor:
    """Inverse of ``to_windows``: (N * nW, window*window, C) -> (N, H, W, C)."""
    c = x.shape[-1]
    x = x.reshape(n, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


class GuidedWindowAttention(nn.Module):
    """Multi-head attention inside windows; q, k from concat(x, guidance), v from x."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """x (N*nW, L, C), g (N*nW, L, Cg) or None, mask (nW, L, L) or None -> (N*nW, L, C)."""
        xg = x if g is None else torch.cat([x, g], dim=-1)
        nb, length, c = x.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(nb, length, heads, c // heads).transpose(1, 2)

        q, k, v = split(self.q(xg)), split(self.k(xg)), split(self.v(x))
        attn_mask = None
        if mask is not None:
            nw = mask.shape[0]
            attn_mask = mask.to(q.dtype)[None, :, None].expand(nb // nw, nw, heads, length, length)
            attn_mask = attn_mask.reshape(nb, heads, length, length)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(nb, length, c))


class SwinBlock(nn.Module):
    """Pre-norm Swin block (W-MSA or SW-MSA) with guidance, no relative position bias, MLP ratio 4; ``mask``: the
    shifted-window mask's construction (``window_mask``)."""

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        num_heads: int,
        window: int,
        shift: int,
        guidance_norm: bool = False,
        mask: str = "swin",
    ) -> None:
        super().__init__()
        self.window, self.shift, self.mask_style = window, shift, mask
        self.norm1 = nn.LayerNorm(dim)
        self.norm_g = nn.LayerNorm(guidance_dim) if guidance_dim and guidance_norm else None
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """x (N, h, w, C), g (N, h, w, Cg) or None (normalised by this block only if it has ``norm_g``)."""
        n, h, w, _ = x.shape
        window, shift = window_geometry(h, w, self.window, self.shift, self.mask_style)
        y = self.norm1(x)
        gn = self.norm_g(g) if g is not None and self.norm_g is not None else g
        hp, wp = -(-h // window) * window, -(-w // window) * window
        if (hp, wp) != (h, w):
            y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))
            gn = F.pad(gn, (0, 0, 0, wp - w, 0, hp - h)) if gn is not None else None
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
            gn = torch.roll(gn, (-shift, -shift), dims=(1, 2)) if gn is not None else None
        mask = window_mask(h, w, window, shift, x.device, self.mask_style)
        out = self.attn(to_windows(y, window), to_windows(gn, window) if gn is not None else None, mask)
        out = from_windows(out, n, hp, wp, window)
        if shift:
            out = torch.roll(out, (shift, shift), dims=(1, 2))
        x = x + out[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class SpatialRefinement(nn.Module):
    """Two Swin blocks (shift 0, then window/2) per class map; ``mask`` as ``window_mask``'s ``style``.

    x (B, K, C, h, w), guidance (B, Cg, h, w) or None -> (B, K, C, h, w). Classes share weights (order-equivariant).
    """

    def __init__(
        self, dim: int, guidance_dim: int, num_heads: int, window: int, variant: str = "catseg", mask: str = "swin"
    ) -> None:
        super().__init__()
        per_block = variant == "v1"
        self.norm_g = nn.LayerNorm(guidance_dim) if guidance_dim and not per_block else None
        self.blocks = nn.ModuleList(
            [
                SwinBlock(dim, guidance_dim, num_heads, window, 0, per_block, mask),
                SwinBlock(dim, guidance_dim, num_heads, window, window // 2, per_block, mask),
            ]
        )

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        b, k, c, h, w = x.shape
        y = x.reshape(b * k, c, h, w).permute(0, 2, 3, 1)
        g = None
        if guidance is not None:
            g = guidance.permute(0, 2, 3, 1)
            g = (self.norm_g(g) if self.norm_g is not None else g).repeat_interleave(k, dim=0)
        for block in self.blocks:
            y = block(y, g)
        return y.permute(0, 3, 1, 2).reshape(b, k, c, h, w)
