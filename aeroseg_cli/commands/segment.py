"""``aeroseg segment``: scenes in, labelled GeoTIFFs out."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from aeroseg_cli.commands.options import PROGRESS

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


def segment(
    scenes: list[str] = typer.Argument(..., metavar="SCENE...", help="GeoTIFFs or any GDAL raster paths."),
    classes: str = typer.Option(None, "--classes", "-c", help=HELP_CLASSES),
    classes_file: Path = typer.Option(None, "--classes-file", help="One class per line (| synonyms, # comments)."),
    colors: Path = typer.Option(None, "--colors", help=HELP_COLORS),
    output: Path = typer.Option(None, "--output", "-o", help="Output .tif (one scene) or folder [SCENE.labels.tif]."),
    model: str = typer.Option(None, "--model", "-m", help=HELP_MODEL, show_default=False),
    tile: int = typer.Option(None, "--tile", help="Window size in pixels fed to the model [default: the model's]."),
    overlap: float = typer.Option(0.25, "--overlap", help="Overlap between windows, as a fraction of --tile."),
    batch_size: str = typer.Option("4", "--batch-size", "-b", help="Windows per model call, or auto (GPU memory)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU), fp32, bf16, fp16."),
    bands: str = typer.Option(None, "--bands", "--bidx", help="1-based R,G,B bands (or one grey band) [1,2,3]."),
    scale: str = typer.Option(None, "--scale", help="MIN,MAX raw values mapped to 0..1 (overrides the stretch)."),
    target_gsd: float = typer.Option(None, "--target-gsd", help="Resample to this pixel size (map units) first."),
    aoi: Path = typer.Option(None, "--aoi", help=HELP_AOI),
    unknown_threshold: float = typer.Option(
        0.0,
        "--unknown-threshold",
        help="Below this best probability: 255 (segearth-ov-vitb16: the background class, if named).",
    ),
    probabilities: Path = typer.Option(None, "--probabilities", help="Also write per-class probabilities (p x 255)."),
    vector: Path = typer.Option(None, "--vector", help="Also polygonise the labels (gpkg, geojson, shp, parquet)."),
    cog: bool = typer.Option(False, "--cog", help="Write Cloud-Optimized GeoTIFFs with overviews."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its finished rows."),
    on_error: str = typer.Option("fail", "--on-error", help="fail: a failed window fails the run; skip: nodata."),
    io_threads: str = typer.Option("auto", "--io-threads", help="Decode threads: auto, off, or a number."),
    max_memory: str = typer.Option("auto", "--max-memory", help="Memory for blending, e.g. 512M, 4G [auto]."),
    allow_ungeoreferenced: bool = typer.Option(False, "--allow-ungeoreferenced", help="Accept scenes without CRS."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, warnings or summary."),
    progress: str = PROGRESS,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Segment scenes into labelled GeoTIFFs (uint8 class ids, 255 = nodata/unknown) in the scenes' CRS."""
    given = dict(locals())  # the options by name
    from aeroseg_cli.segment.job import SegmentRequest, plan

    start = time.perf_counter()
    job = plan(SegmentRequest.from_options(given))  # every check that needs no model, before torch loads
    from aeroseg_cli.segment.run import load, locks, run

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
