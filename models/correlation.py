"""Correlation (cost volume) between dense image embeddings and class text embeddings, and its embedding."""

from __future__ import annotations

import torch
from torch import nn


def cost_volume(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Raw cosine similarity per position x rotation x class x prompt (no temperature, no softmax).

    image (B, R, D, h, w) and text (K, P, D), both L2-normalised -> (B, R*P, K, h, w), channels rotation-major.
    """
    b, r, _, h, w = image.shape
    k, p, _ = text.shape
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
