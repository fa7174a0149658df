"""Blender: per-class probabilities weighted and averaged over overlapping windows, in bounded memory.

A rolling strip holds only the rows that windows still in flight can reach; rows that no future window touches are
finished, turned into labels and handed on. Windows are accumulated in grid order, so the result is the same
whatever the batch or block size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aeroseg_cli.segment.tiler import Grid, Window

NODATA = 255


@dataclass
class FinishedRows:
    row0: int
    labels: np.ndarray  # (n, width) uint8, NODATA where nodata / no window / unknown
    probabilities: np.ndarray | None  # (K, n, width) uint8 (p * 255), or None


class StripBlender:
    """Accumulates windows of one grid; ``finish(upto)`` releases rows < upto.

    Memory: 4 bytes x (K + 1) x rows_held x width, rows_held = tile + stride x (ceil(batch / windows per row) + 1).
    """

    def __init__(
        self,
        grid: Grid,
        num_classes: int,
        batch_size: int,
        start_row: int = 0,
        unknown_threshold: float = 0.0,
        keep_probabilities: bool = False,
    ) -> None:
        self.grid, self.k = grid, num_classes
        self.capacity = grid.tile + grid.stride * (math.ceil(batch_size / len(grid.cols)) + 1)
        self.base = start_row
        self.acc = np.zeros((num_classes, self.capacity, grid.width), dtype=np.float32)
        self.wsum = np.zeros((self.capacity, grid.width), dtype=np.float32)
        self.valid = np.zeros((self.capacity, grid.width), dtype=bool)
        self.used = 0  # strip rows holding contributions (rows below it are still zero)
        self.unknown_threshold = unknown_threshold
        self.keep_probabilities = keep_probabilities

    @property
    def nbytes(self) -> int:
        return self.acc.nbytes + self.wsum.nbytes + self.valid.nbytes

    def add(self, window: Window, probs: np.ndarray, valid: np.ndarray) -> None:
        """probs (K, tile, tile) in [0, 1], valid (tile, tile): blend the in-scene, not-yet-finished part."""
        g = self.grid
        r0, r1 = max(window.row, self.base), min(window.row + g.tile, g.height)
        c1 = min(window.col + g.tile, g.width)
        if r1 <= r0:
            return
        if r1 - self.base > self.capacity:
            raise RuntimeError("blender capacity exceeded (windows out of grid order)")
        wr0, wr1, wc1 = r0 - window.row, r1 - window.row, c1 - window.col
        b0, b1 = r0 - self.base, r1 - self.base
        weight = g.weight(window)[wr0:wr1, :wc1] * valid[wr0:wr1, :wc1]
        self.acc[:, b0:b1, window.col : c1] += probs[:, wr0:wr1, :wc1] * weight
        self.wsum[b0:b1, window.col : c1] += weight
        self.valid[b0:b1, window.col : c1] |= valid[wr0:wr1, :wc1]
        self.used = max(self.used, b1)

    def finish(self, upto: int) -> FinishedRows | None:
        """Labels for rows [base, upto) and release them."""
        upto = min(upto, self.grid.height)
        n = upto - self.base
        if n <= 0:
            return None
        acc, wsum, valid = self.acc[:, :n], self.wsum[:n], self.valid[:n]
        covered = (wsum > 0) & valid
        labels = acc.argmax(axis=0).astype(np.uint8)  # dividing by the positive weight sum keeps the argmax
        nodata = ~covered
        if self.unknown_threshold > 0 or self.keep_probabilities:
            probs = acc / np.where(covered, wsum, 1.0)
            if self.unknown_threshold > 0:
                nodata |= probs.max(axis=0) < self.unknown_threshold
        labels[nodata] = NODATA
        out_probs = None
        if self.keep_probabilities:
            out_probs = np.where(covered, np.rint(probs * 255), 0).astype(np.uint8)
        row0 = self.base
        # shift the rows still in use up by n and clear what they leave (only those rows: the rest is zero)
        keep = max(self.used - n, 0)
        if keep:
            self.acc[:, :keep] = self.acc[:, n : n + keep].copy()
            self.wsum[:keep] = self.wsum[n : n + keep].copy()
            self.valid[:keep] = self.valid[n : n + keep].copy()
        self.acc[:, keep : max(self.used, n)] = 0
        self.wsum[keep : max(self.used, n)] = 0
        self.valid[keep : max(self.used, n)] = False
        self.used = keep
        self.base = upto
        return FinishedRows(row0, labels, out_probs)
