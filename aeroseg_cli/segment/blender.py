"""Blender: per-class probabilities weighted and summed over overlapping windows on the model's device, finished
window by window, so that only uint8 rows ever cross to the host.

Windows arrive in grid order (row-major within a superblock). After window (j, i) is added, the columns left of the
next window of row j are complete for the rows that window row j + 1 does not reach; they are turned into labels at
once. What row j + 1 still adds to (the bottom ``overlap`` rows) moves into a *carry* band. So the state is one
window of K planes plus a carry of ``overlap`` rows across the superblock: memory grows with the overlap, not with
the tile or the batch. Every pixel still receives its windows in grid order, so the result equals one whole-scene
accumulation bit for bit, whatever the superblock, rank band or resume point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aeroseg_cli.segment.tiler import Grid, Superblock, Window, weight2d

NODATA = 255
PROBABILITY_NODATA = 0  # probabilities are stored as p x 255, at least 1 where known, 0 where nothing was seen


@dataclass
class FinishedRows:
    """Finished output rows of one superblock: rows [row0, row0 + n) x columns [col0, col0 + w)."""

    row0: int
    col0: int
    labels: np.ndarray  # (n, w) uint8, NODATA where nodata / no window / unknown
    probabilities: np.ndarray | None  # (K, n, w) uint8 (p * 255, at least 1; 0 where nodata), or None


def blender_bytes(grid: Grid, num_classes: int, strip_width: int) -> int:
    """Device memory of a blender over ``strip_width`` columns: carry and active window, K + 1 float planes + mask."""
    per_pixel = 4 * (num_classes + 1) + 1
    return per_pixel * (grid.overlap * strip_width + grid.tile * grid.tile)


class RowBlender:
    """Blends the windows of one superblock; ``add`` them in grid order, ``pop`` the finished rows.

    ``rows`` (r0, r1): only scene rows in [r0, r1) are emitted (a resume point, a rank's band); the windows that
    reach them are all added, so those rows are exactly those of a whole-scene run. Pixels whose best probability
    is under ``unknown_threshold`` get ``unknown_label``: NODATA, or a background class (SegEarth-OV's rule).
    """

    def __init__(
        self,
        grid: Grid,
        block: Superblock,
        num_classes: int,
        device: torch.device,
        rows: tuple[int, int],
        unknown_threshold: float = 0.0,
        keep_probabilities: bool = False,
        unknown_label: int = NODATA,
    ) -> None:
        self.grid, self.block, self.k, self.device = grid, block, num_classes, device
        self.r0, self.r1 = rows
        self.unknown_threshold, self.keep_probabilities = unknown_threshold, keep_probabilities
        self.unknown_label = unknown_label
        t, ov, w = grid.tile, grid.overlap, block.width
        planes = num_classes + 1  # class sums and the weight sum
        self.carry = torch.zeros((planes, ov, w), dtype=torch.float32, device=device)
        self.carry_valid = torch.zeros((ov, w), dtype=torch.bool, device=device)
        self.active = torch.zeros((planes, t, t), dtype=torch.float32, device=device)
        self.active_valid = torch.zeros((t, t), dtype=torch.bool, device=device)
        self.a0 = self.a1 = 0  # strip columns held by the active window buffer
        self.row: int | None = None  # the window row being swept
        self.out: list[FinishedRows] = []
        self._pending: list[tuple[torch.Tensor, torch.Tensor | None, int]] = []  # device pieces of the row's output
        self._weights: dict[tuple[bool, ...], torch.Tensor] = {}

    @property
    def nbytes(self) -> int:
        return blender_bytes(self.grid, self.k, self.block.width)

    def _weight(self, window: Window) -> torch.Tensor:
        g = self.grid
        key = (window.row_index == 0, window.row_index == len(g.rows) - 1)
        key += (window.col_index == 0, window.col_index == len(g.cols) - 1)
        if key not in self._weights:
            self._weights[key] = torch.from_numpy(weight2d(g.tile, g.overlap, *key).copy()).to(self.device)
        return self._weights[key]

    def add(self, window: Window, probs: torch.Tensor | None, valid: torch.Tensor | None) -> None:
        """probs (K, T, T) float32 and valid (T, T) bool on the device, or None for a window that adds nothing
        (all nodata, or failed and skipped): its columns are finished all the same."""
        if window.row_index != self.row:
            self._start_row(window.row_index)
        self._extend(window.col - self.block.c0 + self.grid.tile)
        if probs is not None:
            self._accumulate(window, probs, valid)
        else:
            self._clear_fresh()
        nxt = window.col_index + 1
        done = self.grid.cols[nxt] - self.block.c0 if nxt < self.block.i1 else self.block.width
        self._finish_columns(done)
        if nxt >= self.block.i1:
            self._emit_row()

    def _start_row(self, j: int) -> None:
        if self.row is not None and j != self.row + 1:
            self.carry.zero_()  # rows were skipped (resume, rank band): nothing of row j - 1 reaches row j
            self.carry_valid.zero_()
        self.row, self.a0, self.a1 = j, 0, 0

    def _extend(self, end: int) -> None:
        """Grow the active window to strip column ``end``: its top ``overlap`` rows start from the carry; the rest is
        left for ``_accumulate`` to assign (or ``_clear_fresh`` to zero), which saves a zeroing pass."""
        end = min(end, self.block.width)
        self.fresh = max(0, end - self.a1)  # columns at the right end no window has touched yet in this row
        if end <= self.a1:
            return
        new, ov = slice(self.a1 - self.a0, end - self.a0), self.grid.overlap
        if ov:
            self.active[:, :ov, new] = self.carry[:, :, self.a1 : end]
            self.active_valid[:ov, new] = self.carry_valid[:, self.a1 : end]
        self.a1 = end

    def _clear_fresh(self, rows: int = 0) -> None:
        """Zero the fresh columns below ``overlap + rows`` (rows a window's contribution did not assign)."""
        if self.fresh:
            top, cols = self.grid.overlap + rows, slice(self.a1 - self.a0 - self.fresh, self.a1 - self.a0)
            self.active[:, top:, cols] = 0
            self.active_valid[top:, cols] = False

    def _accumulate(self, window: Window, probs: torch.Tensor, valid: torch.Tensor) -> None:
        """Add the window's weighted probabilities; where no window has been yet (fresh columns below the carried
        rows) assign them instead, which equals adding to zero bit for bit."""
        g, ov, k = self.grid, self.grid.overlap, self.k
        h = min(g.tile, g.height - window.row)
        w = min(g.tile, self.block.width - (window.col - self.block.c0))  # x = 0: the active window starts here
        all_valid = bool(valid[:h, :w].all())
        weight = self._weight(window)[:h, :w] if all_valid else self._weight(window)[:h, :w] * valid[:h, :w]
        old = w - self.fresh  # columns [0, old) hold sums already; [old, w) are fresh below the carried rows
        top = min(ov, h)
        acc, probs = self.active, probs[:, :h, :w]
        acc[:k, :top, :w].addcmul_(probs[:, :top], weight[:top])
        acc[k, :top, :w].add_(weight[:top])
        if old > 0:
            acc[:k, top:h, :old].addcmul_(probs[:, top:, :old], weight[top:, :old])
            acc[k, top:h, :old].add_(weight[top:, :old])
        if w > old:
            torch.mul(probs[:, top:, old:], weight[top:, old:], out=acc[:k, top:h, old:w])
            acc[k, top:h, old:w] = weight[top:, old:]
        if all_valid:
            self.active_valid[:h, :w] = True
        else:
            self.active_valid[:h, :old] |= valid[:h, :old]
            self.active_valid[top:h, old:w] = valid[top:h, old:w]
            self.active_valid[:top, old:w] |= valid[:top, old:w]
        self._clear_fresh(h - ov if h > ov else 0)

    def _finish_columns(self, done: int) -> None:
        """Columns [a0, done) are complete for this window row: label their final rows, carry the rest down."""
        if done <= self.a0:
            return
        g, n = self.grid, done - self.a0
        last_row = self.row == len(g.rows) - 1
        final = min(g.tile, g.height - g.rows[self.row]) if last_row else g.stride
        if not last_row and g.overlap:
            self.carry[:, :, self.a0 : done] = self.active[:, final : final + g.overlap, :n]
            self.carry_valid[:, self.a0 : done] = self.active_valid[final : final + g.overlap, :n]
        own0, own1 = max(self.a0, self.block.x0 - self.block.c0), min(done, self.block.x1 - self.block.c0)
        if own1 > own0:
            cols = slice(own0 - self.a0, own1 - self.a0)
            self._pending.append((*self._labels(self.active[:, :final, cols], self.active_valid[:final, cols]), own0))
        keep = self.a1 - done  # shift the unfinished columns to the front of the active window
        if keep > 0:
            self.active[:, :, :keep] = self.active[:, :, n : n + keep].clone()
            self.active_valid[:, :keep] = self.active_valid[:, n : n + keep].clone()
        self.a0 = done

    def _labels(self, acc: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(K + 1, n, w) sums -> labels (n, w) uint8 and, when kept, probabilities (K, n, w) uint8, on the device."""
        sums, wsum = acc[: self.k], acc[self.k]
        covered = (wsum > 0) & valid
        best, idx = sums.max(dim=0)  # dividing by the positive weight sum does not change the argmax
        labels = idx.to(torch.uint8)
        nodata = ~covered
        probs = None
        if self.unknown_threshold > 0 or self.keep_probabilities:
            denom = torch.where(covered, wsum, torch.ones_like(wsum))
            if self.unknown_threshold > 0:
                low = best / denom < self.unknown_threshold
                if self.unknown_label == NODATA:
                    nodata |= low
                else:
                    labels.masked_fill_(low, self.unknown_label)
            if self.keep_probabilities:
                probs = torch.where(covered, torch.round(sums / denom * 255).clamp_min_(1), PROBABILITY_NODATA)
                probs = probs.to(torch.uint8)
        return labels.masked_fill_(nodata, NODATA), probs

    def _emit_row(self) -> None:
        """The swept window row's final rows, clipped to [r0, r1), as one host array."""
        g = self.grid
        top = g.rows[self.row]
        pieces, self._pending = self._pending, []
        if not pieces:
            return
        labels = torch.cat([p[0] for p in pieces], dim=1)
        probs = torch.cat([p[1] for p in pieces], dim=2) if self.keep_probabilities else None
        a, b = max(self.r0, top), min(self.r1, top + labels.shape[0])
        if b <= a:
            return
        labels = labels[a - top : b - top].cpu().numpy()
        probs = probs[:, a - top : b - top].cpu().numpy() if probs is not None else None
        self.out.append(FinishedRows(a, self.block.x0, labels, probs))

    def pop(self) -> list[FinishedRows]:
        """Rows finished since the last call, top to bottom."""
        out, self.out = self.out, []
        return out
