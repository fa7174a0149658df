"""Checks on output paths, done before any work starts."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from aeroseg_cli.files.errors import UsageError


def check_output(path: Path, overwrite: bool, what: str = "output", also: Iterable[Path] = ()) -> None:
    """Refuse an existing output (and its sibling files, e.g. a shapefile's) without --overwrite, and a folder that
    is missing or not writable."""
    if any(p.exists() for p in (path, *also)) and not overwrite:
        raise UsageError(f"{what} {path} exists (use --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{what} folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{what} folder {parent} is not writable")
