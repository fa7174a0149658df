"""Toy models with the segment pipeline's model interface (``model(images, class_names)`` -> logits), whose
exact results the tests can compute another way."""

from __future__ import annotations

import torch
from torch import nn


class PixelModel(nn.Module):
    """A per-pixel toy model (1x1 convolution): exactly translation-equivariant, so tiling must not change it."""

    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.conv.weight.data *= 6
        self.seen: list[torch.Tensor] = []

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        assert images.shape[1] == 3 and len(class_names) == self.conv.out_channels
        self.seen.append(images.detach().clone())
        return self.conv(images)


class ConvModel(PixelModel):
    """A 3x3 (reflect-padded) convolution: equivariant except within one pixel of a window border."""

    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__(num_classes, seed)
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1, padding_mode="reflect")
        self.conv.weight.data *= 4
