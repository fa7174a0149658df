"""Scanning a scene for damaged blocks before a long run: every block of every band read once, in parallel.

A run meets a damaged tile only when it gets there, possibly hours in; a scan finds every one in the time it takes
to decode the file once, and names each with its place and GDAL's cause. Reads run under ``files.gdalread.checked``
(any error GDAL reports fails the read) and a handle whose read failed is reopened before the next read, so one
damaged block or missing VRT source cannot make later reads of the same handle return zeros unnoticed.
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

from aeroseg_cli.files.gdalread import checked
from aeroseg_cli.segment.reader import gdal_cause, one_at_a_time, open_dataset, quiet_georeferencing


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
    """One dataset handle per thread (GDAL handles must not be shared), reopened after a failed read."""

    def __init__(self, path: str, driver: str) -> None:
        self.path, self.driver, self.local, self.all = path, driver, threading.local(), []
        self.lock = threading.Lock()

    def read(self, window: Window) -> str | None:
        """Every band and the mask of ``window``; GDAL's cause if that failed (the handle is then dropped)."""
        with one_at_a_time(self.path, self.driver):
            return self._read(window)

    def _read(self, window: Window) -> str | None:
        try:
            ds = getattr(self.local, "ds", None)
            if ds is None:
                with quiet_georeferencing(), checked(self.path, strict=False):
                    ds = self.local.ds = rasterio.open(self.path)
                with self.lock:
                    self.all.append(ds)
            with checked(self.path):
                ds.read(window=window)
                ds.dataset_mask(window=window)
            return None
        except RasterioIOError as exc:
            self.local.ds = None  # closed with the others at the end; never read again
            return gdal_cause(exc)

    def close(self) -> None:
        with checked(self.path, strict=False):
            for ds in self.all:
                ds.close()


def _scan_row(handles: _Handles, windows: list[Window], width: int) -> list[BadBlock]:
    """One row of blocks at once; only when that fails, block by block to find which."""
    row = Window(0, windows[0].row_off, width, windows[0].height)
    if handles.read(row) is None:
        return []
    bad = []
    for w in windows:
        cause = handles.read(w)
        if cause is not None:
            bad.append(BadBlock(int(w.row_off), int(w.col_off), int(w.width), int(w.height), cause))
    return bad


def scan(path: str, threads: int = 4, progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """Read every block of ``path`` once (all bands and the mask); -> the damaged ones."""
    start = time.perf_counter()
    with open_dataset(path) as ds, checked(path, strict=False):
        rows: dict[int, list[Window]] = {}
        for _, w in ds.block_windows(1):
            rows.setdefault(int(w.row_off), []).append(w)
        width, driver = ds.width, ds.driver
    result = ScanResult(path, sum(len(r) for r in rows.values()))
    handles = _Handles(path, driver)
    try:
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="aeroseg-scan") as pool:
            for n, bad in enumerate(pool.map(lambda ws: _scan_row(handles, ws, width), rows.values()), start=1):
                result.bad += bad
                if progress:
                    progress(n, len(rows))
    finally:
        handles.close()
    result.seconds = time.perf_counter() - start
    return result
