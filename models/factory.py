"""``build``: a model from a preset or config, with the pretrained backbones its config names.

Every weight file a config needs is checked before anything is read or allocated, and all problems are reported in
one ``WeightsError`` (with the one command that fetches every missing registry file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import hub
from .config import CLIP_VARIANTS, SAM_VARIANTS, AerOSegConfig
from .errors import WeightsError
from .presets import get_preset
from .weightfiles import OPENAI_EXTRAS, read_state_dict

# where each pretrained file's tensors live in the model's state dict
PREFIX = {"clip": "clip.model.", "sam": "sam.encoder.", "upsampler": "upsampler."}


@dataclass
class Pretrained:
    """One pretrained weights file a config names: role ("clip"/"sam"), registry name or None, its tensors, and
    the registry file's SHA-256 (what a lean checkpoint made from it references)."""

    role: str
    registry_name: str | None  # None for a user's own file path
    state: dict[str, torch.Tensor]
    sha256: str | None = None


def _check_shapes(module: nn.Module, state: dict[str, torch.Tensor], what: str, skip: tuple[str, ...] = ()) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise WeightsError(f"{what} weights lack {len(missing)} tensors (first: {missing[0]}); wrong model variant?")
    for k, v in own.items():
        if k not in skip and tuple(state[k].shape) != tuple(v.shape):
            raise WeightsError(
                f"{what} weights: {k} has shape {tuple(state[k].shape)}, the model needs {tuple(v.shape)}; "
                "wrong model variant?"
            )


def clip_file_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP file's tensors under open_clip's names, from any layout it is published in: OpenAI's (TorchScript or
    state dict, whose integer buffers are dropped) and open_clip's (the same names); DDP ``module.`` prefixes
    dropped."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if k not in OPENAI_EXTRAS}


def sam_file_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A SAM file's image-encoder tensors: from a full SAM checkpoint (official layout) or an encoder-only one."""
    if any(k.startswith("image_encoder.") for k in state):
        return {k.removeprefix("image_encoder."): v for k, v in state.items() if k.startswith("image_encoder.")}
    return state


def upsampler_file_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SimFeatUp weights as SegEarth-OV publishes them (the ``state_dict`` of a Lightning checkpoint, every tensor
    under ``upsampler.``), prefix dropped; a bare upsampler state dict passes as it is."""
    if any(k.startswith("upsampler.") for k in state):
        return {k.removeprefix("upsampler."): v for k, v in state.items() if k.startswith("upsampler.")}
    return state


FILE_STATE = {"clip": clip_file_state, "sam": sam_file_state, "upsampler": upsampler_file_state}


def load_clip_weights(backbone_model: nn.Module, state: dict[str, torch.Tensor], interp: str = "bicubic") -> None:
    """Load an open_clip/OpenAI CLIP state dict, resizing the position embedding to the model's grid (``interp``:
    the config's ``pos_embed_interp``)."""
    from .clip_backbone import resize_pos_embed

    own = backbone_model.state_dict()
    state = {k: v for k, v in clip_file_state(state).items() if k in own}
    pos = state.get("visual.positional_embedding")
    if pos is not None and pos.ndim == 2 and round((pos.shape[0] - 1) ** 0.5) ** 2 == pos.shape[0] - 1:
        state["visual.positional_embedding"] = resize_pos_embed(pos, tuple(backbone_model.visual.grid_size), interp)
    _check_shapes(backbone_model, state, "CLIP")
    backbone_model.load_state_dict(state, strict=True)


def load_sam_weights(encoder: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load SAM image-encoder weights from a full SAM checkpoint (official layout) or an encoder-only one."""
    state = sam_file_state(state)
    _check_shapes(encoder, state, "SAM")
    encoder.load_state_dict({k: state[k] for k in encoder.state_dict()}, strict=True)


def registry_backbone(name: str) -> tuple[str, Any] | None:
    """("clip", CLIPConfig) or ("sam", SAMConfig) of a backbone registry name (the 336 px CLIP has ViT-L/14's
    tensors but for its position embedding); None for other entries."""
    clips = {hub.clip_weights_name(n): c for n, c in CLIP_VARIANTS.items()}
    clips["clip-vit-l-14-336"] = CLIP_VARIANTS["ViT-L-14"]
    if name in clips:
        return "clip", clips[name]
    sams = {hub.sam_weights_name(n): c for n, c in SAM_VARIANTS.items()}
    return ("sam", sams[name]) if name in sams else None


def check_layout(name: str, state: dict[str, torch.Tensor]) -> None:
    """Refuse a file imported as backbone ``name`` whose tensors do not fit that backbone (names, shapes; the
    position embedding's grid may differ: it is resized on loading), naming the layouts that are not accepted."""
    backbone = registry_backbone(name)
    if backbone is None:
        return
    role, variant = backbone
    if any(k.startswith(("vision_model.", "text_model.")) for k in state):
        raise WeightsError(
            f"this is a Hugging Face transformers CLIP, not a layout {name} accepts: use OpenAI's file or open_clip's "
            "open_clip_model.safetensors"
        )
    if role == "clip" and "patch_embed.proj.weight" in state:
        raise WeightsError(
            "this is timm's image tower alone (model.safetensors), without the text tower: use "
            "open_clip_model.safetensors from the same Hugging Face repository"
        )
    from .clip_backbone import build_open_clip
    from .sam_guidance import build_sam_encoder

    with torch.device("meta"):
        module = build_open_clip(variant, 224) if role == "clip" else build_sam_encoder(variant)
    mapped = clip_file_state(state) if role == "clip" else sam_file_state(state)
    _check_shapes(module, mapped, role.upper(), skip=("visual.positional_embedding",))


def read_cached(cached: hub.Cached) -> dict[str, torch.Tensor]:
    """The tensors of a verified registry file: its safetensors copy for a TorchScript archive (the archive itself
    only where the cache could not be written). A file whose hash matches but that cannot be read (a file an older
    aeroseg recorded without reading it) names the command that replaces it."""
    try:
        return read_state_dict(cached.path, torchscript=True)
    except WeightsError as exc:
        raise WeightsError(
            f"{cached.name}: the cached file cannot be read ({exc}); replace it with `aeroseg weights download "
            f"{cached.name} --force` (or `aeroseg weights import {cached.name} FILE`)"
        ) from None


def read_pretrained(cfg: AerOSegConfig) -> list[Pretrained]:
    """Check every weights file ``cfg`` names (one error for all problems), then read them: the verified registry
    files from the cache, a user's own file path as it is."""
    sources = hub.weight_sources(cfg)
    user_missing = [
        f"weights file {Path(v).expanduser()} not found"
        for v, _ in sources.values()
        if v not in hub.REGISTRY_NAMES and not Path(v).expanduser().is_file()
    ]
    cached = hub.resolve_all(hub.required_weights(cfg), user_missing)
    out = []
    for role, (value, name) in sources.items():
        if value in hub.REGISTRY_NAMES:
            out.append(Pretrained(role, name, read_cached(cached[name]), cached[name].sha256))
        else:
            out.append(Pretrained(role, None, read_state_dict(Path(value).expanduser())))
    return out


def load_pretrained(model: nn.Module, pretrained: list[Pretrained]) -> None:
    """Load each pretrained file into its backbone of ``model``."""
    for p in pretrained:
        if p.role == "clip":
            load_clip_weights(model.clip.model, p.state, model.cfg.pos_embed_interp)
        elif p.role == "upsampler":
            state = upsampler_file_state(p.state)
            _check_shapes(model.upsampler, state, "SimFeatUp")
            model.upsampler.load_state_dict({k: state[k] for k in model.upsampler.state_dict()}, strict=True)
        else:
            load_sam_weights(model.sam.encoder, p.state)


def construct(cfg: AerOSegConfig) -> nn.Module:
    """The network of ``cfg`` with random weights (nothing is read): AerOSeg, ZeroShotCLIP, SegEarthOV or
    ProbeModel."""
    cfg.validate()
    if cfg.arch == "probe":
        from .probe import ProbeModel

        return ProbeModel(cfg)
    if cfg.arch == "zeroshot":
        from .zeroshot import ZeroShotCLIP

        return ZeroShotCLIP(cfg)
    if cfg.arch == "segearth":
        from .segearth import SegEarthOV

        return SegEarthOV(cfg)
    from .aeroseg import AerOSeg

    return AerOSeg(cfg)


def build(preset: str | AerOSegConfig, **overrides: Any) -> nn.Module:
    """Build a model from a preset name (or a config), loading the pretrained backbones its config names.

    ``build("tiny")`` is random-initialised; ``build("aeroseg-vitb16-samvitl")`` needs the official CLIP and SAM
    weights in the cache (``aeroseg weights download``); ``clip_weights=None, sam_weights=None`` skips them. Every
    file is checked first: one ``WeightsError`` names all that are missing, before a large model is allocated.
    A config passed in is never changed: the model gets its own copy, with the overrides applied.
    """
    cfg = (
        preset.with_overrides(**overrides)
        if isinstance(preset, AerOSegConfig)
        else get_preset(preset).config(**overrides)
    )
    pretrained = read_pretrained(cfg)
    model = construct(cfg)
    load_pretrained(model, pretrained)
    return model
