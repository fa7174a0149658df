"""The AerOSeg checkpoint: one file with format version, config, class names, state dict and a content digest.

Written with ``torch.save`` of plain containers and tensors only, read with ``torch.load(weights_only=True)``, so
loading never unpickles arbitrary objects; the digest refuses files whose tensors were altered or truncated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import AerOSegConfig
from .hub import WeightsError, load_tensors

FORMAT = "aeroseg-checkpoint"
FORMAT_VERSION = 1


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    class_names: list[str],
    meta: dict | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """One file (``path`` or a binary file object); ``dtype=torch.float16`` halves the size (floating tensors only;
    loaded back as fp32). Written in place: callers that need it to appear whole wrap it in an atomic write."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": model.cfg.to_dict(),
            "class_names": list(class_names),
            "state_dict": state,
            "digest": state_digest(state),
            "meta": dict(meta or {}),
        },
        path,
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The verified checkpoint dictionary; ``WeightsError`` for anything that is not an intact AerOSeg checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} not found")
    ckpt = load_tensors(path, f"{path} is not a safe AerOSeg checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise WeightsError(f"{path} is not an AerOSeg checkpoint (no '{FORMAT}' header)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"{path} has format version {ckpt['format_version']}; upgrade aeroseg to read it")
    if state_digest(ckpt["state_dict"]) != ckpt.get("digest"):
        raise WeightsError(f"{path} is corrupt or was modified (content digest mismatch); refused")
    return ckpt


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (no downloads: the file holds every weight) -> (model in eval, checkpoint)."""
    from . import build

    ckpt = read_checkpoint(path)
    cfg = AerOSegConfig.from_dict(ckpt["config"])
    cfg.clip_weights = None
    cfg.sam_weights = None
    model = build(cfg)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise WeightsError(
            f"{path} does not fit its own config (missing {len(missing)}, unexpected {len(unexpected)} tensors)"
        )
    model.eval()
    return model, ckpt
