"""Cutting a large image into square patches, reading it band by band in bounded memory.

The window grid is the one iSAID_Devkit's ``split.py``, mmsegmentation's iSAID converter and the iSAID-5i patches
share: windows at multiples of the stride, the last one shifted back so that it ends exactly at the image edge (no
window leaves the image, every pixel is covered; ``edge="shift"``). A side shorter than the patch gets one window as
long as that side: nothing is padded. ``edge="drop"`` leaves the remainder out instead (a plain grid of whole tiles,
as OpenEarthMap's processed tiles are counted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

EDGES = ("shift", "drop")


def window_starts(length: int, patch: int, stride: int, edge: str = "shift") -> list[int]:
    """Start offsets along one axis: 0, stride, 2*stride, ... and, with ``edge="shift"``, ``length - patch`` last
    (if not already there); with ``edge="drop"`` only windows that fit (none on a side shorter than the patch)."""
    if length <= patch:
        return [0] if edge == "shift" or length == patch else []
    starts = list(range(0, length - patch + 1, stride))
    if edge == "shift" and starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def windows(height: int, width: int, patch: int, stride: int, edge: str = "shift") -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every window, row by row."""
    ph, pw = min(patch, height), min(patch, width)
    return [
        (y, y + ph, x, x + pw)
        for y in window_starts(height, patch, stride, edge)
        for x in window_starts(width, patch, stride, edge)
    ]


@dataclass(frozen=True)
class Windowing:
    """Which patches an image gives: the grid above, then a window is kept when at least ``min_foreground`` of its
    pixels are labelled (not ignore) or, with ``keep``, exactly when its name is listed."""

    patch: int
    stride: int
    edge: str = "shift"
    min_foreground: float = 0.0
    keep: frozenset[str] | None = None

    def starts(self, length: int) -> list[int]:
        return window_starts(length, self.patch, self.stride, self.edge)

    def windows(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        return windows(height, width, self.patch, self.stride, self.edge)

    def kept(self, name: str, labelled: int, area: int) -> bool:
        """Whether the window ``name`` with ``labelled`` of its ``area`` pixels labelled is written."""
        if self.keep is not None:
            return name in self.keep
        return labelled >= self.min_foreground * area


PATCH_NAME = re.compile(r"(?P<stem>.+)_(?P<y0>\d+)_(?P<y1>\d+)_(?P<x0>\d+)_(?P<x1>\d+)")


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
