"""Synthetic GeoTIFF scenes for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def write_scene(
    path: Path,
    data: np.ndarray,
    crs: str | None = "EPSG:32633",
    transform=None,
    nodata: float | None = None,
    **profile,
) -> Path:
    """Write a (bands, H, W) array as a GeoTIFF."""
    count, height, width = data.shape
    meta = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform if transform is not None else from_origin(500000, 4000000, 2.0, 2.0),
        "nodata": nodata,
        **profile,
    }
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)
    return path


def smooth_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB scene with structure at several scales (sums of random sinusoids)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.zeros((3, height, width), np.float32)
    for b in range(3):
        for _ in range(4):
            fy, fx, ph = rng.uniform(0.003, 0.05), rng.uniform(0.003, 0.05), rng.uniform(0, 6.3)
            out[b] += np.sin(yy * fy + xx * fx + ph)
    out = (out - out.min()) / (out.max() - out.min())
    return (out * 255).astype(np.uint8)


def corrupt_full_resolution_tile(path: Path, row: int, col: int) -> Path:
    """Overwrite one full-resolution tile's bytes with garbage; the overview (used for the scene-wide sample that
    ``segment`` takes while checking its inputs) stays intact, so the damage is met only when that tile is read."""
    with rasterio.open(path) as ds:
        offset = int(ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    raw = bytearray(path.read_bytes())
    raw[offset : offset + size] = np.random.default_rng(0).bytes(size)  # fixed garbage
    path.write_bytes(bytes(raw))
    return path
