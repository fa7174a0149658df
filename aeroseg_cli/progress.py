"""Progress for long commands, shown the way the place it goes to can take it.

    with progress_display("vectorize", unit="rows", quiet=quiet) as update:
        for ...:
            update(done, total, polygons=n)  # any extra fields are shown as "name value"

On a terminal: a rich bar (description, bar, done/total, the fields, elapsed and remaining time). Elsewhere (a log
file, a pipe, a test's captured stderr): a plain line at most every ``interval`` seconds, so short runs print nothing
and long ones leave a readable trail, plus a last line at the end if any was printed. With ``quiet``: nothing.
``update`` is always cheap to call; the display is torn down when the block ends, also on an exception.

``--progress json`` (``set_mode("json")``, or ``json:FD`` for another file descriptor) is for programs that run
aeroseg (the QGIS provider): one JSON object per line and per update (at most ``JSON_INTERVAL`` apart, plus every
start and end), model loading included, whatever the stream is (``quiet`` still means nothing)::

    {"aeroseg": "progress", "stage": "segment", "state": "update", "label": "segmenting a.tif", "unit": "windows",
     "done": 12, "total": 20, "fraction": 0.6, "elapsed_s": 20.4, "fields": {"skipped": 0, "rate": "0.6/s"}}

``state`` is start, update or end; ``fraction`` is null while the total is unknown (loading a model); ``stage`` is
the command (segment, vectorize, check, evaluate, train, prepare) or a step of it (model, vectorize).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

Update = Callable[..., None]
"""``update(done: int, total: int, **fields)``."""


MODES = ("auto", "json")
JSON_INTERVAL = 0.1  # seconds between two JSON updates of one display (starts and ends are always written)


@dataclass
class _Mode:
    """The process-wide progress mode: set once per command by its ``--progress`` option."""

    kind: str = "auto"
    fd: int | None = None  # json:FD; None: stderr (looked up at each write, so redirected stderr is followed)
    stage: str = ""  # the command's name, the default stage of its displays


_mode = _Mode()


def parse_mode(text: str) -> tuple[str, int | None]:
    """``auto``, ``json`` or ``json:FD`` -> (kind, fd); ValueError with the accepted forms otherwise."""
    kind, _, fd = text.strip().partition(":")
    if kind not in MODES or (fd and (kind != "json" or not fd.isdigit())):
        raise ValueError(f"--progress takes auto, json or json:FD (a file descriptor number), got {text!r}")
    if fd:
        try:
            os.fstat(int(fd))
        except OSError:
            raise ValueError(f"--progress {text}: file descriptor {fd} is not open") from None
    return kind, int(fd) if fd else None


def set_mode(text: str = "auto", stage: str = "") -> None:
    """Choose how every display of this process reports (``--progress``); ``stage`` names the command."""
    kind, fd = parse_mode(text)
    _mode.kind, _mode.fd, _mode.stage = kind, fd, stage


def json_mode() -> bool:
    return _mode.kind == "json"


class _JSONLines:
    """One JSON object per line for programs: every start and end, updates at most ``JSON_INTERVAL`` apart."""

    def __init__(self, label: str, unit: str, stage: str) -> None:
        self.base = {"aeroseg": "progress", "stage": stage or _mode.stage, "label": label, "unit": unit}
        self.start = self.last = time.monotonic()
        self.state: tuple | None = None
        self.emit("start")

    def emit(self, state: str, done: int | None = None, total: int | None = None, **fields) -> None:
        fraction = min(max(done / total, 0.0), 1.0) if total and done is not None else None
        record = {**self.base, "state": state, "done": done, "total": total, "fraction": fraction,
                  "elapsed_s": round(time.monotonic() - self.start, 3), "fields": fields}  # fmt: skip
        write_json_line(record)

    def update(self, done: int, total: int, **fields) -> None:
        now = time.monotonic()
        self.state = (done, total, fields)
        if now - self.last >= JSON_INTERVAL or (total and done >= total):
            self.last = now
            self.emit("update", done, total, **fields)

    def finish(self) -> None:
        done, total, fields = self.state or (None, None, {})
        self.emit("end", done, total, **fields)


def write_json_line(record: dict) -> None:
    """One line to the chosen descriptor (json:FD) or the current stderr, flushed at once."""
    line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
    if _mode.fd is None:
        sys.stderr.write(line)
        sys.stderr.flush()
        return
    data = line.encode()
    while data:
        data = data[os.write(_mode.fd, data) :]


def _fields(fields: dict) -> str:
    """``polygons=1234, stage="sieve"`` -> ``polygons 1,234, stage sieve``."""
    return ", ".join(
        f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
        for k, v in fields.items()
    )


class _Bar:
    """A rich progress bar on a terminal."""

    def __init__(self, label: str, unit: str, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.bar.add_task(label, total=None, extra="")

    def update(self, done: int, total: int, **fields) -> None:
        self.bar.update(self.task, completed=done, total=total, extra=_fields(fields))


class _Lines:
    """Plain lines for logs: one at most every ``interval`` seconds, and the final state if anything was printed."""

    def __init__(self, label: str, unit: str, stream: TextIO, interval: float, announce: bool = False) -> None:
        self.label, self.unit, self.stream, self.interval = label, unit, stream, interval
        self.start = self.last = time.monotonic()
        self.printed = announce
        if announce:  # jobs of minutes to hours say at once that they began, so a log shows they are under way
            print(f"{label}: started", file=stream, flush=True)
        self.pending: str | None = None
        self.first: int | None = None  # where this display started counting (a resumed run does not start at 0)

    def update(self, done: int, total: int, **fields) -> None:
        now = time.monotonic()
        self.first = done if self.first is None else self.first
        pct = f" ({100 * done / total:.0f} %)" if total else ""
        extra = f", {_fields(fields)}" if fields else ""
        elapsed = now - self.start
        eta = ""
        if total and done > self.first and done < total:
            eta = f", about {elapsed / (done - self.first) * (total - done):.0f} s left"
        self.pending = f"{self.label}: {done:,}/{total:,} {self.unit}{pct}{extra}, {elapsed:.0f} s{eta}"
        if now - self.last >= self.interval:
            self._emit(now)

    def _emit(self, now: float) -> None:
        print(self.pending, file=self.stream, flush=True)
        self.printed, self.pending, self.last = True, None, now

    def finish(self) -> None:
        if self.printed and self.pending is not None:
            self._emit(time.monotonic())


def _nothing(done: int, total: int, **fields) -> None:
    """The update of a quiet display."""


@contextmanager
def progress_display(
    label: str,
    *,
    unit: str = "",
    quiet: bool = False,
    stream: TextIO | None = None,
    interval: float = 5.0,
    announce: bool = False,
    stage: str = "",
) -> Iterator[Update]:
    """Yield ``update(done, total, **fields)``: a rich bar when ``stream`` (default stderr) is a terminal, plain lines
    at most every ``interval`` seconds otherwise (with ``announce``, also a first "started" line and always a last
    one), nothing when ``quiet``; JSON lines in json mode, ``stage`` naming the step [the command]."""
    if json_mode() and not quiet:
        lines = _JSONLines(label, unit, stage)
        yield lines.update
        lines.finish()
        return
    stream = sys.stderr if stream is None else stream
    if quiet:
        yield _nothing
        return
    from rich.console import Console

    console = Console(file=stream)
    if console.is_terminal:
        bar = _Bar(label, unit, console)
        with bar.bar:
            yield bar.update
        return
    lines = _Lines(label, unit, stream, interval, announce)
    yield lines.update
    lines.finish()


@contextmanager
def status(text: str, quiet: bool = False, delay: float = 5.0, stage: str = "model") -> Iterator[None]:
    """A spinner on a terminal while something slow happens (loading a model); in a log, one line, and only when it
    takes longer than ``delay`` seconds (quick loads leave the log, and a usage error's one line, alone). In json
    mode: a start and an end line of ``stage`` (fraction null: how long it takes is not known)."""
    if json_mode() and not quiet:
        lines = _JSONLines(text, "", stage)
        yield
        lines.finish()
        return
    if quiet:
        yield
        return
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(text):
            yield
        return
    timer = threading.Timer(delay, lambda: print(text, file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


class Work:
    """Work measured in weighted units (pixels of images of very different sizes) and counted in whole items
    (images): the bar and the time left follow the units, the items are shown beside them."""

    def __init__(self, update: Update, total: int, items: int) -> None:
        self.update, self.total, self.items = update, max(int(total), 1), items
        self.done = 0
        self.items_done = 0

    def advance(self, amount: float = 0, items: int = 0) -> None:
        """Record ``amount`` units and ``items`` items as done."""
        self.done += int(amount)
        self.items_done += items
        self.update(self.done, self.total, items=f"{self.items_done}/{self.items}")


@contextmanager
def work_progress(label: str, total: float, items: int, unit: str = "", quiet: bool = False) -> Iterator[Work]:
    """``progress_display`` for jobs of many items of unequal size (dataset preparation), announced in logs."""
    with progress_display(label, unit=unit, quiet=quiet, announce=True) as update:
        work = Work(update, int(total), items)
        update(0, work.total, items=f"0/{items}")
        yield work
