"""Evaluation: the reference sliding-window protocol, one confusion matrix, IoU per class and s-/u-/h-mIoU.

Metric rules follow detectron2's SemSegEvaluator: ignore pixels are left out; a class absent from the ground truth
has no IoU (NaN) and is left out of every mean, even if it was predicted (those pixels still count as errors of the
true class); pixels predicted as unknown/nodata count as misses of their true class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aeroseg_cli.datasets.readers import IGNORE, SegmentationDataset
from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.runtime.modelio import autocast


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(K+1, K) counts [pred, gt] over pixels whose gt is a class; row K holds predictions of no class (>= K)."""
    valid = (gt != IGNORE) & (gt < num_classes)
    p = np.where(pred[valid] < num_classes, pred[valid], num_classes).astype(np.int64)
    return np.bincount(p * num_classes + gt[valid].astype(np.int64), minlength=(num_classes + 1) * num_classes).reshape(
        num_classes + 1, num_classes
    )


def harmonic(a: float, b: float) -> float:
    if np.isnan(a) or np.isnan(b) or a + b == 0:
        return float("nan")
    return 2 * a * b / (a + b)


def raster_confusion(pred, label, names: list[str]) -> np.ndarray:
    """One confusion matrix over two open label rasters on one grid, block by block. Label ids beyond the class list
    (other than nodata and 255) are refused: leaving them out silently would report metrics on part of the map."""
    which = f"the prediction {Path(pred.name).name} and the label {Path(label.name).name}"
    if pred.shape != label.shape or pred.transform != label.transform:
        raise UsageError(
            f"{which} are not on the same grid (prediction {pred.width}x{pred.height} at {tuple(pred.transform)[:6]}, "
            f"label {label.width}x{label.height} at {tuple(label.transform)[:6]})"
        )
    if (pred.crs is None) != (label.crs is None) or (pred.crs is not None and pred.crs != label.crs):
        raise UsageError(f"{which} have different CRSs ({pred.crs} and {label.crs})")
    k = len(names)
    matrix = np.zeros((k + 1, k), np.int64)
    beyond = np.zeros(256 if label.dtypes[0] == "uint8" else 1 << 16, np.int64)
    labelled = 0
    for _, window in label.block_windows(1):
        gt = label.read(1, window=window).astype(np.int64)
        if label.nodata is not None:
            gt[gt == label.nodata] = IGNORE
        keep = gt != IGNORE
        labelled += int(keep.sum())
        out = gt[keep & (gt >= k)]
        beyond += np.bincount(np.clip(out, 0, len(beyond) - 1), minlength=len(beyond))
        matrix += confusion(pred.read(1, window=window).astype(np.int64), gt, k)
    if beyond.any():
        ids = np.flatnonzero(beyond)
        share = beyond.sum() / max(labelled, 1) * 100
        raise UsageError(
            f"the label {Path(label.name).name} holds class ids {', '.join(map(str, ids[:6]))} ({beyond.sum()} pixels, "
            f"{share:.1f} % of the labelled ones) beyond the {k} classes given; name every class with --classes"
        )
    return matrix


@dataclass
class Metrics:
    classes: list[str]
    unseen: list[str]
    matrix: np.ndarray  # (K+1, K) [pred, gt]

    @property
    def iou(self) -> np.ndarray:
        k = len(self.classes)
        tp = np.diag(self.matrix[:k]).astype(float)
        pos_gt = self.matrix.sum(axis=0).astype(float)
        pos_pred = self.matrix[:k].sum(axis=1).astype(float)
        union = pos_gt + pos_pred - tp
        out = np.full(k, np.nan)
        valid = (pos_gt > 0) & (union > 0)
        out[valid] = tp[valid] / union[valid]
        return out

    def _mean(self, names: list[str]) -> float:
        vals = [v for c, v in zip(self.classes, self.iou, strict=True) if c in names and not np.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def summary(self) -> dict:
        seen = [c for c in self.classes if c not in self.unseen]
        s, u = self._mean(seen), self._mean(self.unseen)
        total = self.matrix.sum()
        return {
            "mIoU": self._mean(self.classes) * 100,
            "s-mIoU": s * 100,
            "u-mIoU": u * 100,
            "h-mIoU": harmonic(s, u) * 100,
            "pixel_accuracy": float(np.trace(self.matrix[: len(self.classes)]) / total * 100)
            if total
            else float("nan"),
            "iou": {c: float(v * 100) for c, v in zip(self.classes, self.iou, strict=True)},
            "pixels": int(total),
        }


def shortest_edge_shape(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's ``ResizeShortestEdge.get_output_shape``: the shorter edge to ``short`` keeping the aspect ratio,
    unless the longer edge would exceed ``max_size``, then that edge to ``max_size``; rounded half up."""
    scale = short / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        cap = max_size / max(newh, neww)
        newh, neww = newh * cap, neww * cap
    return int(newh + 0.5), int(neww + 0.5)


def eval_resize(image: np.ndarray, short: int, max_size: int) -> np.ndarray:
    """detectron2's test-time resize (``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``, CAT-Seg/OVRS: 640, 2560)
    of an (H, W, 3) uint8 image: PIL's bilinear filter, which widens with the scale (antialiased when shrinking)."""
    newh, neww = shortest_edge_shape(*image.shape[:2], short, max_size)
    if (newh, neww) == image.shape[:2]:
        return image
    return np.array(Image.fromarray(image).resize((neww, newh), Image.BILINEAR))


@torch.inference_mode()
def sliding_window_probs(
    model, image: np.ndarray, class_names: list[str], device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """CAT-Seg's protocol scaled to the model's crop c: the shortest edge resized to 5c/3 (640 for 384; the long edge
    at most 4 times that) as detectron2's test mapper does, then to 5c/3 square (torch bilinear), windows of c at
    stride 2c/3 (256) plus one global view of the resized image, probabilities averaged over windows,
    (windows + global) / 2, resized back to the image (``inference_sliding_window``, ``sem_seg_postprocess``).
    image (H, W, 3) uint8 -> probabilities (K, H, W)."""
    crop = model.cfg.crop_size
    big, stride = crop * 5 // 3, crop * 2 // 3
    big -= big % model.cfg.input_multiple
    h, w = image.shape[:2]
    resized = eval_resize(image, big, 4 * big)
    x = torch.from_numpy(np.array(resized)).permute(2, 0, 1)[None].float().div(255).to(device)
    xb = x if x.shape[-2:] == (big, big) else F.interpolate(x, size=(big, big), mode="bilinear", align_corners=False)
    starts = sorted({min(s, big - crop) for s in range(0, big - crop + stride, stride)})
    crops = [xb[..., r : r + crop, c : c + crop] for r in starts for c in starts]
    crops.append(F.interpolate(x, size=(crop, crop), mode="bilinear", align_corners=False))
    with autocast(device, dtype):
        logits = model(torch.cat(crops), class_names)
    probs = model.probabilities(logits)
    acc = torch.zeros(len(class_names), big, big, device=device)
    count = torch.zeros(1, big, big, device=device)
    for (r, c), p in zip([(r, c) for r in starts for c in starts], probs[:-1], strict=True):
        acc[:, r : r + crop, c : c + crop] += p
        count[:, r : r + crop, c : c + crop] += 1
    windows = acc / count
    global_view = F.interpolate(probs[-1:], size=(big, big), mode="bilinear", align_corners=False)[0]
    fused = (windows + global_view) / 2
    return F.interpolate(fused[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def image_probabilities(
    model, image: np.ndarray, class_names: list[str], device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """image (H, W, 3) uint8 -> probabilities (K, H, W): the model's own evaluation protocol where it has one
    (SegEarth-OV: its resize and sliding window, ``slide_probabilities``), else CAT-Seg's (``sliding_window_probs``)."""
    own = getattr(model, "slide_probabilities", None)
    if own is None:
        return sliding_window_probs(model, image, class_names, device, dtype)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)
    with torch.inference_mode(), autocast(device, dtype):
        return own(x, class_names).float()


@dataclass
class EvalResult:
    metrics: Metrics
    images: int

    def summary(self) -> dict:
        return {**self.metrics.summary(), "images": self.images}


def evaluate_dataset(
    model,
    data: SegmentationDataset,
    device: torch.device,
    dtype: torch.dtype | None = None,
    limit: int | None = None,
    progress=None,
) -> EvalResult:
    """All classes (seen + unseen) given to the model; one confusion matrix over the split."""
    classes = list(data.spec.classes)
    k = len(classes)
    matrix = np.zeros((k + 1, k), np.int64)
    n = min(len(data), limit) if limit else len(data)
    for i in range(n):
        image, gt = data.load(i)
        pred = image_probabilities(model, image, classes, device, dtype).argmax(0).cpu().numpy()
        matrix += confusion(pred, gt, k)
        if progress:
            progress(i + 1, n)
    return EvalResult(Metrics(classes, list(data.spec.unseen), matrix), n)
