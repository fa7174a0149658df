"""The segment pipeline: reader -> tiler -> model -> blender -> writer, with reads and writes on background threads.

Memory is bounded by the blender's strip (see ``StripBlender``) plus a few batches in the queues: it does not grow
with scene height.
"""

from __future__ import annotations

import os
import queue
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine

from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.segment.blender import StripBlender
from aeroseg_cli.segment.reader import SceneInfo, SceneReader
from aeroseg_cli.segment.tiler import Grid, Window
from aeroseg_cli.segment.writer import LabelWriter

_END = object()


@dataclass
class SegmentOptions:
    tile: int = 384
    overlap: float = 0.25
    batch_size: int = 4
    unknown_threshold: float = 0.0
    probabilities: Path | None = None
    cog: bool = False
    overwrite: bool = False
    resume: bool = False
    on_error: str = "fail"  # "fail" (after the run, nothing written) or "skip" (failed windows become nodata)
    chunk_rows: int = 1024  # rows per write (rounded to the 512-row GeoTIFF tiles)
    prefetch_batches: int = 2
    io_threads: str = "auto"  # "on": read ahead and write on threads; "off": inline; "auto": on unless CPU-bound


@dataclass
class Progress:
    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    first_error: str | None = None


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
    notes: list[str] = field(default_factory=list)


class _Thread(threading.Thread):
    """A worker whose exception is re-raised in the main thread."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self.error = target, None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self.error = exc


def use_background_io(mode: str, device) -> bool:
    """Read ahead and write on background threads when they have a core to run on: always with a GPU model; on CPU
    only when torch leaves cores free (else the extra threads oversubscribe torch's and slow the model down)."""
    if mode in ("on", "off"):
        return mode == "on"
    import torch

    return device.type != "cpu" or (os.cpu_count() or 1) > torch.get_num_threads()


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def segment_scene(
    info: SceneInfo,
    predictor,
    output: Path,
    opts: SegmentOptions,
    tags: dict[str, str],
    fingerprint: str,
    on_progress: Callable[[Progress], None] | None = None,
    row_range: tuple[int, int] | None = None,
) -> SegmentResult:
    """Segment one scene into ``output``; the file appears only when the whole scene is done.

    ``row_range`` (r0, r1): only these scene rows, into a file of that band (one rank's share). Every window that
    touches the band runs, in grid order, so its pixels are exactly those of a whole-scene run.
    """
    start = time.perf_counter()
    grid = Grid.from_overlap(info.height, info.width, opts.tile, opts.overlap)
    r0, r1 = row_range or (0, info.height)
    writer = LabelWriter(
        output,
        info.width,
        r1 - r0,
        info.crs,
        info.transform @ Affine.translation(0, r0),
        predictor.class_names,
        tags,
        fingerprint,
        probabilities=opts.probabilities,
        cog=opts.cog,
        resume=opts.resume,
        chunk_rows=opts.chunk_rows,
        row_offset=r0,
    )
    start_row = writer.rows_done
    first_j = grid.first_row_index_touching(start_row)
    blender = StripBlender(
        grid,
        predictor.num_classes,
        opts.batch_size,
        start_row,
        opts.unknown_threshold,
        keep_probabilities=opts.probabilities is not None,
    )
    # batches are fixed groups of grid indices (index // batch_size): the same windows share a model call whatever
    # the block split, rank band or resume point, so results are identical bit for bit
    # (complete groups at both ends of a band; windows past the band only touch rows that are not written)
    group = opts.batch_size
    first_index = first_j * len(grid.cols) // group * group
    needed = [w.index for w in grid.windows(first_j) if w.row < r1]
    last_index = (needed[-1] // group + 1) * group - 1 if needed else -1
    todo = [w for w in grid.windows(first_index // len(grid.cols)) if first_index <= w.index <= last_index]
    todo = todo if start_row < r1 else []
    progress = Progress(total=len(todo))
    stop = threading.Event()
    background = use_background_io(opts.io_threads, predictor.device)
    read_q: queue.Queue = queue.Queue(maxsize=max(2, opts.batch_size * opts.prefetch_batches))
    write_q: queue.Queue = queue.Queue(maxsize=4)

    def read_todo():
        with SceneReader(info) as reader:
            for w in todo:
                yield (w, *reader.read(w.row, w.col, grid.tile))

    def read_windows() -> None:  # the read-ahead thread
        try:
            for item in read_todo():
                if not _put(read_q, item, stop):
                    return
        except Exception as exc:  # hand the failure to the main loop instead of leaving it waiting
            _put(read_q, exc, stop)
            return
        _put(read_q, _END, stop)

    def write_rows() -> None:
        while True:
            item = write_q.get()
            if item is _END:
                return
            writer.write(item)

    def windows_in_order():
        """(window, image, valid) in grid order: from the read-ahead thread, or read here when I/O runs inline."""
        try:
            if not background:
                yield from read_todo()
                return
            while (item := read_q.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                yield item
        except Exception as exc:  # only reading raises here: the caller's own errors never enter the generator
            raise CLIError(f"reading {info.path.name} failed: {exc}") from exc

    reader_t, writer_t = _Thread(read_windows, "aeroseg-read"), _Thread(write_rows, "aeroseg-write")
    if background:
        reader_t.start()
        writer_t.start()
    model_seconds = 0.0
    pending: list[tuple[Window, np.ndarray, np.ndarray]] = []

    def finish(upto: int) -> None:
        rows = blender.finish(min(upto, r1))
        if rows is None:
            return
        if not background:
            writer.write(rows)
            return
        if writer_t.error is not None:
            raise writer_t.error
        _put(write_q, rows, stop)

    def predict(batch: list[tuple[Window, np.ndarray, np.ndarray]]) -> list[np.ndarray | None]:
        nonlocal model_seconds
        t0 = time.perf_counter()
        try:
            return list(predictor(np.stack([b[1] for b in batch])))
        except Exception:
            if len(batch) == 1:
                raise
            return [_predict_one(b) for b in batch]  # find the failing window(s)
        finally:
            model_seconds += time.perf_counter() - t0

    def _predict_one(item) -> np.ndarray | None:
        try:
            return predictor(item[1][None])[0]
        except Exception as exc:
            _record_failure(item[0], exc)
            return None

    def _record_failure(w: Window, exc: Exception) -> None:
        progress.failed += 1
        if progress.first_error is None:
            progress.first_error = f"window at row {w.row}, col {w.col}: {type(exc).__name__}: {exc}"

    def flush() -> None:
        if not pending:
            return
        try:
            results = predict(pending)
        except Exception as exc:
            _record_failure(pending[0][0], exc)
            results = [None]
        for (w, _, valid), probs in zip(pending, results, strict=True):
            if probs is not None:
                blender.add(w, probs, valid)
                progress.done += 1
        pending.clear()
        if on_progress:
            on_progress(progress)

    try:
        for item in windows_in_order():
            w, _, valid = item
            if pending and w.index // opts.batch_size != pending[0][0].index // opts.batch_size:
                flush()  # a new batch group starts: every window before w is blended
                finish(w.row)
            if w.row + grid.tile > blender.base + blender.capacity:  # keep the strip bounded
                flush()
                finish(w.row)
            if not valid.any():
                progress.skipped += 1  # all nodata: never sent to the model
                if on_progress:
                    on_progress(progress)
            else:
                pending.append(item)
        flush()
        finish(r1)
        if background:
            _put(write_q, _END, stop)
            writer_t.join()
            if writer_t.error is not None:
                raise writer_t.error
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        if background:
            reader_t.join(timeout=5)

    if progress.failed and opts.on_error != "skip":
        writer.discard()
        raise CLIError(
            f"{progress.failed} window(s) failed ({progress.first_error}); nothing was written "
            "(use --on-error skip to write the rest as nodata)"
        )
    outputs = writer.commit(opts.overwrite)
    return SegmentResult(
        scene=str(info.path),
        outputs=[str(p) for p in outputs],
        width=info.width,
        height=info.height,
        windows={
            "total": len(grid),
            "run": len(todo),
            "done": progress.done,
            "skipped": progress.skipped,
            "failed": progress.failed,
        },
        seconds=time.perf_counter() - start,
        model_seconds=model_seconds,
        blender_mb=blender.nbytes / 2**20,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resumed_from_row=start_row,
        notes=list(info.notes),
    )
