"""Lean checkpoints: only the tensors (or rows of tensors) that differ from the official pretrained files.

A trained paper-preset model is ~1.8 GB, almost all of it the frozen SAM ViT-L and frozen CLIP weights that anyone
can download. A lean checkpoint stores the new layers, the fine-tuned q/v rows of CLIP's packed ``in_proj_weight``
and anything else that is not bit-identical to the official file, plus a reference (registry name and SHA-256) to
each official file; loading reads the referenced files and rebuilds the model bit-exactly. The reference is the
SHA-256 of the file used (a copy accepted with ``--accept-checksum`` is referenced by its own hash); another file of
the same weights (OpenAI's TorchScript or open_clip's fp32 copy) rebuilds the same model, which the checkpoint's
digest of the whole rebuilt state confirms.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from . import hub
from .config import AerOSegConfig
from .factory import FILE_STATE, PREFIX, Pretrained, read_cached, read_pretrained


def references(pretrained: list[Pretrained]) -> list[dict[str, str]]:
    """[{"role", "name", "sha256"}] for the registry files among ``pretrained`` (user files cannot be referenced):
    the SHA-256 of the file actually used, whether the published one or a copy the user accepted."""
    return [
        {"role": p.role, "name": p.registry_name, "sha256": p.sha256 or hub.spec_for(p.registry_name).sha256}
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


def read_references(refs: list[dict[str, Any]]) -> tuple[list[Pretrained], list[str]]:
    """The official files a lean checkpoint references, verified (all problems in one ``WeightsError``) -> (their
    tensors, one line per file whose SHA-256 differs from the referenced one).

    A different file is not refused here: the same weights are published in several files (OpenAI's TorchScript,
    open_clip's fp32 copies), so the caller rebuilds the model and keeps it only when its digest equals the one the
    checkpoint recorded; the lines then say why it was refused.
    """
    for ref in refs:
        hub.spec_for(ref["name"])  # an unknown name: one clear error
    cached = hub.resolve_all([ref["name"] for ref in refs])
    changed = [
        f"made against {ref['name']} with SHA-256 {ref['sha256'][:16]}..., but the cache holds "
        f"{cached[ref['name']].sha256[:16]}... ({cached[ref['name']].trust})"
        for ref in refs
        if cached[ref["name"]].sha256 != ref["sha256"]
    ]
    pretrained = [
        Pretrained(ref["role"], ref["name"], read_cached(cached[ref["name"]]), cached[ref["name"]].sha256)
        for ref in refs
    ]
    return pretrained, changed


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
