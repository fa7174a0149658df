"""Guidance maps: the encoder features that steer spatial refinement and the two decoder stages.

Sources are SAM's neck and two block taps (AerOSeg) or CLIP's final features and two block taps (CAT-Seg baseline).
Which tap feeds which decoder stage, and how maps are brought to each stage's size, are config switches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size: tuple[int, int], antialias: bool, upsample: str = "bilinear") -> torch.Tensor:
    """Resize (B, C, H, W) to ``size``: shrinking bilinearly (with ``antialias``, low-pass filtered first),
    enlarging with ``upsample`` ("bilinear" or "nearest": each value repeated, as the paper's Eq. 10)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    if not shrink and upsample == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    if not (antialias and shrink):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    # CPUs have no half-precision antialiased kernel (bf16 autocast hands SAM's maps over in bf16): filter in fp32
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return F.interpolate(work, size=size, mode="bilinear", align_corners=False, antialias=True).to(x.dtype)


class GuidanceProjection(nn.Sequential):
    """Resize a guidance map and project it: (B, C_in, H, W) -> (B, C_out, *size), Conv3x3 + ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, size: tuple[int, int], antialias: bool = False, upsample: str = "bilinear"
    ) -> torch.Tensor:
        return super().forward(resize(x, size, antialias, upsample))


def stage_taps(order: str, early: torch.Tensor, late: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The taps for (first, coarser decoder stage, second stage).

    ``early_coarse`` (CAT-Seg, OVRS: ``layers[0]`` -> ``upsample1`` -> first stage) or ``late_coarse`` (this
    project's v1, kept for its checkpoints).
    """
    return (early, late) if order == "early_coarse" else (late, early)


class LearnedUpsample(nn.Module):
    """CAT-Seg's CLIP guidance upsampling: ConvTranspose2d k2/s2 and k4/s4 of two (B, C, h, w) block taps.

    (first (B, C, h, w), second (B, C, h, w)) -> ((B, dims[0], 2h, 2w), (B, dims[1], 4h, 4w)).
    """

    def __init__(self, channels: int, dims: tuple[int, int]) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(channels, dims[0], kernel_size=2, stride=2)
        self.up2 = nn.ConvTranspose2d(channels, dims[1], kernel_size=4, stride=4)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.up1(first), self.up2(second)
