"""Running a planned ``aeroseg segment`` job: the outputs' locks, the model, then each scene (or this rank's share),
then polygons."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import exclusive
from aeroseg_cli.progress import progress_display, status
from aeroseg_cli.segment.engine import SegmentOptions, SegmentResult, check_unchanged, segment_scene, windows_per_call
from aeroseg_cli.segment.job import Plan, check_class_names, model_identity, scene_settings, scene_tags
from aeroseg_cli.segment.writer import check_resumable
from aeroseg_cli.styles.palette import class_colors


@dataclass
class Loaded:
    """The model side of a job: predictor, classes, tile, batch size and what identifies them for ``--resume``."""

    predictor: object
    names: list[str]
    tile: int
    batch_size: int
    label: str
    ddp: object
    runtime: dict
    warnings: list[str] = field(default_factory=list)


def load(plan: Plan) -> Loaded:
    """Device, precision and model (a status line while it loads); the classes and tile checked against it."""
    from aeroseg_cli.runtime.ddp import init_distributed
    from aeroseg_cli.runtime.modelcheck import check_vocabulary
    from aeroseg_cli.runtime.modelio import load_model, resolve_precision
    from aeroseg_cli.segment.predictor import Predictor
    from aeroseg_cli.segment.tiler import Grid

    req = plan.request
    ddp, device = init_distributed(req.device)
    dtype = resolve_precision(req.precision, device)
    t0 = time.perf_counter()
    with status(f"loading model {req.model} ...", req.quiet or not ddp.main):
        loaded_model = load_model(req.model)
    plan.timings["model_load"] = time.perf_counter() - t0
    net, label = loaded_model.model, loaded_model.label
    if plan.names is None and not loaded_model.classes:
        raise UsageError('name the classes to find: --classes "ship,harbor" or --classes-file FILE')
    names = plan.names or check_class_names(list(loaded_model.classes))
    check_vocabulary(loaded_model, names)
    tile = req.tile or net.cfg.crop_size
    if tile % net.cfg.input_multiple:
        raise UsageError(f"--tile must be a multiple of {net.cfg.input_multiple} for this model, got {tile}")
    grids = [Grid.from_overlap(info.height, info.width, tile, req.overlap) for info in plan.infos]
    predictor = Predictor(net, names, device, dtype)
    batch = predictor.auto_batch_size(tile) if req.batch_size is None else req.batch_size
    # before the GPU is probed: on CUDA one window must fit (settled_batch lowers the batch), on CPU the batch asked
    warnings = check_sizes(plan, grids, len(names), batch if device.type != "cuda" else 1, device)
    batch = settled_batch(predictor, tile, batch)
    precision = str(dtype or "fp32").replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16")
    runtime = {"model": model_identity(req.model), "precision": precision, "device": device.type}
    loaded = Loaded(predictor, names, tile, batch, label, ddp, runtime, warnings)
    if req.resume:
        for info, out in zip(plan.infos, plan.outputs, strict=True):
            check_resumable(out, scene_settings(plan, info, names, tile, batch, runtime))
    return loaded


def check_sizes(plan: Plan, grids: list, num_classes: int, batch: int, device) -> list[str]:
    """The model's tile, classes and batch against the device's memory and ``--max-memory`` (exit 2 before any
    scene is read); a warning for an overlap that only repeats work."""
    import numpy as np
    import torch

    from aeroseg_cli.segment.limits import available_memory, check_batch, check_blend_budget, overlap_warning

    grid = grids[0]
    bands = max(len(i.bands) for i in plan.infos)
    itemsize = max(np.dtype(i.dtype).itemsize for i in plan.infos)
    if device.type == "cuda":
        memory, where = torch.cuda.get_device_properties(device).total_memory, f"memory on {device}"
    else:
        memory, where = available_memory(), "memory available"
    check_batch(grid.tile, batch, num_classes, bands, itemsize, memory, where)
    check_blend_budget(grid.tile, num_classes, grid.overlap, plan.max_memory)
    warning = overlap_warning(plan.request.overlap, grid.tile, grid.stride, sum(len(g) for g in grids))
    return [warning] if warning else []


def settled_batch(predictor, tile: int, batch: int) -> int:
    """``batch``, or less if one model call of it does not fit the GPU: decided before any window runs (the least
    over all ranks under torchrun), so every call of the run has one shape and the resume fingerprint records the
    batch that was used."""
    from aeroseg_cli.runtime.ddp import gather

    calls = windows_per_call(batch, predictor.num_classes, tile)
    fitting = min(gather(predictor.settle(tile, calls)))
    return batch if fitting == calls else fitting


def options(plan: Plan, loaded: Loaded) -> SegmentOptions:
    req = plan.request
    background = getattr(loaded.predictor.model, "background_index", None)  # SegEarth-OV: low scores -> background
    label = background(loaded.names) if background else None
    return SegmentOptions(
        tile=loaded.tile,
        overlap=req.overlap,
        batch_size=loaded.batch_size,
        unknown_threshold=req.unknown_threshold,
        unknown_label=255 if label is None else label,
        probabilities=req.probabilities,
        cog=req.cog,
        overwrite=req.overwrite,
        resume=req.resume,
        on_error=req.on_error,
        io_threads={None: "auto", 0: "off"}.get(req.io_threads, req.io_threads),
        max_memory=plan.max_memory,
        colors=class_colors(loaded.names, plan.palette),
    )


def segment_one(plan: Plan, loaded: Loaded, index: int, opts: SegmentOptions, band=None) -> SegmentResult:
    """One scene (or its row band ``band`` = (r0, r1, file) under torchrun) with a progress display."""
    info = plan.infos[index]
    out = band[2] if band else plan.outputs[index]
    settings = scene_settings(plan, info, loaded.names, loaded.tile, loaded.batch_size, loaded.runtime)
    if band:
        settings["rows"] = [band[0], band[1]]
    tags = scene_tags(info, loaded.names, loaded.tile, loaded.label, plan.request)
    quiet = plan.request.quiet or not loaded.ddp.main
    with progress_display(f"segmenting {info.name}", unit="windows", quiet=quiet) as update:
        rows = band[:2] if band else None
        aoi = plan.aois.get(info.path)
        return segment_scene(info, loaded.predictor, out, opts, tags, settings, WindowCounts(update), rows, aoi)


class WindowCounts:
    """The engine's progress as window counts, with the rate, on a progress display."""

    def __init__(self, update) -> None:
        self.update, self.start = update, time.perf_counter()

    def __call__(self, p) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.update(p.done + p.skipped + p.failed, p.total, skipped=p.skipped, rate=f"{p.done / elapsed:.1f}/s")


def vectorize_step(plan: Plan, result: SegmentResult, labels: Path) -> None:
    """``--vector``: polygons of the labels just written; the labels stay valid if this step fails."""
    from aeroseg_cli.polygons.request import VectorizeOptions
    from aeroseg_cli.polygons.vectorize import vectorize_raster

    req = plan.request
    t0 = time.perf_counter()
    opts = VectorizeOptions(
        overwrite=req.overwrite, probabilities=req.probabilities, allow_ungeoreferenced=req.allow_ungeoreferenced
    )
    try:
        with progress_display(f"polygonising {labels.name}", unit="rows", quiet=req.quiet, stage="vectorize") as update:
            summary = vectorize_raster(labels, req.vector, opts, lambda n, done, total: update(done, total, polygons=n))
    except CLIError as exc:
        raise CLIError(f"the labels are written to {labels}, but polygonising them failed: {exc}") from None
    result.outputs.append(str(req.vector))
    result.notes.append(f"{summary['features']} polygons (area and perimeter in {summary['measured_in']})")
    plan.timings["vectorize"] = plan.timings.get("vectorize", 0.0) + time.perf_counter() - t0


def shares(plan: Plan, rank: int, world: int) -> tuple[list[int], bool]:
    """This process's scenes, and whether one scene is split into row bands over the ranks."""
    indices = list(range(len(plan.infos)))
    banded = world > 1 and len(indices) == 1
    if world > 1 and not banded:
        indices = indices[rank::world]  # explicit: every scene exactly once, no padding
    return indices, banded


@contextlib.contextmanager
def locks(plan: Plan) -> Iterator[None]:
    """This process's outputs locked right after the cheap checks, before the model loads: a second run on an output
    is refused in a second, not after the model load. The new output folder is made for the locks (every check
    on it has passed) and removed again, if still empty, when the job fails. Under torchrun (RANK, WORLD_SIZE set
    before any process starts) each rank locks the outputs it writes; rank 0 those of a banded scene."""
    req = plan.request
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    indices, banded = shares(plan, rank, world)
    mine = rank == 0 or not banded
    locked = [plan.outputs[i] for i in indices] if mine else []
    locked += [p for p in (req.probabilities, req.vector) if p is not None and mine]
    made = []
    if plan.new_folder is not None:
        made = [p for p in (plan.new_folder, *plan.new_folder.parents) if not p.exists()]
        plan.new_folder.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive(locked):
            yield
    except BaseException:
        for folder in made:  # innermost first; a folder something was written into stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def run(plan: Plan, loaded: Loaded) -> list[SegmentResult]:
    """This process's scenes (its outputs locked by ``locks``); under torchrun the results of every rank are
    gathered."""
    from aeroseg_cli.runtime.ddp import gather

    ddp, req = loaded.ddp, plan.request
    opts = options(plan, loaded)
    indices, banded = shares(plan, ddp.rank, ddp.world)
    results, error = [], None
    try:
        t0 = time.perf_counter()
        for i in indices:
            result = run_banded(plan, loaded, opts) if banded else segment_one(plan, loaded, i, opts)
            if result is not None and req.vector is not None:
                vectorize_step(plan, result, plan.outputs[i])
            results += [result] if result is not None else []
        plan.timings["segment"] = time.perf_counter() - t0 - plan.timings.get("vectorize", 0.0)
    except CLIError as exc:
        if ddp.world == 1:
            raise
        error = str(exc) if str(exc).startswith("rank ") else f"rank {ddp.rank}: {exc}"
    statuses = gather({"error": error, "results": [dataclasses.asdict(r) for r in results]})
    failed = [s["error"] for s in statuses if s["error"]]
    if failed:
        raise CLIError(f"{len(failed)} of {ddp.world} processes failed ({failed[0]}); rerun with --resume")
    return [SegmentResult(**r) for s in statuses for r in s["results"]]


def run_banded(plan: Plan, loaded: Loaded, opts: SegmentOptions) -> SegmentResult | None:
    """One scene over the ranks: each rank its band of rows into its own file, rank 0 assembles the final one."""
    from aeroseg_cli.runtime.ddp import gather
    from aeroseg_cli.segment.distributed import assemble, band_path, row_bands
    from aeroseg_cli.segment.writer import LabelWriter, RasterSpec, label_sidecars, probability_sidecars

    ddp, info, out = loaded.ddp, plan.infos[0], plan.outputs[0]
    bands = row_bands(info.height, ddp.world)
    r0, r1 = bands[ddp.rank]
    probs = band_path(opts.probabilities, ddp.rank) if opts.probabilities else None
    band_opts = dataclasses.replace(opts, cog=False, overwrite=True, probabilities=probs)
    local, error = None, None
    if r1 > r0:
        try:
            with exclusive([band_path(out, ddp.rank)]):
                local = segment_one(plan, loaded, 0, band_opts, (r0, r1, band_path(out, ddp.rank)))
        except CLIError as exc:  # reported through the gather below, so no rank waits forever
            error = str(exc)
    statuses = gather({"error": error, "result": dataclasses.asdict(local) if local else None})
    failed = [f"rank {i}: {s['error']}" for i, s in enumerate(statuses) if s["error"]]
    if failed:
        raise CLIError(failed[0])
    if not ddp.main:
        return None
    settings = scene_settings(plan, info, loaded.names, loaded.tile, loaded.batch_size, loaded.runtime)
    tags = scene_tags(info, loaded.names, loaded.tile, loaded.label, plan.request)
    spec = RasterSpec(info.width, info.height, info.crs, info.transform)
    writer = LabelWriter(out, spec, loaded.names, tags, settings, [(0, info.width)], opts.probabilities, opts.cog,
                         colors=opts.colors)  # fmt: skip
    files = [(band_path(out, r), band_path(opts.probabilities, r) if opts.probabilities else None)
             for r, (a, b) in enumerate(bands) if b > a]  # fmt: skip
    assemble(files, writer)
    check_unchanged(info, writer)
    outputs = writer.commit(opts.overwrite)
    for labels_path, probs_path in files:
        probs = (probs_path, *probability_sidecars(probs_path)) if probs_path else ()
        for p in (labels_path, *label_sidecars(labels_path), *probs):
            p.unlink(missing_ok=True)
    return merge_results([SegmentResult(**s["result"]) for s in statuses if s["result"]], outputs, ddp.world, bands)


def merge_results(parts: list[SegmentResult], outputs: list[Path], world: int, bands) -> SegmentResult:
    first = parts[0]
    return dataclasses.replace(
        first,
        outputs=[str(p) for p in outputs],
        windows={k: sum(p.windows[k] for p in parts) for k in first.windows},
        seconds=max(p.seconds for p in parts),
        model_seconds=sum(p.model_seconds for p in parts),
        blender_mb=max(p.blender_mb for p in parts),
        peak_rss_mb=max(p.peak_rss_mb for p in parts),
        resumed_from_row=min(p.resumed_from_row for p in parts),
        notes=[f"{world} processes, row bands {bands}"],
    )
