"""Colour jitter with the semantics of detectron2's ``ColorAugSSDTransform`` (CAT-Seg/OVRS ``COLOR_AUG_SSD: True``).

Brightness (p=0.5, +U(-32, 32)); then, in one of two orders chosen at random, contrast (p=0.5, x U(0.5, 1.5), a plain
multiplication), saturation (p=0.5, HSV S x U(0.5, 1.5)) and hue (p=0.5, HSV H + randint(-18, 18) mod 180). Every
step clips to 0..255 and truncates to uint8, as detectron2 does. HSV is OpenCV's 8-bit convention (H in 0..179 = half
degrees, S and V in 0..255); the conversions below follow OpenCV's formulas (results within one grey level of
``cv2.cvtColor``), so no OpenCV dependency. Random draws come from a numpy ``Generator`` (resumable training).
"""

from __future__ import annotations

import numpy as np

# OpenCV's HSV2RGB sector table: which of (v, p, q, t) each of r, g, b takes in each 60-degree sector
_SECTORS = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def _convert(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """detectron2's ``convert``: x * alpha + beta, clipped to 0..255, truncated to uint8."""
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 HSV in OpenCV's 8-bit convention (H 0..179, S and V 0..255)."""
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    v = c.max(axis=-1)
    diff = v - c.min(axis=-1)
    s = np.where(v > 0, np.rint(diff * 255.0 / np.maximum(v, 1)), 0)
    num = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = np.where(diff > 0, np.rint(num * 30.0 / np.maximum(diff, 1)), 0)
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """uint8 HSV in OpenCV's 8-bit convention -> uint8 (H, W, 3) RGB."""
    h = hsv[..., 0].astype(np.float32) * (6.0 / 180.0)
    s = hsv[..., 1].astype(np.float32) / 255.0
    v = hsv[..., 2].astype(np.float32) / 255.0
    h = np.where(h >= 6, h - 6, h)
    sector = np.floor(h).astype(np.int64)
    f = h - sector
    tab = np.stack([v, v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))], axis=-1)
    idx = _SECTORS[sector]  # (H, W, 3)
    rgb = np.take_along_axis(tab, idx, axis=-1)
    rgb = np.where((s == 0)[..., None], v[..., None], rgb)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _contrast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _convert(img, alpha=rng.uniform(0.5, 1.5)) if rng.integers(2) else img


def _saturation(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if not rng.integers(2):
        return img
    hsv = rgb_to_hsv(img)
    hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(0.5, 1.5))
    return hsv_to_rgb(hsv)


def _hue(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if not rng.integers(2):
        return img
    hsv = rgb_to_hsv(img)
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(rng.integers(-18, 19))) % 180
    return hsv_to_rgb(hsv)


def color_aug_ssd(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H, W, 3) RGB, jittered as detectron2's ColorAugSSDTransform."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if rng.integers(2):
        img = _convert(img, beta=rng.uniform(-32, 32))
    if rng.integers(2):
        img = _hue(_saturation(_contrast(img, rng), rng), rng)
    else:
        img = _contrast(_hue(_saturation(img, rng), rng), rng)
    return img
