"""The ``probe`` preset: AerOSeg's interface at almost no compute, for measuring the host-side pipeline.

images (B, 3, T, T) in [0, 1] and K class names in, scores (B, K, T, T) out, like ``AerOSeg``. Each class scores a
pixel by how far its colour lies along the class's colour direction, 0.5 + w . (rgb - 0.5) + b: three fused
multiply-adds, so the cost is about one write of the output, the floor of any model's. The scores are already
probabilities (|w| <= 0.3 per channel, |b| <= 0.02: always inside (0.03, 0.97)), so ``probabilities`` returns them
as they are: a full-resolution sigmoid would cost more than the rest of the pipeline on a CPU and is not what the
probe is for. A class's weights come from the SHA-256 of its name, so the model is the same in every process, run
and machine, and it is equivariant to class order by construction.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from .config import AerOSegConfig


def class_embedding(name: str) -> tuple[list[float], float]:
    """A stable colour direction (R, G, B weights in [-0.3, 0.3)) and a bias in [-0.02, 0.02) for a class name:
    SHA-256 bytes, not Python's ``hash``."""
    raw = hashlib.sha256(name.encode("utf-8")).digest()
    u = [int.from_bytes(raw[2 * i : 2 * i + 2], "big") / 32768.0 - 1.0 for i in range(4)]
    return [0.3 * v for v in u[:3]], 0.02 * u[3]


class ProbeModel(nn.Module):
    """``model(images, class_names)`` -> scores (B, K, T, T) in (0, 1); ``probabilities`` returns them unchanged."""

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return logits.float()

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if not class_names:
            raise ValueError("at least one class name is needed")
        pairs = [class_embedding(n) for n in class_names]
        weight = torch.tensor([w for w, _ in pairs], dtype=torch.float32, device=images.device)  # (K, 3)
        bias = torch.tensor([b for _, b in pairs], dtype=torch.float32, device=images.device)  # (K,)
        bias = 0.5 + bias - 0.5 * weight.sum(dim=1)  # 0.5 + w . (rgb - 0.5) + b as w . rgb + bias
        x, k = images.float(), len(class_names)
        scores = torch.mul(x[:, 0:1], weight[:, 0].view(1, k, 1, 1))  # (B, K, T, T)
        scores.addcmul_(x[:, 1:2], weight[:, 1].view(1, k, 1, 1)).addcmul_(x[:, 2:3], weight[:, 2].view(1, k, 1, 1))
        return scores.add_(bias.view(1, k, 1, 1))
