"""What one run of ``segment`` holds: the memory budget, the superblock width it allows, and the bound the README
states (``memory_bound``, which ``benchmarks/feeder.py`` prints).

Arithmetic on the settings (torch is imported only to ask a GPU for its free memory).
"""

from __future__ import annotations

import os

from aeroseg_cli.segment.limits import windows_per_call
from aeroseg_cli.segment.tiler import BLOCK, Grid

HOST_BUDGET = 512 << 20  # default --max-memory on CPU
GPU_BUDGET_SHARE = 0.25  # default on CUDA: this share of the device memory free when the run starts
CHUNK_ROWS = 1024  # rows the writer writes and verifies at once (rounded to whole 512-row GeoTIFF tiles)


def memory_budget(max_memory: int | None, device) -> int:
    """``--max-memory``, or its default: ``HOST_BUDGET`` on CPU, ``GPU_BUDGET_SHARE`` of the free memory on CUDA."""
    if max_memory is not None:
        return max_memory
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_BUDGET_SHARE)
    return HOST_BUDGET


def blender_bytes(grid: Grid, num_classes: int, strip_width: int) -> int:
    """Device memory of a blender over ``strip_width`` columns: carry and active window, K + 1 float planes + mask."""
    per_pixel = 4 * (num_classes + 1) + 1
    return per_pixel * (grid.overlap * strip_width + grid.tile * grid.tile)


def superblock_width(grid: Grid, num_classes: int, budget: int, probabilities: bool, chunk_rows: int) -> int:
    """Owned width of each superblock so that the blender, the finished rows and one write chunk fit ``budget``."""
    fixed = blender_bytes(grid, num_classes, 0)
    per_column = (
        blender_bytes(grid, num_classes, 1) - fixed + (chunk_rows + grid.tile) * (1 + num_classes * probabilities)
    )
    columns = (budget - fixed) // max(per_column, 1) - 2 * grid.tile
    return int(max(BLOCK, min(columns, grid.width)))


def memory_bound(
    grid: Grid,
    num_classes: int,
    *,
    batch_size: int,
    probabilities: bool,
    bands: int,
    itemsize: int,
    threads: int,
    width: int,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, int]:
    """The pipeline's own memory, term by term, for superblocks of ``width`` owned columns (what the README's formula
    states; the benchmark compares it with the measured peak). Device terms live on the GPU when the model does."""
    t, k = grid.tile, num_classes
    b = windows_per_call(batch_size, k, t)
    strip = min(width + 2 * t, grid.width)
    planes = 1 + k * probabilities  # uint8 labels, and probabilities when kept
    return {
        "blender (device)": blender_bytes(grid, k, strip),
        "model output: logits, probabilities, a blend temporary (device)": 3 * 4 * b * k * t * t,
        "batch images, staged + float (device)": b * t * t * (bands * itemsize + 3 * 4),
        "rows read ahead (host)": (threads + 2) * t * strip * (bands * itemsize + 1),
        "finished rows + one write chunk (host)": 2 * (chunk_rows + grid.stride) * width * planes,
        "GDAL block cache (host, at most)": gdal_cache_bytes(),
    }


def gdal_cache_bytes() -> int:
    """GDAL_CACHEMAX as bytes (a number is MB, as GDAL reads it; aeroseg sets 256 unless the user did)."""
    text = os.environ.get("GDAL_CACHEMAX", "256").strip().upper()
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
            return int(text[: -len(unit)]) * factor
    return int(text) << 20 if text.isdigit() else 256 << 20
