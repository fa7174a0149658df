"""``train --init CKPT``: start a run from the tensors of a checkpoint that fit the network being trained.

A tensor is taken when the checkpoint has one of the same name and shape: all of them for the same architecture;
from a converted CAT-Seg model into the paper preset, the shared parts (CLIP with its fine-tuned q/v, the refinement
blocks, the text guidance, the decoder's convolutions); the rest starts as the preset builds it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import models
from aeroseg_cli.files.errors import CLIError


def module_of(key: str) -> str:
    """The part of the network a tensor belongs to, for the run log: ``clip.model.visual``, ``spatial_blocks.0``."""
    parts = key.split(".")
    return ".".join(parts[:3] if parts[0] in ("clip", "sam") else parts[:2])


@dataclass
class InitReport:
    """What ``--init`` took from the checkpoint, what starts fresh and which of its tensors found no place."""

    source: str
    taken: list[str]
    fresh: list[str]
    unused: list[str]

    def record(self) -> dict:
        """For metrics.jsonl: counts per part of the network, and every tensor name."""
        groups = {name: dict(Counter(module_of(k) for k in keys)) for name, keys in self._lists().items()}
        return {"init": {"source": self.source, **groups, "tensors": self._lists()}}

    def _lists(self) -> dict[str, list[str]]:
        return {"taken": self.taken, "fresh": self.fresh, "unused": self.unused}

    def lines(self) -> list[str]:
        """A few lines for the terminal: the parts taken, fresh and unused, with tensor counts."""
        out = [f"--init {self.source}: {len(self.taken)} tensors taken, {len(self.fresh)} start fresh"]
        for name, keys in self._lists().items():
            if keys:
                parts = Counter(module_of(k) for k in keys)
                out.append(f"  {name}: " + ", ".join(f"{m} ({n})" for m, n in sorted(parts.items())))
        return out


def read_init(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an AerOSeg checkpoint (verified; a lean one rebuilt from the official files)."""
    try:
        source, _ = models.load_checkpoint(path)
    except models.WeightsError as exc:
        hint = ""
        if "not an AerOSeg checkpoint" in str(exc):
            hint = (
                "; a CAT-Seg or OVRS file must be converted first (`aeroseg weights convert catseg|ovrs SRC -o OUT.pt`)"
            )
        raise CLIError(f"--init: {exc}{hint}") from None
    return source.state_dict()


def init_from(model: nn.Module, path: Path) -> InitReport:
    """Copy into ``model`` every tensor of checkpoint ``path`` with its name and shape; -> what was taken."""
    state = read_init(path)
    own = model.state_dict()
    taken = [k for k, v in own.items() if k in state and tuple(state[k].shape) == tuple(v.shape)]
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in taken}, strict=False)
    chosen = set(taken)
    fresh = [k for k in own if k not in chosen]
    unused = [k for k in state if k not in chosen]
    return InitReport(str(path), taken, fresh, unused)
