"""Inference on torch.distributed: scenes sharded by rank, or one scene's row bands sharded and assembled by rank 0.

GeoTIFF writers are not multi-process safe, so every rank writes its own file and rank 0 alone writes the final one.
"""

from __future__ import annotations

import math
from pathlib import Path

import rasterio
from rasterio.windows import Window

from aeroseg_cli.segment.blender import FinishedRows
from aeroseg_cli.segment.writer import BLOCK, LabelWriter


def row_bands(height: int, world: int) -> list[tuple[int, int]]:
    """Contiguous row bands, one per rank, aligned to the 512-row GeoTIFF tiles (the last may be empty)."""
    size = max(BLOCK, math.ceil(height / world / BLOCK) * BLOCK)
    return [(min(r * size, height), min((r + 1) * size, height)) for r in range(world)]


def band_path(output: Path, rank: int) -> Path:
    return output.parent / f".{output.name}.rank{rank}.tif"


def assemble(bands: list[tuple[Path, Path | None]], writer: LabelWriter, chunk: int = 2 * BLOCK) -> None:
    """Copy the ranks' band files, top to bottom, into ``writer`` (labels and, when kept, probabilities)."""
    for labels_path, probs_path in bands:
        with rasterio.open(labels_path) as src:
            probs_src = rasterio.open(probs_path) if probs_path else None
            try:
                row0 = round((src.transform.f - writer.transform.f) / src.transform.e)
                for r in range(0, src.height, chunk):
                    n = min(chunk, src.height - r)
                    window = Window(0, r, src.width, n)
                    probs = probs_src.read(window=window) if probs_src else None
                    writer.write(FinishedRows(row0 + r, src.read(1, window=window), probs))
            finally:
                if probs_src:
                    probs_src.close()
