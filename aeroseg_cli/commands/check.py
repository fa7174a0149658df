"""``aeroseg check``: find damaged blocks in scenes before a long run."""

from __future__ import annotations

import json
import os

import typer

from aeroseg_cli.commands.options import JSON_SUMMARY, PROGRESS, QUIET


def check(
    scenes: list[str] = typer.Argument(..., metavar="SCENE...", help="GeoTIFFs or any GDAL raster paths."),
    threads: int = typer.Option(0, "--threads", help="Decode threads [the number of CPU cores]."),
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """Read every block of every band once and list the damaged ones; exit 1 if any."""
    from aeroseg_cli.files.errors import CLIError, UsageError
    from aeroseg_cli.progress import progress_display
    from aeroseg_cli.segment.scan import scan

    if threads < 0:
        raise UsageError("--threads must not be negative")
    results = []
    for scene in scenes:
        with progress_display(f"checking {scene}", unit="block rows", quiet=quiet) as update:
            results.append(scan(scene, threads or os.cpu_count() or 1, update))
    if as_json:
        typer.echo(json.dumps([r.__dict__ | {"bad": [b.__dict__ for b in r.bad]} for r in results], indent=2))
    elif not quiet:
        for r in results:
            state = f"{len(r.bad)} damaged" if r.bad else "all readable"
            typer.echo(f"{r.scene}: {r.blocks} blocks read in {r.seconds:.1f} s, {state}", err=True)
            for b in r.bad:
                typer.echo(f"  block at row {b.row}, col {b.col} ({b.width}x{b.height}): {b.cause}", err=True)
    damaged = [(r, b) for r in results for b in r.bad]
    if damaged:
        r, b = damaged[0]
        raise CLIError(
            f"{len(damaged)} damaged block(s) (first in {r.scene} at row {b.row}, col {b.col}: {b.cause}); "
            "segment with --on-error skip to write those windows as nodata, or repair the file"
        )
