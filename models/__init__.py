"""AerOSeg network, pure PyTorch: ``models.build(preset, **overrides)``.

Knows nothing of files beyond weights and checkpoints, nor of CRSs; the geospatial pipeline lives in ``aeroseg_cli``.
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch
from torch import nn

from .aeroseg import AerOSeg, AerOSegOutput, ZeroShotCLIP
from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, AerOSegConfig, preset_config
from .hub import WeightsError, clip_weights_name, load_weights_file, sam_weights_name
from .losses import backprojection_loss, bce_loss, total_loss

__all__ = [
    "PRESETS",
    "AerOSeg",
    "AerOSegConfig",
    "AerOSegOutput",
    "WeightsError",
    "ZeroShotCLIP",
    "backprojection_loss",
    "bce_loss",
    "build",
    "load_checkpoint",
    "load_clip_weights",
    "load_sam_weights",
    "preset_config",
    "save_checkpoint",
    "total_loss",
]


def _check_shapes(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise WeightsError(f"{what} weights lack {len(missing)} tensors (first: {missing[0]}); wrong model variant?")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsError(
                f"{what} weights: {k} has shape {tuple(state[k].shape)}, the model needs {tuple(v.shape)}; "
                "wrong model variant?"
            )


def load_clip_weights(backbone_model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load an open_clip/OpenAI CLIP state dict, resizing the position embedding to the model's grid (bicubic)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = backbone_model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    open_clip.model.resize_pos_embed(state, backbone_model)
    _check_shapes(backbone_model, state, "CLIP")
    backbone_model.load_state_dict(state, strict=True)


def load_sam_weights(encoder: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load SAM image-encoder weights from a full SAM checkpoint (official layout) or an encoder-only one."""
    if any(k.startswith("image_encoder.") for k in state):
        state = {k.removeprefix("image_encoder."): v for k, v in state.items() if k.startswith("image_encoder.")}
    _check_shapes(encoder, state, "SAM")
    encoder.load_state_dict({k: state[k] for k in encoder.state_dict()}, strict=True)


def build(preset: str | AerOSegConfig, **overrides: Any) -> nn.Module:
    """Build a model from a preset name (or a config), loading the pretrained backbones its config names.

    ``build("tiny")`` is random-initialised; ``build("aeroseg-vitb16-samvitl")`` needs the official CLIP and SAM
    weights in the cache (``aeroseg weights download``); ``clip_weights=None, sam_weights=None`` skips them.
    """
    if isinstance(preset, AerOSegConfig):
        cfg = preset
        for key, value in overrides.items():
            setattr(cfg, key, value)
        cfg.validate()
    else:
        cfg = preset_config(preset, **overrides)
    # read (and verify) the weight files first: a missing file fails fast, before a large model is allocated
    clip_state = load_weights_file(cfg.clip_weights, clip_weights_name(cfg.clip.name)) if cfg.clip_weights else None
    sam_state = None
    if cfg.arch == "aeroseg" and cfg.guidance == "sam" and cfg.sam_weights:
        sam_state = load_weights_file(cfg.sam_weights, sam_weights_name(cfg.sam.name))
    model: nn.Module = ZeroShotCLIP(cfg) if cfg.arch == "zeroshot" else AerOSeg(cfg)
    if clip_state is not None:
        load_clip_weights(model.clip.model, clip_state)
    if sam_state is not None:
        load_sam_weights(model.sam.encoder, sam_state)
    return model
