"""Official pretrained weights: where they come from, their SHA-256, where they live, how they load.

The cache is ``$AEROSEG_HOME`` (default ``~/.cache/aeroseg``). Every file is checked against its published SHA-256
on download and again before it is loaded, so a truncated or replaced file is never used. torch is imported only by
the functions that read tensors, so ``from models import hub`` (``aeroseg weights list``) starts fast.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import torch

    from .config import AerOSegConfig

REGISTRY_NAMES = ("openai", "official")  # config values that mean "the registry file of this backbone"


class WeightsError(RuntimeError):
    """A weights file is missing, unreachable, corrupt or of the wrong layout (message: one line, what to do)."""


@dataclass(frozen=True)
class WeightSpec:
    name: str  # the name users type: ``aeroseg weights download sam-vit-l``
    url: str
    sha256: str
    filename: str
    size_mb: int
    description: str


_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_SAM = "https://dl.fbaipublicfiles.com/segment_anything"
REGISTRY: dict[str, WeightSpec] = {
    s.name: s
    for s in (
        WeightSpec(
            "clip-vit-b-16",
            f"{_OPENAI}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
            "ViT-B-16.pt",
            335,
            "OpenAI CLIP ViT-B/16 (open_clip 'openai' tag)",
        ),
        WeightSpec(
            "clip-vit-l-14",
            f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            "ViT-L-14.pt",
            890,
            "OpenAI CLIP ViT-L/14 (open_clip 'openai' tag)",
        ),
        WeightSpec(  # CAT-Seg's ViT-L model (catseg-vitl14) is built on this one; size derived, not measured here
            "clip-vit-l-14-336",
            f"{_OPENAI}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
            "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
            "ViT-L-14-336px.pt",
            891,
            "OpenAI CLIP ViT-L/14@336px (open_clip 'openai' tag of ViT-L-14-336)",
        ),
        WeightSpec(
            "sam-vit-b",
            f"{_SAM}/sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            "sam_vit_b_01ec64.pth",
            358,
            "Segment Anything ViT-B",
        ),
        WeightSpec(
            "sam-vit-l",
            f"{_SAM}/sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            "sam_vit_l_0b3195.pth",
            1192,
            "Segment Anything ViT-L",
        ),
        WeightSpec(
            "sam-vit-h",
            f"{_SAM}/sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            "sam_vit_h_4b8939.pth",
            2446,
            "Segment Anything ViT-H",
        ),
    )
}


def home() -> Path:
    """The weights cache: ``$AEROSEG_HOME`` or ``~/.cache/aeroseg``."""
    env = os.environ.get("AEROSEG_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aeroseg"


def cached_path(spec: WeightSpec) -> Path:
    return home() / "weights" / spec.filename


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def spec_for(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def clip_weights_name(clip_name: str) -> str:
    return f"clip-{clip_name.lower()}"


def sam_weights_name(sam_name: str) -> str:
    return f"sam-{sam_name.replace('_', '-')}"


def required_weights(cfg: AerOSegConfig) -> list[str]:
    """Registry names of the official files ``models.build(cfg)`` reads (user file paths are not listed)."""
    names = []
    if cfg.arch in ("aeroseg", "zeroshot") and cfg.clip_weights in REGISTRY_NAMES:
        names.append(clip_weights_name(cfg.clip.name))
    if cfg.arch == "aeroseg" and cfg.guidance == "sam" and cfg.sam_weights in REGISTRY_NAMES:
        names.append(sam_weights_name(cfg.sam.name))
    return names


def _problem(name: str) -> str | None:
    """Why registry file ``name`` cannot be used (missing, unverified), or None when it is present and verified."""
    spec = spec_for(name)
    path = cached_path(spec)
    if not path.is_file():
        return f"{name} ({spec.size_mb} MB) not found at {path}"
    if sha256_file(path) != spec.sha256:
        return f"{name} ({spec.size_mb} MB) at {path} does not match the published SHA-256"
    return None


def resolve_all(names: list[str], extra_problems: list[str] | tuple[str, ...] = ()) -> dict[str, Path]:
    """The verified local files of registry weights ``names``, each checked once.

    Every missing or unverified file (plus ``extra_problems``, e.g. a user's weight path that does not exist) is
    reported together in one ``WeightsError`` line with the one command that fetches all the registry files.
    """
    problems = [(n, p) for n in names if (p := _problem(n)) is not None]
    if problems or extra_problems:
        bad = [n for n, _ in problems]
        fix = f"; run `aeroseg weights download {' '.join(bad)}`" if bad else ""
        offline = " (offline: fetch them elsewhere and run `aeroseg weights import NAME FILE`)" if bad else ""
        raise WeightsError(
            "weights not available: " + "; ".join([*(p for _, p in problems), *extra_problems]) + fix + offline
        )
    return {n: cached_path(spec_for(n)) for n in names}


def resolve(name: str) -> Path:
    """The verified local file of registry weights ``name``; a clear error naming the command that gets it."""
    return resolve_all([name])[name]


def fetch(
    spec: WeightSpec,
    out: BinaryIO,
    mirror: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Stream ``spec`` (from ``mirror``/filename when given) into ``out`` and verify its SHA-256.

    Raises ``WeightsError`` when the source cannot be reached or the bytes are not the published file; where the
    bytes go, and making that file appear whole or not at all, is the caller's business.
    """
    url = spec.url if not mirror else mirror.rstrip("/") + "/" + spec.filename
    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(
            f"cannot download {spec.name} from {url} ({reason}); when offline, fetch the file elsewhere and "
            f"run `aeroseg weights import {spec.name} FILE`"
        ) from None
    with response:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while block := response.read(1 << 20):
            out.write(block)
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    if digest.hexdigest() != spec.sha256:
        raise WeightsError(
            f"checksum mismatch for {spec.name} from {url}: got {digest.hexdigest()[:16]}..., expected "
            f"{spec.sha256[:16]}...; the file was refused"
        )


def verify_file(spec: WeightSpec, source: Path) -> None:
    """Refuse a file fetched by other means unless it is the published one (SHA-256)."""
    if not source.is_file():
        raise WeightsError(f"{source} is not a file")
    got = sha256_file(source)
    if got != spec.sha256:
        raise WeightsError(f"{source} is not the official {spec.name} file (SHA-256 {got[:16]}...); refused")


# -- reading weight files -------------------------------------------------------------------------------------
def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


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


def read_state_dict(path: Path, trusted_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a plain state dict (``torch.load(weights_only=True)``).

    TorchScript archives (the official OpenAI CLIP files) are read with ``torch.jit.load`` only when
    ``trusted_torchscript`` says their SHA-256 was just verified against the published one.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if _is_torchscript(path):
        if not trusted_torchscript:
            raise WeightsError(
                f"{path} is a TorchScript archive; only the official CLIP files (checked by SHA-256) are read that "
                "way. Convert it to a state dict or safetensors file"
            )
        return {k: v for k, v in torch.jit.load(str(path), map_location="cpu").state_dict().items()}
    obj = load_tensors(path, f"cannot read {path} as a weights file")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return obj


def load_weights_file(name_or_path: str, registry_name: str) -> dict[str, torch.Tensor]:
    """State dict for a config's weights field: the registry file (verified) or a user's file path."""
    if name_or_path in REGISTRY_NAMES:
        return read_state_dict(resolve(registry_name), trusted_torchscript=True)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    return read_state_dict(path)
