"""Load ``--model`` (a checkpoint path, a converted released model or a preset; ``modelchoice`` picks one when it is
not given), and resolve ``--device`` and ``--precision``."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import models
from aeroseg_cli.files.errors import CLIError, UsageError
from models import hub
from models.hub import WeightsError


@dataclass
class LoadedModel:
    """A model ready for inference and what the CLI must know about it."""

    model: nn.Module
    classes: list[str] | None  # a checkpoint's class names (its default classes), None for a preset
    label: str  # for tags and summaries
    vocabulary: object | None = None  # models.Vocabulary of a checkpoint; None for presets


def load_model(spec: str) -> LoadedModel:
    """A checkpoint file, a released model converted into the cache (``aeroseg weights download catseg-vitb16``) or
    a preset name -> the model in eval mode with its classes, label and vocabulary."""
    path = Path(spec).expanduser()
    converted = hub.converted_model(spec) if not path.is_file() else None
    if path.is_file() or converted:
        try:
            model, ckpt = models.load_checkpoint(converted or path)
        except WeightsError as exc:
            raise CLIError(str(exc)) from None
        label = f"{spec} ({hub.REGISTRY[spec].description})" if converted else f"{path.name} ({model.cfg.arch})"
        return LoadedModel(model, ckpt["class_names"], label, ckpt.get("vocabulary"))
    if path.suffix in (".pt", ".pth", ".ckpt", ".safetensors") or "/" in spec:
        raise UsageError(f"--model {spec}: no such checkpoint file")
    if spec not in models.list_presets():
        names = ", ".join(models.list_presets())
        raise UsageError(f"--model {spec!r} is neither a checkpoint file nor a preset ({names})")
    try:
        torch.manual_seed(0)  # random-initialised presets (tiny, probe) are the same model in every process and run
        model = models.build(spec)
    except WeightsError as exc:
        raise CLIError(str(exc)) from None
    return LoadedModel(model.eval(), None, spec)


def resolve_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CLIError(f"--device {text}: CUDA is not available on this machine (use --device cpu or auto)")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CLIError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here")
        return device
    raise UsageError(f"--device must be auto, cpu or cuda[:N], got {text!r}")


BF16_CPU_WARNING = (
    "--precision bf16 on a CPU without bf16 matrix units (AMX) is slower than fp32 and changes "
    "results slightly; fp32 (the default on CPU) is faster here"
)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Scoped mixed precision (never global): a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@functools.cache
def cpu_bf16_matrix_units() -> bool:
    """Whether this CPU has bf16 matrix units (Intel AMX-BF16, ``amx_bf16`` in /proc/cpuinfo), the hardware that makes
    bf16 matrix multiplies faster than fp32 on a CPU (AVX512-BF16 alone did not here: benchmarks/precision_check.py
    --speed). False where /proc/cpuinfo cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines())


def resolve_precision(text: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. ``auto``: bf16 on a GPU that supports it, else fp32.

    Every accepted pair runs (tests/test_precision.py); fp16 on a CPU is refused here. What is worth a warning is
    ``precision_warning``'s: the caller gives it once every check has passed (a refused run shows only its error)."""
    if text not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"--precision must be auto, fp32, bf16 or fp16, got {text!r}")
    if text == "fp32" or (text == "auto" and device.type != "cuda"):
        return None
    if text == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if text == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    return torch.bfloat16 if text == "bf16" else torch.float16


def precision_warning(text: str, device: torch.device) -> str | None:
    """bf16 on a CPU without bf16 matrix units is slower than fp32: said once, without the ``aeroseg: warning:``
    prefix (the command line adds it, the Python API gives it as an ``AerosegWarning``)."""
    if text == "bf16" and device.type == "cpu" and not cpu_bf16_matrix_units():
        return BF16_CPU_WARNING
    return None
