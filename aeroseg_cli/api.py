"""The Python API: what ``aeroseg segment`` and ``aeroseg vectorize`` do, for notebooks and programs.

    from aeroseg_cli import segment, vectorize

    run = segment("scene.tif", classes=["building", "road", "water"], output="labels.tif", model="catseg-vitb16")
    print(run.results[0].outputs, run.timings)
    polygons = vectorize("labels.tif", "labels.gpkg", min_area=50.0)

Arguments are the fields of ``SegmentRequest`` and ``VectorizeOptions``, typed (lists, numbers, paths; no flag
strings). Failures raise ``AerosegError`` (``UsageError`` for bad arguments or input), worded with these parameter
names rather than the command line's flags; warnings about a scene are ``AerosegWarning`` through ``warnings``.
Nothing here changes the process: the command line's process-wide tuning (GDAL's block cache, the allocator) is
``configure_process()``, which a program may call once if it wants the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aeroseg_cli.files.errors import WARNING_WORDING, CLIError, UsageError
from aeroseg_cli.polygons.request import VectorizeOptions
from aeroseg_cli.segment.request import SegmentRequest

RENAMED = {"fmt": "format"}  # the command's parameter name -> the request field's, where they differ
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])(\s+(\d[\w.]*|auto|off|skip|fail))?")


@dataclass(frozen=True)
class VectorizeResult:
    """What ``vectorize`` wrote: the file, its format and layer's CRS, how many polygons, what areas are in."""

    output: Path
    format: str
    features: int
    crs: str | None
    measured_in: str
    coordinates: str | None
    style: str | None


def vectorize(labels: str | Path, output: str | Path, **options) -> VectorizeResult:
    """Polygonise a label raster (from ``segment``) into a GIS file: one polygon per connected region, with class,
    colour, true area and perimeter (and confidence with ``probabilities``). ``options``: ``VectorizeOptions``."""
    from aeroseg_cli.files.gdalread import strict_reads
    from aeroseg_cli.polygons.job import vectorize_file

    opts = VectorizeOptions(**typed(VectorizeOptions, options))
    with python_wording("vectorize"), strict_reads():
        summary = vectorize_file(labels, Path(output), opts, quiet=True)
    return VectorizeResult(
        output=Path(summary["output"]),
        format=summary["format"],
        features=summary["features"],
        crs=summary["crs"],
        measured_in=summary["measured_in"],
        coordinates=summary["coordinates"],
        style=summary["style"],
    )


def segment(scenes: str | Path | Sequence[str | Path], **options):
    """Segment scenes into label GeoTIFFs (uint8 class ids, 255 = nodata/unknown) in the scenes' CRS, with the same
    checks, blending, resume and outputs as ``aeroseg segment``. ``options``: the fields of ``SegmentRequest``
    (``classes``, ``output``, ``model``, ``tile``, ...). Returns the run's result: per scene its outputs and window
    counts, and the time of each stage."""
    from aeroseg_cli.files.gdalread import strict_reads
    from aeroseg_cli.segment.runner import segment as run_request

    scenes = [str(scenes)] if isinstance(scenes, str | Path) else [str(s) for s in scenes]
    request = SegmentRequest(scenes=scenes, **{"quiet": True, **typed(SegmentRequest, options)})
    with python_wording("segment"), strict_reads():
        run = run_request(request)
    words = functools.partial(to_python, command="segment")
    return dataclasses.replace(run, model_choice=words(run.model_choice), warnings=[words(w) for w in run.warnings])


LISTS = {"classes": "names, e.g. classes=['ship', 'harbor']", "bands": "band numbers, e.g. bands=[4, 3, 2]"}


def typed(kind: type, options: dict) -> dict:
    """``options`` for a request of ``kind``, checked against the field types so that a wrong type is one line
    naming the parameter, not a TypeError deep inside: a ``str`` for a path field becomes a ``Path`` (and a ``Path``
    for a text field such as ``model`` a ``str``), as notebooks pass them; a single string or number where a list
    belongs is refused (``"a,b"`` is not split as the command line splits it: the API takes the list itself).
    Unknown names are left for the dataclass to refuse (TypeError)."""
    hints = typing.get_type_hints(kind)
    out = dict(options)
    for name, value in options.items():
        raw = hints.get(name, "")
        hint = raw.__name__ if isinstance(raw, type) else str(raw).replace("typing.", "")  # "int", "float | None"
        if value is None or name not in hints:
            continue
        if name in LISTS:
            if not isinstance(value, list | tuple):
                raise UsageError(f"{name} must be a list of {LISTS[name]}, got {value!r}")
            out[name] = list(value)
        elif "Path" in hint:
            if not isinstance(value, str | Path):
                raise UsageError(f"{name} must be a path (str or pathlib.Path), got {value!r}")
            out[name] = Path(value)
        elif hint == "bool":
            if not isinstance(value, bool):
                raise UsageError(f"{name} must be True or False, got {value!r}")
        elif hint.split(" ")[0] in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UsageError(f"{name} must be a number, got {value!r}")
        elif hint.startswith("tuple[float"):
            if not (isinstance(value, list | tuple) and len(value) == 2 and all(_number(v) for v in value)):
                raise UsageError(f"{name} must be (min, max), e.g. {name}=(0, 3000), got {value!r}")
            out[name] = (float(value[0]), float(value[1]))
        elif hint.split(" ")[0] == "str" and isinstance(value, Path):
            out[name] = str(value)
        elif hint.split(" ")[0] == "str" and not isinstance(value, str):
            raise UsageError(f"{name} must be a string, got {value!r}")
    return out


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@contextlib.contextmanager
def python_wording(command: str) -> Iterator[None]:
    """Errors raised inside say ``overlap`` and ``resume=True`` where the command line's say ``--overlap`` and
    ``--resume``: each flag of ``command`` that appears in the message is replaced by its parameter's name."""
    token = WARNING_WORDING.set(functools.partial(to_python, command=command))  # the library's warnings too
    try:
        yield
    except CLIError as exc:
        exc.args = (to_python(str(exc), command),)
        raise
    finally:
        WARNING_WORDING.reset(token)


def to_python(message: str, command: str) -> str:
    """``message`` with ``command``'s flags as Python parameters (a value after a flag becomes ``name=value``)."""
    table = flag_table(command)

    def name(match: re.Match) -> str:
        flag, value = match.group(1), match.group(3)
        if flag not in table:
            return match.group(0)
        param, is_flag = table[flag]
        if is_flag:
            return f"{param}=True" + (match.group(2) or "")
        if value is None:
            return param
        return f"{param}={value}" if value[0].isdigit() else f"{param}={value!r}"

    return FLAG.sub(name, message)


def flag_table(command: str) -> dict[str, tuple[str, bool]]:
    """Every flag of ``command`` (``--tile``, ``-o``) -> its parameter's name and whether it is an on/off flag, read
    from the command's declaration (the one place a flag is written)."""
    import importlib
    import inspect

    from aeroseg_cli.commands import COMMANDS

    entry = next(c for c in COMMANDS if c.name == command)
    function = getattr(importlib.import_module(f"aeroseg_cli.commands.{entry.module}"), entry.attr)
    table = {}
    for param in inspect.signature(function).parameters.values():
        for flag in getattr(param.default, "param_decls", None) or ():
            if flag.startswith("-"):
                table[flag] = (RENAMED.get(param.name, param.name), param.annotation in ("bool", bool))
    return table
