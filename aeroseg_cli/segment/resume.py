"""The resume protocol: beside the hidden partial file of an output, a JSON sidecar records the settings the rows
were made with (``fingerprint.scene_settings``) and, per superblock, the rows safely on disk. ``--resume``
continues exactly there, and refuses a partial made with other settings, naming what differs (one check, one
message, before any work and again when the writer opens the partial).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import UsageError

SIDECAR_VERSION = 2


def partial_paths(output: Path) -> tuple[Path, Path]:
    """The hidden partial raster of ``output`` and its sidecar, beside it (``.NAME.partial.tif`` / ``.json``)."""
    stem = output.parent / f".{output.name}.partial"
    return stem.with_name(stem.name + ".tif"), stem.with_name(stem.name + ".json")


@dataclass
class BlockProgress:
    """One superblock: its owned columns [x0, x1) and the first scene row not yet safely written."""

    x0: int
    x1: int
    next_row: int

    def as_json(self) -> list[int]:
        return [self.x0, self.x1, self.next_row]  # the sidecar's format: [x0, x1, next row]


@dataclass
class ResumeState:
    """What a sidecar holds: the settings of the partial, and each superblock's progress (by its first column)."""

    settings: dict
    blocks: dict[int, BlockProgress]


def read_state(sidecar: Path) -> ResumeState | None:
    """The sidecar's state, or None when there is none this version can read (then the run starts over)."""
    try:
        state = json.loads(sidecar.read_text())
        if not isinstance(state, dict) or state.get("version") != SIDECAR_VERSION:
            return None
        blocks = {int(x0): BlockProgress(int(x0), int(x1), int(r)) for x0, x1, r in state["blocks"]}
        return ResumeState(state.get("settings", {}), blocks)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_state(sidecar: Path, settings: dict, blocks: Iterable[BlockProgress]) -> None:
    """Record the progress atomically (a crash leaves the previous record, never a torn one); OSError on failure."""
    state = {"version": SIDECAR_VERSION, "settings": settings, "blocks": [b.as_json() for b in blocks]}
    with atomic_output(sidecar) as tmp:
        tmp.write_text(json.dumps(state))


def settings_differences(saved: dict, now: dict) -> list[str]:
    """Human-readable differences between the settings a partial was made with and this run's."""
    keys = sorted(set(saved) | set(now))
    return [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


def check_compatible(output: Path, saved: dict, settings: dict) -> None:
    """Refuse to continue ``output``'s partial, made with the ``saved`` settings, with other ``settings``."""
    diff = settings_differences(saved, settings)
    if diff:
        raise UsageError(
            f"--resume: the partial result for {output.name} was made with other settings ({'; '.join(diff)}); "
            "rerun with those settings, or without --resume to start over"
        )


def check_resumable(output: Path, settings: dict) -> None:
    """Before any work: refuse ``--resume`` onto a partial made with other settings (none there: nothing to check)."""
    state = read_state(partial_paths(output)[1])
    if state is not None:
        check_compatible(output, state.settings, settings)
