"""The one error the weights code raises: its message is one line that says what is wrong and what to do."""

from __future__ import annotations


class WeightsError(RuntimeError):
    """A weights file is missing, unreachable, corrupt or of the wrong layout (message: one line, what to do)."""
