"""Training augmentation (CAT-Seg's): resize the shortest edge, random crop, colour jitter, flip, pad."""

from __future__ import annotations

import numpy as np
from PIL import Image

from aeroseg_cli.datasets.specs import IGNORE

CROP_PAD_IMAGE = 128


def resize_shortest(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return image, mask
    image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((nw, nh), Image.NEAREST)).astype(np.int64)
    return image, mask


def train_augment(
    image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator, max_category_area: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Resize shortest edge, random crop (category-area constraint below 1.0), ColorAugSSD jitter, flip, pad."""
    from aeroseg_cli.training.coloraug import color_aug_ssd

    image, mask = resize_shortest(image, mask, crop)
    h, w = mask.shape
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    for _ in range(10 if max_category_area < 1.0 else 0):  # detectron2's RandomCrop_CategoryAreaConstraint
        labels, counts = np.unique(mask[y : y + crop, x : x + crop], return_counts=True)
        counts = counts[labels != IGNORE]
        if len(counts) > 1 and counts.max() < max_category_area * counts.sum():
            break
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    image, mask = image[y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop]
    image = color_aug_ssd(image, rng).astype(np.float32)  # detectron2's ColorAugSSDTransform (CAT-Seg, OVRS)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    ph, pw = crop - image.shape[0], crop - image.shape[1]
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=CROP_PAD_IMAGE)
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
