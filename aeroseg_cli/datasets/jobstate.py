"""What a ``datasets prepare`` run has finished, so that a rerun after an interruption skips it.

``OUT/.aeroseg-prepare/settings.json`` records the settings the output was made with (a rerun with other settings
is refused rather than mixing two kinds of patches); ``OUT/.aeroseg-prepare/done/<split>/<name>.json`` is written,
atomically, after every output file of one source image is in place. An image without its marker, or with a damaged
one, is done again; a damaged settings file is refused in one line naming it (the settings it held are unknown).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import UsageError

STATE = ".aeroseg-prepare"
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # the temporary names atomic_output makes


def check_paths(raw: Path, out: Path) -> None:
    """Refuse a missing ``--from``, and an output equal to or inside it (the download is never written to)."""
    if not raw.is_dir():
        raise UsageError(f"--from {raw} is not a folder")
    raw_r, out_r = raw.resolve(), out.resolve()
    if out_r == raw_r or raw_r in out_r.parents:
        raise UsageError(f"-o {out} is inside --from {raw}; write the prepared data outside the download")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} exists and is not a folder")


def open_state(out: Path, settings: dict) -> Path:
    """Create or reopen the output's state folder; refuse a foreign non-empty folder or other settings."""
    state = out / STATE
    recorded = state / "settings.json"
    if recorded.is_file():
        before = read_json(recorded)
        if before is None:
            raise UsageError(
                f"{recorded} is damaged (not the JSON object `datasets prepare` writes): the settings {out} was "
                "prepared with are unknown; delete the folder and rerun, or choose a new -o"
            )
        if before != settings:
            diff = sorted(k for k in {*before, *settings} if before.get(k) != settings.get(k))
            raise UsageError(
                f"{out} was prepared with other settings ({', '.join(f'{k}={before.get(k)!r}' for k in diff)}); "
                "rerun with the same settings to finish it, or choose a new -o"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise UsageError(f"-o {out} is not empty and was not made by `aeroseg datasets prepare`; choose a new folder")
    else:
        write_json(recorded, settings)
    return state


def write_json(path: Path, data: dict | list) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def marker(state: Path, split: str, name: str) -> Path:
    return state / "done" / split / f"{name}.json"


def read_json(path: Path) -> dict | None:
    """A JSON object this module wrote, or None when the file is absent, unreadable or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def done(state: Path, split: str, name: str) -> dict | None:
    """The record of a finished image, or None (not finished, or a damaged marker: the image is done again)."""
    return read_json(marker(state, split, name))


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files a killed run left behind (a clean interruption removes its own)."""
    removed = 0
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.is_file() and _TEMP.fullmatch(entry.name):
                os.unlink(entry.path)
                removed += 1
    return removed
