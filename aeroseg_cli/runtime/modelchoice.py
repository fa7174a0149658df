"""Which model a command uses when ``--model`` is not given: the user's default, else the best one on this machine.

Torch-free: the choice is made from the cache's contents before any work, and ``aeroseg weights default`` starts fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.runtime.modelcheck import released_models, training_free
from models import hub


@dataclass(frozen=True)
class Choice:
    """What ``--model`` resolves to (a checkpoint path, a converted model's name or a preset) and why."""

    spec: str
    why: str


def settings_path() -> Path:
    return hub.home() / "settings.json"


def read_default() -> str | None:
    """The user's default model (``aeroseg weights default``), or None."""
    try:
        value = json.loads(settings_path().read_text()).get("default_model")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def write_default(value: str | None) -> None:
    """Store (None: forget) the default model, keeping any other setting; the file is replaced whole."""
    from aeroseg_cli.files.atomic import atomic_output

    path = settings_path()
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError):
        settings = {}
    settings = settings if isinstance(settings, dict) else {}
    settings.pop("default_model", None)
    if value is not None:
        settings["default_model"] = value
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2) + "\n")


def _preset_missing(name: str) -> list[str] | None:
    """The registry files preset ``name`` needs that are not in the cache; None when this aeroseg has no such preset."""
    from models.presets import list_presets, preset_config

    if name not in list_presets():
        return None
    needed = hub.required_weights(preset_config(name))
    return [n for n in needed if n in hub.REGISTRY and not hub.cached_path(hub.REGISTRY[n]).is_file()]


def choose_model(given: str | None) -> Choice:
    """The model ``segment`` and ``evaluate`` use. ``--model`` given always wins; else, in this order:

    1. the user's default (``aeroseg weights default NAME|CKPT``, kept in ``$AEROSEG_HOME/settings.json``); one that
       is no longer there is an error, never silently replaced;
    2. a released model downloaded and converted into the cache, ``catseg-vitb16`` before ``catseg-vitl14``: both are
       open-vocabulary CAT-Seg models trained on COCO-Stuff; L scores higher on CAT-Seg's benchmarks but its CLIP
       costs about 3.5 times as much per window (24 layers of width 1024 against 12 of 768, 577 tokens each), which
       on the CPUs most GIS users have turns minutes into hours; B's 384 crop is also the paper's and this tool's
       default tile. A machine that has both gets B; ``aeroseg weights default catseg-vitl14`` picks L;
    3. a training-free preset whose files are cached (``models.presets``), ``zeroshot-vitb16`` (the plain CLIP
       correlation baseline) last, e.g. SegEarth-OV (made for remote sensing) before it;
    4. none of these: a ``CLIError`` listing each choice with its download size and the one command that gets it.

    Availability is judged from the cache's contents without hashing; loading the model verifies every file.
    """
    if given:
        return Choice(given, "--model")
    default = read_default()
    if default is not None:
        if not _default_present(default):
            raise CLIError(
                f"your default model {default} (set with `aeroseg weights default`) is not on this machine any "
                "more: set another with `aeroseg weights default NAME|CKPT`, clear it with `--clear`, or pass --model"
            )
        return Choice(default, "your default, set with `aeroseg weights default`")
    for name in released_models():  # the demo model (closed vocabulary) only by name: --model demo
        if hub.REGISTRY[name].open_vocabulary and hub.converted_model(name):
            return Choice(name, f"the best model on this machine: {hub.REGISTRY[name].description.split(':')[0]}")
    for name in training_free():
        if _preset_missing(name) == []:
            return Choice(name, f"the best model on this machine: the training-free {name}")
    raise CLIError(no_model_message())


def _default_present(value: str) -> bool:
    """A stored default still names something here: a checkpoint file, a converted model, or a preset."""
    from models.presets import list_presets

    spec = hub.REGISTRY.get(value)
    if spec is not None and spec.convert is not None:
        return hub.converted_model(value) is not None
    return Path(value).is_file() or value in list_presets()


def no_model_message() -> str:
    """No model given and none on this machine: each choice this aeroseg can use, its download size (from each
    source: OpenAI's CLIP file, else open_clip's larger copy) and the one command that gets it."""
    choices = []
    for name in released_models():
        spec = hub.REGISTRY[name]
        if hub.offered(spec):
            choices.append(f"`aeroseg weights download {name}` ({spec.description}; {spec.size_text()})")
    for name in training_free():
        missing = _preset_missing(name)
        if missing:
            choices.append(
                f"`aeroseg weights download {' '.join(missing)}` (for the training-free {name}; {_sizes(missing)})"
            )
    return (
        "no --model given and no model is on this machine; get one: " + "; ".join(choices) + "; or pass --model "
        "CHECKPOINT (a trained aeroseg checkpoint), and make any of them the default with "
        "`aeroseg weights default NAME|CKPT`"
    )


def _sizes(names: list[str]) -> str:
    """The download size of registry files ``names``, each as ``size_text`` says it (from each source it may come
    from: OpenAI's CLIP file is 335 MB, open_clip's fp32 copy 571 MB)."""
    specs = [hub.REGISTRY[n] for n in names]
    if len(specs) == 1:
        return specs[0].size_text()
    return " + ".join(f"{s.name}: {s.size_text()}" for s in specs)


def check_default(value: str) -> str:
    """What ``aeroseg weights default VALUE`` stores: a checkpoint's absolute path (the file must be an intact
    aeroseg checkpoint) or a model name that is usable now; ``UsageError`` otherwise (a random test preset too)."""
    from aeroseg_cli.runtime.modelcheck import check_preset
    from models.presets import list_presets, preset_status

    path = Path(value).expanduser()
    if path.is_file():
        from models.checkpoint import read_checkpoint

        try:
            read_checkpoint(path)
        except hub.WeightsError as exc:
            raise UsageError(str(exc)) from None
        return str(path.resolve())
    check_preset(value, "segment", option="")  # an unknown name, an untrained preset, a released model not here
    if value in list_presets() and value not in hub.REGISTRY and preset_status(value) == "test":
        raise UsageError(
            f"{value} is a test preset (random weights, for tests and measurements): its maps mean nothing, so it "
            "cannot be the default; pass it with --model where you need it"
        )
    missing = _preset_missing(value) or []
    if missing:
        raise UsageError(f"{value} needs {', '.join(missing)}: run `aeroseg weights download {' '.join(missing)}`")
    return value
