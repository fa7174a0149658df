"""The named model presets, in one registry (as open_clip's model configs): ``get_preset(name).config()``.

Each preset is a function that returns a fresh ``AerOSegConfig`` (keyword arguments only), registered with its
status, which says what a model built from the name alone (not from a checkpoint) is good for:

- ``untrained``: the network's new layers are random until trained (``aeroseg-*``, ``baseline-vitb16``,
  ``catseg-*``; ``demo`` as a preset name is the random demo architecture, the trained one is
  ``sample_data/demo_model.pt``); a CLI refuses to segment or evaluate with it.
- ``training-free``: useful as built, open vocabulary (pretrained CLIP only, or published files).
- ``test``: random or synthetic, for tests and measurements only.

A new preset is one decorated function here. No torch import: listing presets stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import CLIP_VARIANTS, SAM_VARIANTS, AerOSegConfig, CLIPConfig, SAMConfig

STATUSES = ("untrained", "training-free", "test")


@dataclass(frozen=True)
class Preset:
    """One named config: ``make`` builds it afresh each call (a caller may change the config it gets)."""

    name: str
    status: str  # one of STATUSES
    description: str  # the first line of the function's docstring
    make: Callable[[], AerOSegConfig]

    def config(self, **overrides: Any) -> AerOSegConfig:
        """A fresh config of this preset with ``overrides`` applied (see ``AerOSegConfig.with_overrides``)."""
        return self.make().with_overrides(**overrides)


_REGISTRY: dict[str, Preset] = {}


def register(name: str, status: str) -> Callable[[Callable[[], AerOSegConfig]], Callable[[], AerOSegConfig]]:
    """Register the decorated function as preset ``name``."""
    if status not in STATUSES:
        raise ValueError(f"preset status must be one of {', '.join(STATUSES)}, got {status!r}")

    def add(make: Callable[[], AerOSegConfig]) -> Callable[[], AerOSegConfig]:
        if name in _REGISTRY:
            raise ValueError(f"preset {name!r} is registered twice")
        description = (make.__doc__ or name).strip().split("\n\n")[0].replace("\n", " ")
        _REGISTRY[name] = Preset(name=name, status=status, description=description, make=make)
        return make

    return add


def list_presets() -> list[str]:
    """Every preset name, in registration order (the paper's network first)."""
    return list(_REGISTRY)


def get_preset(name: str) -> Preset:
    """The preset ``name``; ValueError naming the choices if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def preset_config(name: str, **overrides: Any) -> AerOSegConfig:
    """The config of preset ``name`` with field overrides applied (``sam="vit_b"`` selects a SAM variant)."""
    return get_preset(name).config(**overrides)


def preset_status(name: str) -> str:
    """``"untrained" | "training-free" | "test"`` for a preset name; ValueError if unknown."""
    return get_preset(name).status


def _clip(name: str) -> CLIPConfig:
    return dataclasses.replace(CLIP_VARIANTS[name])


def _sam(name: str) -> SAMConfig:
    return dataclasses.replace(SAM_VARIANTS[name])


# -- the paper's network and its variants ---------------------------------------------------------------------------
@register("aeroseg-vitb16-samvitl", "untrained")
def aeroseg_vitb16_samvitl() -> AerOSegConfig:
    """AerOSeg as in the paper: CLIP ViT-B/16 cost volume, SAM ViT-L guidance, rotations, four prompts."""
    return AerOSegConfig()


@register("aeroseg-vitl14-samvitl", "untrained")
def aeroseg_vitl14_samvitl() -> AerOSegConfig:
    """AerOSeg with CLIP ViT-L/14 on 336-pixel windows."""
    return AerOSegConfig(clip=_clip("ViT-L-14"), crop_size=336)


@register("aeroseg-vitb16-samvitb", "untrained")
def aeroseg_vitb16_samvitb() -> AerOSegConfig:
    """AerOSeg with SAM ViT-B guidance."""
    return AerOSegConfig(sam=_sam("vit_b"))


@register("baseline-vitb16", "untrained")
def baseline_vitb16() -> AerOSegConfig:
    """The paper's Baseline: CLIP guidance, the generic prompt, no back-projection."""
    return AerOSegConfig(guidance="clip", prompts="generic", backproj=False, sam_weights=None)


# -- training-free ------------------------------------------------------------------------------------------------
@register("zeroshot-vitb16", "training-free")
def zeroshot_vitb16() -> AerOSegConfig:
    """The plain baseline: pretrained CLIP ViT-B/16 correlation, no training-free tricks."""
    return AerOSegConfig(arch="zeroshot", guidance="none", backproj=False, sam_weights=None)


# -- other networks (the converted released checkpoints; SegEarth-OV) ----------------------------------------------
@register("catseg-vitb16", "untrained")
def catseg_vitb16() -> AerOSegConfig:
    """CAT-Seg with CLIP ViT-B/16 (``cvlab-kaist/CAT-Seg`` ``configs/vitb_384.yaml``): its ``model_base.pth``.

    CLIP guidance (blocks 4 and 8 through learned transposed convolutions), CAT-Seg's single generic prompt, no
    rotations, plain concatenation in the decoder, no back-projection; CLIP always sees 384 x 384. Untrained as a
    preset name; ``aeroseg weights convert catseg model_base.pth`` makes the trained one (COCO-Stuff, open
    vocabulary)."""
    return AerOSegConfig(
        crop_size=384,
        clip_resolution=384,
        rotations=False,
        prompts="generic",
        guidance="clip",
        clip_guidance="catseg",
        sam_weights=None,
        backproj=False,
        decoder_fusion="concat",
    )


@register("catseg-vitl14", "untrained")
def catseg_vitl14() -> AerOSegConfig:
    """CAT-Seg with CLIP ViT-L/14@336px (``configs/vitl_336.yaml``): the network of its ``model_large.pth``.

    As ``catseg-vitb16``, with 384 x 384 windows resized to CLIP's 336 x 336 (24 x 24 tokens) and the guidance taps
    after blocks 8 and 16. Untrained as a preset name; ``aeroseg weights convert catseg model_large.pth`` makes the
    trained one."""
    return AerOSegConfig(
        crop_size=384,
        clip_resolution=336,
        clip=_clip("ViT-L-14-336"),
        rotations=False,
        prompts="generic",
        guidance="clip",
        clip_guidance="catseg",
        sam_weights=None,
        backproj=False,
        decoder_fusion="concat",
    )


@register("segearth-ov-vitb16", "training-free")
def segearth_ov_vitb16() -> AerOSegConfig:
    """SegEarth-OV (CVPR 2025), training-free: CLIP ViT-B/16 with its last block, SimFeatUp, CLS subtraction.

    OpenAI CLIP ViT-B/16 with its last block, SimFeatUp (its published weights), CLS-token subtraction (-0.3), its 80
    prompt templates, softmax at temperature 50, 224-pixel windows."""
    return AerOSegConfig(
        arch="segearth",
        crop_size=224,
        rotations=False,
        prompts="openai_imagenet",
        finetune_clip_qv=False,
        guidance="none",
        sam_weights=None,
        backproj=False,
    )


# -- small architectures for tests, the offline demo and measurements -------------------------------------------------
@register("tiny", "test")
def tiny() -> AerOSegConfig:
    """Same architecture, small widths: a CPU forward+backward in well under a second (tests, development)."""
    return AerOSegConfig(
        crop_size=384,
        clip=CLIPConfig(
            name="custom",
            embed_dim=32,
            vision_width=64,
            vision_layers=2,
            vision_heads=2,
            patch_size=16,
            text_width=32,
            text_layers=1,
            text_heads=2,
        ),
        clip_weights=None,
        sam=SAMConfig(
            name="custom",
            embed_dim=48,
            depth=3,
            num_heads=2,
            global_attn_indexes=(2,),
            window_size=4,
            patch_size=16,
            out_chans=32,
            pretrain_img_size=256,
        ),
        sam_weights=None,
        sam_input_size=256,
        hidden_dim=32,
        guidance_dim=32,
        num_heads=2,
        backproj_hidden=64,
        decoder_dims=(16, 16),
        decoder_guidance_dims=(8, 8),
        clip_guidance_upsample_dims=(32, 16),
    )


@register("demo", "untrained")
def demo() -> AerOSegConfig:
    """A little bigger than tiny: the model the project trains itself on CPU for the offline quickstart.

    Built from the preset name it is random ("untrained"); the trained one is ``sample_data/demo_model.pt``."""
    return AerOSegConfig(
        crop_size=256,
        clip=CLIPConfig(
            name="custom",
            embed_dim=64,
            vision_width=128,
            vision_layers=4,
            vision_heads=4,
            patch_size=16,
            text_width=32,
            text_layers=2,
            text_heads=2,
        ),
        clip_weights=None,
        sam=SAMConfig(
            name="custom",
            embed_dim=96,
            depth=4,
            num_heads=4,
            global_attn_indexes=(3,),
            window_size=8,
            patch_size=16,
            out_chans=64,
            pretrain_img_size=256,
        ),
        sam_weights=None,
        sam_input_size=256,
        hidden_dim=48,
        guidance_dim=48,
        num_heads=4,
        window_size=8,
        backproj_hidden=128,
        decoder_dims=(32, 16),
        decoder_guidance_dims=(16, 8),
        train_clip_all=True,  # trained from scratch: no pretrained CLIP to keep frozen (SAM stays frozen: random
    )  # frozen SAM features still guide; fine-tuning SAM at the head's learning rate stalled learning in our runs


@register("probe", "test")
def probe() -> AerOSegConfig:
    """The AerOSeg interface at almost no compute (``models.probe.ProbeModel``): for measuring the host pipeline."""
    return AerOSegConfig(arch="probe", clip_weights=None, guidance="none", sam_weights=None, backproj=False)


# Views of the registry for code written before it (a name list and a status table); new code calls list_presets()
# and get_preset().
PRESETS: tuple[str, ...] = tuple(_REGISTRY)
PRESET_STATUS: dict[str, str] = {name: p.status for name, p in _REGISTRY.items()}
