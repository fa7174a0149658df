"""Pretrained weights: where each file is published, its SHA-256, where it lives in the cache, how it is verified.

The cache is ``$AEROSEG_HOME`` (default ``~/.cache/aeroseg``). ``weights/`` holds each registry file as downloaded
or imported, under its registry file name whatever source it came from, and beside it a record
(``<file>.record.json``): its SHA-256 and what that hash is, "published" (a published SHA-256 of one of its
sources), "recorded" (none is published for the source used: the hash of the file as first downloaded, whole and
its tensors read and checked) or "accepted" (the user's own copy, imported with ``--accept-checksum``). A TorchScript
archive's tensors are copied once into ``<stem>.tensors.safetensors``, which is what runs read. ``models/`` holds
models converted from released checkpoints (``WeightSpec.convert``; such a file is placed only with its model).
Every file is checked against its hash before it is read, so a truncated or replaced file is never used. No torch
import here (``aeroseg weights list`` starts fast), except through ``models.convert`` where this aeroseg has it.
"""

from __future__ import annotations

import ast
import hashlib
import http.client
import importlib
import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import WeightsError
from .weightfiles import load_tensors  # noqa: F401  (re-exported: checkpoint and training read through it)

if TYPE_CHECKING:
    from .config import AerOSegConfig

REGISTRY_NAMES = ("openai", "official")  # config values that mean "the registry file of this backbone"
# a cached file's state (``status``) and what its hash is (``Record.trust``), in the words every command uses
STATUS_WORDS = {
    "missing": "missing",
    "unverified": "present, not yet verified",
    "published": "official (published SHA-256)",
    "recorded": "SHA-256 recorded at download (none published)",
    "git-blob": "official (git blob id checked at download)",
    "accepted": "accepted (your own copy's SHA-256)",
}


@dataclass(frozen=True)
class Source:
    """One place a registry file is published: URL, SHA-256 (None: not published), the name a mirror holds, its
    size and whose file it is, for messages ("OpenAI's file", "open_clip's safetensors copy"); ``git_blob``: for a
    file in a git repository that publishes no SHA-256, its blob id there (SHA-1 of "blob <size>\\0" + its bytes, as
    the repository's tree names it), which the download must match."""

    url: str
    sha256: str | None
    filename: str
    size_mb: int | None = None
    git_blob: str | None = None
    what: str = "the file"


@dataclass(frozen=True)
class WeightSpec:
    """A registry file. Its first source is (url, sha256, filename, size_mb); ``alternates`` are tried after it, in
    order. ``convert`` names the converter (``models.convert.CONVERTERS``) that turns the downloaded file into an
    aeroseg checkpoint in the cache (released models such as CAT-Seg's); None for backbone weights."""

    name: str  # the name users type: ``aeroseg weights download sam-vit-l``
    url: str
    sha256: str | None  # None: not published; the first download records the file's own
    filename: str  # the file name in the cache (and on a mirror)
    size_mb: int | None
    description: str
    convert: str | None = None
    alternates: tuple[Source, ...] = ()
    git_blob: str | None = None  # the first source's git blob id (``Source.git_blob``)
    what: str = "the file"  # whose file the first source is, for messages
    open_vocabulary: bool = True  # a released model for any class names (False: the demo): the default-model choice

    @property
    def sources(self) -> tuple[Source, ...]:
        first = Source(self.url, self.sha256, self.filename, self.size_mb, git_blob=self.git_blob, what=self.what)
        return (first, *self.alternates)

    @property
    def published(self) -> frozenset[str]:
        """Every published SHA-256 among the sources (the hashes a file may have to count as official)."""
        return frozenset(s.sha256 for s in self.sources if s.sha256)

    def size_text(self) -> str:
        """The download's size from each source that would be used, in the order they are tried: "335 MB from
        OpenAI's file, 571 MB from open_clip's safetensors copy" (open_clip's copies are fp32, OpenAI's fp16)."""
        if not self.size_mb:
            return "size not published"
        sizes: dict[int, str] = {}
        for s in self.sources:
            if s.size_mb and s.size_mb not in sizes:
                sizes[s.size_mb] = s.what
        if len(sizes) == 1:
            return f"{self.size_mb} MB"
        return ", ".join(f"{mb} MB from {what}" for mb, what in sizes.items())


def _open_clip_hf(repo: str, size_mb: int) -> tuple[Source, ...]:
    """open_clip's Hugging Face copies of an OpenAI CLIP (open_clip ``pretrained.py``: ``hf_hub="timm/<repo>/"``,
    safetensors preferred, ``open_clip_pytorch_model.bin`` beside it): the same weights in fp32 under open_clip's
    names (sizes: the tensors' bytes). open_clip publishes no SHA-256 for them, so the first download records it."""
    files = {"open_clip_model.safetensors": "safetensors", "open_clip_pytorch_model.bin": ".bin"}
    base = f"https://huggingface.co/timm/{repo}/resolve/main"
    return tuple(
        Source(f"{base}/{f}", None, f"{repo}/{f}", size_mb, what=f"open_clip's {kind} copy")
        for f, kind in files.items()
    )


_OPENAI = "https://openaipublic.azureedge.net/clip/models"  # openai/CLIP clip.py; answers 404 since late 2025
_SAM = "https://dl.fbaipublicfiles.com/segment_anything"
_CATSEG = "https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main"  # CAT-Seg README "Pretrained Models"
_SEGEARTH = "https://raw.githubusercontent.com/likyoo/SegEarth-OV/3e22a969b32c6d751bdbba64a88a0b670e630f55"
PACKAGED = Path(__file__).resolve().parent / "packaged"  # files installed with aeroseg (package data of the wheel)
REGISTRY: dict[str, WeightSpec] = {
    s.name: s
    for s in (
        WeightSpec(
            "clip-vit-b-16",
            f"{_OPENAI}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
            "ViT-B-16.pt",
            335,
            "OpenAI CLIP ViT-B/16 (TorchScript; open_clip's fp32 copy as fallback)",
            alternates=_open_clip_hf("vit_base_patch16_clip_224.openai", 571),
            what="OpenAI's file",
        ),
        WeightSpec(
            "clip-vit-l-14",
            f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            "ViT-L-14.pt",
            890,
            "OpenAI CLIP ViT-L/14 (TorchScript; open_clip's fp32 copy as fallback)",
            alternates=_open_clip_hf("vit_large_patch14_clip_224.openai", 1632),
            what="OpenAI's file",
        ),
        WeightSpec(
            "clip-vit-l-14-336",
            f"{_OPENAI}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
            "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
            "ViT-L-14-336px.pt",
            891,
            "OpenAI CLIP ViT-L/14 at 336 px, CAT-Seg (L)'s CLIP (TorchScript; open_clip's fp32 copy as fallback)",
            alternates=_open_clip_hf("vit_large_patch14_clip_336.openai", 1633),
            what="OpenAI's file",
        ),
        WeightSpec(
            "sam-vit-b",
            f"{_SAM}/sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            "sam_vit_b_01ec64.pth",
            358,
            "Segment Anything ViT-B",
            what="Meta's file",
        ),
        WeightSpec(
            "sam-vit-l",
            f"{_SAM}/sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            "sam_vit_l_0b3195.pth",
            1192,
            "Segment Anything ViT-L",
            what="Meta's file",
        ),
        WeightSpec(
            "sam-vit-h",
            f"{_SAM}/sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            "sam_vit_h_4b8939.pth",
            2446,
            "Segment Anything ViT-H",
            what="Meta's file",
        ),
        WeightSpec(
            "catseg-vitb16",
            f"{_CATSEG}/model_base.pth",
            None,
            "model_base.pth",
            None,
            "CAT-Seg (B): CLIP ViT-B/16 at 384, trained on COCO-Stuff, open vocabulary",
            convert="catseg",
            what="CAT-Seg's release",
        ),
        WeightSpec(
            "catseg-vitl14",
            f"{_CATSEG}/model_large.pth",
            None,
            "model_large.pth",
            None,
            "CAT-Seg (L): CLIP ViT-L/14 at 336, trained on COCO-Stuff, open vocabulary",
            convert="catseg",
            what="CAT-Seg's release",
        ),
        # SegEarth-OV's SimFeatUp (its configs/base_config.py); its repository publishes neither a SHA-256 nor the
        # size, but its tree names the file by its git blob id, which a download must match
        WeightSpec(
            "simfeatup-vit-b-16",
            f"{_SEGEARTH}/simfeatup_dev/weights/xclip_jbu_one_million_aid.ckpt",
            None,
            "xclip_jbu_one_million_aid.ckpt",
            None,
            "SimFeatUp upsampler for CLIP ViT-B/16, trained on Million-AID (SegEarth-OV, training-free)",
            git_blob="d40f00838331331faa04a926ea5991f5203f91a8",
            what="SegEarth-OV's file",
        ),
        # The offline demo model (the demo preset trained by this project on the Dubai tiles; sample_data/LICENSES.md).
        # No release URL is published: its source is the copy installed with aeroseg, checked like any download.
        WeightSpec(
            "demo",
            (PACKAGED / "demo_model.pt").as_uri(),
            "3c26259ec76cd929bf3f2b5a270f12f7a313deca99eadb3f841dd691f530269d",
            "demo_model.pt",
            7,
            "The demo model: the demo preset trained on CPU on the Dubai tiles (5 classes, closed vocabulary)",
            convert="aeroseg",
            what="the copy installed with aeroseg",
            open_vocabulary=False,
        ),
    )
}


# -- names and paths ------------------------------------------------------------------------------------------
def home() -> Path:
    """The weights cache: ``$AEROSEG_HOME`` or ``~/.cache/aeroseg``."""
    env = os.environ.get("AEROSEG_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aeroseg"


def cached_path(spec: WeightSpec) -> Path:
    """The registry file as downloaded or imported."""
    return home() / "weights" / spec.filename


def record_path(spec: WeightSpec) -> Path:
    return home() / "weights" / f"{spec.filename}.record.json"


def tensors_path(spec: WeightSpec) -> Path:
    """A TorchScript archive's tensors as safetensors: what runs read instead of the archive."""
    return home() / "weights" / f"{Path(spec.filename).stem}.tensors.safetensors"


def converted_path(spec: WeightSpec) -> Path:
    """The aeroseg checkpoint a released model (``spec.convert``) is converted into."""
    return home() / "models" / f"{spec.name}.pt"


def converted_model(name: str) -> Path | None:
    """The converted checkpoint of registry model ``name`` when it is in the cache, else None."""
    spec = REGISTRY.get(name)
    if spec is None or spec.convert is None:
        return None
    path = converted_path(spec)
    return path if path.is_file() else None


def converters() -> dict[str, Any]:
    """``models.convert.CONVERTERS`` (name -> converter), or {} where this aeroseg has no such module. torch is
    imported only when the module exists (it builds models)."""
    if "models.convert" not in sys.modules and importlib.util.find_spec("models.convert") is None:
        return {}
    return importlib.import_module("models.convert").CONVERTERS  # at run time: it imports this module


def offered(spec: WeightSpec) -> bool:
    """Whether this aeroseg can make use of ``spec``: a backbone file always, a released model only when its
    converter exists (otherwise it is neither listed, nor suggested, nor downloaded). Decided without importing
    ``models.convert`` where its ``CONVERTERS`` is a literal dict (importing it means torch and the whole network:
    seconds, for ``weights list``)."""
    if spec.convert is None:
        return True
    names = None if "models.convert" in sys.modules else _converter_names()
    return spec.convert in (names if names is not None else converters())


def _converter_names() -> frozenset[str] | None:
    """The keys of ``models.convert.CONVERTERS`` read from the module's source, {} without the module; None where
    the source does not say them plainly (then the module is imported)."""
    found = importlib.util.find_spec("models.convert")
    if found is None or not found.origin:
        return frozenset() if found is None else None
    try:
        tree = ast.parse(Path(found.origin).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if "CONVERTERS" in targets and isinstance(node.value, ast.Dict):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            return frozenset(keys) if len(keys) == len(node.value.keys) else None
    return None


def not_offered(spec: WeightSpec, given: str = "") -> str:
    """Why a released model cannot be had with this aeroseg (``given``: how the user named it, e.g. "--model X")."""
    return (
        f"{given or spec.name} ({spec.description}) cannot be used by this aeroseg yet: it has no {spec.convert!r} "
        f"converter to turn {spec.what} into a model; `aeroseg weights list` shows what can be used"
    )


def git_blob_id(data: bytes) -> str:
    """git's blob id of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


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


def simfeatup_weights_name(clip_name: str) -> str:
    return f"simfeatup-{clip_name.lower()}"


def weight_sources(cfg: AerOSegConfig) -> dict[str, tuple[str, str]]:
    """role -> (the config's value: a registry alias such as "openai" or a file path, the registry name) for every
    pretrained file ``models.build(cfg)`` reads. The one place that says which files a config needs."""
    out = {}
    if cfg.arch in ("aeroseg", "zeroshot", "segearth") and cfg.clip_weights:
        out["clip"] = (cfg.clip_weights, clip_weights_name(cfg.clip.name))
    if cfg.arch == "aeroseg" and cfg.guidance == "sam" and cfg.sam_weights:
        out["sam"] = (cfg.sam_weights, sam_weights_name(cfg.sam.name))
    if cfg.arch == "segearth" and cfg.segearth.upsampler_weights:
        out["upsampler"] = (cfg.segearth.upsampler_weights, simfeatup_weights_name(cfg.clip.name))
    return out


def required_weights(cfg: AerOSegConfig) -> list[str]:
    """Registry names of the official files ``models.build(cfg)`` reads (user file paths are not listed)."""
    return [name for value, name in weight_sources(cfg).values() if value in REGISTRY_NAMES]


# -- records ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """What the cache knows of a registry file: its SHA-256, what that hash is (``STATUS_WORDS``), where the file
    came from, its size and mtime when verified, and the SHA-256 of its safetensors copy (TorchScript archives)."""

    sha256: str
    trust: str
    source: str
    size: int = 0
    mtime_ns: int = 0
    tensors_sha256: str | None = None
    converted_from: str | None = None  # the SHA-256 of the file the converted model was made from


def read_record(spec: WeightSpec) -> Record | None:
    """The file's record; None when there is none (a file placed by an older aeroseg) or it is unreadable."""
    try:
        data = json.loads(record_path(spec).read_text())
        return Record(**{k: data[k] for k in data if k in Record.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def write_record(spec: WeightSpec, record: Record) -> None:
    from .weightfiles import write_json

    write_json({"name": spec.name, **asdict(record)}, record_path(spec))


def expected_hash(spec: WeightSpec, record: Record | None) -> tuple[str | None, str]:
    """(the SHA-256 the cached file must have, what that hash is). A record claiming "published" for a hash the
    registry does not publish (the registry changed) counts as no record."""
    if record is not None and (record.trust != "published" or record.sha256 in spec.published):
        return record.sha256, record.trust
    return spec.sha256, "published"


def status(spec: WeightSpec) -> str:
    """``missing``, ``published``, ``recorded``, ``accepted`` or ``unverified`` (present but never verified by this
    aeroseg: no record yet), from the record alone: nothing is hashed (``weights list``)."""
    if not cached_path(spec).is_file():
        return "missing"
    record = read_record(spec)
    expected, trust = expected_hash(spec, record)
    return trust if expected and record is not None else "unverified"


def identity(name: str) -> dict[str, str]:
    """{"name", "sha256", "trust"} of the cached registry file ``name`` as its record has it: what a run made from
    it is identified by (``--resume``, output tags). Nothing is hashed: loading the model verified the file against
    this very hash (``verify``)."""
    spec = spec_for(name)
    sha256, trust = expected_hash(spec, read_record(spec))
    return {"name": name, "sha256": sha256 or "", "trust": trust}


# -- verification ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cached:
    """A verified registry file: the file runs read (a TorchScript archive's safetensors copy, else the file), the
    registry file's SHA-256 (what lean checkpoints reference) and what that hash is."""

    name: str
    path: Path
    sha256: str
    trust: str


class Unusable(WeightsError):
    """A cached registry file that cannot be used: ``problem`` says what is wrong, the message adds what to do (which
    ``resolve_all`` says once for all files)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}: {fix}")
        self.problem = problem


def _fast_path(spec: WeightSpec, record: Record | None, expected: str) -> Path | None:
    """The safetensors copy of a TorchScript archive verified earlier, when the archive is unchanged since (size and
    mtime as recorded) and the copy's own SHA-256 matches the record: then only the copy is hashed."""
    if record is None or record.sha256 != expected or not record.tensors_sha256:
        return None
    st = cached_path(spec).stat()
    copy = tensors_path(spec)
    if (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns) or not copy.is_file():
        return None
    return copy if sha256_file(copy) == record.tensors_sha256 else None


def verify(spec: WeightSpec, full: bool = False) -> Cached:
    """The verified cached file of ``spec`` (``full``: hash the registry file even when its safetensors copy is
    current); ``Unusable`` saying why it cannot be used and what to do."""
    path = cached_path(spec)
    if not path.is_file():
        fix = f"run `aeroseg weights download {spec.name}` (offline: `aeroseg weights import {spec.name} FILE`)"
        raise Unusable(f"{spec.name} ({spec.size_text()}) not found at {path}", fix)
    record = read_record(spec)
    expected, trust = expected_hash(spec, record)
    if expected is None:
        raise Unusable(
            f"{spec.name} at {path} has no recorded SHA-256 (an interrupted download?)",
            f"download it again with `aeroseg weights download {spec.name} --force`, or import your copy with "
            "--accept-checksum",
        )
    fast = None if full else _fast_path(spec, record, expected)
    if fast is not None:
        return Cached(spec.name, fast, expected, trust)
    if sha256_file(path) != expected:
        words = {"published": "published SHA-256", "git-blob": "SHA-256 recorded when it matched its git blob id"}
        what = words.get(trust, f"SHA-256 {trust} for it")
        raise Unusable(
            f"{spec.name} ({spec.size_text()}) at {path} does not match the {what} ({expected[:16]}...); refused, "
            "and left as it is",
            f"get a good copy with `aeroseg weights download {spec.name}` (or `aeroseg weights import {spec.name} "
            "FILE`)",
        )
    return admit(spec, path, Record(expected, trust, record.source if record else spec.url))


def tensors_copy(spec: WeightSpec, path: Path, sha256: str, state: dict | None = None) -> str | None:
    """For a TorchScript archive at ``path`` (SHA-256 ``sha256``, verified): its tensors as the safetensors copy runs
    read -> the copy's SHA-256; None for any other format. The archive is read (``state``, when given, is what was
    already read of it) and the copy written only when the copy the record names is not there intact."""
    from .weightfiles import file_format, torchscript_state, write_safetensors

    if file_format(path) != "torchscript":
        return None
    copy, old = tensors_path(spec), read_record(spec)
    current = old is not None and old.sha256 == sha256 and old.tensors_sha256 and copy.is_file()
    if current and sha256_file(copy) == old.tensors_sha256:
        return old.tensors_sha256
    write_safetensors(state if state is not None else torchscript_state(path), copy, {"source_sha256": sha256})
    return sha256_file(copy)


def admit(spec: WeightSpec, path: Path, record: Record, state: dict | None = None) -> Cached:
    """The verified file at ``path`` (the cache file, or the download about to become it) as the cache holds it:
    its safetensors copy current (``tensors_copy``) and its record written where it changed. A cache that cannot be
    written (read-only, shared) is still used: a TorchScript archive is then read on every run."""
    st = path.stat()
    old = read_record(spec)
    record = replace(record, size=st.st_size, mtime_ns=st.st_mtime_ns, tensors_sha256=None)
    if record.converted_from is None and old is not None:
        record = replace(record, converted_from=old.converted_from)
    readable = cached_path(spec)
    try:
        copy_sha256 = tensors_copy(spec, path, record.sha256, state)
        if copy_sha256 is not None:
            record, readable = replace(record, tensors_sha256=copy_sha256), tensors_path(spec)
        if record != old:
            write_record(spec, record)
    except OSError:  # a read-only cache
        pass
    return Cached(spec.name, readable, record.sha256, record.trust)


def resolve_all(names: list[str], extra_problems: list[str] | tuple[str, ...] = ()) -> dict[str, Cached]:
    """The verified cached files of registry weights ``names``, each checked once.

    Every missing or unusable file (plus ``extra_problems``, e.g. a user's weight path that does not exist) is
    reported together in one ``WeightsError`` line, with the one command that fetches all the registry files.
    """
    found, problems, bad = {}, [], []
    for name in names:
        try:
            found[name] = verify(spec_for(name))
        except Unusable as exc:
            problems.append(exc.problem)
            bad.append(name)
    if problems or extra_problems:
        fix = ""
        if bad:
            fix = (
                f"; run `aeroseg weights download {' '.join(bad)}` (offline: fetch them elsewhere and run `aeroseg "
                "weights import NAME FILE`)"
            )
        raise WeightsError("weights not available: " + "; ".join([*problems, *extra_problems]) + fix)
    return found


def resolve(name: str) -> Path:
    """The verified local file of registry weights ``name`` (what runs read); an error naming the command."""
    return resolve_all([name])[name].path


# -- downloads -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    """A download: the source that served it, its URL, the bytes' SHA-256, and every source tried before it with why
    it was passed over (a refused primary source may mean a damaged or altered file: the caller says so)."""

    source: Source
    url: str
    sha256: str
    passed_over: tuple[tuple[Source, str], ...] = ()


class Incomplete(OSError):
    """The server closed the connection before sending the bytes it announced (Content-Length)."""


def _urls(spec: WeightSpec, mirror: str | None) -> list[tuple[str, Source]]:
    """(url, source) in the order tried: a mirror replaces every source's host with its own (same file names)."""
    if mirror:
        return [(mirror.rstrip("/") + "/" + s.filename, s) for s in spec.sources]
    return [(s.url, s) for s in spec.sources]


def _stream(
    url: str, out: BinaryIO, progress: Callable[[int, int], None] | None, blob: bool = False
) -> tuple[str, str | None]:
    """Copy ``url`` into ``out`` -> (the SHA-256 of the bytes, their git blob id when ``blob``: a git blob id needs
    the size first, so those bytes, files of a git repository, are also held until the end). ``Incomplete`` when
    fewer bytes arrive than the server announced (http.client returns a short body without complaint),
    ``OSError``/``URLError`` when it cannot be read."""
    digest, held = hashlib.sha256(), []
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while block := response.read(1 << 20):
            out.write(block)
            digest.update(block)
            if blob:
                held.append(block)
            done += len(block)
            if progress:
                progress(done, total)
    if total and done != total:
        raise Incomplete(f"incomplete: the connection ended after {done:,} of the {total:,} bytes announced")
    out.flush()
    return digest.hexdigest(), git_blob_id(b"".join(held)) if blob else None


def fetch(
    spec: WeightSpec,
    out: BinaryIO,
    mirror: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[Source], None] | None = None,
) -> Fetched:
    """Stream ``spec`` into ``out`` from its sources in order (or a mirror's copies of them) -> what served it and
    what was passed over. A source whose bytes do not match its published SHA-256, arrive incomplete, or (where no
    SHA-256 is published) fail ``check`` (called with the bytes flushed to ``out``; it raises ``WeightsError``) is
    refused and the next one tried. Raises ``WeightsError`` naming every attempt when none works. ``out`` must be
    seekable (it is rewound between attempts); where the bytes go, and making them appear whole, is the caller's.
    """
    failures: list[tuple[Source, str, str]] = []
    for url, source in _urls(spec, mirror):
        out.seek(0)
        out.truncate()
        try:
            got, blob = _stream(url, out, progress, blob=source.git_blob is not None)
            if source.sha256 is not None and got != source.sha256:
                raise WeightsError(
                    f"checksum mismatch: got {got[:16]}..., the published SHA-256 is {source.sha256[:16]}...: a "
                    "damaged or altered file, refused"
                )
            if source.sha256 is None and source.git_blob is not None and blob != source.git_blob:
                raise WeightsError(
                    f"checksum mismatch: git blob id {blob[:16]}..., the published one is {source.git_blob[:16]}...: "
                    "a damaged or altered file, refused"
                )
            if got not in spec.published and source.git_blob is None and check is not None:
                check(source)  # nothing published identifies these bytes: what they hold decides
            return Fetched(source, url, got, tuple((s, why) for s, _, why in failures))
        except urllib.error.HTTPError as exc:
            failures.append((source, url, f"HTTP {exc.code} {exc.reason}"))
        except (urllib.error.URLError, OSError, http.client.HTTPException, WeightsError) as exc:
            failures.append((source, url, str(getattr(exc, "reason", None) or exc)))
    raise WeightsError(
        f"cannot download {spec.name}: " + "; ".join(f"{s.what} {u} ({why})" for s, u, why in failures) + "; when "
        f"offline, fetch the file elsewhere and run `aeroseg weights import {spec.name} FILE`"
    )


def git_blob_match(spec: WeightSpec, path: Path) -> bool:
    """``path`` is the file a source of ``spec`` names by its git blob id."""
    blobs = {s.git_blob for s in spec.sources if s.git_blob}
    return bool(blobs) and git_blob_id(Path(path).read_bytes()) in blobs


def verify_file(spec: WeightSpec, source: Path) -> str:
    """A file fetched by other means -> its SHA-256 when it is a published one (or the file a published git blob id
    names); refused otherwise, saying how to use a copy that differs (``--accept-checksum``)."""
    if not source.is_file():
        raise WeightsError(f"{source} is not a file")
    got = sha256_file(source)
    if got in spec.published or git_blob_match(spec, source):
        return got
    if any(s.git_blob for s in spec.sources):
        raise WeightsError(
            f"{source} is not the official {spec.name} file (its git blob id is not the published one); refused. "
            "If it is a copy of the same weights, import it with --accept-checksum"
        )
    if not spec.published:
        raise WeightsError(
            f"{spec.name} has no published SHA-256, so {source} cannot be checked against it (SHA-256 {got[:16]}...); "
            "import it with --accept-checksum to use it as it is"
        )
    raise WeightsError(
        f"{source} is not the official {spec.name} file (SHA-256 {got[:16]}...); refused. If it is a re-saved or "
        "converted copy of the same weights (e.g. open_clip's), import it with --accept-checksum"
    )
