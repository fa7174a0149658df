"""Tiler: one global grid of overlapping windows over the scene, and the blending weight of each window."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from aeroseg_cli.files.errors import UsageError

WEIGHT_FLOOR = 1e-3  # keeps every covered pixel's weight positive


def axis_origins(length: int, tile: int, stride: int) -> list[int]:
    """Window starts along one axis: 0, stride, 2*stride, ... until the scene is covered (the last may overhang)."""
    if length <= tile:
        return [0]
    return [k * stride for k in range(math.ceil((length - tile) / stride) + 1)]


@lru_cache(maxsize=64)
def ramp(tile: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D weight (tile,): a raised-cosine ramp over the overlap at each side, 1 inside and on sides that touch the
    scene border (no down-weighting where no neighbour shares the pixels). Neighbouring ramps sum to 1."""
    w = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
        up = (WEIGHT_FLOOR + (1 - WEIGHT_FLOOR) * 0.5 * (1 - np.cos(np.pi * t))).astype(np.float32)
        if not first:
            w[:overlap] = up
        if not last:
            w[tile - overlap :] = up[::-1]
    w.setflags(write=False)
    return w


@dataclass(frozen=True)
class Window:
    index: int  # position in grid order (row-major)
    row_index: int
    row: int  # top-left in model pixels; may be negative-free but overhang the bottom/right edges
    col: int


@dataclass(frozen=True)
class Grid:
    """Row-major windows of ``tile`` pixels every ``stride`` pixels over a ``height`` x ``width`` scene."""

    height: int
    width: int
    tile: int
    stride: int

    @classmethod
    def from_overlap(cls, height: int, width: int, tile: int, overlap: float) -> Grid:
        if tile < 32:
            raise UsageError(f"--tile must be at least 32 pixels, got {tile}")
        if not 0 <= overlap < 1:
            raise UsageError(f"--overlap is a fraction of the tile in [0, 1), got {overlap}")
        overlap_px = round(overlap * tile)
        if tile - overlap_px <= 0:
            raise UsageError(f"--tile {tile} must be larger than the overlap ({overlap_px} px)")
        return cls(height, width, tile, tile - overlap_px)

    @property
    def overlap(self) -> int:
        return self.tile - self.stride

    @cached_property
    def rows(self) -> list[int]:
        return axis_origins(self.height, self.tile, self.stride)

    @cached_property
    def cols(self) -> list[int]:
        return axis_origins(self.width, self.tile, self.stride)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def windows(self, start_row_index: int = 0) -> Iterator[Window]:
        rows, cols = self.rows, self.cols
        for j in range(start_row_index, len(rows)):
            for i, col in enumerate(cols):
                yield Window(j * len(cols) + i, j, rows[j], col)

    def first_row_index_touching(self, row: int) -> int:
        """The first window row whose windows reach output row ``row`` (to resume from finished rows)."""
        for j, r in enumerate(self.rows):
            if r + self.tile > row:
                return j
        return len(self.rows)

    def weight(self, window: Window) -> np.ndarray:
        """(tile, tile) blending weight of a window, the product of its row and column ramps."""
        rows, cols = self.rows, self.cols
        return _weight2d(
            self.tile,
            self.overlap,
            window.row == rows[0],
            window.row == rows[-1],
            window.col == cols[0],
            window.col == cols[-1],
        )


@lru_cache(maxsize=64)
def _weight2d(tile: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
    """At most 9 distinct weights per grid (inner, edges, corners): computed once each."""
    w = ramp(tile, overlap, top, bottom)[:, None] * ramp(tile, overlap, left, right)[None, :]
    w.setflags(write=False)
    return w
