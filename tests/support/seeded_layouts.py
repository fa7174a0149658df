"""Seeded random weights in published layouts, with structure, for equality tests against reference code run outside
the repository (SegEarth-OV). Unlike ``layouts.py``'s plain N(0, 0.02), under which a random twelve-block CLIP gives
near-constant features, these keep layer norms near 1 and residual branches small, so logits vary across an image.

Every tensor is drawn from its own ``numpy.random.default_rng([seed, crc32(name)])`` stream (PCG64: the same numbers
on every machine and numpy version), so a file is defined by its seed alone and the tests regenerate it instead of
storing it. The scratch generators that ran the reference code import these functions, so both sides see the same
bytes.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from tests.support.layouts import OPENAI_FP16, OPENAI_FP16_LINEAR  # what OpenAI's convert_weights casts to fp16


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return np.asarray(mean + std * rng.standard_normal(shape, dtype=np.float32), dtype=np.float32)


def _tower(prefix: str, width: int, layers: int) -> dict[str, tuple[tuple[int, ...], float, float]]:
    """name -> (shape, std, mean) of one OpenAI residual-attention stack (``prefix``resblocks.N.*). The branches'
    output projections are a quarter of the usual scale, so tokens keep their own content through twelve random
    blocks (at full scale random blocks make every patch alike, and a test would compare near-constants)."""
    out: dict[str, tuple[tuple[int, ...], float, float]] = {}
    lin = width**-0.5
    for i in range(layers):
        p = f"{prefix}resblocks.{i}."
        out |= {
            p + "attn.in_proj_weight": ((3 * width, width), lin, 0.0),
            p + "attn.in_proj_bias": ((3 * width,), 0.02, 0.0),
            p + "attn.out_proj.weight": ((width, width), lin / 4, 0.0),
            p + "attn.out_proj.bias": ((width,), 0.02, 0.0),
            p + "ln_1.weight": ((width,), 0.1, 1.0),
            p + "ln_1.bias": ((width,), 0.05, 0.0),
            p + "mlp.c_fc.weight": ((4 * width, width), lin, 0.0),
            p + "mlp.c_fc.bias": ((4 * width,), 0.02, 0.0),
            p + "mlp.c_proj.weight": ((width, 4 * width), (4 * width) ** -0.5 / 4, 0.0),
            p + "mlp.c_proj.bias": ((width,), 0.02, 0.0),
            p + "ln_2.weight": ((width,), 0.1, 1.0),
            p + "ln_2.bias": ((width,), 0.05, 0.0),
        }
    return out


def openai_clip_state(
    seed: int,
    vision_width: int = 768,
    vision_layers: int = 12,
    patch: int = 16,
    grid: int = 14,
    embed_dim: int = 512,
    text_width: int = 512,
    text_layers: int = 12,
    vocab: int = 49408,
    context: int = 77,
) -> dict[str, torch.Tensor]:
    """A CLIP ViT state dict as OpenAI's TorchScript files hold it (defaults: ViT-B/16 at 224): OpenAI's key names
    (``visual.transformer.resblocks.N.attn.in_proj_weight``, ``mlp.c_fc``, ``text_projection``, ...), each floating
    tensor float16 where OpenAI's ``convert_weights`` casts (``OPENAI_FP16*``) and float32 elsewhere, plus the int64
    ``input_resolution``, ``context_length`` and ``vocab_size`` entries."""
    specs: dict[str, tuple[tuple[int, ...], float, float]] = {
        "positional_embedding": ((context, text_width), 0.01, 0.0),
        "text_projection": ((text_width, embed_dim), text_width**-0.5, 0.0),
        "logit_scale": ((), 0.0, float(np.log(100.0))),
        "visual.class_embedding": ((vision_width,), vision_width**-0.5, 0.0),
        "visual.positional_embedding": ((grid * grid + 1, vision_width), vision_width**-0.5, 0.0),
        "visual.proj": ((vision_width, embed_dim), vision_width**-0.5, 0.0),
        "visual.conv1.weight": ((vision_width, 3, patch, patch), (3 * patch * patch) ** -0.5, 0.0),
        "visual.ln_pre.weight": ((vision_width,), 0.1, 1.0),
        "visual.ln_pre.bias": ((vision_width,), 0.05, 0.0),
        **_tower("visual.transformer.", vision_width, vision_layers),
        "visual.ln_post.weight": ((vision_width,), 0.1, 1.0),
        "visual.ln_post.bias": ((vision_width,), 0.05, 0.0),
        **_tower("transformer.", text_width, text_layers),
        "token_embedding.weight": ((vocab, text_width), 0.02, 0.0),
        "ln_final.weight": ((text_width,), 0.1, 1.0),
        "ln_final.bias": ((text_width,), 0.05, 0.0),
    }
    state = {k: torch.from_numpy(_normal(seed, k, s, std, mean)) for k, (s, std, mean) in specs.items()}
    state = {k: v.half() if k.endswith(OPENAI_FP16 + OPENAI_FP16_LINEAR) else v for k, v in state.items()}
    state["input_resolution"] = torch.tensor(patch * grid)
    state["context_length"] = torch.tensor(context)
    state["vocab_size"] = torch.tensor(vocab)
    return state


def simfeatup_checkpoint(seed: int, kind: str = "jbu_one", feat_dim: int = 512) -> dict:
    """A SimFeatUp / FeatUp upsampler checkpoint as SegEarth-OV ships them (``simfeatup_dev/weights/*.ckpt``): a
    PyTorch Lightning 1.9 dict whose ``state_dict`` holds the ``upsampler.*`` tensors, float32. ``jbu_one``: one
    JBU layer of radius 5 applied four times (SimFeatUp); ``jbu_stack``: four JBU layers of radius 3 (FeatUp)."""
    layers = {"jbu_one": (("up.",), 5), "jbu_stack": (("up1.", "up2.", "up3.", "up4."), 3)}
    names, radius = layers[kind]
    taps = (2 * radius + 1) ** 2
    specs: dict[str, tuple[tuple[int, ...], float, float]] = {}
    for n in names:
        p = "upsampler." + n
        specs |= {
            p + "range_temp": ((), 0.5, 0.0),
            p + "sigma_spatial": ((), 0.1, 1.0),
            p + "range_proj.0.weight": ((32, 3, 1, 1), 3**-0.5, 0.0),
            p + "range_proj.0.bias": ((32,), 0.1, 0.0),
            p + "range_proj.3.weight": ((32, 32, 1, 1), 32**-0.5, 0.0),
            p + "range_proj.3.bias": ((32,), 0.1, 0.0),
            p + "fixup_proj.0.weight": ((taps, taps + 3, 1, 1), (taps + 3) ** -0.5, 0.0),
            p + "fixup_proj.0.bias": ((taps,), 0.1, 0.0),
            p + "fixup_proj.3.weight": ((taps, taps, 1, 1), taps**-0.5, 0.0),
            p + "fixup_proj.3.bias": ((taps,), 0.1, 0.0),
        }
    specs["upsampler.fixup_proj.1.weight"] = ((feat_dim, feat_dim, 1, 1), feat_dim**-0.5, 0.0)
    specs["upsampler.fixup_proj.1.bias"] = ((feat_dim,), 0.1, 0.0)
    state = {k: torch.from_numpy(_normal(seed, k, s, std, mean)) for k, (s, std, mean) in specs.items()}
    return {
        "epoch": 0,
        "global_step": 1000,
        "pytorch-lightning_version": "1.9.4",
        "state_dict": state,
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
    }


def window_image(seed: int, height: int, width: int, cells: int = 6) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1]: Voronoi cells of distinct colours and stripe textures plus noise, so the
    random CLIP's features, and the class it picks, change across the image; multiples of 1/255, so an 8-bit
    raster of ``round(255 * image)`` reads back as exactly this image."""
    rng = np.random.default_rng([seed, 11])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    centres = rng.uniform(0, 1, (cells, 2)) * [height, width]
    cell = ((yy[None] - centres[:, :1, None]) ** 2 + (xx[None] - centres[:, 1:, None]) ** 2).argmin(0)
    img = np.zeros((3, height, width), np.float32)
    for k in range(cells):
        colour, (fy, fx), amp = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.6, 2), rng.uniform(0, 0.3)
        inside = cell == k
        texture = amp * np.sin(yy[inside] * fy + xx[inside] * fx)
        for b in range(3):
            img[b][inside] = np.clip(colour[b] + texture, 0, 1)
    img = 0.9 * img + 0.1 * rng.random((3, height, width), dtype=np.float32)
    return torch.from_numpy(np.round(img * 255)[None] / 255).float()
