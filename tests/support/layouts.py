"""Random-weight files in the layouts the official weights are published in (key names, shapes, dtypes, nesting,
TorchScript where published so), for tests. ``tests/fixtures/published_weight_layouts.json`` holds every key, shape
and dtype of the real files as the reference code builds them (see ``test_builders_match_the_published_layouts``);
the builders here make the same layouts at any size from this project's own modules."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from models.clip_backbone import build_open_clip
from models.config import CLIPConfig, SAMConfig
from models.presets import preset_config
from models.sam_guidance import build_sam_encoder

FIXTURE = Path(__file__).parents[1] / "fixtures" / "published_weight_layouts.json"
# what OpenAI's convert_weights casts to fp16: Conv/Linear weights and biases, attention in_proj, the projections
OPENAI_FP16 = ("conv1.weight", "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
OPENAI_FP16_LINEAR = ("c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias", "text_projection", "visual.proj")


def published_layouts() -> dict[str, list]:
    return json.loads(FIXTURE.read_text())["layouts"]


def openai_clip_state(cfg: CLIPConfig, image_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """OpenAI's CLIP layout: open_clip's names (the same as OpenAI's), fp16 where OpenAI's ``convert_weights`` casts,
    fp32 elsewhere, plus the archive's three integer buffers. Random normal weights (a seeded generator)."""
    model = build_open_clip(cfg, image_size)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        t = (
            torch.randn(value.shape, generator=gen, dtype=torch.float32) * 0.02
            if value.device.type != "meta"
            else value
        )
        state[key] = t.half() if key.endswith(OPENAI_FP16 + OPENAI_FP16_LINEAR) else t
    state["input_resolution"] = torch.tensor(image_size)
    state["context_length"] = torch.tensor(cfg.context_length)
    state["vocab_size"] = torch.tensor(cfg.vocab_size)
    return state


def open_clip_hub_state(openai_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's Hugging Face copy of an OpenAI CLIP: the same tensors in fp32, without the integer buffers."""
    return {k: v.float() for k, v in openai_state.items() if v.is_floating_point()}


class _Node(nn.Module):
    def forward(self) -> int:
        return 0


def save_torchscript(state: dict[str, torch.Tensor], path: Path) -> Path:
    """A TorchScript archive (``torch.jit.script`` + ``torch.jit.save``) whose state dict is exactly ``state``:
    floating tensors as parameters, integers as buffers, nested by the dotted names."""
    root = _Node()
    for key, t in state.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if name not in module._modules:
                module.add_module(name, _Node())
            module = module._modules[name]
        if t.is_floating_point():
            module.register_parameter(leaf, nn.Parameter(t.clone(), requires_grad=False))
        else:
            module.register_buffer(leaf, t.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated; the files it makes are what is published
        torch.jit.save(torch.jit.script(root), str(path))
    return path


def meta_sam(cfg: SAMConfig | None = None, seed: int = 1) -> Sam:
    """A full segment_anything ``Sam`` as Meta publishes it (image encoder, prompt encoder, mask decoder); tiny
    decoder sizes unless the real vit_l is asked for (``cfg.name == "vit_l"``, built as segment_anything does)."""
    if cfg is not None and cfg.name == "vit_l":
        from segment_anything import sam_model_registry

        return sam_model_registry["vit_l"]()
    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=build_sam_encoder(cfg),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.out_chans, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=cfg.out_chans, mlp_dim=64, num_heads=2),
            transformer_dim=cfg.out_chans,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
        ),
    )
    for p in sam.parameters():
        p.data.normal_()
    return sam


def layout_of(state: dict[str, torch.Tensor]) -> list[list]:
    """[key, shape, dtype] rows, as the fixture stores them."""
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]


def official_layout_sam(tmp_path: Path) -> Path:
    """A full segment_anything ``Sam`` (tiny encoder) saved as the official checkpoints are: a plain state dict."""
    path = tmp_path / "sam_tiny.pth"
    torch.save(meta_sam(preset_config("tiny").sam).state_dict(), path)
    return path
