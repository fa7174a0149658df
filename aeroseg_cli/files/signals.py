"""SIGINT and SIGTERM raise ``Interrupted`` in the main thread, so every command unwinds through its cleanup."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from aeroseg_cli.files.errors import Interrupted


def _raise(signum: int, _frame) -> None:
    """The first SIGINT or SIGTERM stops the command; any later one is ignored, so that it cannot break the cleanup
    that keeps the partial resumable, nor land after Python's exit has put the default handlers back (the process
    would then die by the signal instead of exiting 130/143). A parent that dies sends several: qgis_process's threads
    each end with ``PR_SET_PDEATHSIG`` armed and it terminates its child: strace showed aeroseg getting three."""
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
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
