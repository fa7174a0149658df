"""Tiler: one global grid of overlapping windows over the scene, their blending weights, and the column superblocks
that bound memory on wide scenes.

Every window has one place in the global grid (row-major index), whatever superblock, rank band or resume point
processes it, and pixels receive their windows' contributions in grid order: that is what makes the output
independent of how the scene is split.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from aeroseg_cli.files.errors import UsageError

WEIGHT_FLOOR = 1e-3  # keeps every covered pixel's weight positive
BLOCK = 512  # GeoTIFF tile size: superblock and chunk boundaries fall on it, so no output tile is written twice


def axis_origins(length: int, tile: int, stride: int) -> list[int]:
    """Window starts along one axis: 0, stride, 2*stride, ... until the scene is covered (the last may overhang)."""
    if length <= tile:
        return [0]
    return [k * stride for k in range(math.ceil((length - tile) / stride) + 1)]


@lru_cache(maxsize=64)
def ramp(tile: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D weight (tile,) float32: a raised-cosine ramp over the overlap at each side, 1 inside and on sides that touch
    the scene border (no down-weighting where no neighbour shares the pixels). Neighbouring ramps sum to 1."""
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


@lru_cache(maxsize=64)
def weight2d(tile: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
    """(tile, tile) float32, the product of a row and a column ramp; at most 9 distinct ones per grid."""
    w = ramp(tile, overlap, top, bottom)[:, None] * ramp(tile, overlap, left, right)[None, :]
    w.setflags(write=False)
    return w


@dataclass(frozen=True)
class Window:
    index: int  # position in grid order (row-major over the whole scene)
    row_index: int
    col_index: int
    row: int  # top-left in model pixels; the window may overhang the bottom/right edges
    col: int


@dataclass(frozen=True)
class Superblock:
    """A full-height column of the scene: it owns output columns [x0, x1) and runs every window touching them
    (window columns [i0, i1)), whose pixels span columns [c0, c1) of the scene (clipped to its width)."""

    x0: int
    x1: int
    i0: int
    i1: int
    c0: int
    c1: int

    @property
    def width(self) -> int:
        return self.c1 - self.c0


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

    def window(self, j: int, i: int) -> Window:
        return Window(j * len(self.cols) + i, j, i, self.rows[j], self.cols[i])

    def windows(self, j0: int = 0, j1: int | None = None, i0: int = 0, i1: int | None = None) -> Iterator[Window]:
        """Windows of window rows [j0, j1) and columns [i0, i1), in grid order."""
        for j in range(j0, len(self.rows) if j1 is None else j1):
            for i in range(i0, len(self.cols) if i1 is None else i1):
                yield self.window(j, i)

    def first_row_touching(self, row: int) -> int:
        """The first window row whose windows reach scene row ``row``."""
        return next((j for j, r in enumerate(self.rows) if r + self.tile > row), len(self.rows))

    def rows_touching(self, r0: int, r1: int) -> tuple[int, int]:
        """Window rows [j0, j1) whose windows touch scene rows [r0, r1)."""
        j1 = sum(1 for r in self.rows if r < r1)
        return min(self.first_row_touching(r0), j1), j1

    def weight(self, window: Window) -> np.ndarray:
        """(tile, tile) blending weight of a window."""
        last_j, last_i = len(self.rows) - 1, len(self.cols) - 1
        return weight2d(
            self.tile,
            self.overlap,
            window.row_index == 0,
            window.row_index == last_j,
            window.col_index == 0,
            window.col_index == last_i,
        )

    def superblock(self, x0: int, x1: int) -> Superblock:
        i0 = next(i for i, c in enumerate(self.cols) if c + self.tile > x0)
        i1 = sum(1 for c in self.cols if c < x1)
        return Superblock(x0, x1, i0, i1, self.cols[i0], min(self.cols[i1 - 1] + self.tile, self.width))

    def superblocks(self, max_width: int) -> list[Superblock]:
        """Owned column ranges of at most ``max_width`` pixels (multiples of BLOCK, the last takes the rest)."""
        if max_width >= self.width:
            return [self.superblock(0, self.width)]
        step = max(BLOCK, max_width // BLOCK * BLOCK)
        edges = [*range(0, self.width, step), self.width]
        return [self.superblock(a, b) for a, b in itertools.pairwise(edges)]
