"""SIGINT and SIGTERM raise ``Interrupted`` in the main thread, so every command unwinds through its cleanup."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from aeroseg_cli.files.errors import Interrupted


def _raise(signum: int, _frame) -> None:
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM to ``Interrupted`` (main thread only; a no-op elsewhere, e.g. in a test's thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then raise ``Interrupted``: files that belong together
    (a checkpoint and its training state) are written together. Main thread only, like ``install``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, _frame) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        raise Interrupted(pending[0])
