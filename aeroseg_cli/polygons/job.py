"""``vectorize`` as a job: the checks that need no library (one line each, before geopandas and rasterio load), then
the polygons under the output's lock with a progress display. The command and the Python API both run it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aeroseg_cli.files.safety import exclusive
from aeroseg_cli.polygons.request import VectorizeOptions


def vectorize_file(labels: str | Path, output: Path, opts: VectorizeOptions, quiet: bool = False) -> dict:
    """Polygonise ``labels`` into ``output`` -> the summary (output, format, features, CRS, what areas are in)."""
    from aeroseg_cli.files.safety import check_input_file, is_remote
    from aeroseg_cli.polygons.formats import check_vector_output

    labels = str(labels)  # as given: Path() would turn "http://" into "http:/"
    opts.validate()
    if not is_remote(labels):
        check_input_file(labels, "the labels")
    check_vector_output(output, opts.overwrite, opts.format, inputs=[labels, opts.probabilities])
    from aeroseg_cli.polygons.vectorize import vectorize_raster
    from aeroseg_cli.progress import progress_display

    name = labels.rstrip("/").rsplit("/", 1)[-1]
    with exclusive([output]), progress_display(name, unit="rows", quiet=quiet) as update:
        return vectorize_raster(labels, output, opts, _StripProgress(update))


class _StripProgress:
    """``vectorize_raster``'s per-strip callback shown as rows done, with the polygons so far."""

    def __init__(self, update: Callable[..., None]) -> None:
        self.update = update

    def __call__(self, features: int, rows_done: int, rows_total: int) -> None:
        self.update(rows_done, rows_total, polygons=features)
