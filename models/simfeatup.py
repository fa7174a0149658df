"""SimFeatUp: SegEarth-OV's feature upsampler, a joint bilateral upsampler (FeatUp's JBU) with a learned range
kernel, applied four times (x2 each) to take CLIP's patch features to the input resolution.

Layer names and shapes are those of the published weights (``simfeatup_dev/weights/*.ckpt`` in likyoo/SegEarth-OV:
a Lightning checkpoint whose ``state_dict`` holds ``upsampler.up.*`` and ``upsampler.fixup_proj.1.*``), so they load
as they are; the training-time Dropout2d layers there are identities here (inference only, in either module mode),
which keeps the layer indices. SegEarth-OV runs the adaptive convolution as a CUDA extension; here it is a loop over
the kernel taps (the same sums), which runs on any device and needs no more memory than the feature map itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shifted_sum(padded: torch.Tensor, kernel: torch.Tensor, diameter: int) -> torch.Tensor:
    """Per-pixel kernels: out[b, c, h, w] = sum_ij kernel[b, i * d + j, h, w] * padded[b, c, h + i, w + j].

    padded (B, C, H + d - 1, W + d - 1), kernel (B, d * d, H, W) -> (B, C, H, W): one multiply-add over the whole
    feature map per tap (SimFeatUp's ``AdaptiveConv``, without its CUDA extension)."""
    h, w = padded.shape[-2] - diameter + 1, padded.shape[-1] - diameter + 1
    kernel = kernel.to(padded.dtype)
    out = padded[:, :, :h, :w] * kernel[:, :1]
    for t in range(1, diameter * diameter):
        i, j = divmod(t, diameter)
        out.addcmul_(padded[:, :, i : i + h, j : j + w], kernel[:, t : t + 1])
    return out


class JointBilateralUpsampler(nn.Module):
    """One x2 step (FeatUp's ``JBULearnedRange``): a spatial Gaussian times a range kernel from the guidance image
    (a learned projection, softmax over the window), corrected by a small learned fix-up, applied to the bicubically
    enlarged features. source (B, C, h, w), guidance (B, 3, H, W) -> (B, C, H, W)."""

    def __init__(self, guidance_dim: int = 3, key_dim: int = 32, radius: int = 5) -> None:
        super().__init__()
        self.radius, self.diameter, self.key_dim = radius, 2 * radius + 1, key_dim
        taps = self.diameter**2
        self.range_temp = nn.Parameter(torch.tensor(0.0))
        self.range_proj = nn.Sequential(
            nn.Conv2d(guidance_dim, key_dim, 1), nn.GELU(), nn.Identity(), nn.Conv2d(key_dim, key_dim, 1)
        )
        self.fixup_proj = nn.Sequential(
            nn.Conv2d(guidance_dim + taps, taps, 1), nn.GELU(), nn.Identity(), nn.Conv2d(taps, taps, 1)
        )
        self.sigma_spatial = nn.Parameter(torch.tensor(1.0))

    def range_kernel(self, guidance: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, d * d, H, W): softmax over the window of key similarities to the centre pixel."""
        keys = self.range_proj(guidance)
        h, w = keys.shape[-2:]
        padded = F.pad(keys, [self.radius] * 4, mode="reflect")
        d = self.diameter
        sims = torch.stack([(padded[:, :, i : i + h, j : j + w] * keys).sum(1) for i in range(d) for j in range(d)], 1)
        temp = self.range_temp.exp().clamp_min(1e-4).clamp_max(1e4)
        return F.softmax(temp * sims, dim=1)

    def spatial_kernel(self, device: torch.device) -> torch.Tensor:
        """(1, d * d, 1, 1): exp(-(x^2 + y^2) / 2 sigma^2) on a [-1, 1]^2 grid of d x d taps."""
        line = torch.linspace(-1, 1, self.diameter, device=device)
        y, x = torch.meshgrid(line, line, indexing="ij")
        dist = (y.square() + x.square()).reshape(1, -1, 1, 1)
        return torch.exp(-dist / (2 * self.sigma_spatial**2))

    def forward(self, source: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        size = guidance.shape[-2:]
        kernel = self.range_kernel(guidance) * self.spatial_kernel(source.device)
        kernel = kernel / kernel.sum(1, keepdim=True).clamp(1e-7)
        kernel = kernel + 0.1 * self.fixup_proj(torch.cat([kernel, guidance], dim=1))
        hr = F.interpolate(source, size=size, mode="bicubic", align_corners=False)
        return shifted_sum(F.pad(hr, [self.radius] * 4, mode="reflect"), kernel, self.diameter)


class SimFeatUp(nn.Module):
    """SegEarth-OV's ``JBUOne``: one JBU layer (radius 5) applied four times, each step guided by the image averaged
    down to twice the current size, then a 1x1 fix-up (x 0.1) added. features (B, C, h, w) and the CLIP-normalised
    image (B, 3, 16h, 16w) -> (B, C, 16h, 16w)."""

    def __init__(self, feat_dim: int, steps: int = 4) -> None:
        super().__init__()
        self.steps = steps
        self.up = JointBilateralUpsampler(3, 32, radius=5)
        self.fixup_proj = nn.Sequential(nn.Identity(), nn.Conv2d(feat_dim, feat_dim, 1))

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            h, w = source.shape[-2:]
            source = self.up(source, F.adaptive_avg_pool2d(image, (2 * h, 2 * w)))
        return self.fixup_proj(source) * 0.1 + source
