"""Seeded random weights in the layout of a released CAT-Seg / OVRS checkpoint (read from a stored manifest), and
the seeded test images.

The reference outputs under ``tests/fixtures/`` were computed by running the reference code (outside this repository)
on exactly these tensors: the generator script imports this module, so the tests rebuild the same file from the stored
layout (key names, shapes, dtypes) and a seed instead of storing hundreds of MB of random numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_TRANSPOSED_CONV = re.compile(r"(upsample\d|\.up)\.weight$")  # ConvTranspose2d weights are (C_in, C_out, k, k)
_RIGHT_MULTIPLIED = ("proj", "text_projection")  # CLIP's `x @ proj` parameters are (C_in, C_out)


def seeded_tensor(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """One tensor of a random network whose activations stay O(1): norm weights near 1, small biases, weights
    scaled by 1/sqrt(fan-in), CLIP's logit scale log(100) as trained."""
    t = torch.randn(shape, generator=gen)
    if not shape:
        return torch.full((), math.log(100.0))
    if len(shape) == 1:
        return 1 + 0.1 * t if key.endswith("weight") else 0.1 * t
    if "embedding" in key:
        return 0.1 * t
    if _TRANSPOSED_CONV.search(key) or key.rsplit(".", 1)[-1] in _RIGHT_MULTIPLIED:
        return t / math.sqrt(shape[0])
    return t / math.sqrt(math.prod(shape[1:]))


def seeded_state(
    layout: dict[str, list], seed: int, constants: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """``{key: [shape, dtype]}`` -> tensors drawn in sorted key order from one generator seeded with ``seed``;
    ``constants`` (e.g. a module's fixed attention-mask buffer) are used as given."""
    gen = torch.Generator().manual_seed(seed)
    constants = constants or {}
    out = {}
    for key in sorted(layout):
        shape, dtype = tuple(layout[key][0]), getattr(torch, layout[key][1])
        value = constants[key] if key in constants else seeded_tensor(key, shape, gen)
        out[key] = value.to(dtype)
    return out


def seeded_image(size: int, seed: int) -> np.ndarray:
    """(3, size, size) uint8 RGB with structure at several scales (sums of random sinusoids), numpy-seeded."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((3, size, size))
    for b in range(3):
        for _ in range(5):
            fy, fx, ph = rng.uniform(0.005, 0.2), rng.uniform(0.005, 0.2), rng.uniform(0, 6.3)
            out[b] += np.sin(yy * fy + xx * fx + ph)
    out = (out - out.min()) / (out.max() - out.min())
    return np.round(out * 255).astype(np.uint8)


def layout_of(state: dict[str, torch.Tensor]) -> dict[str, list]:
    """The layout of a state dict: ``{key: [shape, dtype name]}``."""
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()}


def load_fixture(name: str) -> dict:
    """A reference fixture: arrays, plus its JSON record (layout, seeds, class names, provenance) decoded."""
    with np.load(FIXTURES / name) as z:
        data = {k: z[k] for k in z.files}
    data["record"] = json.loads(bytes(data.pop("record")).decode())
    return data


def released_file(fixture: dict, path: Path) -> Path:
    """Write the random checkpoint of a fixture as its reference code saved it: ``{"model": state, **extra}``."""
    rec = fixture["record"]
    constants = {k: torch.from_numpy(fixture["mask"]) for k in rec["layout"] if k.endswith("attn_mask")}
    state = seeded_state(rec["layout"], rec["weights_seed"], constants)
    torch.save({"model": state, **rec["top_level_extra"]}, path)
    return path
