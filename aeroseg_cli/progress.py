"""Progress for long commands, shown the way the place it goes to can take it.

    with progress_display("vectorize", unit="rows", quiet=quiet) as update:
        for ...:
            update(done, total, polygons=n)  # any extra fields are shown as "name value"

On a terminal: a rich bar (description, bar, done/total, the fields, elapsed and remaining time). Elsewhere (a log
file, a pipe, a test's captured stderr): a plain line at most every ``interval`` seconds, so short runs print nothing
and long ones leave a readable trail, plus a last line at the end if any was printed. With ``quiet``: nothing.
``update`` is always cheap to call; the display is torn down when the block ends, also on an exception.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Update = Callable[..., None]
"""``update(done: int, total: int, **fields)``."""


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

    def __init__(self, label: str, unit: str, stream: TextIO, interval: float) -> None:
        self.label, self.unit, self.stream, self.interval = label, unit, stream, interval
        self.start = self.last = time.monotonic()
        self.printed = False
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
    label: str, *, unit: str = "", quiet: bool = False, stream: TextIO | None = None, interval: float = 5.0
) -> Iterator[Update]:
    """Yield ``update(done, total, **fields)``: a rich bar when ``stream`` (default stderr) is a terminal, plain lines
    at most every ``interval`` seconds otherwise, nothing when ``quiet``."""
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
    lines = _Lines(label, unit, stream, interval)
    yield lines.update
    lines.finish()


@contextmanager
def status(text: str, quiet: bool = False, delay: float = 5.0) -> Iterator[None]:
    """A spinner on a terminal while something slow happens (loading a model); in a log, one line, and only when it
    takes longer than ``delay`` seconds (quick loads leave the log, and a usage error's one line, alone)."""
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
