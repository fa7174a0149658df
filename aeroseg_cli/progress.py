"""Progress for long jobs, the same in every command: a rich bar on a terminal, a plain line every few seconds when
stderr is not a terminal (log files of batch jobs), nothing with ``-q``; and a status line while something loads.

Usage::

    with Reporter("segmenting scene.tif", unit="windows", quiet=quiet) as report:
        report(done, total, skipped=3)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator


def _rate(done: float, elapsed: float, unit: str) -> str:
    return f"{done / elapsed:.1f} {unit}/s" if elapsed > 0 and done else ""


def _eta(done: float, total: float | None, elapsed: float) -> str:
    if not total or not done or done >= total:
        return ""
    seconds = elapsed / done * (total - done)
    return f"ETA {int(seconds // 3600):d}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


class Reporter:
    """``report(done, total=None, **fields)``; fields (e.g. loss=0.41) are shown after the counts."""

    def __init__(self, description: str, unit: str = "items", quiet: bool = False, interval: float = 10.0) -> None:
        self.description, self.unit, self.quiet, self.interval = description, unit, quiet, interval
        self.terminal = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last_line = 0.0
        self._bar = None
        self._task = None
        self._state: tuple[float, float | None, dict] = (0, None, {})

    def __enter__(self) -> Reporter:
        self.start = self.last_line = time.perf_counter()
        if not self.quiet and self.terminal:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=None, extra="")
        return self

    def __call__(self, done: float, total: float | None = None, **fields) -> None:
        self._state = (done, total, fields)
        if self.quiet:
            return
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, extra=self._extra(now))
        elif now - self.last_line >= self.interval:
            self.last_line = now
            self._line(now)

    def _extra(self, now: float) -> str:
        done, total, fields = self._state
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()]
        elapsed = now - self.start
        parts += [_rate(done, elapsed, self.unit), _eta(done, total, elapsed)]
        return "  ".join(p for p in parts if p)

    def _line(self, now: float) -> None:
        done, total, _ = self._state
        count = f"{done:g}/{total:g}" if total else f"{done:g}"
        sys.stderr.write(f"{self.description}: {count} {self.unit}  {self._extra(now)}\n".replace("  \n", "\n"))
        sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif not self.quiet and self._state[0] and exc[0] is None and time.perf_counter() - self.start >= 1:
            self._line(time.perf_counter())


@contextlib.contextmanager
def status(text: str, quiet: bool = False, delay: float = 2.0) -> Iterator[None]:
    """A spinner on a terminal (one line otherwise) while something slow happens, e.g. loading a model."""
    if quiet:
        yield
        return
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(text):
            yield
        return
    timer = threading.Timer(delay, lambda: sys.stderr.write(f"{text}\n") and sys.stderr.flush())
    timer.daemon = True
    timer.start()  # in a log, only loads that take a while are worth a line
    try:
        yield
    finally:
        timer.cancel()
