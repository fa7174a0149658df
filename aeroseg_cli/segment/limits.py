"""Sizes a run cannot do, refused before any work (exit 2, in microseconds: arithmetic only, no torch), and the
overlap that only repeats work, warned about.

The pipeline's own memory for one model call is known from the settings alone (``batch_bytes``): the batch's images
(staged in the stored dtype and as float), the model's output, the probabilities and a blend temporary, and the
blender's active window. It is a lower bound of the run's peak (the network's activations come on top), so a batch
that does not fit in the memory there is can never run: ``--tile 100000`` would otherwise end, after the checks and
the model load, in torch's "tried to allocate 160000000000 bytes".
"""

from __future__ import annotations

import os

from aeroseg_cli.files.errors import UsageError

CALL_OUTPUT_CAP = 256 << 20  # bytes of one model call's probabilities (B, K, T, T) float32
REDUNDANCY_WARNING = 4.0  # windows per pixel above which --overlap only repeats work (0.5 gives 4)


def windows_per_call(batch_size: int, num_classes: int, tile: int) -> int:
    """The batch, lowered so that one call's probabilities stay under ``CALL_OUTPUT_CAP`` (254 classes at 384 px are
    150 MB a window, and the model's output, its probabilities and a blend temporary are each that size). It depends
    only on settings the resume fingerprint holds, never on free memory, so every block and rank calls the model
    with one shape and the output stays bit-identical."""
    return max(1, min(batch_size, CALL_OUTPUT_CAP // (4 * num_classes * tile * tile)))


def batch_bytes(tile: int, batch_size: int, num_classes: int, bands: int, itemsize: int) -> int:
    """The pipeline's own bytes for one model call: images (stored dtype + float32, 3 channels), the model's output,
    probabilities and a blend temporary (float32, K planes each), and the blender's active window (K + 1 float32
    planes and a mask)."""
    b, px = windows_per_call(batch_size, num_classes, tile), tile * tile
    return b * px * (bands * itemsize + 3 * 4) + 3 * 4 * b * num_classes * px + (4 * (num_classes + 1) + 1) * px


def available_memory() -> int | None:
    """Bytes of host memory available now (Linux ``MemAvailable``; else the physical memory), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_batch(tile: int, batch_size: int, num_classes: int, bands: int, itemsize: int, memory: int | None,
                where: str = "memory available") -> None:  # fmt: skip
    """Refuse a tile and batch whose one model call cannot fit in ``memory`` bytes (None: unknown, not checked)."""
    need = batch_bytes(tile, batch_size, num_classes, bands, itemsize)
    if memory is None or need <= memory:
        return
    b = windows_per_call(batch_size, num_classes, tile)
    raise UsageError(
        f"--tile {tile} ({b} window(s) per model call, {num_classes} class(es)) needs at least {gib(need)} for one "
        f"batch (images, class probabilities, the blender's window), more than the {gib(memory)} of {where}: give "
        "a smaller --tile" + (" or --batch-size" if b > 1 else "")
    )


def check_blend_budget(tile: int, num_classes: int, overlap_px: int, max_memory: int | None) -> None:
    """``--max-memory`` must hold at least the blender's one window and the carry of one superblock."""
    if max_memory is None:
        return
    need = (4 * (num_classes + 1) + 1) * (tile * tile + overlap_px * (512 + 2 * tile))
    if need > max_memory:
        raise UsageError(
            f"--max-memory {gib(max_memory)} cannot hold the blender of one --tile {tile} window with "
            f"{num_classes} class(es) ({gib(need)}): give a larger --max-memory or a smaller --tile"
        )


def redundancy(tile: int, stride: int) -> float:
    """Windows that cover each pixel, on average, away from the edges."""
    return (tile / stride) ** 2


def overlap_warning(overlap: float, tile: int, stride: int, windows: int) -> str | None:
    """A warning when ``--overlap`` runs every pixel through more than ``REDUNDANCY_WARNING`` windows."""
    factor = redundancy(tile, stride)
    if factor <= REDUNDANCY_WARNING:
        return None
    return (
        f"--overlap {overlap:g} runs every pixel through about {factor:.0f} windows ({windows} windows in all); "
        "the map changes little above 0.5, the time grows with it"
    )
