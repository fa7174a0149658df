"""Checkpoints trained with other codebases -> AerOSeg checkpoints.

``CONVERTERS[name](src, out, *, self_contained=False) -> report``: reads ``src`` (never modified), writes an ordinary
AerOSeg checkpoint to ``out`` (lean when the official CLIP file is in the weights cache, else or when asked
self-contained) and returns a JSON-able report: the variant detected, the tensors used, those ignored and why.
A file of another layout raises ``models.WeightsError`` in one line naming what is missing.

- ``catseg``: CAT-Seg's released detectron2 checkpoints (``model_base.pth`` ViT-B/16, ``model_large.pth``
  ViT-L/14@336px) -> presets ``catseg-vitb16`` / ``catseg-vitl14``.
- ``ovrs``: checkpoints trained with OVRS's code (rotations and/or the attention-aware decoder fusion).
- ``aeroseg``: a file that is already an AerOSeg checkpoint (the demo model), checked and placed as it is.
"""

from __future__ import annotations

from .aeroseg import adopt_checkpoint
from .catseg import convert_catseg, convert_ovrs

CONVERTERS = {"catseg": convert_catseg, "ovrs": convert_ovrs, "aeroseg": adopt_checkpoint}

__all__ = ["CONVERTERS", "adopt_checkpoint", "convert_catseg", "convert_ovrs"]
