"""aeroseg command line and geospatial pipeline (reader -> tiler -> model -> blender -> writer), and its Python API:

    from aeroseg_cli import segment, vectorize

``segment(scenes, classes=[...], output=..., model=...)`` and ``vectorize(labels, output, ...)`` take the fields of
``SegmentRequest`` and ``VectorizeOptions`` (see ``aeroseg_cli.api``). Importing the package loads nothing heavy and
changes no process setting; names are resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aeroseg_cli.version import __version__ as __version__  # written once, in version.py

if TYPE_CHECKING:
    from aeroseg_cli.api import VectorizeResult, segment, vectorize
    from aeroseg_cli.files.errors import AerosegError, AerosegWarning, UsageError
    from aeroseg_cli.polygons.request import VectorizeOptions
    from aeroseg_cli.runtime.host import configure_process
    from aeroseg_cli.segment.request import SegmentRequest
    from aeroseg_cli.segment.runner import SegmentRun

# Bound now, not on first use: the pipeline's subpackage is also called ``segment`` (aeroseg_cli/segment/), and
# importing it sets the package attribute to the module; bound after that import, the name stays the function's
# (``aeroseg_cli.api`` imports only light modules: no torch, rasterio or GDAL).
from aeroseg_cli.api import segment, vectorize

_PUBLIC = {
    "VectorizeResult": "aeroseg_cli.api",
    "SegmentRun": "aeroseg_cli.segment.runner",
    "SegmentRequest": "aeroseg_cli.segment.request",
    "VectorizeOptions": "aeroseg_cli.polygons.request",
    "AerosegError": "aeroseg_cli.files.errors",
    "UsageError": "aeroseg_cli.files.errors",
    "AerosegWarning": "aeroseg_cli.files.errors",
    "configure_process": "aeroseg_cli.runtime.host",
}
__all__ = [
    "AerosegError",
    "AerosegWarning",
    "SegmentRequest",
    "SegmentRun",
    "UsageError",
    "VectorizeOptions",
    "VectorizeResult",
    "configure_process",
    "segment",
    "vectorize",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (PEP 562): ``import aeroseg_cli`` stays light for the CLI."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aeroseg_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
