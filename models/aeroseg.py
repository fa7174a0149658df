"""The AerOSeg network: CLIP correlation, SAM guidance, two refinement blocks, back-projection, decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backprojection import SemanticBackProjection
from .class_refinement import ClassRefinement
from .clip_backbone import CLIP_MEAN, CLIP_STD, CLIPBackbone
from .config import AerOSegConfig
from .correlation import CorrelationEmbedding, cost_volume
from .decoder import Decoder
from .sam_guidance import SAM_MEAN, SAM_STD, SAMGuidance
from .spatial_refinement import SpatialRefinement

UNSELECTED_LOGIT = -100.0


@dataclass
class AerOSegOutput:
    """Training-mode output: logits and the back-projection loss inputs (None when back-projection is off)."""

    logits: torch.Tensor  # (B, K, H, W)
    backproj: torch.Tensor | None  # (B, C_target, h, w)
    backproj_target: torch.Tensor | None  # (B, C_target, h', w'), detached


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - m) / s


class GuidanceProjection(nn.Sequential):
    """Resize a guidance map and project it: Conv3x3 + ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return super().forward(x)


class AerOSeg(nn.Module):
    """``model(images, class_names)``: images (B, 3, H, W) RGB in [0, 1], H = W a multiple of the CLIP patch.

    Evaluation: returns logits (B, K, H, W). Training: returns ``AerOSegOutput`` (logits + back-projection terms).
    Any number of classes from 1 up; above ``max_classes`` the classes with the highest correlation are refined and
    the rest get logit -100 (CAT-Seg's rule).
    """

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.clip = CLIPBackbone(cfg)
        c, cg = cfg.hidden_dim, cfg.guidance_dim
        rp = (4 if cfg.rotations else 1) * len(cfg.templates)
        self.correlation = CorrelationEmbedding(rp, c)
        self.sam: SAMGuidance | None = None
        if cfg.guidance == "sam":
            self.sam = SAMGuidance(cfg.sam, finetune=cfg.finetune_guidance, sdpa=cfg.sdpa)
            src_dims = self.sam.out_dims  # (neck, early tap, late tap)
        elif cfg.guidance == "clip":
            src_dims = (cfg.clip.embed_dim, cfg.clip.vision_width, cfg.clip.vision_width)
        g_on = cfg.guidance != "none"
        gd1, gd2 = cfg.decoder_guidance_dims if g_on else (0, 0)
        if g_on:
            self.spatial_guidance = GuidanceProjection(src_dims[0], cg)
            self.decoder_guidance1 = GuidanceProjection(src_dims[2], gd1)  # late tap (block 16) at 2x
            self.decoder_guidance2 = GuidanceProjection(src_dims[1], gd2)  # early tap (block 8) at 4x
        self.text_guidance = nn.Sequential(nn.Linear(cfg.clip.embed_dim, cg), nn.ReLU(inplace=True))
        self.spatial_blocks = nn.ModuleList()
        self.class_blocks = nn.ModuleList()
        for _ in range(cfg.num_refinement_blocks):
            self.spatial_blocks.append(SpatialRefinement(c, cg if g_on else 0, cfg.num_heads, cfg.window_size))
            self.class_blocks.append(ClassRefinement(c, cg, cfg.num_heads, cfg.max_classes, cfg.class_pool_train))
        self.backproj: SemanticBackProjection | None = None
        if cfg.backproj and cfg.backproj_classes > 0:
            target_dim = {"sam": cfg.sam.out_chans, "clip": cfg.clip.embed_dim, "rgb": 3}[cfg.backproj_target]
            if cfg.backproj_target == "sam" and self.sam is None:
                raise ValueError("backproj_target='sam' needs guidance='sam'")
            self.backproj = SemanticBackProjection(cfg.backproj_classes, c, cfg.backproj_hidden, target_dim)
        self.decoder = Decoder(c, cfg.decoder_dims, (gd1, gd2))

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities of this model's logits (independent sigmoids, as trained with BCE)."""
        return torch.sigmoid(logits.float())

    def _guidance(self, images: torch.Tensor, clip_dense: torch.Tensor, clip_taps: list[torch.Tensor]):
        """Guidance source maps (spatial, early, late) and the SAM neck (for back-projection), or Nones."""
        if self.sam is not None:
            size = self.cfg.sam_input_size
            x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
            neck, early, late = self.sam(normalize(x, SAM_MEAN, SAM_STD))
            return neck, early, late
        if self.cfg.guidance == "clip":
            return clip_dense[:, 0], clip_taps[0], clip_taps[1]
        return None, None, None

    def forward(self, images: torch.Tensor, class_names: list[str]):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if not class_names:
            raise ValueError("at least one class name is needed")
        b, _, height, width = images.shape
        text = self.clip.text_features(list(class_names))  # (K, P, D)
        dense, taps = self.clip.image_features(
            normalize(images, CLIP_MEAN, CLIP_STD), with_guidance=self.cfg.guidance == "clip"
        )  # (B, R, D, h, w)
        h, w = dense.shape[-2:]
        corr = cost_volume(dense, text)  # (B, R*P, K, h, w)
        k_all = corr.shape[2]
        selected = None
        if k_all > self.cfg.max_classes:
            score = corr.detach().amax(dim=(0, 1, 3, 4))
            selected = score.topk(self.cfg.max_classes).indices.sort().values
            corr, text = corr[:, :, selected], text[selected]
        x = self.correlation(corr)  # (B, K, C, h, w)

        src_s, src_early, src_late = self._guidance(images, dense, taps)
        g_spatial = g1 = g2 = None
        if src_s is not None:
            g_spatial = self.spatial_guidance(src_s, (h, w))
            g1 = self.decoder_guidance1(src_late, (2 * h, 2 * w))
            g2 = self.decoder_guidance2(src_early, (4 * h, 4 * w))
        g_text = self.text_guidance(text.mean(dim=1).to(x.dtype)).unsqueeze(0)  # (1, K, Cg)

        for spatial, klass in zip(self.spatial_blocks, self.class_blocks, strict=True):
            x = spatial(x, g_spatial)
            x = klass(x, g_text)

        logits = self.decoder(x, g1, g2)
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        if selected is not None:
            full = logits.new_full((b, k_all, height, width), UNSELECTED_LOGIT)
            full[:, selected] = logits
            logits = full
        if not self.training:
            return logits
        recon = target = None
        if self.backproj is not None and self.cfg.backproj:
            recon = self.backproj(x)
            target = {"sam": src_s if self.sam is not None else None, "clip": dense[:, 0], "rgb": images}[
                self.cfg.backproj_target
            ]
            target = target.detach()
        return AerOSegOutput(logits, recon, target)


class ZeroShotCLIP(nn.Module):
    """Training-free: the rotated, prompt-ensembled CLIP correlation alone, upsampled to the input.

    Same call as ``AerOSeg``; logits are CLIP's scaled cosine similarities (softmax over classes).
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
        corr = cost_volume(dense, text).mean(dim=1) * self.clip.model.logit_scale.exp()
        return F.interpolate(corr, size=images.shape[-2:], mode="bilinear", align_corners=False)
