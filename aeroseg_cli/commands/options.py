"""What the commands share, in one place (as rasterio's ``rio`` options module): the options several commands
declare, and every parser that turns an option's text into the typed value a request holds. The library never
parses flag strings; commands build typed requests from these values field by field."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from aeroseg_cli.files.errors import UsageError

SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default(request: type, name: str) -> Any:
    """The default of field ``name`` of a request dataclass: the one place a default is written, which the Typer
    declaration reads (so ``--help`` and a request built in Python agree)."""
    f = next(f for f in dataclasses.fields(request) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"{request.__name__}.{name} has no default")


def given(value: Any, otherwise: Any) -> Any:
    """An option's value if it was given on the command line (not None), else ``otherwise``: what a ``--config``
    file or the dataclass says. Options that a file may set default to None so that the file can be heard."""
    return otherwise if value is None else value


# -- parsers: option text -> typed value ------------------------------------------------------------------------
def parse_size(text: str, flag: str = "--max-memory") -> int | None:
    """A size such as 512M, 2G, 1.5GiB or 800000000; "auto" is None."""
    if text == "auto":
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", text, re.I)
    if not m:
        raise UsageError(f"{flag} takes a size such as 512M or 2G (or auto), got {text!r}")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2).upper()])


def parse_count(text: str, flag: str, auto: str = "auto") -> int | None:
    """A positive whole number, or ``auto`` (None)."""
    if text == auto:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{flag} must be a positive number or {auto}, got {text!r}")
    return int(text)


def parse_io_threads(text: str) -> int | None:
    """``--io-threads``: auto (None), off (0) or a number of decode threads."""
    if text == "auto":
        return None
    if text == "off":
        return 0
    if not text.isdigit():
        raise UsageError(f"--io-threads must be auto, off or a number of decode threads, got {text!r}")
    return int(text)


def parse_bands(text: str | None) -> list[int] | None:
    """``--bands 1,2,3``: 1-based band numbers, one (grey) or three (R,G,B)."""
    if text is None:
        return None
    try:
        bands = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--bands must be comma-separated 1-based band numbers, got {text!r}") from None
    if len(bands) not in (1, 3):
        raise UsageError(f"--bands takes 1 band (used as grey) or 3 bands (R,G,B), got {len(bands)}")
    return bands


def parse_scale(text: str | None) -> tuple[float, float] | None:
    """``--scale MIN,MAX``: the raw values mapped to 0 and 1 (MIN < MAX is the plan's check, for the API too)."""
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--scale takes MIN,MAX (the raw values mapped to 0 and 1), got {text!r}") from None
    return low, high


def parse_names(text: str, what: str = "class name", where: str = "the class list") -> list[str]:
    """A comma-separated list (``--classes``, ``--unseen``, ``--splits``): the one way every command splits one. An
    empty item (a doubled or trailing comma) is refused, never dropped or kept."""
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise UsageError(f"empty {what} in {where} (check for doubled or trailing commas)")
    return names


def parse_classes(text: str | None, file: Path | None, colours: bool = True) -> tuple[list[str] | None, dict]:
    """Class names from ``--classes "a,b|c"`` or ``--classes-file`` (one class per line, ``|`` separates synonyms;
    blank lines and lines starting with ``#`` are comments; a UTF-8 byte-order mark is dropped), and the colours
    given with them ("water:#1f78b4"); ``colours=False`` for commands that draw nothing (a colour is refused)."""
    from aeroseg_cli.files.safety import check_input_file
    from aeroseg_cli.styles.palette import split_class_colors

    if text is not None and file is not None:
        raise UsageError("give --classes or --classes-file, not both")
    if text is None and file is None:
        return None, {}
    flag = "--classes-file" if file is not None else "--classes"
    if file is not None:
        check_input_file(file, "--classes-file")
        try:
            lines = file.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise UsageError(f"--classes-file {file}: not a text file (one class name per line)") from None
        names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not names:
            raise UsageError(f"--classes-file {file} names no class")
    else:
        names = parse_names(text)
    names, given = split_class_colors(names, flag)
    if given and not colours:
        raise UsageError(f"{flag} takes class names here, not colours ({next(iter(given))})")
    for n in names:
        if any(not part.strip() for part in n.split("|")):
            raise UsageError(f"empty synonym in class {n!r}")
    return names, given


def _progress_mode(ctx: typer.Context, value: str) -> str:
    """Set the process-wide progress mode as soon as the option is parsed (the command's code needs no change)."""
    from aeroseg_cli.progress import set_mode

    try:
        set_mode(value, stage=" ".join(ctx.command_path.split()[1:]))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return value


# -- options several commands declare ---------------------------------------------------------------------------
PROGRESS = typer.Option(
    "auto",
    "--progress",
    metavar="auto|json|json:FD",
    callback=_progress_mode,
    help="auto: a bar on a terminal, plain lines in logs. json: one JSON object per line on stderr (json:FD: on that "
    "file descriptor) with stage, done, total and fraction, for programs that run aeroseg (the QGIS plugin).",
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress, warnings or summary.")
JSON_SUMMARY = typer.Option(False, "--json", help="Print a JSON summary on stdout.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing outputs.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
HELP_PRECISION = "auto (GPU bf16, CPU fp32), fp32, bf16 (slower than fp32 on CPUs without AMX), fp16 (CUDA only)."
PRECISION = typer.Option("auto", "--precision", help=HELP_PRECISION)
ALLOW_UNGEOREFERENCED = typer.Option(
    False, "--allow-ungeoreferenced", help="Accept rasters without CRS (outputs in pixel coordinates)."
)
CLASSES_FILE = typer.Option(None, "--classes-file", help="One class per line (| synonyms, # comments).")


@contextlib.contextmanager
def shown_warnings(quiet: bool) -> Iterator[None]:
    """The library's warnings (``AerosegWarning``) as ``aeroseg: warning: ...`` lines on stderr (none with -q)."""
    from aeroseg_cli.files.errors import AerosegWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if quiet else "always", AerosegWarning)
        shown, warnings.showwarning = warnings.showwarning, show_warning
        try:
            yield
        finally:
            warnings.showwarning = shown


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: aeroseg's own warnings as one line each, any other as Python shows it."""
    from aeroseg_cli.files.errors import AerosegWarning

    if issubclass(category, AerosegWarning):
        sys.stderr.write(f"aeroseg: warning: {message}\n")
    else:
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))
