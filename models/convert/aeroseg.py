"""``aeroseg``: a registry file that is already an AerOSeg checkpoint (the demo model) becomes the cached model as
it is, once it reads as one (its format and content digest checked)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..checkpoint import read_checkpoint


def adopt_checkpoint(src: Path, out: Path, *, self_contained: bool = False) -> dict[str, Any]:
    """Check ``src`` is an intact AerOSeg checkpoint and copy it to ``out`` byte for byte -> the report the other
    converters give (every tensor used, none ignored). ``self_contained`` is accepted for the common signature: the
    file is kept as it is (lean or self-contained)."""
    ckpt = read_checkpoint(src)
    tensors = len(ckpt["state_dict"])
    shutil.copyfile(src, out)
    return {
        "source": str(src),
        "variant": f"aeroseg checkpoint ({ckpt['config'].get('arch', 'aeroseg')}, {len(ckpt['class_names'])} classes)",
        "tensors": tensors,
        "tensors_used": tensors,
        "tensors_ignored": {},
        "top_level_ignored": {},
        "self_contained": True,
        "self_contained_because": None,
        "output": str(out),
    }
