"""Placing official weights in the cache: downloaded or imported files appear whole and verified, or not at all."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from aeroseg_cli.files.atomic import atomic_output
from models import hub


def download(
    spec: hub.WeightSpec,
    dest: Path | None = None,
    mirror: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fetch and verify ``spec`` into ``dest`` (the cache by default); a failed or mismatching download leaves
    nothing at ``dest``."""
    dest = dest or hub.cached_path(spec)
    with atomic_output(dest, suffix=".part") as tmp, open(tmp, "wb") as out:
        hub.fetch(spec, out, mirror=mirror, progress=progress)
    return dest


def import_file(spec: hub.WeightSpec, source: Path) -> Path:
    """Copy a file fetched by other means into the cache after checking its SHA-256."""
    hub.verify_file(spec, source)
    dest = hub.cached_path(spec)
    with atomic_output(dest, suffix=".part") as tmp:
        shutil.copyfile(source, tmp)
    return dest
