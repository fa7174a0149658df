"""The segment pipeline: reader -> tiler -> model -> blender -> writer.

``segment_scene`` runs the scene's superblocks (full-height column blocks, sized from a memory budget) one after
another. For each, the feeder reads rows of windows on decode threads and yields batches on the model's device, the
predictor turns them into probabilities, the blender sums them there and finishes rows of uint8 labels, and the
sink writes those on a background thread. Memory is bounded by the budget whatever the scene's size or class count.
"""

from __future__ import annotations

import os
import queue
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from affine import Affine

from aeroseg_cli.files.errors import CLIError, Interrupted
from aeroseg_cli.files.identity import changes, scene_identity
from aeroseg_cli.segment.aoi import Aoi
from aeroseg_cli.segment.blender import NODATA, FinishedRows, RowBlender, blender_bytes
from aeroseg_cli.segment.feeder import Batch, Feeder
from aeroseg_cli.segment.limits import CALL_OUTPUT_CAP, windows_per_call  # noqa: F401 (CALL_OUTPUT_CAP: re-export)
from aeroseg_cli.segment.predictor import DeviceOutOfMemory
from aeroseg_cli.segment.reader import SceneInfo
from aeroseg_cli.segment.tiler import BLOCK, Grid, Superblock, Window
from aeroseg_cli.segment.writer import LabelWriter, RasterSpec

HOST_BUDGET = 512 << 20  # default --max-memory on CPU
GPU_BUDGET_SHARE = 0.25  # default on CUDA: this share of the device memory free when the run starts


@dataclass
class SegmentOptions:
    tile: int = 384
    overlap: float = 0.25
    batch_size: int = 4
    unknown_threshold: float = 0.0
    unknown_label: int = 255  # what pixels under the threshold become: nodata, or the model's background class
    probabilities: Path | None = None
    cog: bool = False
    overwrite: bool = False
    resume: bool = False
    on_error: str = "fail"  # "fail": the first failed window ends the run, nothing written; "skip": 255 over it
    chunk_rows: int = 1024  # rows per write (rounded to the 512-row GeoTIFF tiles)
    io_threads: str | int = "auto"  # decode threads: "auto", "off" (inline) or a number
    max_memory: int | None = None  # bytes for the blender and write buffers; None: HOST_BUDGET / GPU share
    colors: list[tuple[int, int, int]] | None = None  # one per class; None: the palette's (styles.palette)


@dataclass
class Progress:
    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    first_error: str | None = None
    model_seconds: float = 0.0


@dataclass
class SegmentResult:
    scene: str
    outputs: list[str]
    width: int
    height: int
    windows: dict[str, int]
    seconds: float
    model_seconds: float
    blender_mb: float
    peak_rss_mb: float
    resumed_from_row: int
    superblocks: int = 1
    notes: list[str] = field(default_factory=list)


class WindowFailed(Exception):
    """A window failed with ``--on-error fail``: the run stops at once."""


def decode_threads(mode: str | int, device: torch.device) -> int:
    """Decode threads: with a GPU model, several (GDAL releases the GIL); on CPU only when torch leaves cores free
    (else they oversubscribe torch's threads and slow the model down more than they hide)."""
    if mode == "off":
        return 0
    if mode not in ("auto", "on"):
        return int(mode)
    cores = os.cpu_count() or 1
    if device.type != "cpu":
        return max(2, min(8, cores // 2))
    free = cores - torch.get_num_threads()
    return max(1 if mode == "on" else 0, min(4, free))


def memory_budget(opts: SegmentOptions, device: torch.device) -> int:
    if opts.max_memory is not None:
        return opts.max_memory
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_BUDGET_SHARE)
    return HOST_BUDGET


def superblock_width(grid: Grid, num_classes: int, budget: int, probabilities: bool, chunk_rows: int) -> int:
    """Owned width of each superblock so that the blender, the finished rows and one write chunk fit ``budget``."""
    fixed = blender_bytes(grid, num_classes, 0)
    per_column = (
        blender_bytes(grid, num_classes, 1) - fixed + (chunk_rows + grid.tile) * (1 + num_classes * probabilities)
    )
    columns = (budget - fixed) // max(per_column, 1) - 2 * grid.tile
    return int(max(BLOCK, min(columns, grid.width)))


def memory_bound(
    grid: Grid, num_classes: int, opts: SegmentOptions, bands: int, itemsize: int, threads: int, width: int
) -> dict[str, int]:
    """The pipeline's own memory, term by term, for superblocks of ``width`` owned columns (what the README's formula
    states; the benchmark compares it with the measured peak). Device terms live on the GPU when the model does."""
    t, k = grid.tile, num_classes
    b = windows_per_call(opts.batch_size, k, t)
    strip = min(width + 2 * t, grid.width)
    planes = 1 + k * (opts.probabilities is not None)  # uint8 labels, and probabilities when kept
    return {
        "blender (device)": blender_bytes(grid, k, strip),
        "model output: logits, probabilities, a blend temporary (device)": 3 * 4 * b * k * t * t,
        "batch images, staged + float (device)": b * t * t * (bands * itemsize + 3 * 4),
        "rows read ahead (host)": (threads + 2) * t * strip * (bands * itemsize + 1),
        "finished rows + one write chunk (host)": 2 * (opts.chunk_rows + grid.stride) * width * planes,
        "GDAL block cache (host, at most)": gdal_cache_bytes(),
    }


def gdal_cache_bytes() -> int:
    """GDAL_CACHEMAX as bytes (a number is MB, as GDAL reads it; aeroseg sets 256 unless the user did)."""
    text = os.environ.get("GDAL_CACHEMAX", "256").strip().upper()
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
            return int(text[: -len(unit)]) * factor
    return int(text) << 20 if text.isdigit() else 256 << 20


def check_unchanged(info: SceneInfo, writer: LabelWriter) -> None:
    """The scene is still the file the run started reading (else its map would mix two images): else nothing is
    written and the partial is dropped (its rows came from a file that is gone)."""
    changed = changes(info.identity, scene_identity(info.path))
    if changed:
        writer.discard()
        raise CLIError(
            f"the scene {info.path} changed while it was read ({'; '.join(changed)}); its map would mix two "
            "images, so nothing was written: segment it again once it stays unchanged"
        )


class RowSink:
    """Finished rows to the writer: on a background thread (with a bounded queue) or inline."""

    def __init__(self, writer: LabelWriter, background: bool) -> None:
        self.writer, self.error = writer, None
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.thread = threading.Thread(target=self._run, name="aeroseg-write", daemon=True) if background else None
        if self.thread:
            self.thread.start()

    def _run(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write(rows)
                except BaseException as exc:  # handed to the main thread at its next put
                    self.error = exc

    def put(self, rows: FinishedRows) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            self.writer.write(rows)
        else:
            self.queue.put(rows)

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error


def predict(predictor, batch: Batch, progress: Progress, opts: SegmentOptions) -> list[torch.Tensor | None]:
    """Probabilities per slot; a failing batch is retried window by window to find the failing ones."""
    t0 = time.perf_counter()
    try:
        return list(predictor(batch.images, opts.batch_size))
    except DeviceOutOfMemory:
        raise  # not a window's fault: the run stops, resumable
    except Exception:
        if batch.size == 1:
            return [_one(predictor, batch, 0, progress, opts)]
        return [_one(predictor, batch, s, progress, opts) for s in range(batch.size)]
    finally:
        progress.model_seconds += time.perf_counter() - t0


def _one(predictor, batch: Batch, slot: int, progress: Progress, opts: SegmentOptions) -> torch.Tensor | None:
    try:
        return predictor(batch.images[slot : slot + 1], opts.batch_size)[0]
    except DeviceOutOfMemory:
        raise
    except Exception as exc:
        window = next(e.window for e in batch.entries if e.slot == slot)
        fail(progress, f"window at row {window.row}, col {window.col}: {type(exc).__name__}: {exc}", opts)
        return None


def fail(progress: Progress, message: str, opts: SegmentOptions) -> None:
    progress.failed += 1
    progress.first_error = progress.first_error or message
    if opts.on_error != "skip":
        raise WindowFailed(message)


def blank_failed(rows: FinishedRows, failed: list[Window], tile: int) -> None:
    """``--on-error skip``: 255 (and probability 0) over the whole footprint of every window that failed, so the map
    is nodata exactly where a window could not be read or run, even where other windows cover the same pixels."""
    n, w = rows.labels.shape
    for win in failed:
        r0, r1 = max(rows.row0, win.row), min(rows.row0 + n, win.row + tile)
        c0, c1 = max(rows.col0, win.col), min(rows.col0 + w, win.col + tile)
        if r1 > r0 and c1 > c0:
            rows.labels[r0 - rows.row0 : r1 - rows.row0, c0 - rows.col0 : c1 - rows.col0] = NODATA
            if rows.probabilities is not None:
                rows.probabilities[:, r0 - rows.row0 : r1 - rows.row0, c0 - rows.col0 : c1 - rows.col0] = 0


def run_block(
    block: Superblock, rows: tuple[int, int], ctx: dict, on_progress: Callable[[Progress], None] | None
) -> None:
    """One superblock, from the first window row touching ``rows[0]``: batches in, finished rows out."""
    grid, predictor, opts, progress = ctx["grid"], ctx["predictor"], ctx["opts"], ctx["progress"]
    blender = RowBlender(grid, block, predictor.num_classes, predictor.device, rows, opts.unknown_threshold,
                         opts.probabilities is not None, opts.unknown_label)  # fmt: skip
    ctx["blender_bytes"] = max(ctx.get("blender_bytes", 0), blender.nbytes)
    j0, j1 = grid.rows_touching(*rows)
    failed: list[Window] = []
    for batch in ctx["feeder"].batches(block, j0, j1):
        probs = predict(predictor, batch, progress, opts) if batch.size else []
        for entry in batch.entries:
            p = probs[entry.slot] if entry.slot is not None else None
            if entry.error is not None:
                fail(progress, entry.error, opts)
            elif entry.slot is None:
                progress.skipped += 1
            elif p is not None:
                progress.done += 1
            if entry.error is not None or (entry.slot is not None and p is None):
                failed.append(entry.window)
            blender.add(entry.window, p, batch.valid[entry.slot] if p is not None else None)
        for finished in blender.pop():
            blank_failed(finished, failed, grid.tile)
            failed = [w for w in failed if w.row + grid.tile > finished.row0 + len(finished.labels)]
            ctx["sink"].put(finished)
        if on_progress:
            on_progress(progress)


def outside_windows(grid: Grid, aoi: Aoi, work: list[tuple[Superblock, tuple[int, int]]]) -> int:
    """How many of the windows this run had to do lie outside the AOI (never read nor run)."""
    touching = aoi.touching(grid)
    return int(sum((~touching[slice(*grid.rows_touching(*rows)), b.i0 : b.i1]).sum() for b, rows in work))


def segment_scene(
    info: SceneInfo,
    predictor,
    output: Path,
    opts: SegmentOptions,
    tags: dict[str, str],
    settings: dict,
    on_progress: Callable[[Progress], None] | None = None,
    row_range: tuple[int, int] | None = None,
    aoi: Aoi | None = None,
) -> SegmentResult:
    """Segment one scene into ``output``; the file appears only when the whole scene is done.

    ``row_range`` (r0, r1): only these scene rows, into a file of that band (one rank's share); every window that
    touches the band runs, so its pixels are exactly those of a whole-scene run. ``aoi``: only windows touching it
    run, pixels outside it are nodata.
    """
    start = time.perf_counter()
    opts = replace(opts, batch_size=windows_per_call(opts.batch_size, predictor.num_classes, opts.tile))
    grid = Grid.from_overlap(info.height, info.width, opts.tile, opts.overlap)
    r0, r1 = row_range or (0, info.height)
    budget = memory_budget(opts, predictor.device)
    width = superblock_width(grid, predictor.num_classes, budget, opts.probabilities is not None, opts.chunk_rows)
    spec = RasterSpec(info.width, r1 - r0, info.crs, info.transform @ Affine.translation(0, r0), r0)
    writer = LabelWriter(output, spec, predictor.class_names, tags, settings,
                         [(b.x0, b.x1) for b in grid.superblocks(width)], opts.probabilities, opts.cog, opts.resume,
                         opts.chunk_rows, opts.colors)  # fmt: skip
    work = [(grid.superblock(x0, x1), (writer.rows_done(x0), r1)) for x0, x1 in writer.blocks]
    work = [(b, rows) for b, rows in work if rows[0] < rows[1]]
    total = sum((b.i1 - b.i0) * len(range(*grid.rows_touching(*rows))) for b, rows in work)
    progress = Progress(total=total)
    ctx = {"grid": grid, "predictor": predictor, "opts": opts, "progress": progress}
    threads = decode_threads(opts.io_threads, predictor.device)
    try:
        with Feeder(info, grid, predictor.device, opts.batch_size, threads, aoi) as ctx["feeder"]:
            ctx["sink"] = RowSink(writer, background=threads > 0 or predictor.device.type != "cpu")
            try:
                for block, rows in work:
                    run_block(block, rows, ctx, on_progress)
            finally:
                ctx["sink"].close()
    except Interrupted as exc:
        done = progress.done + progress.skipped + progress.failed
        raise exc.with_detail(f"after {done} of {total} windows; rerun with --resume to continue") from None
    except DeviceOutOfMemory as exc:
        done = progress.done + progress.skipped + progress.failed
        raise DeviceOutOfMemory(f"after {done} of {total} windows: {exc}") from None
    except WindowFailed:
        writer.discard()
        raise CLIError(
            f"{progress.failed} window(s) failed ({progress.first_error}); nothing was written "
            "(use --on-error skip to write them as nodata)"
        ) from None
    check_unchanged(info, writer)
    outputs = writer.commit(opts.overwrite)
    windows = {"total": len(grid), "run": total, "done": progress.done, "skipped": progress.skipped,
               "failed": progress.failed}  # fmt: skip
    notes = list(info.notes)
    if aoi is not None:
        windows["outside_aoi"] = outside = outside_windows(grid, aoi, work)
        notes.append(f"--aoi {aoi.source}: {aoi.fraction:.1%} of the scene; {outside} of {total} windows lie "
                     f"outside it and were not run ({outside / max(total, 1):.0%} of the work saved)")  # fmt: skip
    return SegmentResult(
        scene=info.path,
        outputs=[str(p) for p in outputs],
        width=info.width,
        height=info.height,
        windows=windows,
        seconds=time.perf_counter() - start,
        model_seconds=progress.model_seconds,
        blender_mb=ctx.get("blender_bytes", 0) / 2**20,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resumed_from_row=min((rows[0] for _, rows in work), default=r1),
        superblocks=len(writer.blocks),
        notes=notes,
    )
