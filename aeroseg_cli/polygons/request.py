"""What ``vectorize`` can be asked for: the typed input of label raster -> polygons. ``aeroseg vectorize`` builds one
from its options field by field (reading the defaults from here); Python callers build one directly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aeroseg_cli.files.errors import UsageError


@dataclass
class VectorizeOptions:
    """How a label raster becomes polygons; every default is the command's."""

    format: str | None = None  # gpkg, geojson, shp or parquet; None: from the output's extension
    classes: list[str] | None = None  # class names (or ids) to keep; None: every class
    min_area: float = 0.0  # map units²: smaller regions are merged into their neighbours (sieve)
    simplify: float = 0.0  # map units: coverage simplification tolerance (shared edges stay shared)
    probabilities: Path | None = None  # per-class probability raster: adds mean confidence per polygon
    dst_crs: str | None = None  # reproject the polygons (GeoJSON: EPSG:4326 unless given)
    overwrite: bool = False  # replace an existing output
    allow_ungeoreferenced: bool = False  # accept rasters without CRS (polygons in pixel coordinates)
    block_rows: int = 1024  # rows per strip (memory vs. speed)
    layer: str | None = None  # layer name; None: the raster's name

    def validate(self) -> None:
        """The values on their own, before any file is opened (one line each, exit 2)."""
        if self.min_area < 0 or self.simplify < 0:
            raise UsageError("--min-area and --simplify must not be negative")
        if self.block_rows < 1:
            raise UsageError("--block-rows must be at least 1")
        if self.dst_crs is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                CRS.from_user_input(self.dst_crs)
            except CRSError:
                raise UsageError(f"--dst-crs {self.dst_crs!r} is not a CRS pyproj knows") from None
