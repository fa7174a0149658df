"""The reference recipe's optimisation: parameter groups, the cosine schedule, RNG state and run checkpoints."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch

import models
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.training.config import TrainConfig


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """CLIP q/v at the backbone lr (no decay: their frozen k rows must not decay); the rest at lr, no decay on norms,
    biases and embeddings/tokens (ndim <= 1); frozen parameters (SAM) left out."""
    clip = {id(p) for p in model.clip.trainable_parameters()}
    decay, no_decay, backbone = [], [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in clip:
            backbone.append(p)
        elif p.ndim <= 1 or p.shape[0] == 1:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "decay"},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0, "name": "no_decay"},
        {"params": backbone, "lr": cfg.backbone_lr, "weight_decay": 0.0, "name": "clip_qv"},
    ]
    return [g for g in groups if g["params"]]


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
    """The AerOSeg checkpoint (weights + config + seen class names) and the full training state, both atomic."""
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
