"""Readers for the paper's datasets (iSAID, DLRSD, OpenEarthMap), a generic folder layout and the CC0 Dubai set.

Every dataset yields (image uint8 (H, W, 3), mask int64 (H, W)) with class ids in the dataset's full class order and
255 for ignore. Seen/unseen splits are the paper's Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from aeroseg_cli.datasets.layouts import layout_for
from aeroseg_cli.datasets.specs import DUBAI_COLORS, DUBAI_SPLIT, IGNORE, DatasetSpec  # noqa: F401 (re-exported)
from aeroseg_cli.files.errors import UsageError


@dataclass
class Sample:
    image: Path
    mask: Path


@dataclass
class SegmentationDataset:
    """A list of image/mask pairs with the dataset's class list and a mask decoder."""

    spec: DatasetSpec
    samples: list[Sample]
    decode: str = "index"  # "index", "oem" (0 -> ignore, k -> k-1) or "dubai_rgb"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[i]
        image = read_image(s.image)
        mask = read_mask(s.mask, self.decode)
        if mask.shape != image.shape[:2]:
            raise UsageError(f"{s.mask.name}: mask size {mask.shape} differs from image size {image.shape[:2]}")
        bad = (mask != IGNORE) & (mask >= len(self.spec.classes))
        if bad.any():
            raise UsageError(
                f"{s.mask}: mask value {int(mask[bad][0])} outside the {len(self.spec.classes)} classes of "
                f"{self.spec.name} (0..{len(self.spec.classes) - 1}, {IGNORE} = ignore)"
            )
        return image, mask


def read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as ds:
            data = ds.read([1, 2, 3] if ds.count >= 3 else [1, 1, 1])
        return np.ascontiguousarray(np.moveaxis(data, 0, -1).astype(np.uint8))
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))  # writable: torch warns on read-only arrays


def read_mask(path: Path, decode: str) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as ds:
            raw = ds.read(1)
    else:
        with Image.open(path) as im:
            raw = np.asarray(im.convert("RGB") if decode == "dubai_rgb" else im)
    return decode_mask(raw, decode)


def decode_mask(raw: np.ndarray, decode: str) -> np.ndarray:
    """Pixels as stored -> class ids (int64, 255 ignore) by the dataset's convention."""
    if decode == "dubai_rgb":
        mask = np.full(raw.shape[:2], IGNORE, np.int64)
        for rgb, k in DUBAI_COLORS.items():
            mask[(raw == rgb).all(axis=-1)] = k
        return mask
    if raw.ndim == 3:
        raw = raw[..., 0]
    mask = raw.astype(np.int64)
    if decode == "oem":
        mask = np.where(mask == 0, IGNORE, mask - 1)
    return mask


def load_dataset(name: str, root: Path, split: str = "train", classes_file: Path | None = None) -> SegmentationDataset:
    """Open ``name`` at ``root`` for ``split`` with clear errors for a wrong root or unpaired files (the dataset's
    layout object says where its files are; ``datasets check`` asks the same object)."""
    layout = layout_for(name, classes_file)
    if not root.is_dir():
        raise UsageError(f"--data-root {root} is not a folder")
    spec = layout.spec(root)
    samples = [Sample(image, mask) for image, mask in layout.samples(root, split)]
    return SegmentationDataset(spec, samples, decode=layout.decode)
