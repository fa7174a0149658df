"""Lean checkpoints: only the tensors (or rows of tensors) that differ from the official pretrained files.

A trained paper-preset model is ~1.8 GB, almost all of it the frozen SAM ViT-L and frozen CLIP weights that anyone
can download. A lean checkpoint stores the new layers, the fine-tuned q/v rows of CLIP's packed ``in_proj_weight``
and anything else that is not bit-identical to the official file, plus a reference (registry name and SHA-256) to
each official file; loading reads the referenced files and rebuilds the model bit-exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from . import hub
from .config import AerOSegConfig
from .factory import FILE_STATE, PREFIX, Pretrained, read_pretrained
from .hub import WeightsError


def references(pretrained: list[Pretrained]) -> list[dict[str, str]]:
    """[{"role", "name", "sha256"}] for the registry files among ``pretrained`` (user files cannot be referenced);
    "sha256" holds the file's git blob id where the registry has no SHA-256 for it."""
    return [
        {"role": p.role, "name": p.registry_name, "sha256": hub.spec_for(p.registry_name).checksum[1]}
        for p in pretrained
        if p.registry_name is not None
    ]


def official_base(pretrained: list[Pretrained]) -> dict[str, torch.Tensor]:
    """The referenced files' tensors under the model's state-dict keys (``clip.model.*``, ``sam.encoder.*``)."""
    base: dict[str, torch.Tensor] = {}
    for p in pretrained:
        if p.registry_name is None:
            continue
        state = FILE_STATE[p.role](p.state)
        base.update({PREFIX[p.role] + k: v for k, v in state.items()})
    return base


def split_state(
    state: dict[str, torch.Tensor], base: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(stored tensors, row indices) of ``state`` that differ from ``base``.

    A tensor equal to its official counterpart (after the upcast loading does) is left out; one where only some rows
    (dim 0) differ, e.g. the q and v rows of a packed ``in_proj_weight`` whose k rows stay frozen, is stored as those
    rows (N, ...) with their indices (N,); anything else is stored whole.
    """
    stored, rows = {}, {}
    for key, t in state.items():
        ref = base.get(key)
        if ref is None or tuple(ref.shape) != tuple(t.shape):
            stored[key] = t
            continue
        ref = ref.to(t.dtype)
        if torch.equal(t, ref):
            continue
        differ = (t != ref).reshape(t.shape[0], -1).any(dim=1) if t.ndim else torch.ones(1, dtype=torch.bool)
        if t.ndim and int(differ.sum()) < t.shape[0]:
            rows[key] = differ.nonzero().squeeze(1)
            stored[key] = t[rows[key]]
        else:
            stored[key] = t
    return stored, rows


def patched(base: torch.Tensor, stored: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """``stored`` as the tensor it stands for: the whole tensor, or ``base`` with ``rows`` replaced (base's dtype)."""
    if rows is None:
        return stored.to(base.dtype)
    out = base.clone()
    out[rows] = stored.to(base.dtype)
    return out


def read_references(refs: list[dict[str, Any]], where: str) -> list[Pretrained]:
    """The official files a lean checkpoint references, verified: all problems in one ``WeightsError``."""
    names = []
    for ref in refs:
        spec = hub.spec_for(ref["name"])
        if spec.checksum[1] != ref["sha256"]:
            raise WeightsError(
                f"{where} was made against {ref['name']} with {spec.checksum[0]} {ref['sha256'][:16]}..., but this "
                f"aeroseg's {ref['name']} is {spec.checksum[1][:16]}...: a different file; refused (export it "
                "self-contained with the aeroseg that wrote it)"
            )
        names.append(ref["name"])
    paths = hub.resolve_all(names)
    return [
        Pretrained(ref["role"], ref["name"], hub.read_state_dict(paths[ref["name"]], trusted_torchscript=True))
        for ref in refs
    ]


def registry_pretrained(model: torch.nn.Module) -> list[Pretrained]:
    """The registry files ``model``'s config names, read and verified (for writing a lean checkpoint)."""
    return [p for p in read_pretrained(_registry_only(model.cfg)) if p.registry_name is not None]


def _registry_only(cfg: AerOSegConfig) -> AerOSegConfig:
    """A copy of ``cfg`` naming only its registry weights (a user's own file is not referenced, so not read)."""
    return dataclasses.replace(
        cfg,
        clip_weights=cfg.clip_weights if cfg.clip_weights in hub.REGISTRY_NAMES else None,
        sam_weights=cfg.sam_weights if cfg.sam_weights in hub.REGISTRY_NAMES else None,
        segearth=dataclasses.replace(
            cfg.segearth,
            upsampler_weights=cfg.segearth.upsampler_weights
            if cfg.segearth.upsampler_weights in hub.REGISTRY_NAMES
            else None,
        ),
    )
