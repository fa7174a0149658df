"""The ``probe`` preset: AerOSeg's interface at almost no compute, for measuring the host-side pipeline.

images (B, 3, T, T) in [0, 1] and K class names in, logits (B, K, T, T) out, like ``AerOSeg``: the image is
downsampled by the CLIP patch (16; the centre pixel of each patch, which costs nothing, where averaging would cost more
than everything else), each patch's colour is scored against a per-class embedding (a 1x1 convolution) and the scores
are repeated over the patch (nearest upsampling: one write of the output, the floor of any model's cost). The
embedding of a class is derived from the SHA-256 of its name, so the model is the same in every process, run and
machine, and it is equivariant to class order by construction.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from .config import AerOSegConfig


def class_embedding(name: str) -> tuple[list[float], float]:
    """A stable (weights for R, G, B; bias) in [-1, 1) for a class name: SHA-256 bytes, not Python's ``hash``."""
    raw = hashlib.sha256(name.encode("utf-8")).digest()
    values = [int.from_bytes(raw[2 * i : 2 * i + 2], "big") / 32768.0 - 1.0 for i in range(4)]
    return values[:3], values[3]


class ProbeModel(nn.Module):
    """``model(images, class_names)`` -> logits (B, K, T, T); ``probabilities`` = sigmoid, as AerOSeg."""

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.register_buffer("scale", torch.tensor(8.0), persistent=False)  # spreads the logits over (-8, 8)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if not class_names:
            raise ValueError("at least one class name is needed")
        pairs = [class_embedding(n) for n in class_names]
        weight = torch.tensor([w for w, _ in pairs], dtype=torch.float32, device=images.device)  # (K, 3)
        bias = torch.tensor([b for _, b in pairs], dtype=torch.float32, device=images.device)  # (K,)
        p, (height, width) = self.cfg.clip.patch_size, images.shape[-2:]
        x = images[:, :, p // 2 :: p, p // 2 :: p].float() - 0.5  # (B, 3, ceil(T/16), ceil(T/16)), patch centres
        logits = F.conv2d(x, (weight * self.scale)[:, :, None, None], bias * self.scale / 4)  # (B, K, T/16, T/16)
        b, k, h, w = logits.shape
        full = logits[:, :, :, None, :, None].expand(b, k, h, p, w, p).reshape(b, k, h * p, w * p)
        return full[:, :, :height, :width]
