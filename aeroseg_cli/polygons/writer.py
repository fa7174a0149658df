"""The vector output: which format a path gets, and a writer that streams features into it and publishes the file
(with a shapefile's siblings) only when it is complete."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pyogrio

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import Output, check_outputs

FORMATS = {
    "gpkg": ("GPKG", ".gpkg"),
    "geojson": ("GeoJSON", ".geojson"),
    "shp": ("ESRI Shapefile", ".shp"),
    "parquet": ("parquet", ".parquet"),
}
EXTENSIONS = {".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson", ".shp": "shp", ".parquet": "parquet"}
# Formats that are one self-describing file, read back by content whatever its name. A GeoPackage must be named .gpkg
# (the spec; GDAL warns otherwise) and a shapefile .shp (its .shx/.dbf/.prj siblings are named after it; without an
# extension GDAL makes a folder of shapefiles), so those two need their extension.
ANY_NAME = ("geojson", "parquet")
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
NO_CRS_WARNING = "'crs' was not provided"  # pyogrio's, for a layer without CRS: expected with --allow-ungeoreferenced


def output_format(path: Path, fmt: str | None) -> str:
    """The format for ``path``: its extension's, or ``fmt`` where that does not contradict the extension."""
    ext = path.suffix.lower()
    known = EXTENSIONS.get(ext)
    if fmt is None:
        if known is None:
            raise UsageError(
                f"cannot tell the format of {path.name} from its extension; name it .gpkg, .geojson, .shp or "
                f".parquet (or use --format {' or --format '.join(ANY_NAME)} for another name)"
            )
        return known
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if known is not None and known != fmt:
        raise UsageError(f"--format {fmt} contradicts the extension of {path.name} ({ext} is {known}); drop one")
    if known is None and fmt not in ANY_NAME:
        raise UsageError(f"--format {fmt} needs the output named *{FORMATS[fmt][1]}, got {path.name}")
    return fmt


def _siblings(path: Path, fmt: str) -> list[Path]:
    return [path.with_suffix(s) for s in SHAPEFILE_PARTS] if fmt == "shp" else [path]


def vector_output(path: Path, fmt: str | None = None) -> Output:
    """The vector file as an output to check: a shapefile's sibling files count as part of it."""
    return Output(path, "vector output", tuple(p for p in _siblings(path, output_format(path, fmt)) if p != path))


def check_vector_output(path: Path, overwrite: bool, fmt: str | None = None, inputs: Sequence[Path] = ()) -> str:
    """Check ``path`` before any work (format, not an input, existing files, writable folder); returns the format."""
    check_outputs([vector_output(path, fmt)], [p for p in inputs if p is not None], overwrite)
    return output_format(path, fmt)


class VectorWriter:
    """Streams frames into a temporary folder beside the target; ``commit`` moves the file (and a shapefile's
    siblings) into place, ``discard`` removes everything: never a half-written file at the target."""

    def __init__(self, target: Path, fmt: str, layer: str, crs) -> None:
        self.target, self.fmt, self.layer, self.crs = target, fmt, layer, crs
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        self.tmp = self.tmpdir / target.name
        self.count = 0
        self._parquet_frames: list[gpd.GeoDataFrame] = []

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        """Append ``gdf`` (an empty frame still creates the layer with its schema)."""
        if self.fmt == "parquet":  # no append in (Geo)Parquet: collected, written once
            self._parquet_frames.append(gdf)
        else:
            driver = FORMATS[self.fmt][0]
            extra = {"geometry_type": "Polygon"} if len(gdf) == 0 else {}
            with warnings.catch_warnings():
                if self.crs is None:  # pixel coordinates were asked for; the summary says so
                    warnings.filterwarnings("ignore", message=NO_CRS_WARNING, category=UserWarning)
                pyogrio.write_dataframe(gdf, self.tmp, layer=self.layer, driver=driver, append=self.count > 0, **extra)
        self.count += len(gdf)

    def commit(self, overwrite: bool) -> None:
        """Finish the file and move it into place; refuses to replace a file that appeared meanwhile."""
        if self.fmt == "parquet":
            frames = [f for f in self._parquet_frames if len(f)] or self._parquet_frames[:1]
            gpd.GeoDataFrame(gpd.pd.concat(frames, ignore_index=True), crs=self.crs).to_parquet(self.tmp)
        for src in sorted(self.tmpdir.iterdir()):
            dest = self.target.parent / src.name
            if dest.exists() and not overwrite:
                raise CLIError(f"{dest} appeared during the run; not replaced (use --overwrite)")
            os.replace(src, dest)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)
