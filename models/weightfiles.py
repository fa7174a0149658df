"""Reading weight files in the formats they are published in: safetensors, plain ``torch.save`` state dicts, and
TorchScript archives (OpenAI's CLIP files), whose tensors are copied once into a safetensors file.

Formats are told apart by their bytes, not their names (a cached file keeps its registry name whatever source it
came from). torch is imported only inside the functions, so ``from models import hub`` stays fast.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WeightsError

if TYPE_CHECKING:
    import torch

# integer buffers OpenAI's TorchScript archives hold beside the weights (clip.py reads model.input_resolution)
OPENAI_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def file_format(path: Path) -> str:
    """``"safetensors"``, ``"torchscript"``, ``"torch"`` (a ``torch.save`` zip or legacy pickle) or ``"unknown"``."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n <= os.path.getsize(path) - 8:
            return "safetensors"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        return "torchscript" if any(n.endswith("/constants.pkl") or "/code/" in n for n in names) else "torch"
    return "torch" if head[:1] == b"\x80" else "unknown"


def load_tensors(path: Path, refused: str):
    """``torch.load(weights_only=True)`` of ``path``; a file it cannot or will not read raises ``WeightsError``
    ("{refused} (why)") in one plain line. Never torch's own advice to retry with ``weights_only=False`` (which runs
    whatever code the file holds), nor its terminal escape codes or pickle-protocol warning."""
    import pickle
    import re
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        why = "it holds pickled Python objects, which are never loaded: only tensors and plain containers are"
    except Exception as exc:  # not a torch file, truncated
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().split("\n")[0][:200]
        why = f"{type(exc).__name__}: {first}"
    raise WeightsError(f"{refused} ({why})")


def read_state_dict(path: Path, torchscript: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or a plain state dict (``torch.load(weights_only=True)``; a
    ``{"state_dict": ...}`` wrapper is unwrapped).

    A TorchScript archive is read (``torchscript_state``) only when ``torchscript`` says its SHA-256 was just checked
    (published or accepted by the user): runs read the safetensors copy the weights cache keeps of it.
    """
    import torch

    path = Path(path)
    kind = file_format(path)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"cannot read {path} as safetensors ({str(exc)[:200]})") from None
    if kind == "torchscript":
        if not torchscript:
            raise WeightsError(
                f"{path} is a TorchScript archive, which is read only when imported into the weights cache: run "
                "`aeroseg weights import NAME FILE` (it checks the published SHA-256; --accept-checksum for a copy)"
            )
        return torchscript_state(path)
    obj = load_tensors(path, f"cannot read {path} as a weights file")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return obj


def torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, through ``torch.jit.load`` (deprecated in torch 2.14, and warning so:
    silenced here, the one place that reads an archive, once per file when it enters the weights cache)."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated")
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise WeightsError(f"cannot read the TorchScript archive {path} ({str(exc).splitlines()[0][:200]})") from None
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


@contextmanager
def _beside(path: Path) -> Iterator[Path]:
    """A new empty file beside ``path`` that replaces it when the block succeeds and is removed when it fails. Made
    with mode 0o666 so the process's umask applies as to any file it creates: nothing changes the umask (which would
    race with other threads) and nothing caches it (the umask may change after import)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        name = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield name
        os.replace(name, path)
    finally:
        name.unlink(missing_ok=True)


def write_safetensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``state`` as a safetensors file at ``path``, whole or not at all (written beside it, then renamed)."""
    from safetensors.torch import save_file

    with _beside(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)


def write_json(data: dict, path: Path) -> None:
    """A small JSON file at ``path``, whole or not at all."""
    with _beside(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
