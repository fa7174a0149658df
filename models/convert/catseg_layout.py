"""CAT-Seg's (and OVRS's) checkpoint layout: which tensor of a ``CATSeg`` state dict is which AerOSeg tensor, and
the network a file describes (CLIP variant, rotations, decoder fusion, widths), read from its shapes.

The layout, as detectron2 saves the whole ``CATSeg`` module (``{"model": state_dict, "trainer": ..., "iteration"}``):
``sem_seg_head.predictor.clip_model.*`` CLIP in OpenAI's names with q/k/v split (``attn.q_proj_weight`` ...),
``sem_seg_head.predictor.transformer.*`` the ``Aggregator``, ``upsample1/2`` the guidance transposed convolutions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..hub import WeightsError

CLIP = "sem_seg_head.predictor.clip_model."
AGG = "sem_seg_head.predictor.transformer."
_SWIN = {"mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}


def _swin(m: re.Match) -> str:
    part = _SWIN.get(m[3], m[3])
    return f"spatial_blocks.{m[1]}.blocks.{int(m[2]) - 1}.{part}.{m[4]}"


Rule = tuple[str, str | Callable[[re.Match], str]]
AGGREGATOR_RULES: tuple[Rule, ...] = (
    (r"conv1\.(weight|bias)", "correlation.conv.{0}"),
    (r"guidance_projection\.0\.(weight|bias)", "spatial_guidance.0.{0}"),
    (r"text_guidance_projection\.0\.(weight|bias)", "text_guidance.0.{0}"),
    (r"decoder_guidance_projection\.([01])\.0\.(weight|bias)", lambda m: f"decoder_guidance{int(m[1]) + 1}.0.{m[2]}"),
    (r"decoder([12])\.up\.(weight|bias)", "decoder.up{0}.up.{1}"),
    (r"decoder([12])\.conv\.double_conv\.([0134])\.(weight|bias)", "decoder.up{0}.conv.{1}.{2}"),
    (r"decoder([12])\.cconv\.(weight|bias)", "decoder.up{0}.fusion.channel.{1}"),  # OVRS
    (r"decoder([12])\.sconv\.(weight|bias)", "decoder.up{0}.fusion.spatial.{1}"),  # OVRS
    (r"head\.(weight|bias)", "decoder.head.{0}"),
    (r"layers\.(\d+)\.swin_block\.block_([12])\.(norm[12]|attn\.(?:q|k|v|proj)|mlp\.fc[12])\.(weight|bias)", _swin),
    (r"layers\.(\d+)\.swin_block\.guidance_norm\.(weight|bias)", "spatial_blocks.{0}.norm_g.{1}"),
    (r"layers\.(\d+)\.attention\.attention\.([qkv])\.(weight|bias)", "class_blocks.{0}.attn.{1}.{2}"),
    (r"layers\.(\d+)\.attention\.MLP\.([02])\.(weight|bias)", "class_blocks.{0}.mlp.{1}.{2}"),
    (r"layers\.(\d+)\.attention\.norm([12])\.(weight|bias)", "class_blocks.{0}.norm{1}.{2}"),
    (r"layers\.(\d+)\.attention\.padding_tokens", "class_blocks.{0}.pad_token"),
    (r"layers\.(\d+)\.attention\.padding_guidance", "class_blocks.{0}.pad_guidance"),
)
TOP_RULES: tuple[Rule, ...] = ((r"upsample([12])\.(weight|bias)", "guidance_upsample.up{0}.{1}"),)
SWIN_MASK = re.compile(r"layers\.(\d+)\.swin_block\.block_2\.attn_mask")
QKV = re.compile(r"(.+\.attn)\.([qkv])_proj_weight")


@dataclass
class Mapped:
    """A CAT-Seg state dict sorted out: AerOSeg tensors (outside CLIP), CLIP in open_clip's names, the source keys
    used, the ignored ones with the reason, and what fits nothing."""

    model: dict[str, torch.Tensor] = field(default_factory=dict)
    clip: dict[str, torch.Tensor] = field(default_factory=dict)
    used: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def _apply(rules: tuple[Rule, ...], key: str) -> str | None:
    for pattern, target in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return target(m) if callable(target) else target.format(*m.groups())
    return None


def map_state(state: dict[str, torch.Tensor]) -> Mapped:
    """Sort every tensor of a ``CATSeg`` state dict into ``Mapped`` (q/k/v weights joined as open_clip packs them)."""
    out, qkv = Mapped(), {}
    for key, value in state.items():
        if key.startswith(CLIP):
            rest = key[len(CLIP) :]
            m = QKV.fullmatch(rest)
            if m:
                qkv.setdefault(m[1], {})[m[2]] = value
            else:
                out.clip[rest] = value
            out.used.append(key)
            continue
        target = _apply(AGGREGATOR_RULES, key[len(AGG) :]) if key.startswith(AGG) else _apply(TOP_RULES, key)
        if target is not None:
            out.model[target] = value
            out.used.append(key)
        elif key.startswith(AGG) and SWIN_MASK.fullmatch(key[len(AGG) :]):
            out.masks[key] = value
        else:
            out.unknown.append(key)
    for prefix, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise WeightsError(f"CLIP {prefix}: the file has only the {'/'.join(sorted(parts))} projection weights")
        out.clip[f"{prefix}.in_proj_weight"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def _shape(state: dict[str, torch.Tensor], key: str, what: str) -> torch.Size:
    if key not in state:
        raise WeightsError(f"no {key} ({what}): not a CAT-Seg/OVRS checkpoint of the released layout")
    return state[key].shape


def _clip_preset(state: dict[str, torch.Tensor]) -> str:
    width, _, _, patch = _shape(state, CLIP + "visual.conv1.weight", "CAT-Seg's CLIP")
    tokens = _shape(state, CLIP + "visual.positional_embedding", "CAT-Seg's CLIP")[0]
    if (width, patch) == (768, 16):
        return "catseg-vitb16"
    if (width, patch, tokens) == (1024, 14, 577):
        return "catseg-vitl14"
    raise WeightsError(
        f"CLIP ViT of width {width}, patch {patch}, {tokens} position tokens: only CAT-Seg's ViT-B/16 and "
        "ViT-L/14@336px are known"
    )


@dataclass
class Network:
    """The network a file describes: the preset it derives from and the fields its shapes set."""

    preset: str
    overrides: dict

    @property
    def rotations(self) -> bool:
        return self.overrides["rotations"]

    @property
    def fusion(self) -> str:
        return self.overrides["decoder_fusion"]

    @property
    def name(self) -> str:
        family = "ovrs" if self.rotations or self.fusion == "attention" else "catseg"
        return family + self.preset.removeprefix("catseg")


def detect(state: dict[str, torch.Tensor]) -> Network:
    """The architecture of a ``CATSeg`` state dict, from its shapes (heads and class padding: the configs' 4, 256)."""
    preset = _clip_preset(state)
    conv1 = _shape(state, AGG + "conv1.weight", "the Aggregator's correlation embedding")
    if conv1[1] not in (1, 4):
        raise WeightsError(f"{AGG}conv1.weight takes {conv1[1]} cost-volume channels; CAT-Seg has 1, OVRS 4")
    cg = _shape(state, AGG + "guidance_projection.0.weight", "the spatial guidance projection")[0]
    text = _shape(state, AGG + "text_guidance_projection.0.weight", "the text guidance projection")[0]
    if text != cg:
        raise WeightsError(f"text guidance of width {text} and spatial guidance of width {cg}: both must match")
    layers = {int(m[1]) for k in state if (m := re.match(re.escape(AGG) + r"layers\.(\d+)\.", k))}
    masks = [v for k, v in state.items() if k.startswith(AGG) and SWIN_MASK.fullmatch(k[len(AGG) :])]
    dec = [_shape(state, AGG + f"decoder{i}.conv.double_conv.0.weight", "the decoder")[0] for i in (1, 2)]
    gd = [_shape(state, AGG + f"decoder_guidance_projection.{i}.0.weight", "decoder guidance")[0] for i in (0, 1)]
    up = [_shape(state, f"upsample{i}.weight", "CLIP guidance upsampling")[1] for i in (1, 2)]
    overrides = {
        "rotations": conv1[1] == 4,
        "decoder_fusion": "attention" if AGG + "decoder1.cconv.weight" in state else "concat",
        "hidden_dim": conv1[0],
        "guidance_dim": cg,
        "num_refinement_blocks": len(layers),
        "decoder_dims": tuple(dec),
        "decoder_guidance_dims": tuple(gd),
        "clip_guidance_upsample_dims": tuple(up),
    }
    if masks:
        overrides["window_size"] = math.isqrt(masks[0].shape[-1])
    return Network(preset, overrides)
