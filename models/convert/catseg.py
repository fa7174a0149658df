"""CAT-Seg / OVRS detectron2 checkpoints -> AerOSeg checkpoints of ``catseg-vitb16`` / ``catseg-vitl14`` (OVRS:
the same with rotations and/or the attention-aware decoder fusion).

CLIP goes through the same loader as the official CLIP files, so its position embedding is resized the way the
config says (CAT-Seg resizes ViT-B/16's 14 x 14 grid to 24 x 24 at run time, bicubic, no antialiasing).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import FORMAT, save_checkpoint
from ..clip_backbone import build_open_clip
from ..factory import construct, load_clip_weights
from ..hub import WeightsError, load_tensors, sha256_file
from ..presets import preset_config
from ..spatial_refinement import window_mask
from .catseg_layout import CLIP, Mapped, Network, detect, map_state

TRAINING_STATE = "training state (optimizer, LR schedule, iteration), not part of the network"
TRAINING_KEYS = ("trainer", "iteration", "optimizer", "scheduler")  # what detectron2's checkpointer adds
TRAINED_ON = {"catseg": "COCO-Stuff (171 classes, 118k images), CAT-Seg's released weights"}


def read_source(src: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The ``CATSeg`` state dict of a detectron2 checkpoint (or of a bare state dict) and the top-level entries
    ignored, with why. Read with ``weights_only=True``; anything else is refused in one line."""
    if not src.is_file():
        raise WeightsError(f"{src}: no such file")
    obj = load_tensors(src, f"cannot read {src} as a CAT-Seg/OVRS checkpoint")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        raise WeightsError(f"{src} is already an AerOSeg checkpoint; nothing to convert")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        extra = {k: TRAINING_STATE if k in TRAINING_KEYS else "metadata, not part of the network" for k in obj}
        state = obj["model"]
        del extra["model"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, extra = obj, {}
    else:
        raise WeightsError(f"{src} holds no detectron2 'model' state dict: not a CAT-Seg/OVRS checkpoint")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{src}: its 'model' entry holds non-tensor values")
    return state, extra


def _check_family(net: Network, family: str, src: Path) -> None:
    if family == "catseg" and (net.rotations or net.fusion != "concat"):
        parts = [
            p for p, on in (("4 rotations", net.rotations), ("attention-aware fusion", net.fusion != "concat")) if on
        ]
        raise WeightsError(
            f"{src} is an OVRS checkpoint ({' and '.join(parts)}): convert it with `aeroseg weights convert ovrs`"
        )


def _mask_reason(mapped: Mapped, window: int, shift: int) -> dict[str, str]:
    """The shifted-window masks of the file, compared with the one this model builds."""
    ours = window_mask(24, 24, window, shift, torch.device("cpu"))
    out = {}
    for key, mask in mapped.masks.items():
        same = ours is not None and tuple(ours.shape) == tuple(mask.shape) and torch.equal(ours, mask.to(ours.dtype))
        out[key] = "constant (the shifted-window attention mask); this model builds it from the window size " + (
            "(the same values)" if same else "(its values DIFFER from the file's)"
        )
    return out


def build_model(state: dict[str, torch.Tensor], family: str, src: Path) -> tuple[torch.nn.Module, Network, Mapped]:
    """The AerOSeg model holding every tensor of ``state``; one-line ``WeightsError`` when the layout differs."""
    net = detect(state)
    _check_family(net, family, src)
    cfg = preset_config(net.preset, **net.overrides)
    mapped = map_state(state)
    with torch.device("meta"):  # CLIP's tensor names, without allocating it
        clip_names = set(build_open_clip(cfg.clip, cfg.clip_resolution or cfg.crop_size).state_dict())
    mapped.unknown += [CLIP + k for k in mapped.clip if k not in clip_names]
    if mapped.unknown:
        raise WeightsError(
            f"{src}: {len(mapped.unknown)} tensor(s) fit no part of CAT-Seg's network (first: {mapped.unknown[0]}); "
            "not a checkpoint of the released layout"
        )
    model = construct(cfg)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("clip.model.")}
    missing = sorted(set(own) - set(mapped.model))
    if missing:
        raise WeightsError(f"{src} lacks {len(missing)} tensor(s) of the network (first: AerOSeg's {missing[0]})")
    for key, value in mapped.model.items():
        if key not in own or tuple(own[key].shape) != tuple(value.shape):
            raise WeightsError(f"{src}: unexpected shape {tuple(value.shape)} for {key}")
    load_clip_weights(model.clip.model, {k: v.float() for k, v in mapped.clip.items()}, cfg.pos_embed_interp)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.model.items()}, strict=False)
    mapped.ignored.update(_mask_reason(mapped, cfg.window_size, cfg.window_size // 2))
    return model.eval(), net, mapped


def _write(out: Path, model: torch.nn.Module, meta: dict, self_contained: bool) -> tuple[bool, str | None]:
    """Save atomically; lean unless asked otherwise or the official CLIP file is not in the cache ->
    (self-contained?, why it is self-contained when not asked)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    tmp, why = Path(tmp_name), None
    try:
        try:
            save_checkpoint(tmp, model, [], meta, self_contained=self_contained)
        except WeightsError as exc:  # the official CLIP file is not in the cache: store every tensor
            why = str(exc)
            save_checkpoint(tmp, model, [], meta, self_contained=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return self_contained or why is not None, why


def convert(src: Path, out: Path, family: str, self_contained: bool = False) -> dict[str, Any]:
    """Convert ``src`` (CAT-Seg or OVRS, ``family``) into the AerOSeg checkpoint ``out``; -> the report."""
    src, out = Path(src), Path(out)
    if out.exists() and out.resolve() == src.resolve():
        raise WeightsError(f"{out} is the source file; write the converted checkpoint elsewhere")
    state, top_ignored = read_source(src)
    model, net, mapped = build_model(state, family, src)
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()})
    meta = {
        "converted_from": src.name,
        "source_sha256": sha256_file(src),
        "converter": family,
        "variant": net.name,
        "trained_on": TRAINED_ON.get(family, "unknown (the dataset OVRS was trained on is not recorded in its file)"),
    }
    contained, why = _write(out, model, meta, self_contained)
    return {
        "source": str(src),
        "output": str(out),
        "variant": net.name,
        "preset": net.preset,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in net.overrides.items()},
        "tensors": len(state),
        "tensors_used": len(mapped.used),
        "tensors_ignored": mapped.ignored,
        "top_level_ignored": top_ignored,
        "source_dtypes": dtypes,
        "self_contained": contained,
        "self_contained_because": why,
        "source_sha256": meta["source_sha256"],
    }


def convert_catseg(src: Path, out: Path, *, self_contained: bool = False) -> dict[str, Any]:
    """CAT-Seg's released ``model_base.pth`` (ViT-B/16) or ``model_large.pth`` (ViT-L/14@336px) -> ``out``."""
    return convert(src, out, "catseg", self_contained)


def convert_ovrs(src: Path, out: Path, *, self_contained: bool = False) -> dict[str, Any]:
    """A checkpoint trained with OVRS's code (rotations and/or attention-aware decoder fusion) -> ``out``."""
    return convert(src, out, "ovrs", self_contained)
