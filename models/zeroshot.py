"""Training-free zero-shot CLIP: the rotated, prompt-ensembled correlation alone, upsampled to the input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .clip_backbone import CLIP_MEAN, CLIP_STD, CLIPBackbone, normalize
from .config import AerOSegConfig
from .correlation import cost_volume


class ZeroShotCLIP(nn.Module):
    """Same call as ``AerOSeg``: images (B, 3, H, W) in [0, 1], K names -> logits (B, K, H, W).

    Logits are CLIP's scaled cosine similarities (softmax over classes).
    """

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.clip = CLIPBackbone(cfg)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        text = self.clip.text_features(list(class_names))
        dense, _ = self.clip.image_features(normalize(images, CLIP_MEAN, CLIP_STD))
        corr = cost_volume(dense, text, self.cfg.fp32_correlation).mean(dim=1) * self.clip.model.logit_scale.exp()
        return F.interpolate(corr, size=images.shape[-2:], mode="bilinear", align_corners=False)
