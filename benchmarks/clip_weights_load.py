"""Reading OpenAI's TorchScript CLIP ViT-B/16 once into the cache's safetensors copy, against reading the archive
every run, on a random-weight file in exactly the published layout (full size, fp16 where OpenAI's is).

A temporary weights cache holds the file, registered (in this process only) as ``clip-vit-b-16`` with its own
SHA-256; then: the import (hash, one ``torch.jit.load``, the safetensors copy written), what every run does now
(hash and load the copy), what runs did before (hash and ``torch.jit.load`` the archive), and ``zeroshot-vitb16``
built from the cache (the full-size layout loading into the real preset).

    python benchmarks/clip_weights_load.py        # about 1.5 GB of RAM and 1 GB of temporary files
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models
from aeroseg_cli.runtime import weights as placement
from models import hub
from models.config import CLIP_VARIANTS
from models.factory import read_cached
from tests.support.layouts import openai_clip_state, save_torchscript


def timed(label: str, rows: list, fn):
    t = time.perf_counter()
    out = fn()
    rows.append((label, time.perf_counter() - t))
    return out


def old_run(path: Path) -> dict:
    """What a run did before: the archive hashed and read with torch.jit.load (which warns, deprecated)."""
    hub.sha256_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").state_dict()


def main() -> None:
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AEROSEG_HOME"] = str(Path(tmp) / "home")
        archive = save_torchscript(openai_clip_state(CLIP_VARIANTS["ViT-B-16"], 224), Path(tmp) / "ViT-B-16.pt")
        spec = replace(hub.REGISTRY["clip-vit-b-16"], sha256=hub.sha256_file(archive), alternates=())
        hub.REGISTRY["clip-vit-b-16"] = spec
        print(f"random OpenAI-layout ViT-B/16 archive: {archive.stat().st_size / 2**20:.1f} MiB")
        timed("import (hash, torch.jit.load once, the copy)", rows, lambda: placement.import_file(spec, archive))
        print(f"safetensors copy: {hub.tensors_path(spec).stat().st_size / 2**20:.1f} MiB")
        new = timed("a run now: hash + load the safetensors copy", rows, lambda: read_cached(hub.verify(spec)))
        old = timed("a run before: hash + torch.jit.load the archive", rows, lambda: old_run(archive))
        same = all(torch.equal(new[k], old[k]) for k in old)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            timed("models.build('zeroshot-vitb16') from the cache", rows, lambda: models.build("zeroshot-vitb16"))
    print("\n| step | seconds |\n|---|---|\n" + "\n".join(f"| {label} | {s:.2f} |" for label, s in rows))
    print(f"\nthe copy holds the archive's tensors bit for bit: {same}; no warning during the build")


if __name__ == "__main__":
    main()
