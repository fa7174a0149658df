"""Pretrained weights: where each file is published, its SHA-256, where it lives in the cache, how it is verified.

The cache is ``$AEROSEG_HOME`` (default ``~/.cache/aeroseg``). ``weights/`` holds each registry file as downloaded
or imported, under its registry file name whatever source it came from, and beside it a record
(``<file>.record.json``): its SHA-256 and what that hash is, "published" (a published SHA-256 of one of its
sources), "recorded" (none is published: the hash of the file as first downloaded) or "accepted" (the user's own
copy, imported with ``--accept-checksum``). A TorchScript archive's tensors are copied once into
``<stem>.tensors.safetensors``, which is what runs read. ``models/`` holds models converted from released
checkpoints (``WeightSpec.convert``). Every file is checked against its hash before it is read, so a truncated or
replaced file is never used. No torch import here (``aeroseg weights list`` starts fast).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import WeightsError
from .weightfiles import load_tensors  # noqa: F401  (re-exported: checkpoint and training read through it)

if TYPE_CHECKING:
    from .config import AerOSegConfig

REGISTRY_NAMES = ("openai", "official")  # config values that mean "the registry file of this backbone"
TRUST_WORDS = {
    "published": "official (published SHA-256)",
    "recorded": "SHA-256 recorded at download (none is published)",
    "git-blob": "SHA-256 recorded at a download that matched the published git blob id",
    "accepted": "accepted: your own copy's SHA-256, not the published file's",
}


@dataclass(frozen=True)
class Source:
    """One place a registry file is published: URL, SHA-256 (None: not published) and the name a mirror holds;
    ``git_blob``: for a file in a git repository that publishes no SHA-256, its blob id there (SHA-1 of
    "blob <size>\\0" + its bytes, as the repository's tree names it), which the download must match."""

    url: str
    sha256: str | None
    filename: str
    size_mb: int | None = None
    git_blob: str | None = None


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

    @property
    def sources(self) -> tuple[Source, ...]:
        return (Source(self.url, self.sha256, self.filename, self.size_mb, self.git_blob), *self.alternates)

    @property
    def published(self) -> frozenset[str]:
        """Every published SHA-256 among the sources (the hashes a file may have to count as official)."""
        return frozenset(s.sha256 for s in self.sources if s.sha256)

    def size_text(self) -> str:
        return f"{self.size_mb} MB" if self.size_mb else "size not published"


def _open_clip_hf(repo: str, size_mb: int) -> tuple[Source, ...]:
    """open_clip's Hugging Face copies of an OpenAI CLIP (open_clip ``pretrained.py``: ``hf_hub="timm/<repo>/"``,
    safetensors preferred, ``open_clip_pytorch_model.bin`` beside it): the same weights in fp32 under open_clip's
    names (sizes: the tensors' bytes). open_clip publishes no SHA-256 for them, so the first download records it."""
    files = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    base = f"https://huggingface.co/timm/{repo}/resolve/main"
    return tuple(Source(f"{base}/{f}", None, f"{repo}/{f}", size_mb) for f in files)


_OPENAI = "https://openaipublic.azureedge.net/clip/models"  # openai/CLIP clip.py; answers 404 since late 2025
_SAM = "https://dl.fbaipublicfiles.com/segment_anything"
_CATSEG = "https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main"  # CAT-Seg README "Pretrained Models"
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
            "OpenAI CLIP ViT-B/16 (TorchScript; open_clip's fp32 copy as fallback)",
            alternates=_open_clip_hf("vit_base_patch16_clip_224.openai", 571),
        ),
        WeightSpec(
            "clip-vit-l-14",
            f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            "ViT-L-14.pt",
            890,
            "OpenAI CLIP ViT-L/14 (TorchScript; open_clip's fp32 copy as fallback)",
            alternates=_open_clip_hf("vit_large_patch14_clip_224.openai", 1632),
        ),
        WeightSpec(
            "clip-vit-l-14-336",
            f"{_OPENAI}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
            "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
            "ViT-L-14-336px.pt",
            891,
            "OpenAI CLIP ViT-L/14 at 336 px, CAT-Seg (L)'s CLIP (TorchScript; open_clip's fp32 copy as fallback)",
            alternates=_open_clip_hf("vit_large_patch14_clip_336.openai", 1633),
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
        WeightSpec(
            "catseg-vitb16",
            f"{_CATSEG}/model_base.pth",
            None,
            "model_base.pth",
            None,
            "CAT-Seg (B): CLIP ViT-B/16 at 384, trained on COCO-Stuff, open vocabulary",
            convert="catseg",
        ),
        WeightSpec(
            "catseg-vitl14",
            f"{_CATSEG}/model_large.pth",
            None,
            "model_large.pth",
            None,
            "CAT-Seg (L): CLIP ViT-L/14 at 336, trained on COCO-Stuff, open vocabulary",
            convert="catseg",
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


# -- records ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """What the cache knows of a registry file: its SHA-256, what that hash is (``TRUST_WORDS``), where the file came
    from, its size and mtime when verified, and the SHA-256 of its safetensors copy (TorchScript archives)."""

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


# -- verification ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cached:
    """A verified registry file: the file runs read (a TorchScript archive's safetensors copy, else the file), the
    registry file's SHA-256 (what lean checkpoints reference) and what that hash is."""

    name: str
    path: Path
    sha256: str
    trust: str


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
    current); ``WeightsError`` saying why it cannot be used."""
    problem = _problem(spec)
    if problem:
        raise WeightsError(problem)
    record = read_record(spec)
    expected, trust = expected_hash(spec, record)
    assert expected is not None
    fast = None if full else _fast_path(spec, record, expected)
    if fast is not None:
        return Cached(spec.name, fast, expected, trust)
    got = sha256_file(cached_path(spec))
    if got != expected:
        words = {"published": "published SHA-256", "git-blob": "SHA-256 recorded when it matched its git blob id"}
        what = words.get(trust, f"SHA-256 {trust} for it")
        raise WeightsError(
            f"{spec.name} ({spec.size_text()}) at {cached_path(spec)} does not match the {what} ({expected[:16]}...); "
            f"refused, and left as it is: get a good copy with `aeroseg weights download {spec.name}` (or `aeroseg "
            f"weights import {spec.name} FILE`)"
        )
    return prepare(spec, cached_path(spec), Record(got, trust, record.source if record else spec.url))


def _problem(spec: WeightSpec) -> str | None:
    path = cached_path(spec)
    if not path.is_file():
        return f"{spec.name} ({spec.size_text()}) not found at {path}"
    if expected_hash(spec, read_record(spec))[0] is None:
        return (
            f"{spec.name} at {path} has no recorded SHA-256 (an interrupted download?): download it again with "
            "--force, or import your copy with --accept-checksum"
        )
    return None


def prepare(spec: WeightSpec, path: Path, record: Record) -> Cached:
    """Record the verified file at ``path`` (the cache file, or the download about to become it) and, for a
    TorchScript archive, write its tensors as safetensors once (the only time the archive is read). A cache that
    cannot be written (read-only, shared) is still used: the archive is then read on every run."""
    from .weightfiles import file_format, torchscript_state, write_safetensors

    st = path.stat()
    record = replace(record, size=st.st_size, mtime_ns=st.st_mtime_ns, tensors_sha256=None)
    readable = cached_path(spec)
    try:
        if file_format(path) == "torchscript":
            copy = tensors_path(spec)
            write_safetensors(torchscript_state(path), copy, {"source_sha256": record.sha256})
            record, readable = replace(record, tensors_sha256=sha256_file(copy)), copy
        old = read_record(spec)
        record = replace(record, converted_from=old.converted_from if old else None)
        if record != old:
            write_record(spec, record)
    except OSError:  # a read-only cache
        pass
    return Cached(spec.name, readable, record.sha256, record.trust)


def resolve_all(names: list[str], extra_problems: list[str] | tuple[str, ...] = ()) -> dict[str, Cached]:
    """The verified cached files of registry weights ``names``, each checked once.

    Every missing or unverified file (plus ``extra_problems``, e.g. a user's weight path that does not exist) is
    reported together in one ``WeightsError`` line with the one command that fetches all the registry files.
    """
    found, problems = {}, []
    for name in names:
        try:
            found[name] = verify(spec_for(name))
        except WeightsError as exc:
            problems.append((name, str(exc)))
    if problems or extra_problems:
        bad = [n for n, _ in problems]
        fix = f"; run `aeroseg weights download {' '.join(bad)}`" if bad else ""
        offline = " (offline: fetch them elsewhere and run `aeroseg weights import NAME FILE`)" if bad else ""
        raise WeightsError(
            "weights not available: " + "; ".join([*(p for _, p in problems), *extra_problems]) + fix + offline
        )
    return found


def resolve(name: str) -> Path:
    """The verified local file of registry weights ``name`` (what runs read); an error naming the command."""
    return resolve_all([name])[name].path


# -- downloads -------------------------------------------------------------------------------------------------
def _urls(spec: WeightSpec, mirror: str | None) -> list[tuple[str, Source]]:
    """(url, source) in the order tried: a mirror replaces every source's host with its own (same file names)."""
    if mirror:
        return [(mirror.rstrip("/") + "/" + s.filename, s) for s in spec.sources]
    return [(s.url, s) for s in spec.sources]


def _stream(
    url: str, out: BinaryIO, progress: Callable[[int, int], None] | None, blob: bool = False
) -> tuple[str, str | None]:
    """Copy ``url`` into ``out`` -> (the SHA-256 of the bytes, their git blob id when ``blob``: a git blob id needs
    the size first, so those bytes, files of a git repository, are also held until the end); ``OSError``/``URLError``
    when it cannot be read."""
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
    return digest.hexdigest(), git_blob_id(b"".join(held)) if blob else None


def fetch(
    spec: WeightSpec,
    out: BinaryIO,
    mirror: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Source, str, str]:
    """Stream ``spec`` into ``out`` from its sources in order (or a mirror's copies of them) -> (the source that
    served it, its URL, the bytes' SHA-256); a source whose bytes do not match its published SHA-256 is refused and
    the next one tried. Raises ``WeightsError`` naming every attempt when none works. ``out`` must be seekable (it
    is rewound between attempts); where the bytes go, and making them appear whole, is the caller's business.
    """
    failures = []
    for url, source in _urls(spec, mirror):
        out.seek(0)
        out.truncate()
        try:
            got, blob = _stream(url, out, progress, blob=source.git_blob is not None)
        except urllib.error.HTTPError as exc:
            failures.append(f"{url} (HTTP {exc.code} {exc.reason})")
            continue
        except (urllib.error.URLError, OSError) as exc:
            failures.append(f"{url} ({getattr(exc, 'reason', exc)})")
            continue
        if source.sha256 is None and source.git_blob is not None and blob != source.git_blob:
            failures.append(
                f"{url} (checksum mismatch: git blob id {blob[:16]}..., expected {source.git_blob[:16]}...; refused)"
            )
            continue
        if source.sha256 is None or got == source.sha256:
            return source, url, got
        failures.append(f"{url} (checksum mismatch: got {got[:16]}..., expected {source.sha256[:16]}...; refused)")
    raise WeightsError(
        f"cannot download {spec.name}: " + "; ".join(failures) + f"; when offline, fetch the file elsewhere and run "
        f"`aeroseg weights import {spec.name} FILE`"
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
