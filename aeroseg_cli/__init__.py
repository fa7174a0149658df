"""aeroseg command line and geospatial pipeline (reader -> tiler -> model -> blender -> writer), and its Python API:

    from aeroseg_cli import segment, vectorize

``segment(scenes, classes=[...], output=..., model=...)`` and ``vectorize(labels, output, ...)`` take the fields of
``SegmentRequest`` and ``VectorizeOptions`` (see ``aeroseg_cli.api``). Importing the package loads nothing heavy and
changes no process setting; names are resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

if TYPE_CHECKING:
    from aeroseg_cli.api import VectorizeResult, segment, vectorize
    from aeroseg_cli.files.errors import AerosegError, AerosegWarning, UsageError
    from aeroseg_cli.polygons.request import VectorizeOptions
    from aeroseg_cli.runtime.host import configure_process
    from aeroseg_cli.segment.request import SegmentRequest

_PUBLIC = {
    "segment": "aeroseg_cli.api",
    "vectorize": "aeroseg_cli.api",
    "VectorizeResult": "aeroseg_cli.api",
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
