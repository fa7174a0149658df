"""``aeroseg segment``: scenes in, labelled GeoTIFFs out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from aeroseg_cli import __version__
from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import check_output
from aeroseg_cli.runtime.ddp import gather
from aeroseg_cli.segment.distributed import row_bands
from aeroseg_cli.segment.engine import SegmentOptions, SegmentResult, segment_scene
from aeroseg_cli.segment.reader import inspect_scene, parse_bands, parse_scale
from aeroseg_cli.segment.tiler import Grid

MAX_CLASSES = 254  # ids 0..253; 255 is nodata/unknown


def parse_classes(text: str | None, file: Path | None, fallback: list[str] | None = None) -> list[str]:
    """Class names from ``--classes "a,b|c"`` or a file with one class per line (``|`` separates synonyms)."""
    if text is not None and file is not None:
        raise UsageError("give --classes or --classes-file, not both")
    if file is not None:
        if not file.is_file():
            raise UsageError(f"--classes-file {file}: no such file")
        names = [line.strip() for line in file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    elif text is not None:
        names = [n.strip() for n in text.split(",")]
    elif fallback:
        return list(fallback)
    else:
        raise UsageError('name the classes to find: --classes "ship,harbor" or --classes-file FILE')
    if not names or any(not n for n in names):
        raise UsageError("empty class name in the class list (check for doubled or trailing commas)")
    for n in names:
        if any(not part.strip() for part in n.split("|")):
            raise UsageError(f"empty synonym in class {n!r}")
    seen: set[str] = set()
    for n in names:
        key = n.lower()
        if key in seen:
            raise UsageError(f"class {n!r} is listed twice")
        seen.add(key)
    if len(names) > MAX_CLASSES:
        raise UsageError(f"{len(names)} classes given; the label raster holds at most {MAX_CLASSES}")
    return names


def output_paths(scenes: list[Path], output: Path) -> list[Path]:
    if len(scenes) == 1 and output.suffix.lower() in (".tif", ".tiff"):
        return [output]
    if output.suffix.lower() in (".tif", ".tiff"):
        raise UsageError(f"{len(scenes)} scenes need -o to be a folder, not {output}")
    output.mkdir(parents=True, exist_ok=True)
    names = [s.stem for s in scenes]
    if len(set(names)) != len(names):
        raise UsageError("two scenes share a file name; segment them into different folders")
    return [output / f"{s.stem}.labels.tif" for s in scenes]


def fingerprint(scene: Path, settings: dict) -> str:
    stat = scene.stat()
    payload = {"scene": str(scene.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns, **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def segment(
    scenes: list[Path] = typer.Argument(..., help="GeoTIFF (or any GDAL raster) scenes to segment."),
    classes: str = typer.Option(None, "--classes", "-c", help='Comma-separated class names; "a|b" are synonyms.'),
    classes_file: Path = typer.Option(None, "--classes-file", help="One class per line (| for synonyms)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .tif (one scene) or folder (several)."),
    model: str = typer.Option("aeroseg-vitb16-samvitl", "--model", "-m", help="Preset name or checkpoint file."),
    tile: int = typer.Option(None, "--tile", help="Window size in pixels fed to the model [default: the model's]."),
    overlap: float = typer.Option(0.25, "--overlap", help="Overlap between windows, as a fraction of --tile."),
    batch_size: str = typer.Option("4", "--batch-size", "-b", help="Windows per model call, or auto (GPU memory)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU, fp32 on CPU), fp32, bf16, fp16."),
    bands: str = typer.Option(None, "--bands", "--bidx", help="1-based R,G,B bands (or one grey band) [1,2,3]."),
    scale: str = typer.Option(None, "--scale", help="MIN,MAX raw values mapped to 0..1 (overrides the stretch)."),
    target_gsd: float = typer.Option(None, "--target-gsd", help="Resample to this pixel size (map units) first."),
    unknown_threshold: float = typer.Option(
        0.0, "--unknown-threshold", help="Pixels whose best class probability is below this become 255 (unknown)."
    ),
    probabilities: Path = typer.Option(None, "--probabilities", help="Also write per-class uint8 probabilities."),
    vector: Path = typer.Option(None, "--vector", help="Also polygonise the labels (gpkg, geojson, shp, parquet)."),
    cog: bool = typer.Option(False, "--cog", help="Write Cloud-Optimized GeoTIFFs with overviews."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its finished blocks."),
    on_error: str = typer.Option("fail", "--on-error", help="fail: a failed window fails the run; skip: nodata."),
    io_threads: str = typer.Option(
        "auto",
        "--io-threads",
        help="Read ahead / write on background threads: auto (with a GPU or spare cores), on, off.",
    ),
    allow_ungeoreferenced: bool = typer.Option(
        False, "--allow-ungeoreferenced", help="Accept scenes without CRS (output in pixel coordinates)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Segment scenes into labelled GeoTIFFs (uint8 class ids, 255 = nodata/unknown) in the scenes' CRS."""
    from aeroseg_cli.runtime.modelio import load_model, resolve_precision
    from aeroseg_cli.segment.predictor import Predictor

    if io_threads not in ("auto", "on", "off"):
        raise UsageError(f"--io-threads must be auto, on or off, got {io_threads!r}")
    if on_error not in ("fail", "skip"):
        raise UsageError(f"--on-error must be fail or skip, got {on_error!r}")
    if not 0 <= overlap < 1:
        raise UsageError(f"--overlap is a fraction of the tile in [0, 1), got {overlap}")
    if not 0 <= unknown_threshold < 1:
        raise UsageError("--unknown-threshold must be in [0, 1)")
    if batch_size != "auto" and (not batch_size.isdigit() or int(batch_size) < 1):
        raise UsageError(f"--batch-size must be a positive number or auto, got {batch_size!r}")
    if target_gsd is not None and target_gsd <= 0:
        raise UsageError("--target-gsd must be positive")
    band_list, scale_range = parse_bands(bands), parse_scale(scale)
    infos = [inspect_scene(s, band_list, scale_range, target_gsd, allow_ungeoreferenced) for s in scenes]
    names = parse_classes(classes, classes_file) if (classes or classes_file) else None
    outputs = output_paths(scenes, output)
    if probabilities is not None and len(scenes) > 1:
        raise UsageError("--probabilities takes one scene")
    for out in outputs:
        check_output(out, overwrite or resume)
    if probabilities is not None:
        check_output(probabilities, overwrite or resume, "probabilities")
    if vector is not None:
        from aeroseg_cli.polygons.vectorize import check_vector_output

        if len(scenes) > 1:
            raise UsageError("--vector takes one scene")
        check_vector_output(vector, overwrite)
    from aeroseg_cli.runtime.ddp import init_distributed

    ddp, dev = init_distributed(device)  # one process per device under torchrun; plain device otherwise
    dtype = resolve_precision(precision, dev)
    net, ckpt_classes, model_label = load_model(model)
    names = names or parse_classes(None, None, ckpt_classes)
    tile = tile or net.cfg.crop_size
    if tile % net.cfg.clip.patch_size:
        raise UsageError(f"--tile must be a multiple of {net.cfg.clip.patch_size} for this model, got {tile}")
    for info in infos:
        Grid.from_overlap(info.height, info.width, tile, overlap)  # tile/overlap checked before any work starts
    predictor = Predictor(net, names, dev, dtype)
    batch_size = predictor.auto_batch_size(tile) if batch_size == "auto" else int(batch_size)
    opts = SegmentOptions(
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        unknown_threshold=unknown_threshold,
        probabilities=probabilities,
        cog=cog,
        overwrite=overwrite,
        resume=resume,
        on_error=on_error,
        io_threads=io_threads,
    )
    console = Console(stderr=True, quiet=quiet or not ddp.main)
    shard = list(zip(infos, outputs, strict=True))
    bands = None
    if ddp.world > 1 and len(infos) > 1:
        shard = shard[ddp.rank :: ddp.world]  # explicit: every scene exactly once, no padding
    elif ddp.world > 1:
        bands = row_bands(infos[0].height, ddp.world)
    results: list[SegmentResult] = []
    error = None
    try:
        for info, out in shard:
            settings = {
                "model": model,
                "classes": names,
                "tile": tile,
                "overlap": overlap,
                "bands": info.bands,
                "scale": scale,
                "target_gsd": target_gsd,
                "unknown": unknown_threshold,
                "probabilities": probabilities is not None,
                "version": __version__,
            }
            tags = {
                "AEROSEG_VERSION": __version__,
                "AEROSEG_MODEL": model_label,
                "AEROSEG_CLASSES": json.dumps(names),
                "AEROSEG_TILE": str(tile),
                "AEROSEG_OVERLAP": str(overlap),
                "AEROSEG_BANDS": ",".join(map(str, info.bands)),
                "AEROSEG_RADIOMETRY": info.radiometry.as_tag(),
                "AEROSEG_UNKNOWN_THRESHOLD": str(unknown_threshold),
                "AEROSEG_SOURCE": info.path.name,
            }
            fp = fingerprint(info.path, settings)
            if bands is not None:
                result = _segment_band(info, predictor, out, opts, tags, fp, bands, ddp, console, quiet)
            else:
                result = _run_one(info, predictor, out, opts, tags, fp, console, quiet)
            if result is None:
                continue
            results.append(result)
            if vector is not None:
                from aeroseg_cli.polygons.vectorize import VectorizeOptions, vectorize_raster

                vres = vectorize_raster(out, vector, VectorizeOptions(overwrite=overwrite, probabilities=probabilities))
                result.outputs.append(str(vector))
                result.notes.append(f"{vres['features']} polygons")
            w = result.windows
            console.print(
                f"{info.path.name}: {w['done']} windows ({w['skipped']} nodata skipped) in {result.seconds:.1f} s "
                f"-> {', '.join(result.outputs)}"
            )
    except Exception as exc:  # under torchrun: report through the status gather so every rank stops cleanly
        if ddp.world == 1:
            raise
        message = str(exc) if isinstance(exc, CLIError) else f"{type(exc).__name__}: {exc}"
        error = message if message.startswith("rank ") else f"rank {ddp.rank}: {message}"  # band errors name theirs
    statuses = gather({"error": error, "results": [r.__dict__ for r in results]})
    failed = [s["error"] for s in statuses if s["error"]]
    if failed:
        raise CLIError(f"{len(failed)} of {ddp.world} processes failed ({failed[0]}); rerun with --resume")
    results = [SegmentResult(**r) for s in statuses for r in s["results"]]
    if not ddp.main:
        return
    if as_json:
        summary = [
            {
                **r.__dict__,
                "device": str(dev),
                "precision": str(dtype or "fp32").replace("torch.", ""),
                "classes": names,
                "model": model_label,
                "processes": ddp.world,
            }
            for r in sorted(results, key=lambda r: r.scene)
        ]
        typer.echo(json.dumps(summary[0] if len(summary) == 1 else summary, indent=2))


def _progress_bar(console: Console, quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("skipped {task.fields[skipped]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )


def _run_one(info, predictor, out, opts, tags, fp, console, quiet, row_range=None) -> SegmentResult:
    bar = _progress_bar(console, quiet)
    with bar:
        task = bar.add_task(info.path.name, total=None, skipped=0, rate="")

        def report(p, task=task, bar=bar) -> None:
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{p.done / elapsed:.1f} win/s" if elapsed > 0 else ""
            bar.update(task, total=p.total, completed=p.done + p.skipped + p.failed, skipped=p.skipped, rate=rate)

        return segment_scene(info, predictor, out, opts, tags, fp, report, row_range=row_range)


def _segment_band(info, predictor, out, opts, tags, fp, bands, ddp, console, quiet) -> SegmentResult | None:
    """One rank's row band into its own file; rank 0 then assembles the bands into the final output."""
    import dataclasses
    import time

    from aeroseg_cli.segment.distributed import assemble, band_path
    from aeroseg_cli.segment.writer import LabelWriter

    start = time.perf_counter()
    r0, r1 = bands[ddp.rank]
    mine = band_path(out, ddp.rank)
    mine_probs = band_path(opts.probabilities, ddp.rank) if opts.probabilities else None
    local = None
    error = None
    if r1 > r0:
        band_opts = dataclasses.replace(opts, cog=False, overwrite=True, probabilities=mine_probs)
        try:
            local = _run_one(info, predictor, mine, band_opts, tags, f"{fp}:{ddp.rank}", console, quiet, (r0, r1))
        except Exception as exc:  # reported through the gather below, so no rank waits forever
            error = str(exc) if isinstance(exc, CLIError) else f"{type(exc).__name__}: {exc}"
    statuses = gather({"error": error, "result": local.__dict__ if local else None})
    failed = [f"rank {i}: {s['error']}" for i, s in enumerate(statuses) if s["error"]]
    if failed:
        raise CLIError(failed[0])
    if not ddp.main:
        return None
    writer = LabelWriter(
        out,
        info.width,
        info.height,
        info.crs,
        info.transform,
        predictor.class_names,
        tags,
        fp,
        probabilities=opts.probabilities,
        cog=opts.cog,
    )
    files = [
        (band_path(out, r), band_path(opts.probabilities, r) if opts.probabilities else None)
        for r, (a, b) in enumerate(bands)
        if b > a
    ]
    assemble(files, writer)
    outputs = writer.commit(opts.overwrite)
    for labels_path, probs_path in files:
        labels_path.unlink(missing_ok=True)
        (labels_path.parent / (labels_path.name + ".aux.xml")).unlink(missing_ok=True)
        if probs_path:
            probs_path.unlink(missing_ok=True)
    parts = [SegmentResult(**s["result"]) for s in statuses if s["result"]]
    windows = {k: sum(p.windows[k] for p in parts) for k in parts[0].windows}
    return SegmentResult(
        scene=str(info.path),
        outputs=[str(p) for p in outputs],
        width=info.width,
        height=info.height,
        windows=windows,
        seconds=time.perf_counter() - start,
        model_seconds=sum(p.model_seconds for p in parts),
        blender_mb=max(p.blender_mb for p in parts),
        peak_rss_mb=max(p.peak_rss_mb for p in parts),
        resumed_from_row=min(p.resumed_from_row for p in parts),
        notes=[f"{ddp.world} processes, row bands {bands}"],
    )
