"""Training settings: defaults are the reference recipe; a TOML/YAML file and the command line override them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.files.safety import check_input_file


@dataclass
class TrainConfig:
    dataset: str = "dubai"
    data_root: str = ""
    preset: str = "aeroseg-vitb16-samvitl"
    init: str = ""  # a checkpoint whose tensors that fit the preset's network start the run ("": as built)
    iters: int = 0  # 0: the paper's length for the dataset
    batch_size: int = 4  # global, split across ranks
    lr: float = 2e-4
    backbone_lr: float = 2e-6  # CLIP q/v (lr x 0.01)
    weight_decay: float = 1e-4
    clip_grad: float = 0.01  # full-model gradient norm (CAT-Seg)
    precision: str = "auto"
    seed: int = 0
    num_workers: int = 2
    output: str = "runs/train"
    ckpt_every: int = 1000
    log_every: int = 10
    val_every: int = 0
    val_limit: int = 0  # 0: the whole validation split
    max_category_area: float = 1.0  # CAT-Seg/OVRS SINGLE_CATEGORY_MAX_AREA: 1.0 = no category-area constraint
    save_dtype: str = "float32"  # or "float16": half-size checkpoint (the training state stays fp32)
    model_overrides: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        """The defaults overridden by the settings of a TOML or YAML file (not yet validated: the command line may
        still override them); unknown keys, malformed files and wrong types are usage errors."""
        check_input_file(path, "--config")
        if path.suffix.lower() not in (".toml", ".yaml", ".yml"):
            raise UsageError("--config must be a .toml or .yaml file")
        data = _parse(path)
        if not isinstance(data, dict):
            raise UsageError(f"--config {path.name}: expected a table of settings, got {type(data).__name__}")
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise UsageError(f"--config {path.name}: unknown setting(s) {', '.join(unknown)}")
        for name, value in data.items():
            _check_type(name, value, types[name])
        return cls(**data)

    def validate(self) -> None:
        from aeroseg_cli.datasets.specs import DATASETS

        if self.dataset not in DATASETS:
            raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if not self.data_root:
            raise UsageError("--data-root is required (the folder holding the dataset)")
        for name in ("iters", "batch_size", "ckpt_every", "log_every"):
            if getattr(self, name) < 0 or (name != "iters" and getattr(self, name) == 0):
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        for name in ("num_workers", "val_every", "val_limit", "seed"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        for name in ("lr", "backbone_lr"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a positive number, got {getattr(self, name)}")
        for name in ("weight_decay", "clip_grad"):  # clip_grad 0: no clipping
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise UsageError(f"{name} must be a number >= 0, got {getattr(self, name)}")
        if not 0 < self.max_category_area <= 1:
            raise UsageError(f"max_category_area must be in (0, 1], got {self.max_category_area}")
        if self.init and not Path(self.init).expanduser().is_file():
            raise UsageError(f"--init {self.init}: no such checkpoint file")
        if self.save_dtype not in ("float32", "float16"):
            raise UsageError(f"save_dtype must be float32 or float16, got {self.save_dtype!r}")


_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "a whole number"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a string"),
    "dict": ((dict,), "a table"),
}


def _check_type(name: str, value: object, annotation: str) -> None:
    expected, want = _TYPES.get(str(annotation), ((object,), "a value"))
    if isinstance(value, bool) or not isinstance(value, expected):
        raise UsageError(f"setting {name} must be {want}, got {value!r}")


def toml_module():
    """``tomllib`` (Python 3.11+), or the ``tomli`` backport it was made from (Python 3.10, a dependency there)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    return tomllib


def _parse(path: Path) -> object:
    """The file's data; a file that is not UTF-8 text or not valid TOML/YAML is refused in one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--config {path.name}: not a text file") from None
    try:
        if path.suffix.lower() == ".toml":
            return toml_module().loads(text)
        import yaml

        return yaml.safe_load(text) or {}
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise UsageError(f"--config {path.name}: malformed TOML ({exc})") from None
    except Exception as exc:  # yaml.YAMLError; its messages run over several lines
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"--config {path.name}: malformed YAML ({first})") from None
