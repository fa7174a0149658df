"""``aeroseg vectorize``: label raster in, GIS polygons out."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aeroseg_cli.commands.options import (
    ALLOW_UNGEOREFERENCED,
    JSON_SUMMARY,
    OVERWRITE,
    PROGRESS,
    QUIET,
    default,
    parse_names,
)
from aeroseg_cli.polygons.request import VectorizeOptions as V


def vectorize(
    labels: str = typer.Argument(..., help="Label GeoTIFF (e.g. from `aeroseg segment`), or a GDAL path or URL."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file: .gpkg, .geojson, .shp or .parquet."),
    fmt: str = typer.Option(
        None, "--format", "-f", help="gpkg, geojson, shp or parquet [from the extension, which it must not contradict]."
    ),
    classes: str = typer.Option(None, "--classes", help="Comma-separated class names (or ids) to keep."),
    min_area: float = typer.Option(
        default(V, "min_area"), "--min-area", help="Merge regions smaller than this (map units²) into their neighbours."
    ),
    simplify: float = typer.Option(
        default(V, "simplify"), "--simplify", help="Simplify with this tolerance (map units), keeping shared edges."
    ),
    probabilities: Path = typer.Option(
        None, "--probabilities", help="Per-class probability raster: adds mean confidence per polygon."
    ),
    dst_crs: str = typer.Option(None, "--dst-crs", help="Reproject polygons [GeoJSON: EPSG:4326, RFC 7946]."),
    layer: str = typer.Option(None, "--layer", help="Layer name [the raster's name]."),
    block_rows: int = typer.Option(default(V, "block_rows"), "--block-rows", help="Rows per strip (memory vs. speed)."),
    overwrite: bool = OVERWRITE,
    allow_ungeoreferenced: bool = ALLOW_UNGEOREFERENCED,
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """Polygonise a label raster: one polygon per connected region, with class, area, perimeter (and confidence)."""
    opts = V(
        format=fmt,
        classes=parse_names(classes, "class", "--classes") if classes else None,
        min_area=min_area,
        simplify=simplify,
        probabilities=probabilities,
        dst_crs=dst_crs,
        overwrite=overwrite,
        allow_ungeoreferenced=allow_ungeoreferenced,
        block_rows=block_rows,
        layer=layer,
    )
    from aeroseg_cli.polygons.job import vectorize_file

    summary = vectorize_file(labels, output, opts, quiet)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        typer.echo(_summary_line(summary), err=True)


def _summary_line(summary: dict) -> str:
    """One line for people; says when the polygons are not in a CRS."""
    where = "" if summary["crs"] else f" in {summary['coordinates']}"
    measured = f"area and perimeter in {summary['measured_in']}"
    return f"{summary['features']} polygons -> {summary['output']}{where} ({measured})"
