"""The plan of a ``segment`` run: every check that needs no model, before any work.

``plan`` checks the options, the scenes and every output against every input (nothing is read beyond headers and a
decimated sample, nothing is written) and returns a ``Plan``: what the runner (``segment/runner.py``) then locks,
loads the model for and segments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.files.safety import Output, check_outputs, file_kind, is_remote
from aeroseg_cli.segment.aoi import aoi_inputs, read_aoi, scene_aoi
from aeroseg_cli.segment.request import SegmentRequest

if TYPE_CHECKING:
    from aeroseg_cli.segment.reader import SceneInfo

MAX_CLASSES = 254  # ids 0..253; 255 is nodata/unknown


@dataclass
class Plan:
    """A checked request: its scenes inspected, its outputs placed and checked, its classes, palette and AOIs."""

    request: SegmentRequest
    infos: list[SceneInfo]
    outputs: list[Path]
    names: list[str] | None  # None: the checkpoint's own classes
    max_memory: int | None
    new_folder: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    model_choice: str = "--model"  # why request.model is the model used (modelchoice.Choice.why)
    palette: dict = field(default_factory=dict)  # class name -> (r, g, b): --colors and colours in --classes
    aois: dict = field(default_factory=dict)  # scene path -> its segment.aoi.Aoi (--aoi)


def check_class_names(names: list[str]) -> list[str]:
    if not names or any(not n for n in names):
        raise UsageError("empty class name in the class list (check for doubled or trailing commas)")
    for n in names:
        if any(not part.strip() for part in n.split("|")):
            raise UsageError(f"empty synonym in class {n!r}")
    lowered = [n.lower() for n in names]
    twice = next((n for n, low in zip(names, lowered, strict=True) if lowered.count(low) > 1), None)
    if twice is not None:
        raise UsageError(f"class {twice!r} is listed twice")
    if len(names) > MAX_CLASSES:
        raise UsageError(f"{len(names)} classes given; the label raster holds at most {MAX_CLASSES}")
    return names


def check_options(req: SegmentRequest) -> None:
    """The request's values, each on its own: ranges and choices (the command has parsed their text)."""
    if req.io_threads is not None and req.io_threads < 0:
        raise UsageError(f"--io-threads must be auto, off or a number of decode threads, got {req.io_threads!r}")
    if req.on_error not in ("fail", "skip"):
        raise UsageError(f"--on-error must be fail or skip, got {req.on_error!r}")
    if not 0 <= req.overlap < 1:
        raise UsageError(f"--overlap is a fraction of the tile in [0, 1), got {req.overlap}")
    if not 0 <= req.unknown_threshold < 1:
        raise UsageError("--unknown-threshold must be in [0, 1)")
    if req.batch_size is not None and req.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive number or auto, got {req.batch_size!r}")
    if req.max_memory is not None and req.max_memory < 64 << 20:
        raise UsageError(f"--max-memory must be at least 64M, got {req.max_memory} bytes")
    if req.tile is not None:
        from aeroseg_cli.segment.tiler import Grid

        Grid.from_overlap(req.tile, req.tile, req.tile, req.overlap)  # tile size and overlap, before any work
    if req.target_gsd is not None and req.target_gsd <= 0:
        raise UsageError("--target-gsd must be positive")
    if req.scale is not None and not req.scale[1] > req.scale[0]:
        raise UsageError(f"--scale needs MIN < MAX, got {req.scale[0]:g},{req.scale[1]:g}")
    if req.tile is not None and req.tile != int(req.tile):
        raise UsageError(f"--tile must be a whole number of pixels, got {req.tile}")
    if len(req.scenes) > 1 and (req.probabilities is not None or req.vector is not None):
        raise UsageError("--probabilities and --vector take one scene")


def output_paths(infos: list[SceneInfo], output: Path | None) -> tuple[list[Path], Path | None]:
    """Label paths, and the folder the run will create: beside each scene by default (``<stem>.labels.tif``; in the
    current folder for remote scenes), the file itself for one scene and a .tif, else a folder."""
    names = [f"{i.stem}.labels.tif" for i in infos]
    if output is None:
        return [
            Path(n) if is_remote(i.path) else Path(i.path).parent / n for i, n in zip(infos, names, strict=True)
        ], None
    kind = file_kind(output)
    if kind not in (None, "a folder"):
        raise UsageError(f"-o {output} is {kind}, not a regular file; it is never replaced: give a .tif or a folder")
    tif = output.suffix.lower() in (".tif", ".tiff")
    if len(infos) == 1 and tif and not output.is_dir():
        return [output], None
    if tif or (output.suffix and not output.is_dir()):
        what = f"{len(infos)} scenes need -o to be a folder" if tif else "labels are written as GeoTIFF"
        raise UsageError(f"{what}: give -o a folder{' or a .tif file name' if not tif else ''}, not {output}")
    if len(set(names)) != len(names):
        raise UsageError("two scenes share a file name; segment them into different folders")
    return [output / n for n in names], (None if output.is_dir() else output)


def planned_outputs(plan_outputs: list[Path], req: SegmentRequest) -> list[Output]:
    from aeroseg_cli.segment.writer import label_sidecars, probability_sidecars

    outs = [Output(p, "output", label_sidecars(p)) for p in plan_outputs]
    if req.probabilities is not None:
        outs.append(Output(req.probabilities, "probabilities raster", probability_sidecars(req.probabilities)))
    if req.vector is not None:
        from aeroseg_cli.polygons.formats import vector_output

        outs.append(vector_output(req.vector, choosable=False))  # segment has no --format
    return outs


def plan(req: SegmentRequest) -> Plan:
    """Every check that needs no model: options, scenes, outputs against inputs. Nothing is written."""
    from aeroseg_cli.runtime.modelcheck import check_preset
    from aeroseg_cli.runtime.modelchoice import choose_model
    from aeroseg_cli.styles.palette import load_palette

    t0 = time.perf_counter()
    check_options(req)
    if req.model is not None and file_kind(req.model) not in (None, "a folder"):  # a FIFO would block the load
        raise UsageError(f"--model {req.model} is {file_kind(req.model)}, not a checkpoint file")
    choice = choose_model(req.model)
    req = replace(req, model=choice.spec)
    check_preset(req.model)
    from aeroseg_cli.segment.reader import inspect_scene

    names = check_class_names(req.classes) if req.classes is not None else None
    palette = (load_palette(req.colors) if req.colors is not None else {}) | req.class_colors
    infos = [inspect_scene(s, req.bands, req.scale, req.target_gsd, req.allow_ungeoreferenced) for s in req.scenes]
    check_sizes(req, infos, len(names) if names else 1, req.max_memory)
    aois = scene_aois(req.aoi, infos)
    outputs, new_folder = output_paths(infos, req.output)
    given = (req.classes_file, req.colors, Path(req.model))
    inputs = [*req.scenes, *(p for p in given if p is not None and p.is_file()), *aoi_inputs(req.aoi)]
    check_outputs(planned_outputs(outputs, req), inputs, req.overwrite, new_folder)
    timings = {"checks": time.perf_counter() - t0}
    return Plan(req, infos, outputs, names, req.max_memory, new_folder, timings, choice.why, palette, aois)


def scene_aois(path: Path | None, infos: list[SceneInfo]) -> dict:
    """``--aoi``: the polygons read once and placed on every scene's grid (each must overlap them)."""
    if path is None:
        return {}
    polygons = read_aoi(path)
    return {info.path: scene_aoi(polygons, path, info) for info in infos}


def check_sizes(req: SegmentRequest, infos: list[SceneInfo], num_classes: int, max_memory: int | None) -> None:
    """A given ``--tile`` whose one batch cannot fit in this machine's memory (or whose narrowest superblock cannot
    fit in ``--max-memory``) is refused now, in microseconds; ``loading.load`` checks again with the model's classes,
    tile and device."""
    if req.tile is None:
        return
    import numpy as np

    from aeroseg_cli.segment.limits import available_memory, check_batch
    from aeroseg_cli.segment.memory import check_budget
    from aeroseg_cli.segment.tiler import Grid

    batch = req.batch_size or 1
    bands = max(len(i.bands) for i in infos)
    itemsize = max(np.dtype(i.dtype).itemsize for i in infos)
    check_batch(req.tile, batch, num_classes, bands, itemsize, available_memory())
    grid = Grid.from_overlap(max(i.height for i in infos), max(i.width for i in infos), req.tile, req.overlap)
    check_budget(grid, num_classes, req.probabilities is not None, max_memory)
