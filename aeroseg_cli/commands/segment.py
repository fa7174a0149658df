"""``aeroseg segment``: scenes in, labelled GeoTIFFs out."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from aeroseg_cli.commands.options import (
    ALLOW_UNGEOREFERENCED,
    CLASSES_FILE,
    DEVICE,
    JSON_SUMMARY,
    OVERWRITE,
    PRECISION,
    PROGRESS,
    QUIET,
    default,
    parse_bands,
    parse_classes,
    parse_count,
    parse_io_threads,
    parse_scale,
    parse_size,
)
from aeroseg_cli.segment.request import SegmentRequest as R

HELP_MODEL = (
    "Checkpoint file, released model (catseg-vitb16, after `aeroseg weights download`) or preset "
    "[your `aeroseg weights default`, else the best model here]. Training-free: zeroshot-vitb16 is the plain "
    "baseline (CLIP correlation, no training-free tricks); segearth-ov-vitb16 is SegEarth-OV (CVPR 2025: its CLIP "
    "last block, SimFeatUp, CLS subtraction; 224-pixel windows). tiny and probe are test/measurement presets that "
    "know no classes."
)
HELP_CLASSES = 'Comma-separated class names; "a|b" are synonyms, "water:#1f78b4" gives a colour (wins over --colors).'
HELP_COLORS = "Class colours: lines NAME: COLOUR, a JSON object, or a QGIS colour map export (--classes colours win)."
HELP_AOI = "Polygons (any vector file, any CRS): only windows touching them run; outside is 255."


# The options of this command, one constant each (shared ones come from options.py); defaults read from the request.
SCENES = typer.Argument(..., metavar="SCENE...", help="GeoTIFFs or any GDAL raster paths.")
CLASSES = typer.Option(None, "--classes", "-c", help=HELP_CLASSES)
COLORS = typer.Option(None, "--colors", help=HELP_COLORS)
OUTPUT = typer.Option(None, "--output", "-o", help="Output .tif (one scene) or folder [SCENE.labels.tif].")
MODEL = typer.Option(None, "--model", "-m", help=HELP_MODEL, show_default=False)
TILE = typer.Option(None, "--tile", help="Window size in pixels fed to the model [default: the model's].")
OVERLAP = typer.Option(default(R, "overlap"), "--overlap", help="Overlap between windows (of --tile).")
BATCH = typer.Option(
    str(default(R, "batch_size")), "--batch-size", "-b", help="Windows per model call, or auto (GPU memory)."
)
BANDS = typer.Option(None, "--bands", "--bidx", help="1-based R,G,B bands (or one grey band) [1,2,3].")
SCALE = typer.Option(None, "--scale", help="MIN,MAX raw values mapped to 0..1 (overrides the stretch).")
TARGET_GSD = typer.Option(None, "--target-gsd", help="Resample to this pixel size (map units) first.")
AOI = typer.Option(None, "--aoi", help=HELP_AOI)
UNKNOWN = typer.Option(
    default(R, "unknown_threshold"),
    "--unknown-threshold",
    help="Below this best probability: 255 (segearth-ov-vitb16: the background class, if named).",
)
PROBABILITIES = typer.Option(None, "--probabilities", help="Also write per-class probabilities (p x 255).")
VECTOR = typer.Option(None, "--vector", help="Also polygonise the labels (gpkg, geojson, shp, parquet).")
COG = typer.Option(default(R, "cog"), "--cog", help="Write Cloud-Optimized GeoTIFFs with overviews.")
RESUME = typer.Option(default(R, "resume"), "--resume", help="Continue an interrupted run.")
ON_ERROR = typer.Option(default(R, "on_error"), "--on-error", help="fail: a failed window fails the run; skip: nodata.")
IO_THREADS = typer.Option("auto", "--io-threads", help="Decode threads: auto, off, or a number.")
MAX_MEMORY = typer.Option("auto", "--max-memory", help="Memory for blending, e.g. 512M, 4G [auto].")


def segment(
    scenes: list[str] = SCENES,
    classes: str = CLASSES,
    classes_file: Path = CLASSES_FILE,
    colors: Path = COLORS,
    output: Path = OUTPUT,
    model: str = MODEL,
    tile: int = TILE,
    overlap: float = OVERLAP,
    batch_size: str = BATCH,
    device: str = DEVICE,
    precision: str = PRECISION,
    bands: str = BANDS,
    scale: str = SCALE,
    target_gsd: float = TARGET_GSD,
    aoi: Path = AOI,
    unknown_threshold: float = UNKNOWN,
    probabilities: Path = PROBABILITIES,
    vector: Path = VECTOR,
    cog: bool = COG,
    overwrite: bool = OVERWRITE,
    resume: bool = RESUME,
    on_error: str = ON_ERROR,
    io_threads: str = IO_THREADS,
    max_memory: str = MAX_MEMORY,
    allow_ungeoreferenced: bool = ALLOW_UNGEOREFERENCED,
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """Segment scenes into labelled GeoTIFFs (uint8 class ids, 255 = nodata/unknown) in the scenes' CRS."""
    names, class_colors = parse_classes(classes, classes_file)
    request = R(
        scenes=scenes,
        classes=names,
        class_colors=class_colors,
        classes_file=classes_file,
        colors=colors,
        output=output,
        model=model,
        tile=tile,
        overlap=overlap,
        batch_size=parse_count(batch_size, "--batch-size"),
        device=device,
        precision=precision,
        bands=parse_bands(bands),
        scale=parse_scale(scale),
        target_gsd=target_gsd,
        aoi=aoi,
        unknown_threshold=unknown_threshold,
        probabilities=probabilities,
        vector=vector,
        cog=cog,
        overwrite=overwrite,
        resume=resume,
        on_error=on_error,
        io_threads=parse_io_threads(io_threads),
        max_memory=parse_size(max_memory),
        allow_ungeoreferenced=allow_ungeoreferenced,
        quiet=quiet,
    )
    run_segment(request, as_json)


def run_segment(request: R, as_json: bool) -> None:
    """Plan (every check that needs no model, before torch loads), lock the outputs, load the model, run, report."""
    from aeroseg_cli.segment.job import plan

    start = time.perf_counter()
    job = plan(request)
    from aeroseg_cli.segment.run import load, locks, run

    quiet = request.quiet
    if not quiet:
        for warning in (w for info in job.infos for w in info.warnings):
            sys.stderr.write(f"aeroseg: warning: {warning}\n")
    with locks(job):  # before the model loads: a second run on an output is refused at once
        loaded = load(job)
        for warning in loaded.warnings if not quiet and loaded.ddp.main else []:
            sys.stderr.write(f"aeroseg: warning: {warning}\n")
        results = run(job, loaded)
    if not loaded.ddp.main:
        return
    wall = time.perf_counter() - start
    if as_json:
        typer.echo(json.dumps(summary_json(results, job, loaded, wall), indent=2))
    elif not quiet:
        sys.stderr.write(summary_text(results, job, wall, loaded.label))


def rates(r) -> dict:
    seconds = max(r.seconds, 1e-9)
    return {"windows_per_s": r.windows["done"] / seconds, "megapixels_per_s": r.width * r.height / 1e6 / seconds}


def summary_json(results, job, loaded, wall: float) -> dict | list:
    precision = loaded.runtime["precision"]
    common = {"device": str(loaded.predictor.device), "precision": precision, "classes": loaded.names,
              "model": loaded.label, "model_choice": job.model_choice, "processes": loaded.ddp.world}  # fmt: skip
    scenes = [{**r.__dict__, **rates(r), **common} for r in sorted(results, key=lambda r: r.scene)]
    if len(scenes) == 1:
        return {**scenes[0], "wall_seconds": wall, "stages": job.timings}
    return scenes


def skipped_text(windows: dict) -> str:
    """The windows not run: nodata ones, and those outside ``--aoi`` (never read)."""
    outside = windows.get("outside_aoi")
    nodata = f"{windows['skipped'] - (outside or 0)} nodata skipped"
    return nodata if outside is None else f"{nodata}, {outside} outside --aoi"


def summary_text(results, job, wall: float, model: str) -> str:
    """One line per scene and one for the run; never wrapped (log files keep whole paths)."""
    lines = []
    for r in sorted(results, key=lambda r: r.scene):
        w, rate = r.windows, rates(r)
        lines.append(
            f"{Path(r.scene).name}: {w['done']} windows ({skipped_text(w)}) in {r.seconds:.1f} s, "
            f"{rate['windows_per_s']:.1f} windows/s, {rate['megapixels_per_s']:.2f} Mpx/s -> {', '.join(r.outputs)}"
        )
        lines += [f"  {note}" for note in r.notes]
    lines.append(f"model: {model} ({job.model_choice})")
    stages = ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in job.timings.items())
    lines.append(f"done in {wall:.1f} s ({stages})")
    return "\n".join(lines) + "\n"
