"""Files of an official download, found by name in folders or still inside the official zip files.

Official releases ship zip archives (iSAID: ``train/images/part1.zip``, ``train/Semantic_masks/images.zip``); users
often extract some of them. Both are read the same way: GDAL reads zip members through ``/vsizip/`` and Python
through :mod:`zipfile`, so nothing has to be extracted and the download is never modified.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aeroseg_cli.files.errors import UsageError


@dataclass(frozen=True)
class RawFile:
    """One file of a download: a plain file, or a member of a zip file."""

    name: str  # base name, e.g. "P0000.png"
    container: Path  # the file itself, or the zip holding it
    member: str | None = None  # path inside the zip

    @property
    def gdal_path(self) -> str:
        """The path GDAL (rasterio) opens."""
        if self.member is None:
            return str(self.container)
        return f"/vsizip/{self.container.resolve()}/{self.member}"

    @property
    def where(self) -> str:
        """The file as a user finds it (for messages)."""
        return str(self.container) if self.member is None else f"{self.container}:{self.member}"

    def open(self) -> BinaryIO:
        """A binary file object (PIL opens it; zip members are seekable)."""
        if self.member is None:
            return open(self.container, "rb")
        return zipfile.ZipFile(self.container).open(self.member)  # the member keeps the archive's file open


@dataclass
class Found:
    """Files matched by name; ``duplicates`` counts names found more than once (the extracted copy wins)."""

    files: dict[str, RawFile]
    duplicates: int = 0
    zips: int = 0


def _zip_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{path} is not a readable zip file ({exc}); download it again") from None


def find_files(root: Path, pattern: re.Pattern[str], look_in_zips: bool = True) -> Found:
    """Every file under ``root`` (recursively, in sorted order) whose base name matches ``pattern``, in folders or
    in zip files. A name found twice keeps its extracted copy over a zip member, else the first in sorted order."""
    found = Found({})
    plain: set[str] = set()
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if pattern.fullmatch(name):
                if name in found.files:
                    found.duplicates += 1
                    if name in plain:
                        continue
                found.files[name] = RawFile(name, path)
                plain.add(name)
            elif look_in_zips and name.lower().endswith(".zip"):
                found.zips += 1
                for member in _zip_members(path):
                    base = member.rsplit("/", 1)[-1]
                    if not pattern.fullmatch(base):
                        continue
                    if base in found.files:
                        found.duplicates += 1
                        continue
                    found.files[base] = RawFile(base, path, member)
    return found
