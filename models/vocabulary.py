"""What a trained model can be asked for: open vocabulary (any class name) or only its training classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import AerOSegConfig


@dataclass(frozen=True)
class Vocabulary:
    """``open``: the text encoder is pretrained CLIP (kept, or only its q/v fine-tuned), so unseen class names mean
    something; closed: CLIP was trained from scratch (``train_clip_all`` without pretrained weights), so only
    ``classes``, the training class names, are meaningful. A CLI should refuse other names for a closed model."""

    open: bool
    classes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        return cls(bool(d["open"]), tuple(str(c) for c in d["classes"]))

    @classmethod
    def of(cls, cfg: AerOSegConfig, classes: list[str] | tuple[str, ...]) -> Vocabulary:
        """Derived from a config: open only if CLIP came from pretrained weights and was not trained from scratch."""
        return cls(cfg.clip_weights is not None and not cfg.train_clip_all, tuple(classes))
