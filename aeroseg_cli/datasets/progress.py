"""Progress of a long preparation: a rich bar on a terminal, a plain line every few seconds in a log, nothing quiet."""

from __future__ import annotations

import sys
import time
from typing import Any


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts work done out of ``total`` units (e.g. pixels) and items (e.g. images) and shows it."""

    def __init__(self, label: str, total: float, items: int, quiet: bool = False, every: float = 5.0) -> None:
        self.label, self.total, self.items, self.quiet, self.every = label, max(total, 1), items, quiet, every
        self.done = 0.0
        self.items_done = 0
        self.bar: Any = None
        self.start = self.last = time.monotonic()

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("{task.fields[items]}"),
                TimeRemainingColumn(),
                console=console,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, items=self._items())
        else:
            self._line("started")
        return self

    def _items(self) -> str:
        return f"{self.items_done}/{self.items}"

    def _line(self, what: str) -> None:
        elapsed = time.monotonic() - self.start
        share = self.done / self.total
        eta = f", about {_duration(elapsed * (1 - share) / share)} left" if 0 < share < 1 else ""
        print(
            f"{self.label}: {what} {self._items()} ({100 * share:.1f} %), {_duration(elapsed)} elapsed{eta}",
            file=sys.stderr,
            flush=True,
        )

    def advance(self, amount: float = 0.0, items: int = 0) -> None:
        """Record ``amount`` units and ``items`` items of work as done."""
        self.done += amount
        self.items_done += items
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, items=self._items())
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._line("at")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif not self.quiet and exc[0] is None:
            self._line("finished")
