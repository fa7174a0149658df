"""What a scene file is, to notice that it changed: during a run (checked before the output is committed) and between
a run and its ``--resume`` (part of the resume fingerprint).

A local file: device, inode, size and modification time (ns), symlinks followed; for a GDAL archive path
(``/vsizip/a.zip/x.tif``, ``/vsitar/``, ``/vsigzip/``) those of the local archive. A remote http(s) file (also as
``/vsicurl/...``): its size, ``ETag`` and ``Last-Modified`` from a HEAD request, those the server sends. rasterio has
no public call for GDAL's own view of them, and the server sends GDAL the same headers. Other paths have none.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

ARCHIVES = ("/vsizip/", "/vsitar/", "/vsigzip/")
# the resume fingerprint leaves out device and inode: a remount or a restore from backup changes those alone
RESUME_KEYS = ("scene_bytes", "scene_mtime_ns", "scene_etag", "scene_last_modified")
HEAD_TIMEOUT = 10.0  # seconds


def _local(path: str) -> str | None:
    """The local file behind ``path``: itself, or the archive of an archive path; None for anything else."""
    if not path.startswith("/vsi") and "://" not in path:
        return path
    for prefix in ARCHIVES:
        if path.startswith(prefix):
            parts = Path(path[len(prefix) - 1 :]).parts
            for n in range(2, len(parts) + 1):
                candidate = str(Path(*parts[:n]))
                if os.path.isfile(candidate):
                    return candidate
    return None


def _url(path: str) -> str | None:
    url = path.removeprefix("/vsicurl/")
    return url if url.lower().startswith(("http://", "https://")) else None


def _head(url: str) -> dict:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HEAD_TIMEOUT) as response:
            headers = response.headers
    except (OSError, ValueError):  # unreachable now: nothing known, nothing compared
        return {}
    found = {"scene_bytes": headers.get("Content-Length"), "scene_etag": headers.get("ETag"),
             "scene_last_modified": headers.get("Last-Modified")}  # fmt: skip
    if found["scene_bytes"] is not None and found["scene_bytes"].isdigit():
        found["scene_bytes"] = int(found["scene_bytes"])
    return {k: v for k, v in found.items() if v is not None}


def scene_identity(path: str) -> dict:
    """The identity of the file behind ``path`` as a flat dict (keys ``scene_*``); {} when it cannot be known."""
    local = _local(str(path))
    if local is not None:
        try:
            st = os.stat(local)
        except OSError:
            return {"scene_missing": True}
        return {"scene_bytes": st.st_size, "scene_mtime_ns": st.st_mtime_ns, "scene_device": st.st_dev,
                "scene_inode": st.st_ino}  # fmt: skip
    url = _url(str(path))
    return _head(url) if url else {}


def changes(before: dict, after: dict) -> list[str]:
    """What differs between two identities: "removed", or the keys known both times whose values differ, as
    "key before -> after"."""
    if after.get("scene_missing") and not before.get("scene_missing"):
        return ["the file was removed"]
    return [f"{k} {before[k]!r} -> {after[k]!r}" for k in before if k in after and before[k] != after[k]]
