"""Semantic back-projection (training only): rebuild the guidance features from the refined class features.

Pushes the correlation features to keep the spatial semantics of the guidance encoder; the target is detached.
"""

from __future__ import annotations

import torch
from torch import nn


class SemanticBackProjection(nn.Module):
    """(B, K, C, h, w) refined features -> (B, target_dim, h, w): 3 Linear layers with GELU over concat(classes)."""

    def __init__(self, num_classes: int, dim: int, hidden: int, target_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mlp = nn.Sequential(
            nn.Linear(num_classes * dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, target_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, c, h, w = x.shape
        if k != self.num_classes:
            raise ValueError(
                f"back-projection is sized for {self.num_classes} training classes, got {k}; "
                "train with the class list the model was built for"
            )
        y = x.permute(0, 3, 4, 1, 2).reshape(b, h * w, k * c)
        return self.mlp(y).permute(0, 2, 1).reshape(b, -1, h, w)
