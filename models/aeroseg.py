"""The AerOSeg network: CLIP correlation, SAM guidance, two refinement blocks, back-projection, decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backprojection import SemanticBackProjection
from .class_refinement import ClassRefinement
from .clip_backbone import CLIP_MEAN, CLIP_STD, CLIPBackbone, normalize
from .config import AerOSegConfig
from .correlation import CorrelationEmbedding, cost_volume, fp32_region
from .decoder import Decoder
from .guidance import GuidanceProjection, LearnedUpsample, resize, stage_taps
from .sam_guidance import SAM_MEAN, SAM_STD, SAMGuidance
from .spatial_refinement import SpatialRefinement

UNSELECTED_LOGIT = -100.0


@dataclass
class AerOSegOutput:
    """Training-mode output: logits and the back-projection loss inputs (None when back-projection is off)."""

    logits: torch.Tensor  # (B, K, H, W)
    backproj: torch.Tensor | None  # (B, C_target, h, w)
    backproj_target: torch.Tensor | None  # (B, C_target, h, w), detached, resized to the reconstruction's grid
    ignore_pixels: str = "negative"  # how the segmentation loss treats 255 pixels (the model config's switch)


@dataclass
class GuidanceMaps:
    """Projected guidance: spatial (B, Cg, h, w), decoder stages (B, gd1, 2h, 2w) and (B, gd2, 4h, 4w); the
    back-projection's SAM target (B, 256, S, S) when SAM guides."""

    spatial: torch.Tensor | None = None
    stage1: torch.Tensor | None = None
    stage2: torch.Tensor | None = None
    sam_neck: torch.Tensor | None = None


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
        g_on = cfg.guidance != "none"
        gd1, gd2 = cfg.decoder_guidance_dims if g_on else (0, 0)
        if g_on:
            self._build_guidance(cfg)
        self.text_guidance = nn.Sequential(nn.Linear(cfg.clip.embed_dim, cg), nn.ReLU(inplace=True))
        self.spatial_blocks = nn.ModuleList()
        self.class_blocks = nn.ModuleList()
        for _ in range(cfg.num_refinement_blocks):
            self.spatial_blocks.append(
                SpatialRefinement(
                    c, cg if g_on else 0, cfg.num_heads, cfg.window_size, cfg.refinement, cfg.shifted_window_mask
                )
            )
            self.class_blocks.append(
                ClassRefinement(c, cg, cfg.num_heads, cfg.max_classes, cfg.class_pool_train, cfg.refinement)
            )
        self.backproj: SemanticBackProjection | None = None
        if cfg.backproj and cfg.backproj_classes > 0:
            target_dim = {"sam": cfg.sam.out_chans, "clip": cfg.clip.embed_dim, "rgb": 3}[cfg.backproj_target]
            if cfg.backproj_target == "sam" and self.sam is None:
                raise ValueError("backproj_target='sam' needs guidance='sam'")
            self.backproj = SemanticBackProjection(cfg.backproj_classes, c, cfg.backproj_hidden, target_dim)
        self.decoder = Decoder(c, cfg.decoder_dims, (gd1, gd2), cfg.decoder_fusion)

    def _build_guidance(self, cfg: AerOSegConfig) -> None:
        """Guidance encoder (SAM) and the projections of its maps (names kept from format-1 checkpoints).

        Both taps come from the same encoder, so they have the same width whichever stage each one feeds."""
        if cfg.guidance == "sam":
            self.sam = SAMGuidance(cfg.sam, finetune=cfg.finetune_guidance, sdpa=cfg.sdpa)
            spatial_dim, stage_dims = self.sam.out_dims[0], self.sam.out_dims[1:]
        else:  # CLIP guidance (the CAT-Seg baseline): final features and blocks L/3, 2L/3
            spatial_dim, stage_dims = cfg.clip.embed_dim, (cfg.clip.vision_width, cfg.clip.vision_width)
            if cfg.clip_guidance == "catseg":
                self.guidance_upsample = LearnedUpsample(cfg.clip.vision_width, cfg.clip_guidance_upsample_dims)
                stage_dims = cfg.clip_guidance_upsample_dims
        self.spatial_guidance = GuidanceProjection(spatial_dim, cfg.guidance_dim)
        self.decoder_guidance1 = GuidanceProjection(stage_dims[0], cfg.decoder_guidance_dims[0])  # first stage, 2x
        self.decoder_guidance2 = GuidanceProjection(stage_dims[1], cfg.decoder_guidance_dims[1])  # second stage, 4x

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities of this model's logits (independent sigmoids, as trained with BCE), in fp32."""
        return torch.sigmoid(logits.float())

    def guidance_sources(
        self, images: torch.Tensor, clip_maps: list[torch.Tensor], dense: torch.Tensor
    ) -> GuidanceMaps:
        """The guidance maps before projection: SAM's neck and block taps, or CLIP's final features and block taps
        (after CAT-Seg's learned upsampling); each at its encoder's grid. Empty without guidance."""
        cfg = self.cfg
        if self.sam is not None:
            x = resize(images, (cfg.sam_input_size, cfg.sam_input_size), cfg.guidance_antialias)
            neck, early, late = self.sam(normalize(x, SAM_MEAN, SAM_STD))
            spatial, sam_neck = neck, neck
        elif cfg.guidance == "clip":
            raw, early, late = clip_maps
            spatial, sam_neck = (raw if cfg.clip_guidance == "catseg" else dense[:, 0]), None
        else:
            return GuidanceMaps()
        first, second = stage_taps(cfg.decoder_guidance_order, early, late)
        if cfg.guidance == "clip" and cfg.clip_guidance == "catseg":
            first, second = self.guidance_upsample(first, second)
        return GuidanceMaps(spatial, first, second, sam_neck)

    def _project(self, src: GuidanceMaps, grid: tuple[int, int]) -> GuidanceMaps:
        """Guidance sources resized to the grid (spatial), 2x and 4x (decoder stages) and projected (Conv3x3+ReLU)."""
        if src.spatial is None:
            return src
        (h, w), aa, up = grid, self.cfg.guidance_antialias, self.cfg.guidance_upsample
        return GuidanceMaps(
            self.spatial_guidance(src.spatial, (h, w), aa, up),
            self.decoder_guidance1(src.stage1, (2 * h, 2 * w), aa, up),
            self.decoder_guidance2(src.stage2, (4 * h, 4 * w), aa, up),
            src.sam_neck,
        )

    def _select_classes(self, corr: torch.Tensor, text: torch.Tensor):
        """Above ``max_classes``, keep those with the highest correlation: (corr, text, kept indices or None)."""
        if corr.shape[2] <= self.cfg.max_classes:
            return corr, text, None
        score = corr.detach().amax(dim=(0, 1, 3, 4))
        selected = score.topk(self.cfg.max_classes).indices.sort().values
        return corr[:, :, selected], text[selected], selected

    def _text_guidance(self, text: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(K, P, D) prompt embeddings -> (1, K, Cg): prompt mean (re-normalised, as CAT-Seg), Linear + ReLU."""
        mean = text.mean(dim=1)
        if self.cfg.refinement == "catseg":
            mean = F.normalize(mean.float(), dim=-1)
        return self.text_guidance(mean.to(dtype)).unsqueeze(0)

    def _encode(self, images: torch.Tensor, class_names: list[str]):
        """Inputs checked, then (prompt embeddings (K, P, D), dense image embeddings (B, R, D, h, w), guidance
        sources)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if not class_names:
            raise ValueError("at least one class name is needed")
        cfg = self.cfg
        if self.training and cfg.backproj and self.backproj is None:
            raise ValueError(
                "back-projection is on (backproj=True) but the model was built without backproj_classes: build it "
                "with backproj_classes=<number of training classes>, or with backproj=False"
            )
        text = self.clip.text_features(list(class_names))  # (K, P, D)
        dense, clip_maps = self.clip.image_features(
            normalize(images, CLIP_MEAN, CLIP_STD), with_guidance=cfg.guidance == "clip"
        )  # (B, R, D, h, w)
        return text, dense, self.guidance_sources(images, clip_maps, dense)

    @staticmethod
    def _all_classes(logits: torch.Tensor, selected: torch.Tensor | None, k: int) -> torch.Tensor:
        """(B, K', H, W) logits of the kept classes -> (B, K, H, W), the others at ``UNSELECTED_LOGIT``."""
        if selected is None:
            return logits
        full = logits.new_full((logits.shape[0], k, *logits.shape[2:]), UNSELECTED_LOGIT)
        full[:, selected] = logits
        return full

    def forward(self, images: torch.Tensor, class_names: list[str]):
        cfg = self.cfg
        height, width = images.shape[-2:]
        text, dense, sources = self._encode(images, class_names)
        logits, x, selected = self.aggregate(dense, text, sources)
        with fp32_region(cfg.fp32_correlation, images.device.type):
            logits = logits.float() if cfg.fp32_correlation else logits
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        logits = self._all_classes(logits, selected, len(class_names))
        if not self.training:
            return logits
        return AerOSegOutput(logits, *self._backprojection(x, images, dense, sources), cfg.ignore_pixels)

    def predict_proba(
        self, images: torch.Tensor, class_names: list[str], size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Probabilities as CAT-Seg's whole-image inference makes them: the sigmoid on the decoder's grid (4h x 4w),
        then bilinear to ``size`` (default: the input's). ``sigmoid(model(x))`` resizes the logits first instead, as
        CAT-Seg's sliding-window inference does per window. -> (B, K, *size) float32."""
        text, dense, sources = self._encode(images, class_names)
        logits, _, selected = self.aggregate(dense, text, sources)
        probs = self.probabilities(self._all_classes(logits, selected, len(class_names)))
        return F.interpolate(probs, size=size or tuple(images.shape[-2:]), mode="bilinear", align_corners=False)

    def aggregate(self, dense: torch.Tensor, text: torch.Tensor, sources: GuidanceMaps):
        """The cost aggregation (OVRS's and CAT-Seg's ``Aggregator``): dense image embeddings (B, R, D, h, w) and
        prompt embeddings (K, P, D), both L2-normalised, and the guidance sources -> (logits (B, K', 4h, 4w), refined
        features (B, K', C, h, w), the K' <= max_classes kept class indices or None when all are kept)."""
        cfg = self.cfg
        with fp32_region(cfg.fp32_correlation, dense.device.type):
            corr = cost_volume(dense, text, cfg.fp32_correlation)  # (B, R*P, K, h, w)
            corr, text, selected = self._select_classes(corr, text)
            x = self.correlation(corr)  # (B, K, C, h, w)
        g = self._project(sources, tuple(dense.shape[-2:]))
        g_text = self._text_guidance(text, x.dtype)  # (1, K, Cg)
        for spatial, klass in zip(self.spatial_blocks, self.class_blocks, strict=True):
            x = spatial(x, g.spatial)
            x = klass(x, g_text)
        return self.decoder(x, g.stage1, g.stage2), x, selected

    def _backprojection(self, x: torch.Tensor, images: torch.Tensor, dense: torch.Tensor, g: GuidanceMaps):
        """(reconstruction (B, C_t, h, w), detached target resized to (h, w)) or (None, None)."""
        if self.backproj is None or not self.cfg.backproj:
            return None, None
        recon = self.backproj(x)
        target = {"sam": g.sam_neck, "clip": dense[:, 0], "rgb": images}[self.cfg.backproj_target]
        target = resize(target.detach(), tuple(recon.shape[-2:]), self.cfg.guidance_antialias)
        return recon, target
