"""Readers for the paper's datasets (iSAID, DLRSD, OpenEarthMap), a generic folder layout and the CC0 Dubai set.

Every dataset yields (image uint8 (H, W, 3), mask int64 (H, W)) with class ids in the dataset's full class order and
255 for ignore. Seen/unseen splits are the paper's Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from aeroseg_cli.datasets.specs import (
    DATASETS,
    DUBAI,
    DUBAI_COLORS,
    DUBAI_SPLIT,
    IGNORE,
    IMAGE_EXTS,
    OPENEARTHMAP,
    SPECS,
    DatasetSpec,
)
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


def _pair(images_dir: Path, masks_dir: Path, names: list[str] | None = None) -> list[Sample]:
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise UsageError(f"expected folder {d} (not found)")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if names is not None:
        wanted = {Path(n).stem for n in names}
        images = [p for p in images if p.stem in wanted]
    unpaired = [p.name for p in images if p.stem not in masks]
    if unpaired:
        raise UsageError(f"{len(unpaired)} image(s) in {images_dir} have no mask in {masks_dir} (first: {unpaired[0]})")
    if not images:
        raise UsageError(f"no images found in {images_dir}")
    return [Sample(p, masks[p.stem]) for p in images]


def load_dataset(name: str, root: Path, split: str = "train", classes_file: Path | None = None) -> SegmentationDataset:
    """Open ``name`` at ``root`` for ``split`` with clear errors for a wrong root or unpaired files."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if not root.is_dir():
        raise UsageError(f"--data-root {root} is not a folder")
    if name in ("isaid", "dlrsd"):
        spec = SPECS[name]
        base = root / split
        if not base.is_dir():
            raise UsageError(f"{name}: expected {base} ({spec.layout})")
        return SegmentationDataset(spec, _pair(base / "imgs", base / "D2masks"))
    if name == "openearthmap":
        spec = OPENEARTHMAP
        listing = root / f"{split}.txt"
        if not listing.is_file():
            raise UsageError(f"openearthmap: expected the split list {listing} ({spec.layout})")
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        samples = []
        regions = sorted(d for d in root.iterdir() if (d / "images").is_dir())
        if not regions:
            raise UsageError(f"openearthmap: no ROOT/<region>/images folders in {root}")
        wanted = set(names)
        for region in regions:
            local = [p.name for p in (region / "images").iterdir() if p.name in wanted]
            if local:
                samples += _pair(region / "images", region / "labels", local)
        if not samples:
            raise UsageError(f"openearthmap: none of the {len(names)} files of {listing.name} were found")
        return SegmentationDataset(spec, samples, decode="oem")
    if name == "dubai":
        tiles = [root / f"Tile {t}" for t in DUBAI_SPLIT.get(split, ())]
        if split not in DUBAI_SPLIT:
            raise UsageError(f"dubai has splits {', '.join(DUBAI_SPLIT)}, not {split!r}")
        samples = []
        for t in tiles:
            if not t.is_dir():
                raise UsageError(f"dubai: expected {t} ({DUBAI.layout})")
            samples += _pair(t / "images", t / "masks")
        return SegmentationDataset(DUBAI, samples, decode="dubai_rgb")
    # generic folder: images/, masks/, classes.txt (one per line, "*" marks unseen), optional <split>.txt
    cls_path = classes_file or root / "classes.txt"
    if not cls_path.is_file():
        raise UsageError(f"folder dataset: expected a classes file {cls_path} (one class per line)")
    lines = [line.strip() for line in cls_path.read_text().splitlines() if line.strip()]
    classes = tuple(c.lstrip("*").strip() for c in lines)
    unseen = tuple(c.lstrip("*").strip() for c in lines if c.startswith("*"))
    spec = DatasetSpec("folder", classes, unseen, 2_000, "ROOT/images, ROOT/masks, ROOT/classes.txt")
    listing = root / f"{split}.txt"
    names = [n.strip() for n in listing.read_text().splitlines() if n.strip()] if listing.is_file() else None
    return SegmentationDataset(spec, _pair(root / "images", root / "masks", names))
