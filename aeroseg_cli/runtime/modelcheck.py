"""Checks on --model that need no model loaded (and no torch): untrained presets, closed vocabularies; which
models this aeroseg can get without training."""

from __future__ import annotations

from pathlib import Path

from aeroseg_cli.files.errors import CLIError, UsageError

PLAIN_BASELINE = "zeroshot-vitb16"  # the training-free preset every other one is preferred to (modelchoice)


def released_models() -> list[str]:
    """The registry's released models (``WeightSpec.convert``), in registry order: best first (see ``choose_model``)."""
    from models import hub

    return [name for name, spec in hub.REGISTRY.items() if spec.convert is not None]


def training_free() -> list[str]:
    """The presets registered as training-free (they need only published files), the plain CLIP baseline last."""
    from models.presets import get_preset, list_presets

    names = [name for name in list_presets() if get_preset(name).status == "training-free"]
    return sorted(names, key=lambda name: name == PLAIN_BASELINE)


def check_preset(spec: str, command: str = "segment", option: str = "--model") -> None:
    """Before any work: an untrained preset cannot produce a meaningful map (its refinement and decoder layers are
    random), so it is refused; training-free and test presets pass, and a released model (``aeroseg weights download
    catseg-vitb16``) passes once converted into the cache. Checkpoint paths pass (checked on loading). ``option``:
    how messages name the value ("--model", or "" for ``weights default``)."""
    from models import hub
    from models.presets import list_presets, preset_status

    path = Path(spec).expanduser()
    given = f"{option} {spec}".strip()
    if path.is_file() or path.suffix in (".pt", ".pth", ".ckpt", ".safetensors") or "/" in spec:
        return
    released = hub.REGISTRY.get(spec)
    if released is not None and released.convert is not None:  # a released model: its converted checkpoint
        if hub.converted_model(spec) is not None:
            return
        if not hub.offered(released):
            raise UsageError(hub.not_offered(released, given))
        raise CLIError(
            f"{given} ({released.description}) is not on this machine: run `aeroseg weights download {spec}` "
            f"({released.size_text()}), which fetches and converts it"
        )
    if spec not in list_presets():
        named = f"{option} {spec!r}".strip()
        raise UsageError(f"{named} is neither a checkpoint file nor a preset ({', '.join(list_presets())})")
    if preset_status(spec) == "untrained":
        raise UsageError(
            f"{given} is untrained (its refinement and decoder layers are random, so its map would mean nothing): "
            f"train it (aeroseg train ...) and pass the checkpoint to {command}, or use a model that works today: "
            f"{_working_models()}"
        )


def _working_models() -> str:
    """The models this aeroseg can get without training: released models it can convert, training-free presets."""
    from models import hub

    released = [f"`aeroseg weights download {n}`" for n in released_models() if hub.offered(hub.REGISTRY[n])]
    return ", ".join([*released, *(f"--model {n} (no training)" for n in training_free())])


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
