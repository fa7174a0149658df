"""Correlation (cost volume) between dense image embeddings and class text embeddings, and its embedding."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def autocast_on(device_type: str) -> bool:
    """Whether autocast is active for ``device_type`` (False for devices without autocast, e.g. meta)."""
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def fp32_region(enabled: bool, device_type: str) -> contextlib.AbstractContextManager:
    """Autocast switched off inside (when ``enabled`` and autocast is on): the ops run in their inputs' dtype.

    Class scores differ by about 0.01 while bf16 keeps about 3 significant digits, so the cost volume, its embedding
    and the final logits are computed in fp32 (as the references, which run CLIP in fp32); backbones stay in bf16.
    """
    if enabled and autocast_on(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def cost_volume(image: torch.Tensor, text: torch.Tensor, fp32: bool = False) -> torch.Tensor:
    """Raw cosine similarity per position x rotation x class x prompt (no temperature, no softmax).

    image (B, R, D, h, w) and text (K, P, D), both L2-normalised -> (B, R*P, K, h, w), channels rotation-major;
    with ``fp32`` both are cast to fp32 first (call inside ``fp32_region`` so autocast does not cast them back).
    """
    b, r, _, h, w = image.shape
    k, p, _ = text.shape
    if fp32:
        image, text = image.float(), text.float()
    corr = torch.einsum("brdhw,kpd->brpkhw", image, text.to(image.dtype))
    return corr.reshape(b, r * p, k, h, w)


class CorrelationEmbedding(nn.Module):
    """Conv2d(R*P -> hidden, 7x7) applied to every class's cost volume: (B, R*P, K, h, w) -> (B, K, hidden, h, w)."""

    def __init__(self, in_channels: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=7, padding=3)

    def forward(self, corr: torch.Tensor) -> torch.Tensor:
        b, c, k, h, w = corr.shape
        x = corr.transpose(1, 2).reshape(b * k, c, h, w)
        return self.conv(x).reshape(b, k, -1, h, w)
