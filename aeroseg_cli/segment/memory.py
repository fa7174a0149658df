"""What one run of ``segment`` holds, in one place: superblocks are as wide as ``--max-memory`` allows, and the bound
docs/memory.md states (``memory_bound``, which ``benchmarks/feeder.py`` prints) is made of the same terms.

``--max-memory`` holds the two terms that grow with a superblock's width: the blender (on the model's device) and
the finished rows on their way to the file. Everything here is arithmetic on the settings (torch is imported only to
ask a GPU for its free memory), so a budget that cannot hold even the narrowest superblock is refused by the plan
before any work.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.segment.limits import gib, windows_per_call
from aeroseg_cli.segment.tiler import BLOCK, Grid

HOST_BUDGET = 512 << 20  # default --max-memory on CPU
GPU_BUDGET_SHARE = 0.25  # default on CUDA: this share of the device memory free when the run starts
CHUNK_ROWS = 1024  # rows the writer writes and verifies at once (rounded to whole 512-row GeoTIFF tiles)
BLENDER = "blender (device)"
FINISHED = "finished rows: being labelled, queued, written and read back (host)"
BUDGETED = (BLENDER, FINISHED)  # the terms --max-memory holds


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


def strip_width(grid: Grid, width: int) -> int:
    """Columns a superblock of ``width`` owned columns runs: a halo of (at most) one tile on either side."""
    return min(width + 2 * grid.tile, grid.width)


def sink_depth(grid: Grid, chunk_rows: int = CHUNK_ROWS) -> int:
    """Window rows the writer thread's queue holds: one chunk's worth, queued while the writer writes the one before
    (a deeper queue would only hold more rows whenever writing is the slower side)."""
    return math.ceil(max(BLOCK, chunk_rows) / grid.stride)


def finished_rows(grid: Grid, chunk_rows: int = CHUNK_ROWS, queued: bool = True) -> int:
    """Rows of finished pixels a superblock holds at once, at most. Every window row finishes at most a tile of rows
    (the stride; the last one up to a tile): the window row being labelled on the device and its concatenation
    (2 T), its host copy on its way to the writer (T), the writer thread's queue (``sink_depth`` x T; none when
    ``queued`` is False: the writer runs inline); in the writer its pending rows (under one chunk plus a window
    row), the chunk made of them (2 (C + T)) and one tile row of it read back to verify it (512)."""
    t, chunk = grid.tile, max(BLOCK, chunk_rows)
    queue = sink_depth(grid, chunk_rows) if queued else 0
    return (3 + queue) * t + 2 * (chunk + t) + BLOCK


def finished_bytes(
    grid: Grid, num_classes: int, width: int, probabilities: bool, chunk_rows: int = CHUNK_ROWS, queued: bool = True
) -> int:
    """Bytes of finished rows over ``width`` owned columns: uint8 labels, and K uint8 planes with probabilities."""
    return finished_rows(grid, chunk_rows, queued) * width * (1 + num_classes * probabilities)


def budget_bytes(
    grid: Grid, num_classes: int, width: int, probabilities: bool, chunk_rows: int = CHUNK_ROWS, queued: bool = True
) -> int:
    """What ``--max-memory`` must hold for superblocks of ``width`` owned columns: the blender and finished rows."""
    blender = blender_bytes(grid, num_classes, strip_width(grid, width))
    return blender + finished_bytes(grid, num_classes, width, probabilities, chunk_rows, queued)


def superblock_width(
    grid: Grid, num_classes: int, budget: int, probabilities: bool, chunk_rows: int = CHUNK_ROWS, queued: bool = True
) -> int:
    """Owned width of each superblock: the whole scene if it fits ``budget``, else the widest multiple of ``BLOCK``
    that does (``BLOCK`` if none does: ``check_budget`` refuses such a budget before any work)."""
    if budget_bytes(grid, num_classes, grid.width, probabilities, chunk_rows, queued) <= budget:
        return grid.width
    fitting = BLOCK
    for width in range(2 * BLOCK, grid.width, BLOCK):  # the bound grows with the width: stop at the first too wide
        if budget_bytes(grid, num_classes, width, probabilities, chunk_rows, queued) > budget:
            break
        fitting = width
    return fitting


def narrowest_bytes(grid: Grid, num_classes: int, probabilities: bool, chunk_rows: int = CHUNK_ROWS) -> int:
    """What the narrowest superblock of any scene needs (``BLOCK`` owned columns and their halo, the writer on its
    thread): the least a budget must hold, whatever the scene's width, the device or the decode threads."""
    wide = replace(grid, width=max(grid.width, BLOCK + 2 * grid.tile))
    return budget_bytes(wide, num_classes, BLOCK, probabilities, chunk_rows, queued=True)


def check_budget(
    grid: Grid, num_classes: int, probabilities: bool, max_memory: int | None, chunk_rows: int = CHUNK_ROWS
) -> None:
    """``--max-memory`` must hold the narrowest superblock: its blender (one window, the carry of its strip) and its
    finished rows. Refused before any work otherwise (the superblocks could not keep to it)."""
    if max_memory is None:
        return
    need = narrowest_bytes(grid, num_classes, probabilities, chunk_rows)
    if need > max_memory:
        kept = " and their probabilities" if probabilities else ""
        raise UsageError(
            f"--max-memory {gib(max_memory)} cannot hold the blender of one --tile {grid.tile} window with "
            f"{num_classes} class(es) and the finished rows{kept} of one superblock ({gib(need)}): give a larger "
            "--max-memory or a smaller --tile"
        )


def default_budget_warning(grid: Grid, num_classes: int, probabilities: bool, budget: int) -> str | None:
    """The default budget (no ``--max-memory``) too small for the narrowest superblock: the run goes on in
    superblocks of ``BLOCK`` columns, over the budget by what this says."""
    need = narrowest_bytes(grid, num_classes, probabilities)
    if need <= budget:
        return None
    kept = " and their probabilities" if probabilities else ""
    return (
        f"the default --max-memory ({gib(budget)}) cannot hold one superblock with {num_classes} class(es){kept}: "
        f"running in superblocks of {BLOCK} columns, which need {gib(need)} (give --max-memory to choose)"
    )


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
    queued: bool = True,
) -> dict[str, int]:
    """The pipeline's own memory, term by term, for superblocks of ``width`` owned columns (what docs/memory.md's table
    states; the benchmark compares it with the measured peak). Device terms live on the GPU when the model does; the
    first two are what ``--max-memory`` holds (``BUDGETED``), the same arithmetic that sizes the superblocks."""
    t, k = grid.tile, num_classes
    b = windows_per_call(batch_size, k, t)
    strip = strip_width(grid, width)
    return {
        BLENDER: blender_bytes(grid, k, strip),
        FINISHED: finished_bytes(grid, k, width, probabilities, chunk_rows, queued),
        "model output: logits, probabilities, a blend temporary (device)": 3 * 4 * b * k * t * t,
        "batch images, staged + float (device)": b * t * t * (bands * itemsize + 3 * 4),
        "rows read ahead (host)": (threads + 2) * t * strip * (bands * itemsize + 1),
        "GDAL block cache (host, at most)": gdal_cache_bytes(),
    }


def gdal_cache_bytes() -> int:
    """GDAL_CACHEMAX as bytes (a number is MB, as GDAL reads it; aeroseg sets 256 unless the user did)."""
    text = os.environ.get("GDAL_CACHEMAX", "256").strip().upper()
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
            return int(text[: -len(unit)]) * factor
    return int(text) << 20 if text.isdigit() else 256 << 20
