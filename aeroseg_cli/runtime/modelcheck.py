"""Checks on --model that need no model loaded (and no torch): untrained presets, closed vocabularies."""

from __future__ import annotations

from pathlib import Path

from aeroseg_cli.files.errors import CLIError, UsageError


def check_preset(spec: str, command: str = "segment") -> None:
    """Before any work: an untrained preset cannot produce a meaningful map (its refinement and decoder layers are
    random), so it is refused; training-free and test presets pass, and a released model (``aeroseg weights download
    catseg-vitb16``) passes once converted into the cache. Checkpoint paths pass (checked on loading)."""
    from models import hub
    from models.config import PRESETS, preset_status

    path = Path(spec).expanduser()
    if path.is_file() or path.suffix in (".pt", ".pth", ".ckpt", ".safetensors") or "/" in spec:
        return
    released = hub.REGISTRY.get(spec)
    if released is not None and released.convert is not None:  # a released model: its converted checkpoint
        if hub.converted_model(spec) is None:
            raise CLIError(
                f"--model {spec} ({released.description}) is not on this machine: run `aeroseg weights download "
                f"{spec}` ({released.size_text()}), which fetches and converts it"
            )
        return
    if spec not in PRESETS:
        raise UsageError(f"--model {spec!r} is neither a checkpoint file nor a preset ({', '.join(PRESETS)})")
    if preset_status(spec) == "untrained":
        raise UsageError(
            f"--model {spec} is untrained (its refinement and decoder layers are random, so its map would mean "
            f"nothing): train it (aeroseg train ...) and pass the checkpoint to {command}, or use a model that works "
            "today: `aeroseg weights download catseg-vitb16` (CAT-Seg, open vocabulary) or zeroshot-vitb16 "
            "(no training)"
        )


def check_vocabulary(loaded, names: list[str]) -> None:
    """A closed-vocabulary model (its text encoder trained from scratch) knows only its training class names."""
    vocab = loaded.vocabulary
    if vocab is None or vocab.open:
        return
    known = {c.lower() for c in vocab.classes}
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise UsageError(
            f"{loaded.label} knows only the classes it was trained on ({', '.join(vocab.classes)}); it cannot "
            f"recognise {', '.join(repr(n) for n in unknown)}: its text encoder was trained from scratch, not "
            "pretrained CLIP. Use those names, or an open-vocabulary model"
        )
