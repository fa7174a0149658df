"""Process-wide settings the command line makes for its runs (``app.main`` calls ``configure_process``; the Python
API leaves a program's own settings alone), and why.

Host memory behaviour for long tensor pipelines.

glibc serves allocations above 32 MB with ``mmap`` and gives them back on ``free``, so a pipeline that allocates a
70 MB tensor per batch page-faults every byte of it every time: measured here, a 15-class probe batch ran at 9 ms
per window that way and at 2.8 ms with the blocks kept (the same reason PyTorch's CPU guides recommend jemalloc or
tcmalloc). Keeping freed blocks in the heap costs nothing in peak memory, which is what the budgets bound. Torch
reuses them only with its huge-page allocations on (``THP_MEM_ALLOC_ENABLE=1``, set by ``configure_process``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import glob
import importlib.util
import os

# GDAL options that make damaged data an error rather than a warning with made-up pixels (libjpeg's "premature end
# of data"; files/gdalread.py also fails a read on that warning). The command line sets them for its process, the
# Python API for the duration of a call (``files.gdalread.strict_reads``); a user's own setting wins in both.
STRICT_READS = {"GDAL_ERROR_ON_LIBJPEG_WARNING": "TRUE"}

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@functools.cache
def keep_freed_memory() -> bool:
    """Large allocations from the heap, freed blocks kept for reuse (glibc ``mallopt``); False where unavailable."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
        )  # mallopt takes a C int
    return False


def configure_process() -> None:
    """The command line's process-wide settings, made before GDAL or torch start: a user's own environment wins."""
    # GDAL's block cache defaults to 5 % of RAM and fills with the tiles of wide scenes; windows are read in row
    # order, so a small cache serves them as well.
    os.environ.setdefault("GDAL_CACHEMAX", "256")
    # torch's large CPU tensors on transparent huge pages: with freed blocks kept (below), a pipeline that allocates
    # a 70 MB tensor per batch stops page-faulting it every time (measured: 52 ms -> 5 ms per allocation).
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    # a damaged JPEG-compressed block is an error, not a warning with made-up pixels (files/gdalread.py)
    for key, value in STRICT_READS.items():
        os.environ.setdefault(key, value)
    keep_freed_memory()


_LIBTIFF_QUIET = False


def quiet_libtiff() -> None:
    """Ask for libtiff's raw messages to be switched off in this process (the command line does, not with --debug).
    The switch itself is made by ``silence_libtiff`` once GDAL has opened a TIFF: GDAL's TIFF driver installs its own
    handlers when it starts, so a switch made before that does not hold (measured: the raw line came back)."""
    global _LIBTIFF_QUIET
    _LIBTIFF_QUIET = True


def silence_libtiff() -> None:
    """libtiff's default error handler prints raw lines ("_tiffWriteProc: File too large.") to stderr on a path that
    GDAL's own handlers do not catch; the label writer verifies every chunk and names the error itself. A no-op
    unless the process asked for it (``quiet_libtiff``): a Python program keeps libtiff as it has it."""
    if _LIBTIFF_QUIET:
        _switch_off_libtiff_errors()


@functools.cache
def _switch_off_libtiff_errors() -> None:
    """Only the copy of libtiff that rasterio loads is touched, found without importing rasterio."""
    spec = importlib.util.find_spec("rasterio")
    where = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else ""
    bundled = glob.glob(os.path.join(where, os.pardir, "rasterio.libs", "libtiff*.so*")) if where else []
    name = bundled[0] if bundled else ctypes.util.find_library("tiff")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).TIFFSetErrorHandler(None)
