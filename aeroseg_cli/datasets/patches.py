"""Cutting a large image into overlapping square patches, reading it band by band in bounded memory.

The window grid is the one mmsegmentation's iSAID converter makes: windows at multiples of the stride, the last one
shifted back so that it ends exactly at the image edge (so no window leaves the image and every pixel is covered).
A side shorter than the patch gets one window as long as that side: nothing is padded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets along one axis: 0, stride, 2*stride, ... and ``length - patch`` last (if not already there)."""
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def windows(height: int, width: int, patch: int, stride: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every window, row by row."""
    ph, pw = min(patch, height), min(patch, width)
    return [
        (y, y + ph, x, x + pw)
        for y in window_starts(height, patch, stride)
        for x in window_starts(width, patch, stride)
    ]


def patch_name(stem: str, window: tuple[int, int, int, int]) -> str:
    """``P0000_<y0>_<y1>_<x0>_<x1>``: the naming of mmsegmentation's converter and iSAID_Devkit."""
    y0, y1, x0, x1 = window
    return f"{stem}_{y0}_{y1}_{x0}_{x1}"


def read_rows(ds: Any, y0: int, y1: int, rgb: bool) -> np.ndarray:
    """Rows [y0, y1) of a rasterio dataset as uint8 (h, W, 3); palette images are expanded through their colours,
    grey ones repeated to three bands, an alpha band dropped."""
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window

    window = Window(0, y0, ds.width, y1 - y0)
    if ds.count == 1 or ds.colorinterp[0] == ColorInterp.palette:
        band = ds.read(1, window=window)
        if ds.colorinterp[0] == ColorInterp.palette:
            lut = np.zeros((256, 3), np.uint8)
            for k, colour in ds.colormap(1).items():
                lut[k] = colour[:3]
            return lut[band]
        if rgb:
            raise ValueError("one grey band, not three colour bands")
        return np.repeat(band[..., None], 3, axis=-1)
    if ds.count == 2:  # grey + alpha
        return np.repeat(ds.read(1, window=window)[..., None], 3, axis=-1)
    return np.moveaxis(ds.read([1, 2, 3], window=window), 0, -1)


def bands(ds: Any, starts: list[int], rows: int, rgb: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """For each start y (increasing), rows [y, y + rows) as (h, W, 3) uint8. Rows shared with the previous band are
    kept, so the file is read once, top to bottom (PNG cannot seek back without decoding from the start); memory is
    one band (``rows`` x width x 3 bytes), whatever the image height."""
    buffer = np.zeros((0, ds.width, 3), np.uint8)
    top = 0  # image row of buffer[0]
    for y in starts:
        end = min(y + rows, ds.height)
        keep = buffer[max(0, y - top) :] if y < top + len(buffer) else buffer[:0]
        first_new = y + len(keep)
        fresh = read_rows(ds, first_new, end, rgb) if end > first_new else buffer[:0]
        buffer = np.concatenate([keep, fresh]) if len(keep) else fresh
        top = y
        yield y, buffer
