"""Model configuration (the named presets are in ``models.presets``).

Every ablation switch of the paper (Tables 3-6) is a field here, so an experiment is a preset plus overrides:
``models.build("aeroseg-vitb16-samvitl", backproj_target="rgb")``. Every fidelity switch (a place where this project
once departed from the reference code) is a field too: its default is the reference's behaviour, and ``LEGACY[n]``
holds the old behaviour of every field added after checkpoint format n, which a config written by format n or older
(before the field existed) is read with, so old checkpoints keep their logits bit for bit.
No torch import here: ``from models import config`` stays fast.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

# As the paper prints them and as CAT-Seg's 'single' template (cat_seg_predictor.py l. 85): no trailing period.
REMOTE_SENSING_TEMPLATES: tuple[str, ...] = (
    "A satellite image of a {}",
    "A land use image of a {}",
    "A remote sensing image of a {}",
    "An aerial image of a {}",
)
GENERIC_TEMPLATES: tuple[str, ...] = ("A photo of a {} in the scene",)


def openai_imagenet_templates() -> tuple[str, ...]:
    """CLIP's 80 ImageNet prompts ("a bad photo of a {}.", ...), SegEarth-OV's; from open_clip (imports torch)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


@dataclass
class CLIPConfig:
    """open_clip CLIP tower sizes (the names match open_clip's model configs)."""

    name: str = "ViT-B-16"  # open_clip model name; "custom" for the small presets
    embed_dim: int = 512
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    patch_size: int = 16
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408


@dataclass
class SAMConfig:
    """segment_anything ImageEncoderViT sizes (``vit_b`` / ``vit_l`` / ``vit_h`` or a small custom one)."""

    name: str = "vit_l"
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    global_attn_indexes: tuple[int, ...] = (5, 11, 17, 23)  # 0-based, as segment_anything
    window_size: int = 14
    patch_size: int = 16
    out_chans: int = 256
    pretrain_img_size: int = 1024  # size the position embedding was trained at


SAM_VARIANTS: dict[str, SAMConfig] = {
    "vit_b": SAMConfig(name="vit_b", embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SAMConfig(name="vit_l", embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SAMConfig(name="vit_h", embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}
_VIT_L_14 = {"embed_dim": 768, "vision_width": 1024, "vision_layers": 24, "vision_heads": 16, "patch_size": 14,
             "text_width": 768, "text_layers": 12, "text_heads": 12}  # fmt: skip
CLIP_VARIANTS: dict[str, CLIPConfig] = {
    "ViT-B-16": CLIPConfig(),
    "ViT-L-14": CLIPConfig(name="ViT-L-14", **_VIT_L_14),
    "ViT-L-14-336": CLIPConfig(name="ViT-L-14-336", **_VIT_L_14),  # OpenAI's ViT-L/14@336px
}


@dataclass
class SegEarthConfig:
    """SegEarth-OV's inference settings (likyoo/SegEarth-OV ``configs/base_config.py`` and its segmentor's defaults);
    the window itself is ``AerOSegConfig.crop_size`` (its ``slide_crop``, 224)."""

    upsampler_weights: str | None = "official"  # SimFeatUp: "official" (registry file), a file path, or None (random)
    cls_token_lambda: float = -0.3  # global-bias alleviation: logits + lambda * the CLS token's logits
    logit_scale: float = 50.0  # softmax temperature over the queries
    slide_stride: int = 112  # evaluation's sliding window stride (``slide_stride``)
    eval_resize: int = 448  # evaluation: the long side resized to this first (its test pipelines); 0 = as is


# Format 1 files (the first version) lack the fields added in format 2 ...
LEGACY_V1: dict[str, Any] = {
    "ignore_pixels": "exclude",
    "decoder_guidance_order": "late_coarse",
    "clip_guidance": "v1",
    "refinement": "v1",
    "guidance_antialias": False,
    "fp32_correlation": False,
}
# ... files of format 2 or older lack those added in format 3 (issue 21, CLIP side) ...
LEGACY_V2: dict[str, Any] = {
    "pos_embed_interp": "antialias",
    "template_period": True,
}
# ... files of format 3 or older the shifted-window mask of format 4 (issue 21) ...
LEGACY_V3: dict[str, Any] = {
    "shifted_window_mask": "rolled",
}
# ... and files of format 4 or older the guidance upsampling of format 5 (issue 21).
LEGACY_V4: dict[str, Any] = {
    "guidance_upsample": "bilinear",
}
LEGACY: dict[int, dict[str, Any]] = {1: LEGACY_V1, 2: LEGACY_V2, 3: LEGACY_V3, 4: LEGACY_V4}


@dataclass
class AerOSegConfig:
    """Everything needed to rebuild a model; stored verbatim in checkpoints (plain JSON-able values only)."""

    arch: str = "aeroseg"  # "aeroseg" (the network), "zeroshot" (plain CLIP correlation), "segearth" or "probe"
    crop_size: int = 384  # the model's input size; CLIP's position embedding is sized for it (or clip_resolution)
    clip_resolution: int = 0  # CLIP sees the input resized to this (bilinear, as CAT-Seg/OVRS); 0: as given
    clip: CLIPConfig = field(default_factory=CLIPConfig)
    clip_weights: str | None = "openai"  # "openai" (official, from the weights cache), a file path, or None (random)
    rotations: bool = True  # 0/90/180/270 rotated copies through CLIP (OVRS)
    batch_rotations: bool = True  # all rotations in one batched forward (False: one at a time, the reference style)
    prompts: str = "remote_sensing"  # "remote_sensing" (4 templates), "generic" (1) or "openai_imagenet" (80)
    finetune_clip_qv: bool = True  # only the q/v projections of both CLIP towers learn
    train_clip_all: bool = False  # every CLIP weight learns (training from scratch, no pretrained CLIP)
    guidance: str = "sam"  # "sam", "clip" (CAT-Seg baseline) or "none"
    sam: SAMConfig = field(default_factory=SAMConfig)
    sam_weights: str | None = "official"  # "official" (from the weights cache), a file path, or None (random)
    # SAM sees the crop resized to this (its position embedding interpolated): 384 puts SAM's maps on CLIP's 24 x 24
    # grid, which the paper's Eq. 10 (SAM guidance upsampled x2 to the first decoder stage) implies; 1024 is the size
    # SAM was trained at (3.4x the paper preset's FLOPs). See the README's "Fidelity to the paper".
    sam_input_size: int = 384
    finetune_guidance: bool = False  # paper Table 4: SAM frozen
    sdpa: bool = True  # SAM attention through scaled_dot_product_attention (same weights, same result)
    # correlation refinement
    hidden_dim: int = 128  # correlation embedding width
    guidance_dim: int = 128  # spatial/class guidance width
    num_heads: int = 4
    window_size: int = 12
    shifted_window_mask: str = "swin"  # SW-MSA mask built as Swin/CAT-Seg ("swin") or rolled (formats <= 3)
    num_refinement_blocks: int = 2
    class_pool_train: int = 2  # class refinement average-pools space by this in training (1 at evaluation, as the
    # references' eval.sh sets POOLING_SIZES [1,1])
    max_classes: int = 256  # class refinement pads to this many class tokens
    # semantic back-projection (training only)
    backproj: bool = True
    backproj_target: str = "sam"  # "sam", "clip" or "rgb"
    backproj_classes: int = 0  # number of training classes (the MLP's input is classes x hidden_dim); 0 = unset
    backproj_hidden: int = 512
    backproj_weight: float = 1.0
    # decoder
    decoder_dims: tuple[int, int] = (64, 32)
    decoder_guidance_dims: tuple[int, int] = (32, 16)
    decoder_fusion: str = "attention"  # guidance into each decoder stage: "attention" (OVRS) or "concat" (CAT-Seg)
    clip_guidance_upsample_dims: tuple[int, int] = (256, 128)  # CLIP guidance: ConvTranspose widths (CAT-Seg)
    # fidelity switches: the defaults are the reference code's (CAT-Seg / OVRS); LEGACY holds this project's old values
    ignore_pixels: str = "negative"  # loss on 255 pixels: "negative" for every seen class (CAT-Seg), or "exclude"
    decoder_guidance_order: str = "early_coarse"  # early tap -> first, coarser decoder stage (CAT-Seg); "late_coarse"
    clip_guidance: str = "catseg"  # guidance="clip": "catseg" (learned ConvTranspose, raw CLIP features) or "v1"
    refinement: str = "catseg"  # class/spatial refinement details as CAT-Seg ("catseg") or as this project's v1
    guidance_antialias: bool = True  # shrink SAM's maps (64x64 -> 24x24, 48x48) with an antialiasing filter
    guidance_upsample: str = "nearest"  # enlarge guidance maps to the decoder stages: "nearest" (Eq. 10) or "bilinear"
    fp32_correlation: bool = True  # cost volume, its embedding and the logits in fp32 even under autocast
    pos_embed_interp: str = "bicubic"  # CLIP position embedding to the crop's grid: "bicubic" (CAT-Seg) or "antialias"
    template_period: bool = False  # prompts end with "." (this project's format-2 prompts; the paper's have none)
    segearth: SegEarthConfig = field(default_factory=SegEarthConfig)  # arch="segearth" only

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], format_version: int | None = None) -> AerOSegConfig:
        """The config stored in a checkpoint of ``format_version`` (None: the current format): a field added after
        that format is missing from it and gets its old value from ``LEGACY``."""
        d = dict(d)
        for fmt, table in LEGACY.items():
            if format_version is not None and format_version <= fmt:
                for key, value in table.items():
                    d.setdefault(key, value)
        clip = CLIPConfig(**d.pop("clip", {}))
        sam_d = dict(d.pop("sam", {}))
        if "global_attn_indexes" in sam_d:
            sam_d["global_attn_indexes"] = tuple(sam_d["global_attn_indexes"])
        sam = SAMConfig(**sam_d)
        segearth = SegEarthConfig(**d.pop("segearth", {}))
        for key in ("decoder_dims", "decoder_guidance_dims", "clip_guidance_upsample_dims"):
            if key in d:
                d[key] = tuple(d[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(clip=clip, sam=sam, segearth=segearth, **d)

    def validate(self) -> None:
        choices = {
            "arch": ("aeroseg", "zeroshot", "segearth", "probe"),
            "prompts": ("remote_sensing", "generic", "openai_imagenet"),
            "guidance": ("sam", "clip", "none"),
            "backproj_target": ("sam", "clip", "rgb"),
            "ignore_pixels": ("negative", "exclude"),
            "decoder_guidance_order": ("early_coarse", "late_coarse"),
            "clip_guidance": ("catseg", "v1"),
            "refinement": ("catseg", "v1"),
            "decoder_fusion": ("attention", "concat"),
            "pos_embed_interp": ("bicubic", "antialias"),
            "shifted_window_mask": ("swin", "rolled"),
            "guidance_upsample": ("nearest", "bilinear"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.clip_resolution < 0 or self.clip_resolution % self.clip.patch_size:
            patch = self.clip.patch_size
            raise ValueError(
                f"clip_resolution {self.clip_resolution} must be 0 or a multiple of the CLIP patch {patch}"
            )
        if self.crop_size % self.input_multiple:
            raise ValueError(f"crop_size {self.crop_size} must be a multiple of the CLIP patch {self.clip.patch_size}")
        if self.sam_input_size % self.sam.patch_size:
            raise ValueError(f"sam_input_size {self.sam_input_size} must be a multiple of {self.sam.patch_size}")
        if self.hidden_dim % self.num_heads or self.hidden_dim % 16:
            raise ValueError("hidden_dim must be divisible by num_heads and 16")
        if self.segearth.slide_stride <= 0 or self.segearth.logit_scale <= 0 or self.segearth.eval_resize < 0:
            raise ValueError("segearth: slide_stride and logit_scale must be positive, eval_resize 0 or more")

    def with_overrides(self, **overrides: Any) -> AerOSegConfig:
        """A validated copy with ``overrides`` applied; this config is left as it is (a caller's config is never
        changed by building from it). ``sam="vit_b"`` / ``clip="ViT-L-14"`` select a variant; ``segearth={...}``
        sets those of its fields."""
        cfg = copy.deepcopy(self)
        known = {f.name for f in dataclasses.fields(cfg)}
        for key, value in overrides.items():
            if key == "sam" and isinstance(value, str):
                value = SAMConfig(**dataclasses.asdict(SAM_VARIANTS[value]))
            elif key == "clip" and isinstance(value, str):
                value = CLIPConfig(**dataclasses.asdict(CLIP_VARIANTS[value]))
            elif key == "segearth" and isinstance(value, dict):  # segearth={"upsampler_weights": None}: those fields
                value = SegEarthConfig(**{**dataclasses.asdict(cfg.segearth), **value})
            if key not in known:
                raise ValueError(f"unknown model config field {key!r}")
            setattr(cfg, key, copy.deepcopy(value))
        cfg.validate()
        return cfg

    @property
    def input_multiple(self) -> int:
        """Input sizes must be multiples of this: the CLIP patch, or 1 when CLIP sees a resized copy."""
        return 1 if self.clip_resolution else self.clip.patch_size

    @property
    def templates(self) -> tuple[str, ...]:
        """The prompt templates: the paper's four remote-sensing ones, CAT-Seg's generic one (``template_period``:
        each with a trailing period, as checkpoints of format 2 and older were trained), or CLIP's 80 ImageNet ones
        (SegEarth-OV's, with their periods)."""
        if self.prompts == "openai_imagenet":
            return openai_imagenet_templates()
        chosen = REMOTE_SENSING_TEMPLATES if self.prompts == "remote_sensing" else GENERIC_TEMPLATES
        return tuple(t + "." for t in chosen) if self.template_period else chosen
