"""Placing weights in the cache: downloaded or imported files appear whole and verified, or not at all. A file whose
SHA-256 is not published is read and its tensors checked before its hash is recorded; a released model's file
(``WeightSpec.convert``) is placed only once it has been converted into an aeroseg checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from aeroseg_cli.files.atomic import atomic_output
from models import hub


@dataclass(frozen=True)
class Placed:
    """A file now in the cache: where, its SHA-256, what that hash is (``hub.STATUS_WORDS``), where it came from
    (URL or path), whose file it is, the sources passed over first (with why), and the converted model (if any)."""

    path: Path
    sha256: str
    trust: str
    source: str
    what: str = "the file"
    passed_over: tuple[tuple[hub.Source, str], ...] = ()
    converted: Path | None = None


def download(
    spec: hub.WeightSpec,
    dest: Path | None = None,
    mirror: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Placed:
    """Fetch ``spec`` from its sources in order into ``dest`` (the cache by default) and record it: its published
    SHA-256 checked, or, where none is published, its tensors read and checked before its own SHA-256 is recorded
    (a source serving anything else is refused and the next tried). A failed or refused download leaves nothing."""
    dest = dest or hub.cached_path(spec)
    with atomic_output(dest, suffix=".part") as tmp:
        read: dict = {}

        def check(source: hub.Source) -> None:
            read["state"] = check_tensors(spec, tmp, f"{source.what} is not {spec.name}", torchscript=False)

        with open(tmp, "wb") as out:
            fetched = hub.fetch(spec, out, mirror=mirror, progress=progress, check=check)
        trust = (
            "published" if fetched.sha256 in spec.published else "git-blob" if fetched.source.git_blob else "recorded"
        )
        placed = Placed(dest, fetched.sha256, trust, fetched.url, fetched.source.what, fetched.passed_over)
        if dest == hub.cached_path(spec):
            placed = replace(placed, converted=_place(spec, tmp, hub.Record(fetched.sha256, trust, fetched.url), read))
    return placed


def import_file(spec: hub.WeightSpec, source: Path, accept_checksum: bool = False) -> Placed:
    """Copy a file fetched by other means into the cache: one with a published SHA-256, or (``accept_checksum``)
    any copy whose tensors fit the entry (a released model's: that it converts), recorded with its own SHA-256 as
    "accepted"."""
    read: dict = {}
    if accept_checksum:
        digest, trust = hub.sha256_file(source), "accepted"
        if digest in spec.published:
            trust = "published"
        else:  # the user vouches for the file (--accept-checksum): a TorchScript archive may be read
            read["state"] = check_tensors(spec, source, f"{source} cannot be {spec.name}", torchscript=True)
    else:
        digest = hub.verify_file(spec, source)
        trust = "published" if digest in spec.published else "git-blob"
    dest = hub.cached_path(spec)
    with atomic_output(dest, suffix=".part") as tmp:
        shutil.copyfile(source, tmp)
        converted = _place(spec, tmp, hub.Record(digest, trust, str(source.resolve())), read)
    return Placed(dest, digest, trust, str(source), converted=converted)


def _place(spec: hub.WeightSpec, tmp: Path, record: hub.Record, read: dict) -> Path | None:
    """Record the verified file ``tmp`` that is about to become the cache file (its TorchScript copy made from the
    tensors already ``read``); a released model's is first converted -> the converted checkpoint (else None)."""
    converted = None
    if spec.convert is not None:
        try:
            converted = convert_file(spec, tmp, record.sha256)
        except hub.WeightsError as exc:
            raise hub.WeightsError(f"{exc}; nothing was placed in the cache") from None
        record = replace(record, converted_from=record.sha256)
    hub.admit(spec, tmp, record, read.get("state"))
    return converted


def check_tensors(spec: hub.WeightSpec, path: Path, refused: str, torchscript: bool) -> dict | None:
    """A backbone file (CLIP, SAM) must hold that backbone's tensors (any published layout): ``WeightsError``
    ("{refused}: why") otherwise -> the tensors of a TorchScript archive (its safetensors copy is made from them),
    else None. A released model's file is checked by converting it; other files by the code that reads them."""
    from models.factory import check_layout, registry_backbone
    from models.weightfiles import file_format, read_state_dict

    if spec.convert is not None or registry_backbone(spec.name) is None:
        return None

    try:
        state = read_state_dict(path, torchscript=torchscript)
        check_layout(spec.name, state)
    except hub.WeightsError as exc:
        raise hub.WeightsError(f"{refused}: {str(exc).replace(str(path), 'the file')}") from None
    return state if file_format(path) == "torchscript" else None


def needs_conversion(spec: hub.WeightSpec) -> bool:
    """A released model whose converted checkpoint is missing or was made from another download."""
    if spec.convert is None:
        return False
    record = hub.read_record(spec)
    current = hub.converted_path(spec).is_file() and record is not None
    return not (current and record.converted_from == record.sha256)


def convert_file(spec: hub.WeightSpec, src: Path, sha256: str) -> Path:
    """Convert the verified file ``src`` of released model ``spec`` into an aeroseg checkpoint in the cache (lean
    when the official CLIP it fine-tuned is cached, self-contained otherwise: the converter decides) -> its path;
    its report is written beside it as JSON. Both appear whole or not at all; ``WeightsError`` when this aeroseg has
    no such converter or the file does not convert."""
    converter = hub.converters().get(spec.convert)
    if converter is None:
        raise hub.WeightsError(hub.not_offered(spec))
    out = hub.converted_path(spec)
    with atomic_output(out, suffix=".part") as tmp, _named(src, spec.filename) as named:
        try:
            report = converter(named, tmp, self_contained=False)
        except hub.WeightsError as exc:
            raise hub.WeightsError(
                f"{spec.name}: the file (SHA-256 {sha256[:16]}...) does not convert into a model ({exc})"
            ) from None
        report = {**report, "output": str(out)} if isinstance(report, dict) else report
        with atomic_output(out.with_suffix(".report.json")) as report_tmp:
            report_tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return out


@contextmanager
def _named(path: Path, name: str) -> Iterator[Path]:
    """``path`` under its registry file name (a hard link in a temporary folder beside it), so that what the
    converter records of its source is "model_base.pth", not the download's temporary name; ``path`` itself where
    the filesystem has no hard links."""
    if path.name == name:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=path.parent) as folder:
        linked = Path(folder) / name
        try:
            os.link(path, linked)
        except OSError:
            linked = path
        yield linked


def convert(spec: hub.WeightSpec) -> Path:
    """Convert the cached download of released model ``spec`` again (made by another aeroseg, or its converted
    checkpoint removed) -> the converted checkpoint. A file that does not convert is removed from the cache with
    its record: a released model's file is kept only with its model."""
    if not hub.offered(spec):
        raise hub.WeightsError(hub.not_offered(spec))
    cached = hub.verify(spec)
    try:
        out = convert_file(spec, hub.cached_path(spec), cached.sha256)
    except hub.WeightsError as exc:
        for path in (hub.cached_path(spec), hub.record_path(spec)):
            path.unlink(missing_ok=True)
        raise hub.WeightsError(f"{exc}; the cached {spec.filename} was removed, as it cannot be used") from None
    record = hub.read_record(spec)
    if record is not None:
        hub.write_record(spec, replace(record, converted_from=cached.sha256))
    return out
