"""Vector output formats: which format a path gets, the files it writes beside itself, and the checks on it, all
before anything heavy is imported (so a bad output name is refused at once)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.files.safety import Output, check_outputs
from aeroseg_cli.files.sidecars import qml_path

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


def output_format(path: Path, fmt: str | None, choosable: bool = True) -> str:
    """The format for ``path``: its extension's, or ``fmt`` where that does not contradict the extension.
    ``choosable``: the command has a ``--format`` option to suggest (vectorize does, segment's ``--vector`` not)."""
    ext = path.suffix.lower()
    known = EXTENSIONS.get(ext)
    if fmt is None:
        if known is None:
            other = f" (or use --format {' or --format '.join(ANY_NAME)} for another name)" if choosable else ""
            raise UsageError(
                f"cannot tell the format of {path.name} from its extension; name it .gpkg, .geojson, .shp or "
                f".parquet{other}"
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
    """The files written for ``path``: a shapefile's parts, and the QGIS style beside every format but GeoPackage
    (which holds its style inside)."""
    files = [path.with_suffix(s) for s in SHAPEFILE_PARTS] if fmt == "shp" else [path]
    return files if fmt == "gpkg" else [*files, qml_path(path)]


def vector_output(path: Path, fmt: str | None = None, choosable: bool = True) -> Output:
    """The vector file as an output to check: a shapefile's sibling files and the style beside it count as part of
    it."""
    kind = output_format(path, fmt, choosable)
    return Output(path, "vector output", tuple(p for p in _siblings(path, kind) if p != path))


def check_vector_output(path: Path, overwrite: bool, fmt: str | None = None, inputs: Sequence[Path] = ()) -> str:
    """Check ``path`` before any work (format, not an input, existing files, writable folder); returns the format."""
    check_outputs([vector_output(path, fmt)], [p for p in inputs if p is not None], overwrite)
    return output_format(path, fmt)
