"""One scene across the ranks of torch.distributed: each rank segments a band of rows into its own file, and rank 0
copies the bands into the final GeoTIFF (GeoTIFF writers are not multi-process safe)."""

from __future__ import annotations

import math
from pathlib import Path

import rasterio
from rasterio.windows import Window

from aeroseg_cli.segment.blender import FinishedRows
from aeroseg_cli.segment.tiler import BLOCK
from aeroseg_cli.segment.writer import LabelWriter


def row_bands(height: int, world: int) -> list[tuple[int, int]]:
    """Contiguous row bands, one per rank, aligned to the 512-row GeoTIFF tiles (the last may be empty)."""
    size = max(BLOCK, math.ceil(height / world / BLOCK) * BLOCK)
    return [(min(r * size, height), min((r + 1) * size, height)) for r in range(world)]


def band_path(output: Path, rank: int) -> Path:
    return output.parent / f".{output.name}.rank{rank}.tif"


def assemble(bands: list[tuple[Path, Path | None]], writer: LabelWriter, chunk: int = 2 * BLOCK) -> None:
    """Copy the ranks' band files, top to bottom, into ``writer`` (one full-width block; labels and, when kept,
    probabilities)."""
    for labels_path, probs_path in bands:
        with rasterio.open(labels_path) as src:
            probs_src = rasterio.open(probs_path) if probs_path else None
            try:
                row0 = round((src.transform.f - writer.spec.transform.f) / src.transform.e)
                for r in range(0, src.height, chunk):
                    window = Window(0, r, src.width, min(chunk, src.height - r))
                    probs = probs_src.read(window=window) if probs_src else None
                    writer.write(FinishedRows(row0 + r, 0, src.read(1, window=window), probs))
            finally:
                if probs_src:
                    probs_src.close()
