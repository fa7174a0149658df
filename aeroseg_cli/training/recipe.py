"""The reference recipe's optimisation: parameter groups, the cosine schedule, RNG state and run checkpoints."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

import models
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.training.config import TrainConfig


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """CAT-Seg's optimizer groups: weight decay on every trainable tensor except those of normalisation layers and
    embeddings (detectron2 WEIGHT_DECAY_NORM = WEIGHT_DECAY_EMBED = 0); CLIP at the backbone lr. CLIP's q/v live in
    packed q/k/v tensors whose k rows are frozen by a zero gradient, so they get no decay (decay would move the k
    rows; at lr 2e-6 x wd 1e-4 CAT-Seg's decay of q/v changes them by < 2e-6 relative over a whole run). Frozen
    parameters (SAM) are left out."""
    exempt_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.Embedding)
    exempt = {id(p) for m in model.modules() if isinstance(m, exempt_types) for p in m.parameters(recurse=False)}
    clip = {id(p) for p in model.clip.trainable_parameters()}
    qv_masked = model.clip.qv_only
    groups: dict[str, list] = {"decay": [], "no_decay": [], "clip_qv": [], "clip_decay": [], "clip_no_decay": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in clip:
            groups["clip_qv" if qv_masked else "clip_no_decay" if id(p) in exempt else "clip_decay"].append(p)
        else:
            groups["no_decay" if id(p) in exempt else "decay"].append(p)
    settings = {
        "decay": (cfg.lr, cfg.weight_decay),
        "no_decay": (cfg.lr, 0.0),
        "clip_qv": (cfg.backbone_lr, 0.0),
        "clip_decay": (cfg.backbone_lr, cfg.weight_decay),
        "clip_no_decay": (cfg.backbone_lr, 0.0),
    }
    return [
        {"params": ps, "lr": settings[n][0], "weight_decay": settings[n][1], "name": n}
        for n, ps in groups.items()
        if ps
    ]


def cosine(iters: int):
    return lambda it: 0.5 * (1 + math.cos(math.pi * min(it, iters) / iters))


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(np.random.get_state()[1].tolist()),
        "python": json.dumps(random.getstate()[1]),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = np.random.get_state()
    np.random.set_state((np_state[0], np.array(json.loads(state["numpy"]), dtype=np.uint32), *np_state[2:]))
    py = random.getstate()
    random.setstate((py[0], tuple(json.loads(state["python"])), py[2]))


def save_run(model, optimizer, scheduler, iteration: int, cfg: TrainConfig, seen: list[str], run_dir: Path) -> None:
    """The AerOSeg checkpoint (lean: new layers, fine-tuned CLIP q/v rows and references to the official CLIP/SAM
    files; config; seen class names) and the full training state, both atomic."""
    with atomic_output(run_dir / "checkpoint.pt") as tmp:
        models.save_checkpoint(
            tmp,
            model,
            seen,
            meta={"iteration": iteration, "dataset": cfg.dataset, "preset": cfg.preset},
            dtype=torch.float16 if cfg.save_dtype == "float16" else None,
        )
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "iteration": iteration,
    }
    with atomic_output(run_dir / "train_state.pt") as tmp:
        torch.save(state, tmp)
