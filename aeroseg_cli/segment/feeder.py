"""Feeder: reads a superblock one row of windows at a time (one GDAL read per row, on decode threads that each hold
their own dataset handle), cuts the windows out, and hands batches to the model's device in grid order.

GDAL releases the GIL while it decodes, so several threads decode rows ahead while the model runs. Images cross to
the device in their stored dtype (uint8 for most imagery: a quarter of float32), through pinned buffers with
non-blocking copies on CUDA; the radiometric stretch runs there.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from aeroseg_cli.segment.aoi import Aoi
from aeroseg_cli.segment.reader import ReadError, SceneInfo, SceneReader
from aeroseg_cli.segment.tiler import Grid, Superblock, Window

TORCH_DTYPES = {
    "uint8": torch.uint8,
    "uint16": torch.uint16,
    "int16": torch.int16,
    "int32": torch.int32,
    "float32": torch.float32,
}


@dataclass
class Entry:
    """A window in grid order: ``slot`` indexes the batch's images, or None when it is not sent to the model."""

    window: Window
    slot: int | None
    error: str | None = None  # why a window could not be read (None: all nodata)


@dataclass
class Batch:
    """Up to B windows for one model call, with the windows skipped between them, in grid order."""

    entries: list[Entry]
    images: torch.Tensor | None = None  # (n, 3, T, T) float32 in [0, 1] on the device
    valid: torch.Tensor | None = None  # (n, T, T) bool on the device

    @property
    def size(self) -> int:
        return 0 if self.images is None else len(self.images)


@dataclass
class RowData:
    """One row of windows of a superblock, read at once (data (bands, T, width) in the stored dtype, valid
    (T, width)), or, when that read failed, window by window: the readable ones and the causes of the others."""

    j: int
    data: np.ndarray | None = None
    valid: np.ndarray | None = None
    pieces: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    bad: dict[int, str] = field(default_factory=dict)
    outside: bool = False  # no window of the row touches the --aoi: nothing read, nothing run

    def window(self, i: int, x: int, tile: int) -> tuple[np.ndarray, np.ndarray] | str | None:
        """Window column ``i`` (at strip offset ``x``): (data, valid), the read error's cause, or None outside the
        AOI."""
        if self.outside:
            return None
        if self.data is not None:
            return self.data[:, :, x : x + tile], self.valid[:, x : x + tile]
        return self.pieces.get(i) or self.bad.get(i)


class Feeder:
    """``batches(block, j0, j1)``: the windows of window rows [j0, j1) of a superblock, as batches of <= B."""

    def __init__(
        self,
        info: SceneInfo,
        grid: Grid,
        device: torch.device,
        batch_size: int,
        threads: int = 0,
        aoi: Aoi | None = None,
    ) -> None:
        self.info, self.grid, self.device, self.batch_size = info, grid, device, batch_size
        self.aoi, self.touching = aoi, aoi.touching(grid) if aoi is not None else None
        self.threads = threads
        self._local = threading.local()
        self._readers: list[SceneReader] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="aeroseg-read") if threads else None
        self._pinned: deque[tuple[torch.Tensor, torch.cuda.Event | None]] = deque()

    def __enter__(self) -> Feeder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for reader in self._readers:
            reader.close()

    def _reader(self) -> SceneReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:  # inline, GDAL decodes the tiles of a read in parallel itself (1.5x on a 2-core machine)
            reader = self._local.reader = SceneReader(self.info, "ALL_CPUS" if not self.threads else 1)
            with self._lock:
                self._readers.append(reader)
        return reader

    def read_row(self, block: Superblock, j: int) -> RowData:
        """Window row ``j`` across the superblock; a failed read is retried window by window to find the bad ones."""
        g = self.grid
        r, c1 = g.rows[j], g.cols[block.i1 - 1] + g.tile
        if self.touching is not None and not self.touching[j, block.i0 : block.i1].any():
            return RowData(j, outside=True)
        try:
            return RowData(j, *self._read(r, r + g.tile, block.c0, c1))
        except ReadError:
            row = RowData(j)
            for i in range(block.i0, block.i1):
                if self.touching is not None and not self.touching[j, i]:
                    continue  # outside the AOI: not read, skipped
                try:
                    row.pieces[i] = self._read(r, r + g.tile, g.cols[i], g.cols[i] + g.tile)
                except ReadError as one:
                    row.bad[i] = one.cause
            return row

    def _read(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """The reader's data and validity, pixels outside the AOI made invalid (the image itself is untouched)."""
        data, valid = self._reader().read(r0, r1, c0, c1)
        if self.aoi is not None:
            valid &= self.aoi.mask(r0, r1, c0, c1)
        return data, valid

    def _rows(self, block: Superblock, j0: int, j1: int) -> Iterator[RowData]:
        """Rows in order; with threads, up to ``threads + 1`` rows are read ahead."""
        if self._pool is None:
            yield from (self.read_row(block, j) for j in range(j0, j1))
            return
        ahead: deque[Future] = deque()
        nxt = j0
        while nxt < j1 or ahead:
            while nxt < j1 and len(ahead) <= self.threads:
                ahead.append(self._pool.submit(self.read_row, block, nxt))
                nxt += 1
            yield ahead.popleft().result()

    def batches(self, block: Superblock, j0: int, j1: int) -> Iterator[Batch]:
        g, t = self.grid, self.grid.tile
        entries: list[Entry] = []
        images: list[np.ndarray] = []
        valids: list[np.ndarray] = []
        for row in self._rows(block, j0, j1):
            for i in range(block.i0, block.i1):
                window = g.window(row.j, i)
                piece = row.window(i, g.cols[i] - block.c0, t)
                if isinstance(piece, str):
                    entries.append(Entry(window, None, f"window at row {window.row}, col {window.col}: {piece}"))
                    continue
                if piece is None or not piece[1].any():
                    entries.append(Entry(window, None))
                    continue
                entries.append(Entry(window, len(images)))
                images.append(piece[0])
                valids.append(piece[1])
                if len(images) == self.batch_size:
                    yield self._to_device(entries, images, valids)
                    entries, images, valids = [], [], []
        if entries:
            yield self._to_device(entries, images, valids)

    def _to_device(self, entries: list[Entry], images: list[np.ndarray], valids: list[np.ndarray]) -> Batch:
        if not images:
            return Batch(entries)
        raw = self._stage(np.stack(images))
        x = self.info.radiometry.to_unit(raw)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        valid = torch.from_numpy(np.stack(valids)).to(self.device, non_blocking=True)
        return Batch(entries, x, valid)

    def _stage(self, raw: np.ndarray) -> torch.Tensor:
        """Host array -> device tensor in the stored dtype (float32 for dtypes torch cannot move as is)."""
        if raw.dtype.name not in TORCH_DTYPES:
            raw = raw.astype(np.float32)
        tensor = torch.from_numpy(raw)
        if self.device.type != "cuda":
            return tensor
        pinned = self._pinned_buffer(tensor)
        pinned.copy_(tensor)
        out = pinned.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pinned.append((pinned, event))
        return out

    def _pinned_buffer(self, like: torch.Tensor) -> torch.Tensor:
        """A pinned host buffer whose last copy has finished (a ring of three, so copies overlap compute)."""
        while len(self._pinned) >= 3:
            buf, event = self._pinned.popleft()
            if event is not None:
                event.synchronize()
            if buf.shape == like.shape and buf.dtype == like.dtype:
                return buf
        return torch.empty(like.shape, dtype=like.dtype, pin_memory=True)
