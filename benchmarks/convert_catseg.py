"""Time and output size of ``weights convert catseg`` on a random file in the exact layout of CAT-Seg's released
``model_base.pth`` (the layout stored in tests/fixtures/catseg_vitb16.npz), self-contained and lean.

For the lean run, a stand-in official CLIP file (the source's CLIP with other q/v weights, as OpenAI's file differs
from CAT-Seg's fine-tuned one) is written to a temporary weights cache and registered in this process only.

    python benchmarks/convert_catseg.py         # about 2.5 GB of temporary files, 3 GB of RAM
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models import hub
from models.convert import CONVERTERS
from models.convert.catseg import read_source
from models.convert.catseg_layout import map_state
from tests.support.catseg_layouts import load_fixture, released_file


def stand_in_clip(src: Path) -> None:
    """The source's CLIP with its q/v rows changed, registered as ``clip-vit-b-16`` in the cache."""
    clip = map_state(read_source(src)[0]).clip
    for key, value in clip.items():
        if key.endswith("attn.in_proj_weight"):
            d = value.shape[1]
            value[:d] *= 0.5
            value[2 * d :] *= 0.5
    spec = hub.REGISTRY["clip-vit-b-16"]
    path = hub.cached_path(spec)
    path.parent.mkdir(parents=True)
    torch.save(clip, path)
    hub.REGISTRY[spec.name] = hub.WeightSpec(**{**spec.__dict__, "sha256": hub.sha256_file(path)})


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="aeroseg-convert-") as tmp:
        tmp = Path(tmp)
        os.environ["AEROSEG_HOME"] = str(tmp / "home")
        src = released_file(load_fixture("catseg_vitb16.npz"), tmp / "model_base.pth")
        rows = []
        for form in ("self-contained", "lean"):
            if form == "lean":
                stand_in_clip(src)
            out = tmp / f"{form}.pt"
            t0 = time.perf_counter()
            report = CONVERTERS["catseg"](src, out)
            rows.append((form, time.perf_counter() - t0, out.stat().st_size / 1e6, report["self_contained"]))
        print(f"source: random model_base.pth layout, {src.stat().st_size / 1e6:.1f} MB")
        print(f"{'output':<16}{'seconds':>9}{'MB':>9}  self-contained")
        for form, seconds, mb, contained in rows:
            print(f"{form:<16}{seconds:>9.1f}{mb:>9.1f}  {contained}")


if __name__ == "__main__":
    main()
