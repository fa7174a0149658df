"""Class refinement: linear attention across classes at every position, guided by the class text embeddings.

No positional embedding over classes, so the block is equivariant to class order. Padding to a fixed number of
class tokens keeps the attention's normalisation independent of how many classes a user asks for.

``variant="catseg"`` is CAT-Seg's ``ClassTransformerLayer``: no attention output projection, the text guidance used
as given (no LayerNorm), zero-initialised padding token and guidance, ``align_corners=True`` when the pooled map is
upsampled back. ``variant="v1"`` is this project's first version (kept so its checkpoints load unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearAttention(nn.Module):
    """Linear attention with the elu(x)+1 feature map; q, k from concat(x, guidance), v from x; output projection
    only with ``out_proj`` (CAT-Seg has none)."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, eps: float = 1e-6, out_proj: bool = True) -> None:
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim) if out_proj else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        g: torch.Tensor | None,
        pad_x: torch.Tensor | None = None,
        pad_g: torch.Tensor | None = None,
        pad_count: int = 0,
    ) -> torch.Tensor:
        """x (N, T, C), g (N, T, Cg) or None -> (N, T, C); T class tokens.

        ``pad_count`` identical padding tokens (pad_x (1, 1, C), pad_g (1, 1, Cg)) join the keys and values. Being
        constant, their share of the key-value sums is computed once: the same result as concatenating them, without
        materialising up to 256 tokens at every position.
        """
        n, t, c = x.shape
        h = self.num_heads
        xg = x if g is None else torch.cat([x, g], dim=-1)
        q = F.elu(self.q(xg).reshape(n, t, h, c // h)) + 1
        k = F.elu(self.k(xg).reshape(n, t, h, c // h)) + 1
        v = self.v(x).reshape(n, t, h, c // h)
        kv = torch.einsum("nthd,nthe->nhde", k, v)
        k_sum = k.sum(dim=1)
        if pad_count:
            pxg = pad_x if pad_g is None else torch.cat([pad_x, pad_g], dim=-1)
            k_pad = F.elu(self.k(pxg).reshape(1, h, c // h)) + 1
            v_pad = self.v(pad_x).reshape(1, h, c // h)
            kv = kv + pad_count * torch.einsum("nhd,nhe->nhde", k_pad, v_pad)
            k_sum = k_sum + pad_count * k_pad
        denom = torch.einsum("nthd,nhd->nth", q, k_sum) + self.eps
        out = torch.einsum("nthd,nhde->nthe", q, kv) / denom[..., None]
        return self.proj(out.reshape(n, t, c))


class ClassRefinement(nn.Module):
    """x (B, K, C, h, w), text guidance (B or 1, K, Cg) or None -> (B, K, C, h, w); K <= max_classes."""

    def __init__(
        self, dim: int, guidance_dim: int, num_heads: int, max_classes: int, pool_train: int, variant: str = "catseg"
    ) -> None:
        super().__init__()
        v1 = variant == "v1"
        self.max_classes, self.pool_train, self.align_corners = max_classes, pool_train, not v1
        self.pad_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pad_guidance = nn.Parameter(torch.zeros(1, 1, guidance_dim)) if guidance_dim else None
        self.norm1 = nn.LayerNorm(dim)
        self.norm_g = nn.LayerNorm(guidance_dim) if guidance_dim and v1 else None
        self.attn = LinearAttention(dim, guidance_dim, num_heads, out_proj=v1)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        if v1:
            nn.init.normal_(self.pad_token, std=0.02)
            if self.pad_guidance is not None:
                nn.init.normal_(self.pad_guidance, std=0.02)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        b, k, c, h, w = x.shape
        if k > self.max_classes:
            raise ValueError(f"class refinement takes at most {self.max_classes} classes, got {k}")
        pool = self.pool_train if self.training else 1
        y = x.reshape(b * k, c, h, w)
        if pool > 1:
            y = F.avg_pool2d(y, pool, ceil_mode=True)
        hp, wp = y.shape[-2:]
        y = y.reshape(b, k, c, hp * wp).permute(0, 3, 1, 2).reshape(b * hp * wp, k, c)
        pad = self.max_classes - k
        g = pad_g = None
        if guidance is not None and self.pad_guidance is not None:
            norm = self.norm_g if self.norm_g is not None else nn.Identity()
            g = norm(guidance.expand(b, -1, -1).to(y.dtype)).repeat_interleave(hp * wp, dim=0)
            pad_g = norm(self.pad_guidance.to(y.dtype))
        pad_x = self.norm1(self.pad_token.to(y.dtype))
        y = y + self.attn(self.norm1(y), g, pad_x, pad_g, pad)
        y = y + self.mlp(self.norm2(y))
        y = y.reshape(b, hp, wp, k, c).permute(0, 3, 4, 1, 2).reshape(b * k, c, hp, wp)
        if pool > 1:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=self.align_corners)
        return x + y.reshape(b, k, c, h, w)
