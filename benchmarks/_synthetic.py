"""Synthetic rasters for the benchmarks, written strip by strip (generation memory stays small)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

PROFILE = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "deflate",
    "crs": "EPSG:32633",
    "BIGTIFF": "IF_SAFER",
}


def rgb_scene(path: Path, height: int, width: int, strip: int = 1024, seed: int = 0) -> Path:
    """uint8 RGB with structure at several scales (sinusoids + blocky patches)."""
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.002, 0.04, (3, 3, 2))
    patches = rng.integers(0, 255, (3, height // 64 + 1, width // 64 + 1), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        height=height,
        width=width,
        count=3,
        dtype="uint8",
        transform=from_origin(500000, 4000000, 0.5, 0.5),
        **PROFILE,
    ) as dst:
        xx = np.arange(width, dtype=np.float32)[None, :]
        for r0 in range(0, height, strip):
            n = min(strip, height - r0)
            yy = np.arange(r0, r0 + n, dtype=np.float32)[:, None]
            out = np.empty((3, n, width), np.uint8)
            for b in range(3):
                wave = sum(np.sin(yy * fy + xx * fx) for fy, fx in freqs[b]) / 3
                block = patches[b][(np.arange(r0, r0 + n) // 64)[:, None], (np.arange(width) // 64)[None, :]]
                out[b] = np.clip(64 * wave + 0.5 * block + 64, 0, 255).astype(np.uint8)
            dst.write(out, window=rasterio.windows.Window(0, r0, width, n))
    return path


def label_raster(path: Path, size: int, cell: int = 48, classes: int = 6, strip: int = 1024, seed: int = 0) -> Path:
    """uint8 labels: random classes on a jittered grid of cells, with speckle (many regions, many seams)."""
    rng = np.random.default_rng(seed)
    cells = size // cell + 2
    grid = rng.integers(0, classes, (cells, cells), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        height=size,
        width=size,
        count=1,
        dtype="uint8",
        nodata=255,
        transform=from_origin(500000, 4000000, 1.0, 1.0),
        **PROFILE,
    ) as dst:
        cols = np.arange(size)
        for r0 in range(0, size, strip):
            n = min(strip, size - r0)
            rows = np.arange(r0, r0 + n)
            jitter = (np.sin(rows[:, None] * 0.05) * 9 + np.cos(cols[None, :] * 0.07) * 9).astype(int)
            out = grid[(rows[:, None] + jitter) // cell % cells, (cols[None, :] - jitter) // cell % cells]
            speck = rng.random(out.shape) < 0.0005
            out[speck] = (out[speck] + 1) % classes
            dst.write(out, 1, window=rasterio.windows.Window(0, r0, size, n))
    return path
