"""``aeroseg vectorize``: label raster in, GIS polygons out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer

from aeroseg_cli.commands.options import PROGRESS
from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.files.safety import exclusive


def vectorize(
    labels: str = typer.Argument(..., help="Label GeoTIFF (e.g. from `aeroseg segment`), or a GDAL path or URL."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file: .gpkg, .geojson, .shp or .parquet."),
    fmt: str = typer.Option(
        None, "--format", "-f", help="gpkg, geojson, shp or parquet [from the extension, which it must not contradict]."
    ),
    classes: str = typer.Option(None, "--classes", help="Comma-separated class names (or ids) to keep."),
    min_area: float = typer.Option(
        0.0, "--min-area", help="Merge regions smaller than this (map units²) into their neighbours (sieve)."
    ),
    simplify: float = typer.Option(
        0.0, "--simplify", help="Simplify with this tolerance (map units), keeping shared edges shared."
    ),
    probabilities: Path = typer.Option(
        None, "--probabilities", help="Per-class probability raster: adds mean confidence per polygon."
    ),
    dst_crs: str = typer.Option(None, "--dst-crs", help="Reproject polygons (e.g. EPSG:4326)."),
    layer: str = typer.Option(None, "--layer", help="Layer name [the raster's name]."),
    block_rows: int = typer.Option(1024, "--block-rows", help="Rows per strip (memory vs. speed)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    allow_ungeoreferenced: bool = typer.Option(
        False, "--allow-ungeoreferenced", help="Accept rasters without CRS (polygons in pixel coordinates)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages."),
    progress: str = PROGRESS,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Polygonise a label raster: one polygon per connected region, with class, area, perimeter (and confidence)."""
    from aeroseg_cli.files.safety import check_input_file, is_remote
    from aeroseg_cli.polygons.formats import check_vector_output

    if not is_remote(labels):  # the cheap checks before geopandas and rasterio load
        check_input_file(labels, "the labels")
    check_vector_output(output, overwrite, fmt, inputs=[labels, probabilities])
    from aeroseg_cli.polygons.vectorize import vectorize_raster
    from aeroseg_cli.progress import progress_display

    opts = _options(fmt, classes, min_area, simplify, probabilities, dst_crs, layer, block_rows)
    opts.overwrite, opts.allow_ungeoreferenced = overwrite, allow_ungeoreferenced  # flags: nothing to check
    name = labels.rstrip("/").rsplit("/", 1)[-1]
    with exclusive([output]), progress_display(name, unit="rows", quiet=quiet) as update:
        summary = vectorize_raster(labels, output, opts, _StripProgress(update))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        typer.echo(_summary_line(summary), err=True)


def _options(
    fmt: str | None,
    classes: str | None,
    min_area: float,
    simplify: float,
    probabilities: Path | None,
    dst_crs: str | None,
    layer: str | None,
    block_rows: int,
) -> VectorizeOptions:  # noqa: F821 - imported where used, to start fast
    """Check the valued options that need no file (one-line usage errors before any work) and gather them."""
    from aeroseg_cli.polygons.vectorize import VectorizeOptions

    if min_area < 0 or simplify < 0:
        raise UsageError("--min-area and --simplify must not be negative")
    if block_rows < 1:
        raise UsageError("--block-rows must be at least 1")
    if dst_crs is not None:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(dst_crs)
        except CRSError:
            raise UsageError(f"--dst-crs {dst_crs!r} is not a CRS pyproj knows") from None
    return VectorizeOptions(
        format=fmt,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        min_area=min_area,
        simplify=simplify,
        probabilities=probabilities,
        dst_crs=dst_crs,
        block_rows=block_rows,
        layer=layer,
    )


class _StripProgress:
    """``vectorize_raster``'s per-strip callback shown as rows done, with the polygons so far."""

    def __init__(self, update: Callable[..., None]) -> None:
        self.update = update

    def __call__(self, features: int, rows_done: int, rows_total: int) -> None:
        self.update(rows_done, rows_total, polygons=features)


def _summary_line(summary: dict) -> str:
    """One line for people; says when the polygons are not in a CRS."""
    where = "" if summary["crs"] else f" in {summary['coordinates']}"
    measured = f"area and perimeter in {summary['measured_in']}"
    return f"{summary['features']} polygons -> {summary['output']}{where} ({measured})"
