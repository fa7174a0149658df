"""SIGINT and SIGTERM raise ``Interrupted`` in the main thread, so every command unwinds through its cleanup."""

from __future__ import annotations

import signal
import threading

from aeroseg_cli.files.errors import Interrupted


def _raise(signum: int, _frame) -> None:
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM to ``Interrupted`` (main thread only; a no-op elsewhere, e.g. in a test's thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise)
