"""Upsampling decoder: CAT-Seg's, with OVRS's attention-aware guidance fusion or CAT-Seg's plain concatenation.

Plain concatenation is the attention-aware fusion with its two 1x1 convolutions at zero (g' = 0*g + 0*g + g), so a
CAT-Seg decoder's weights fit an attention-aware decoder exactly; ``fusion="concat"`` runs CAT-Seg's decoder as it is
(no fusion tensors, no extra work).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // 16), channels)


class DoubleConv(nn.Sequential):
    """(Conv3x3 no bias -> GroupNorm(C/16) -> ReLU) x 2."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            group_norm(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            group_norm(out_ch),
            nn.ReLU(inplace=True),
        )


class AttentionAwareFusion(nn.Module):
    """Reweights guidance by channel and spatial attention computed from the class-averaged features.

    x (B*K, C', H, W), g (B, Cg, H, W) -> g' (B*K, Cg, H, W) with g' = ca*g + sa*g + g (no sigmoid, as OVRS).
    The class average is order-invariant, so the whole decoder stays equivariant to class order.
    """

    def __init__(self, channels: int, guidance_dim: int) -> None:
        super().__init__()
        self.channel = nn.Conv2d(channels, guidance_dim, 1)
        self.spatial = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        b = g.shape[0]
        k = x.shape[0] // b
        a = x.reshape(b, k, *x.shape[1:]).mean(dim=1)
        ca = self.channel(F.adaptive_avg_pool2d(a, 1))
        sa = self.spatial(a.mean(dim=1, keepdim=True))
        fused = ca * g + sa * g + g
        return fused.repeat_interleave(k, dim=0)


class PlainFusion(nn.Module):
    """CAT-Seg's decoder guidance: g repeated over classes, unchanged. x (B*K, C', H, W), g (B, Cg, H, W) ->
    (B*K, Cg, H, W)."""

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g.repeat_interleave(x.shape[0] // g.shape[0], dim=0)


FUSIONS = ("attention", "concat")


class Up(nn.Module):
    """ConvTranspose2d(k2, s2) -> guidance fusion -> concat -> DoubleConv: (B*K, C_in, H, W) -> (B*K, C_out, 2H, 2W)."""

    def __init__(self, in_ch: int, out_ch: int, guidance_dim: int, fusion: str = "attention") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"decoder fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.up = nn.ConvTranspose2d(in_ch, in_ch - guidance_dim, kernel_size=2, stride=2)
        self.fusion: nn.Module | None = None
        if guidance_dim:
            self.fusion = (
                AttentionAwareFusion(in_ch - guidance_dim, guidance_dim) if fusion == "attention" else PlainFusion()
            )
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if self.fusion is not None and g is not None:
            x = torch.cat([x, self.fusion(x, g)], dim=1)
        return self.conv(x)


class Decoder(nn.Module):
    """(B, K, C, h, w) + guidance at 2h and 4h -> logits (B, K, 4h, 4w)."""

    def __init__(
        self, dim: int, dims: tuple[int, int], guidance_dims: tuple[int, int], fusion: str = "attention"
    ) -> None:
        super().__init__()
        self.up1 = Up(dim, dims[0], guidance_dims[0], fusion)
        self.up2 = Up(dims[0], dims[1], guidance_dims[1], fusion)
        self.head = nn.Conv2d(dims[1], 1, 3, padding=1)

    def forward(self, x: torch.Tensor, g1: torch.Tensor | None, g2: torch.Tensor | None) -> torch.Tensor:
        b, k, c, h, w = x.shape
        y = self.up2(self.up1(x.reshape(b * k, c, h, w), g1), g2)
        return self.head(y).reshape(b, k, *y.shape[-2:])
