"""Placing weights in the cache: downloaded or imported files appear whole and verified, or not at all; released
models (``WeightSpec.convert``) are then converted into aeroseg checkpoints."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aeroseg_cli.files.atomic import atomic_output
from models import hub


@dataclass(frozen=True)
class Placed:
    """A file now in the cache: where, its SHA-256, what that hash is (``hub.TRUST_WORDS``) and where it came from."""

    path: Path
    sha256: str
    trust: str
    source: str


def download(
    spec: hub.WeightSpec,
    dest: Path | None = None,
    mirror: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Placed:
    """Fetch ``spec`` from its sources in order into ``dest`` (the cache by default) and record it: its published
    SHA-256 checked, or, where none is published, its own recorded. A failed or refused download leaves nothing."""
    dest = dest or hub.cached_path(spec)
    with atomic_output(dest, suffix=".part") as tmp:
        with open(tmp, "wb") as out:
            source, url, digest = hub.fetch(spec, out, mirror=mirror, progress=progress)
        trust = "published" if digest in spec.published else "git-blob" if source.git_blob else "recorded"
        if dest == hub.cached_path(spec):
            hub.prepare(spec, tmp, hub.Record(digest, trust, url))
    return Placed(dest, digest, trust, url)


def import_file(spec: hub.WeightSpec, source: Path, accept_checksum: bool = False) -> Placed:
    """Copy a file fetched by other means into the cache: one with a published SHA-256, or (``accept_checksum``)
    any copy whose tensors fit the entry, recorded with its own SHA-256 as "accepted"."""
    if accept_checksum:
        digest, trust = hub.sha256_file(source), "accepted"
        if digest in spec.published:
            trust = "published"
        else:
            check_importable(spec, source)
    else:
        digest = hub.verify_file(spec, source)
        trust = "published" if digest in spec.published else "git-blob"
    dest = hub.cached_path(spec)
    with atomic_output(dest, suffix=".part") as tmp:
        shutil.copyfile(source, tmp)
        hub.prepare(spec, tmp, hub.Record(digest, trust, str(source.resolve())))
    return Placed(dest, digest, trust, str(source))


def check_importable(spec: hub.WeightSpec, source: Path) -> None:
    """A file accepted as backbone weights must hold that backbone's tensors (any published layout); a released
    model's file is checked by its converter."""
    if spec.convert is not None:
        return
    from models.factory import check_layout
    from models.weightfiles import read_state_dict

    state = read_state_dict(source, torchscript=True)  # the user vouches for the file (--accept-checksum)
    try:
        check_layout(spec.name, state)
    except hub.WeightsError as exc:
        raise hub.WeightsError(f"{source} cannot be {spec.name}: {exc}") from None


def needs_conversion(spec: hub.WeightSpec) -> bool:
    """A released model whose converted checkpoint is missing or was made from another download."""
    if spec.convert is None:
        return False
    record = hub.read_record(spec)
    current = hub.converted_path(spec).is_file() and record is not None
    return not (current and record.converted_from == record.sha256)


def convert(spec: hub.WeightSpec) -> dict:
    """Convert the verified download of released model ``spec`` into an aeroseg checkpoint in the cache (lean when
    the official CLIP it fine-tuned is cached, self-contained otherwise: the converter decides) -> its report, also
    written beside it as JSON. The checkpoint appears whole or not at all."""
    cached = hub.verify(spec)
    try:
        from models.convert import CONVERTERS
    except ImportError:
        CONVERTERS = {}
    converter = CONVERTERS.get(spec.convert)
    if converter is None:
        raise hub.WeightsError(
            f"{spec.name} is downloaded and verified at {hub.cached_path(spec)}, but this aeroseg has no "
            f"{spec.convert!r} converter to turn it into a model; upgrade aeroseg"
        )
    out = hub.converted_path(spec)
    with atomic_output(out, suffix=".part") as tmp:
        report = converter(hub.cached_path(spec), tmp, self_contained=False)
    with atomic_output(out.with_suffix(".report.json")) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    record = hub.read_record(spec)
    if record is not None:
        hub.write_record(spec, replace(record, converted_from=cached.sha256))
    return report
