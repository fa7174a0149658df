"""Scanning a scene for damaged blocks before a long run: every block of every band read once, in parallel.

A run meets a damaged tile only when it gets there, possibly hours in; a scan finds every one in the time it takes
to decode the file once, and names each with its place and GDAL's cause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from aeroseg_cli.segment.reader import gdal_cause, open_dataset


@dataclass
class BadBlock:
    row: int  # top-left pixel of the block
    col: int
    width: int
    height: int
    cause: str


@dataclass
class ScanResult:
    scene: str
    blocks: int
    bad: list[BadBlock] = field(default_factory=list)
    seconds: float = 0.0


class _Handles:
    """One dataset handle per thread (GDAL handles must not be shared)."""

    def __init__(self, path: str) -> None:
        self.path, self.local, self.all = path, threading.local(), []

    def get(self):
        ds = getattr(self.local, "ds", None)
        if ds is None:
            ds = self.local.ds = rasterio.open(self.path)
            self.all.append(ds)
        return ds

    def close(self) -> None:
        for ds in self.all:
            ds.close()


def _read(ds, window: Window) -> str | None:
    try:
        ds.read(window=window)
        ds.dataset_mask(window=window)
        return None
    except RasterioIOError as exc:
        return gdal_cause(exc)


def _scan_row(handles: _Handles, windows: list[Window]) -> list[BadBlock]:
    """One row of blocks at once; only when that fails, block by block to find which."""
    ds = handles.get()
    row = Window(0, windows[0].row_off, ds.width, windows[0].height)
    if _read(ds, row) is None:
        return []
    bad = []
    for w in windows:
        cause = _read(ds, w)
        if cause is not None:
            bad.append(BadBlock(int(w.row_off), int(w.col_off), int(w.width), int(w.height), cause))
    return bad


def scan(path: str, threads: int = 4, progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """Read every block of ``path`` once (all bands and the mask); -> the damaged ones."""
    start = time.perf_counter()
    with open_dataset(path) as ds:
        rows: dict[int, list[Window]] = {}
        for _, w in ds.block_windows(1):
            rows.setdefault(int(w.row_off), []).append(w)
    result = ScanResult(path, sum(len(r) for r in rows.values()))
    handles = _Handles(path)
    try:
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="aeroseg-scan") as pool:
            for n, bad in enumerate(pool.map(lambda ws: _scan_row(handles, ws), rows.values()), start=1):
                result.bad += bad
                if progress:
                    progress(n, len(rows))
    finally:
        handles.close()
    result.seconds = time.perf_counter() - start
    return result
