"""SegEarth-OV (Li et al., CVPR 2025; likyoo/SegEarth-OV ``segearth_segmentor.py``): training-free open-vocabulary
segmentation for remote sensing. CLIP ViT-B/16 with SegEarth-OV's last block (``models.segearth_clip``), SimFeatUp
to the window's resolution (``models.simfeatup``), cosine logits per query with the CLS token's logits subtracted
(global-bias alleviation, lambda = -0.3), scores softmax(50 * logits) over every query, a class's score the highest
of its synonyms'.

Class names: ``"building|roof"`` is one class with two queries (SegEarth-OV's name files write ``building,roof``);
every query is its own text embedding in the softmax. A class named (or with a synonym) ``background`` is where
SegEarth-OV puts the pixels whose best score is under its probability threshold (``prob_thd``): the pipeline does
that with ``--unknown-threshold`` (``background_index``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .clip_backbone import CLIP_MEAN, CLIP_STD, normalize, split_class_name
from .config import AerOSegConfig
from .correlation import fp32_region
from .segearth_clip import SegEarthCLIP
from .simfeatup import SimFeatUp


def split_queries(class_names: list[str]) -> tuple[list[str], list[list[int]]]:
    """K class names with ``|`` synonyms -> (the Q queries in order, for each class the indices of its queries)."""
    queries: list[str] = []
    groups: list[list[int]] = []
    for name in class_names:
        parts = split_class_name(name)
        groups.append(list(range(len(queries), len(queries) + len(parts))))
        queries += parts
    return queries, groups


class SegEarthOV(nn.Module):
    """Same call as ``AerOSeg``: images (B, 3, H, W) in [0, 1], K names -> logits (B, K, H, W).

    The logits are the logarithms of SegEarth-OV's class scores (log-softmax over all queries at temperature
    ``logit_scale``, then the maximum over each class's synonyms), so ``probabilities`` (their exponential) are its
    scores exactly and the argmax is its prediction. ``query_logits`` gives SegEarth-OV's own logits per query.
    """

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.clip = SegEarthCLIP(cfg)
        self.upsampler = SimFeatUp(cfg.clip.embed_dim)
        self.upsampler.requires_grad_(False)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return logits.float().exp()

    @staticmethod
    def background_index(class_names: list[str]) -> int | None:
        """The first class named (or with a synonym) ``background``, or None: low-score pixels go there."""
        for i, name in enumerate(class_names):
            if any(p.lower() == "background" for p in split_class_name(name)):
                return i
        return None

    def query_logits(self, images: torch.Tensor, queries: list[str]) -> torch.Tensor:
        """SegEarth-OV's ``forward_feature`` for a batch: images (B, 3, H, W) in [0, 1], H and W multiples of the
        patch -> logits (B, Q, H, W), cosine(patch, query) + lambda * cosine(CLS, query), in fp32."""
        x = normalize(images, CLIP_MEAN, CLIP_STD)
        cls, patches = self.clip.encode_image(x)
        features = self.upsampler(patches, x)
        text = self.clip.query_features(queries)
        with fp32_region(self.cfg.fp32_correlation, images.device.type):  # cosines differ in the 3rd digit
            features = F.normalize(features.float(), dim=1)
            logits = torch.einsum("bdhw,qd->bqhw", features, text.float())
            cls_logits = F.normalize(cls.float(), dim=-1) @ text.float().T
            return logits + self.cfg.segearth.cls_token_lambda * cls_logits[:, :, None, None]

    def class_log_scores(self, query_logits: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
        """(B, Q, H, W) query logits -> (B, K, H, W) log class scores (SegEarth-OV's ``postprocess_result``)."""
        log_p = F.log_softmax(query_logits.float() * self.cfg.segearth.logit_scale, dim=1)
        if all(len(g) == 1 for g in groups):
            return log_p[:, [g[0] for g in groups]]
        return torch.stack([log_p[:, g].amax(dim=1) for g in groups], dim=1)

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        queries, groups = split_queries(list(class_names))
        return self.class_log_scores(self.query_logits(images, queries), groups)

    def _slide_logits(self, x: torch.Tensor, queries: list[str]) -> torch.Tensor:
        """SegEarth-OV's ``forward_slide``: windows of ``crop_size`` at ``slide_stride`` (the last one flush with the
        edge), padded to the patch when smaller, their query logits averaged. x (1, 3, H, W) -> (1, Q, H, W)."""
        crop, stride, patch = self.cfg.crop_size, self.cfg.segearth.slide_stride, self.cfg.clip.patch_size
        h, w = x.shape[-2:]
        out = x.new_zeros(1, len(queries), h, w, dtype=torch.float32)
        count = x.new_zeros(1, 1, h, w, dtype=torch.float32)
        for r in range(max(h - crop + stride - 1, 0) // stride + 1):
            for c in range(max(w - crop + stride - 1, 0) // stride + 1):
                y1, x1 = r * stride, c * stride
                y2, x2 = min(y1 + crop, h), min(x1 + crop, w)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                window = x[:, :, y1:y2, x1:x2]
                ph, pw = (-window.shape[-2]) % patch, (-window.shape[-1]) % patch
                pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
                logits = self.query_logits(F.pad(window, pad), queries)
                out[:, :, y1:y2, x1:x2] += logits[:, :, pad[2] : pad[2] + y2 - y1, pad[0] : pad[0] + x2 - x1]
                count[:, :, y1:y2, x1:x2] += 1
        return out / count

    @torch.no_grad()
    def slide_probabilities(self, image: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        """SegEarth-OV's evaluation of one image: (1, 3, H, W) in [0, 1] -> class scores (K, H, W).

        The long side resized to ``eval_resize`` (its test pipelines' ``Resize(scale=(448, 448), keep_ratio=True)``,
        here bilinear on the float image), the sliding window, the logits resized back to (H, W), then the scores."""
        queries, groups = split_queries(list(class_names))
        h, w = image.shape[-2:]
        target = self.cfg.segearth.eval_resize
        x = image
        if target:
            scale = target / max(h, w)
            size = (int(h * scale + 0.5), int(w * scale + 0.5))
            x = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            x = (x * 255).round() / 255  # the reference resizes 8-bit images (cv2) and keeps them 8-bit
        logits = F.interpolate(self._slide_logits(x, queries), size=(h, w), mode="bilinear", align_corners=False)
        return self.probabilities(self.class_log_scores(logits, groups))[0]
