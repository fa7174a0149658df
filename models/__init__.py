"""AerOSeg network, pure PyTorch: ``models.build(preset, **overrides)``.

Knows nothing of files beyond weights and checkpoints, nor of CRSs; the geospatial pipeline lives in ``aeroseg_cli``.
Names are imported on first use (PEP 562), so ``from models import hub`` or ``from models import config`` does not
import torch: ``aeroseg --help`` and ``aeroseg weights list`` start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and readers; at run time these come from __getattr__
    from .aeroseg import AerOSeg, AerOSegOutput
    from .checkpoint import FORMAT_VERSION, export_checkpoint, load_checkpoint, save_checkpoint
    from .config import AerOSegConfig
    from .factory import build, load_clip_weights, load_sam_weights
    from .hub import WeightsError, required_weights
    from .losses import backprojection_loss, bce_loss, total_loss
    from .presets import PRESET_STATUS, PRESETS, Preset, get_preset, list_presets, preset_config, preset_status
    from .probe import ProbeModel
    from .vocabulary import Vocabulary
    from .zeroshot import ZeroShotCLIP

__all__ = [
    "FORMAT_VERSION",
    "PRESETS",
    "PRESET_STATUS",
    "AerOSeg",
    "AerOSegConfig",
    "AerOSegOutput",
    "Preset",
    "ProbeModel",
    "Vocabulary",
    "WeightsError",
    "ZeroShotCLIP",
    "backprojection_loss",
    "bce_loss",
    "build",
    "export_checkpoint",
    "get_preset",
    "list_presets",
    "load_checkpoint",
    "load_clip_weights",
    "load_sam_weights",
    "preset_config",
    "preset_status",
    "required_weights",
    "save_checkpoint",
    "total_loss",
]
_MODULES = {
    "aeroseg": ("AerOSeg", "AerOSegOutput"),
    "checkpoint": ("FORMAT_VERSION", "export_checkpoint", "load_checkpoint", "save_checkpoint"),
    "config": ("AerOSegConfig",),
    "factory": ("build", "load_clip_weights", "load_sam_weights"),
    "hub": ("WeightsError", "required_weights"),
    "losses": ("backprojection_loss", "bce_loss", "total_loss"),
    "presets": ("PRESETS", "PRESET_STATUS", "Preset", "get_preset", "list_presets", "preset_config", "preset_status"),
    "probe": ("ProbeModel",),
    "vocabulary": ("Vocabulary",),
    "zeroshot": ("ZeroShotCLIP",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562) and cache the value here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
