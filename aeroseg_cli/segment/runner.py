"""Running ``segment``: ``segment(request)`` plans the run (every check before any work), locks this process's
outputs, loads the model, segments each scene (or this rank's share under torchrun: ``segment/distributed.py``),
polygonises when asked, and returns what it did. The command line and Python callers both call it.

Heavy modules (torch, the engine, rasterio) are imported inside the functions that need them: a usage error found by
the plan never waits for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aeroseg_cli.files.errors import AerosegWarning, CLIError, worded
from aeroseg_cli.files.safety import exclusive
from aeroseg_cli.progress import progress_display
from aeroseg_cli.segment.loading import Loaded, load
from aeroseg_cli.segment.plan import Plan
from aeroseg_cli.segment.plan import plan as make_plan
from aeroseg_cli.segment.request import SegmentRequest

if TYPE_CHECKING:
    from aeroseg_cli.segment.distributed import RowBand
    from aeroseg_cli.segment.engine import SegmentOptions, SegmentResult


@dataclass
class SegmentRun:
    """What one ``segment`` run did: a result per scene (every rank's, gathered on rank 0), what it ran with, the
    stages' times and the warnings it gave."""

    results: list[SegmentResult]
    model: str  # the model's label (a checkpoint's file name, a preset's name)
    model_choice: str  # why this model ran: "--model", or how it was chosen without one
    classes: list[str]
    device: str
    precision: str
    processes: int  # ranks under torchrun, else 1
    main: bool  # this process reports the run (rank 0 under torchrun)
    timings: dict[str, float]  # seconds per stage: checks, model_load, segment (, vectorize)
    seconds: float  # the whole run, wall time
    warnings: list[str] = field(default_factory=list)


def segment(request: SegmentRequest) -> SegmentRun:
    """Plan (every check that needs no model, before torch loads), lock the outputs, load the model, run. Each
    warning is given through ``warnings.warn`` (category ``AerosegWarning``) when it is found, and returned."""
    start = time.perf_counter()
    checked = make_plan(request)
    given = [w for info in checked.infos for w in info.warnings]
    warn(given)
    with locks(checked):  # before the model loads: a second run on an output is refused at once
        loaded = load(checked)
        if loaded.ddp.main:  # the model's warnings are the same on every rank: given once
            warn(loaded.warnings)
            given += loaded.warnings
        results = run(checked, loaded)
    return SegmentRun(
        results=results,
        model=loaded.label,
        model_choice=checked.model_choice,
        classes=loaded.names,
        device=str(loaded.predictor.device),
        precision=loaded.precision,
        processes=loaded.ddp.world,
        main=loaded.ddp.main,
        timings=checked.timings,
        seconds=time.perf_counter() - start,
        warnings=given,
    )


def warn(messages: list[str]) -> None:
    for message in messages:
        warnings.warn(worded(message), AerosegWarning, stacklevel=3)


@contextlib.contextmanager
def locks(plan: Plan) -> Iterator[None]:
    """This process's outputs locked right after the cheap checks, before the model loads: a second run on an output
    is refused in a second, not after the model load. The new output folder is made for the locks (every check
    on it has passed) and removed again, if still empty, when the job fails. Under torchrun (RANK, WORLD_SIZE set
    before any process starts) each rank locks the outputs it writes; rank 0 those of a banded scene."""
    from aeroseg_cli.segment.distributed import shares

    req = plan.request
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    indices, banded = shares(len(plan.infos), rank, world)
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
    from aeroseg_cli.segment.distributed import shares
    from aeroseg_cli.segment.engine import SegmentResult

    ddp, req = loaded.ddp, plan.request
    opts = engine_options(plan, loaded)
    indices, banded = shares(len(plan.infos), ddp.rank, ddp.world)
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


def engine_options(plan: Plan, loaded: Loaded) -> SegmentOptions:
    """The engine's options of this run: the request's, with the model's tile, batch, unknown label and colours."""
    from aeroseg_cli.segment.engine import SegmentOptions
    from aeroseg_cli.styles.palette import class_colors

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


def segment_one(plan: Plan, loaded: Loaded, index: int, opts: SegmentOptions, band: RowBand | None = None):
    """Scene ``index`` (or this rank's ``band`` of its rows under torchrun) with a progress display."""
    from aeroseg_cli.segment.engine import segment_scene

    info, fingerprint = plan.infos[index], loaded.fingerprints[index]
    out = band.labels if band else plan.outputs[index]
    settings = fingerprint.of_rows(*band.rows) if band else fingerprint.settings
    quiet = plan.request.quiet or not loaded.ddp.main
    with progress_display(f"segmenting {info.name}", unit="windows", quiet=quiet) as update:
        rows = band.rows if band else None
        aoi = plan.aois.get(info.path)
        counts = WindowCounts(update)
        return segment_scene(info, loaded.predictor, out, opts, fingerprint.tags, settings, counts, rows, aoi)


def run_banded(plan: Plan, loaded: Loaded, opts: SegmentOptions) -> SegmentResult | None:
    """One scene over the ranks: each rank its band of rows into its own files, rank 0 assembles the final ones."""
    from aeroseg_cli.runtime.ddp import gather
    from aeroseg_cli.segment.distributed import assemble_scene, merge_results, row_bands
    from aeroseg_cli.segment.engine import SegmentResult
    from aeroseg_cli.segment.writer import LabelWriter, RasterSpec

    ddp, info, out = loaded.ddp, plan.infos[0], plan.outputs[0]
    bands = row_bands(out, opts.probabilities, info.height, ddp.world)
    mine = bands[ddp.rank]
    band_opts = dataclasses.replace(opts, cog=False, overwrite=True, probabilities=mine.probabilities)
    local, error = None, None
    if not mine.empty:
        try:
            with exclusive([mine.labels]):
                local = segment_one(plan, loaded, 0, band_opts, mine)
        except CLIError as exc:  # reported through the gather below, so no rank waits forever
            error = str(exc)
    statuses = gather({"error": error, "result": dataclasses.asdict(local) if local else None})
    failed = [f"rank {i}: {s['error']}" for i, s in enumerate(statuses) if s["error"]]
    if failed:
        raise CLIError(failed[0])
    if not ddp.main:
        return None
    fingerprint = loaded.fingerprints[0]
    spec = RasterSpec(info.width, info.height, info.crs, info.transform)
    writer = LabelWriter(out, spec, loaded.names, fingerprint.tags, fingerprint.settings, [(0, info.width)],
                         opts.probabilities, opts.cog, colors=opts.colors)  # fmt: skip
    outputs = assemble_scene(info, bands, writer, opts.overwrite)
    return merge_results([SegmentResult(**s["result"]) for s in statuses if s["result"]], outputs, bands)


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
