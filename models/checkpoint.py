"""The AerOSeg checkpoint: one file with format version, config, vocabulary, tensors and content digests.

Written with ``torch.save`` of plain containers and tensors only, read with ``torch.load(weights_only=True)``, so
loading never unpickles arbitrary objects; digests refuse files whose tensors were altered or truncated.

Since format 2 files are lean by default: tensors identical to the official pretrained files are replaced by a
reference to each file (``models.lean``); ``self_contained=True`` stores every tensor. Format 1 files (every tensor,
config without the fidelity fields) still load. Each format adds fidelity fields; a file of an older format lacks
them and its config is read with their old values (``config.LEGACY``: format 1 gets ``LEGACY_V1`` and ``LEGACY_V2``,
format 2 ``LEGACY_V2``), so every old checkpoint gives the same outputs as before, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from . import lean
from .config import AerOSegConfig
from .errors import WeightsError
from .factory import construct, load_pretrained
from .vocabulary import Vocabulary
from .weightfiles import load_tensors

FORMAT = "aeroseg-checkpoint"
FORMAT_VERSION = 3  # 3: issue 21's fidelity fields (pos_embed_interp, template_period)


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _content_digest(ckpt: dict[str, Any]) -> str:
    """Digest of what a file stores: tensors, row indices and (format 2) the references."""
    if ckpt.get("format_version", 1) < 2:
        return state_digest(ckpt["state_dict"])
    rows = {f"{k}#rows": v for k, v in ckpt["rows"].items()}
    head = state_digest({**ckpt["state_dict"], **rows})
    return hashlib.sha256((head + json.dumps(ckpt["references"], sort_keys=True)).encode()).hexdigest()


def save_checkpoint(
    path: str | Path | IO[bytes],
    model: nn.Module,
    class_names: list[str],
    meta: dict | None = None,
    dtype: torch.dtype | None = None,
    self_contained: bool = False,
    lossless: bool = False,
) -> None:
    """Write ``model`` to ``path`` (a path or a binary file object), in place: callers that need the file to appear
    whole wrap this in an atomic write.

    Lean unless ``self_contained``: the official files the config names (registry weights) must be in the cache to
    compare against. ``dtype=torch.float16`` halves the stored floating tensors (loaded back in the model's dtype);
    with ``lossless`` only those it represents exactly (so a rewrite keeps the weights bit for bit).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    pretrained = [] if self_contained else lean.registry_pretrained(model)
    stored, rows = lean.split_state(state, lean.official_base(pretrained))
    if dtype is not None:
        stored = {k: _cast(v, dtype, lossless) for k, v in stored.items()}
    expected = {k: lean.patched(v, stored[k], rows.get(k)) if k in stored else v for k, v in state.items()}
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "class_names": list(class_names),
        "vocabulary": Vocabulary.of(model.cfg, class_names).to_dict(),
        "state_dict": stored,
        "rows": rows,
        "references": lean.references(pretrained),
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "full_digest": state_digest(expected),
        "meta": dict(meta or {}),
    }
    ckpt["digest"] = _content_digest(ckpt)
    torch.save(ckpt, path)


def _cast(t: torch.Tensor, dtype: torch.dtype, lossless: bool) -> torch.Tensor:
    """A floating tensor in ``dtype`` (unless ``lossless`` and that would change a value); others unchanged."""
    if not t.is_floating_point():
        return t
    cast = t.to(dtype)
    return t if lossless and not torch.equal(cast.to(t.dtype), t) else cast


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
    if _content_digest(ckpt) != ckpt.get("digest"):
        raise WeightsError(f"{path} is corrupt or was modified (content digest mismatch); refused")
    version = ckpt.get("format_version", 1)
    ckpt["config"] = AerOSegConfig.from_dict(ckpt["config"], format_version=version).to_dict()
    if version < 2:  # format 1: every tensor stored, no vocabulary recorded
        ckpt.update(rows={}, references=[], dtype=_stored_dtype(ckpt["state_dict"]), full_digest=None)
        vocab = Vocabulary.of(AerOSegConfig.from_dict(ckpt["config"]), ckpt["class_names"])
        ckpt["vocabulary"] = vocab.to_dict()
    ckpt["vocabulary"] = Vocabulary.from_dict(ckpt["vocabulary"])
    return ckpt


def _stored_dtype(state: dict[str, torch.Tensor]) -> str | None:
    return "float16" if any(v.dtype == torch.float16 for v in state.values()) else None


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint -> (model in eval mode, checkpoint dictionary).

    The dictionary holds "config" (with every field, v1 files' legacy values filled in), "class_names",
    "vocabulary" (a ``Vocabulary``: open or closed, and the training classes), "meta" and "references" (the official
    files a lean checkpoint was rebuilt from: all must be in the cache and verified, else one ``WeightsError`` names
    the command that fetches them). A referenced file whose SHA-256 differs (another published file of the same
    weights) is used when the rebuilt model's digest equals the recorded one, and refused otherwise.
    """
    ckpt = read_checkpoint(path)
    cfg = AerOSegConfig.from_dict(ckpt["config"])
    pretrained, changed = lean.read_references(ckpt["references"]) if ckpt["references"] else ([], [])
    model = construct(cfg)
    try:
        _rebuild(model, ckpt, pretrained, str(path))
    except WeightsError as exc:
        if not changed:
            raise
        raise WeightsError(
            f"{path} was {'; '.join(changed)}: a different file, and the model rebuilt from it differs ({exc}); "
            "refused: import the file it was made with, or export it self-contained with the aeroseg that wrote it"
        ) from None
    model.eval()
    return model, ckpt


def _rebuild(model: nn.Module, ckpt: dict[str, Any], pretrained: list, where: str) -> None:
    """Load the referenced files' tensors and the stored ones into ``model``; its digest must equal the recorded."""
    load_pretrained(model, pretrained)
    own = model.state_dict()
    unexpected = sorted(set(ckpt["state_dict"]) - set(own))
    missing = sorted(set(own) - set(ckpt["state_dict"]) - set(lean.official_base(pretrained)))
    if missing or unexpected:
        raise WeightsError(
            f"{where} does not fit its own config (missing {len(missing)}, unexpected {len(unexpected)} tensors)"
        )
    full = {
        k: lean.patched(v, ckpt["state_dict"][k], ckpt["rows"].get(k)) if k in ckpt["state_dict"] else v
        for k, v in own.items()
    }
    model.load_state_dict(full, strict=True)
    if ckpt["full_digest"] is not None and state_digest(model.state_dict()) != ckpt["full_digest"]:
        raise WeightsError(f"{where}: the rebuilt model differs from the one saved (official files changed?); refused")


def export_checkpoint(source: str | Path, out: str | Path | IO[bytes], self_contained: bool) -> dict[str, Any]:
    """Rewrite checkpoint ``source`` to ``out``: lean, or with every tensor (``self_contained``), keeping its class
    names, meta and, where lossless, its storage dtype (the weights stay bit for bit). Returns the source's dict."""
    model, ckpt = load_checkpoint(source)
    dtype = getattr(torch, ckpt["dtype"]) if ckpt["dtype"] else None
    save_checkpoint(
        out, model, ckpt["class_names"], ckpt["meta"], dtype=dtype, self_contained=self_contained, lossless=True
    )
    return ckpt
