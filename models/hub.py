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
    sha256: str  # "" where no SHA-256 is published: then ``git_blob`` identifies the file
    filename: str
    size_mb: int
    description: str
    git_blob: str = ""  # a file in a git repository: its blob id there (SHA-1 of "blob <size>\0" + its bytes)

    @property
    def checksum(self) -> tuple[str, str]:
        """(what, hex digest) the file is verified by: its SHA-256, else its git blob id."""
        return ("SHA-256", self.sha256) if self.sha256 else ("git blob id", self.git_blob)


_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_SAM = "https://dl.fbaipublicfiles.com/segment_anything"
_SEGEARTH = "https://raw.githubusercontent.com/likyoo/SegEarth-OV/3e22a969b32c6d751bdbba64a88a0b670e630f55"
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
        # SegEarth-OV's SimFeatUp (configs/base_config.py): in its GitHub repository, which publishes no SHA-256 and
        # no size; the repository's tree names the file by its git blob id, which identifies the bytes as well
        WeightSpec(
            "simfeatup-vit-b-16",
            f"{_SEGEARTH}/simfeatup_dev/weights/xclip_jbu_one_million_aid.ckpt",
            "",
            "xclip_jbu_one_million_aid.ckpt",
            4,
            "SimFeatUp upsampler for CLIP ViT-B/16, trained on Million-AID (SegEarth-OV)",
            git_blob="d40f00838331331faa04a926ea5991f5203f91a8",
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


def git_blob_id(data: bytes) -> str:
    """git's blob id of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def file_checksum(spec: WeightSpec, path: Path) -> str:
    """The digest of ``path`` of the kind ``spec`` is verified by (``spec.checksum``)."""
    return sha256_file(path) if spec.sha256 else git_blob_id(Path(path).read_bytes())


def spec_for(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def clip_weights_name(clip_name: str) -> str:
    return f"clip-{clip_name.lower()}"


def sam_weights_name(sam_name: str) -> str:
    return f"sam-{sam_name.replace('_', '-')}"


def simfeatup_weights_name(clip_name: str) -> str:
    return f"simfeatup-{clip_name.lower()}"


def required_weights(cfg: AerOSegConfig) -> list[str]:
    """Registry names of the official files ``models.build(cfg)`` reads (user file paths are not listed)."""
    names = []
    if cfg.arch in ("aeroseg", "zeroshot", "segearth") and cfg.clip_weights in REGISTRY_NAMES:
        names.append(clip_weights_name(cfg.clip.name))
    if cfg.arch == "aeroseg" and cfg.guidance == "sam" and cfg.sam_weights in REGISTRY_NAMES:
        names.append(sam_weights_name(cfg.sam.name))
    if cfg.arch == "segearth" and cfg.segearth.upsampler_weights in REGISTRY_NAMES:
        names.append(simfeatup_weights_name(cfg.clip.name))
    return names


def _problem(name: str) -> str | None:
    """Why registry file ``name`` cannot be used (missing, unverified), or None when it is present and verified."""
    spec = spec_for(name)
    path = cached_path(spec)
    if not path.is_file():
        return f"{name} ({spec.size_mb} MB) not found at {path}"
    kind, expected = spec.checksum
    if file_checksum(spec, path) != expected:
        return f"{name} ({spec.size_mb} MB) at {path} does not match the published {kind}"
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
    """Stream ``spec`` (from ``mirror``/filename when given) into ``out`` and verify its SHA-256 (or git blob id).

    Raises ``WeightsError`` when the source cannot be reached or the bytes are not the published file; where the
    bytes go, and making that file appear whole or not at all, is the caller's business.
    """
    url = spec.url if not mirror else mirror.rstrip("/") + "/" + spec.filename
    digest = hashlib.sha256()
    held: list[bytes] = []  # a git blob id needs the size first: such (small) files are hashed once complete
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
            if spec.sha256:
                digest.update(block)
            else:
                held.append(block)
            done += len(block)
            if progress:
                progress(done, total)
    got = digest.hexdigest() if spec.sha256 else git_blob_id(b"".join(held))
    kind, expected = spec.checksum
    if got != expected:
        raise WeightsError(
            f"checksum mismatch for {spec.name} from {url}: got {kind} {got[:16]}..., expected "
            f"{expected[:16]}...; the file was refused"
        )


def verify_file(spec: WeightSpec, source: Path) -> None:
    """Refuse a file fetched by other means unless it is the published one (SHA-256, or git blob id)."""
    if not source.is_file():
        raise WeightsError(f"{source} is not a file")
    got = file_checksum(spec, source)
    kind, expected = spec.checksum
    if got != expected:
        raise WeightsError(f"{source} is not the official {spec.name} file ({kind} {got[:16]}...); refused")


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
