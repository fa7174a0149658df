"""Size of a lean paper-preset checkpoint, and its bit-exact rebuild, without the real weights.

Random stand-ins for the official CLIP ViT-B/16 and SAM ViT-L files are written to a temporary weights cache and
registered (in this process only) under the official names with their own SHA-256; the model built from them is
"trained" (new layers and CLIP q/v rows changed), saved lean (fp32, fp16) and self-contained, and loaded back.

    python benchmarks/lean_checkpoint.py        # about 5 GB of temporary files and RAM, a few minutes on CPU
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models
from models import hub
from models.clip_backbone import build_open_clip
from models.config import CLIP_VARIANTS, SAM_VARIANTS
from models.sam_guidance import build_sam_encoder


def stand_ins(home: Path) -> None:
    """Random files in the official layouts, registered under the official names (this process only)."""
    os.environ["AEROSEG_HOME"] = str(home)
    weights = home / "weights"
    weights.mkdir(parents=True)
    clip = weights / hub.REGISTRY["clip-vit-b-16"].filename
    sam = weights / hub.REGISTRY["sam-vit-l"].filename
    torch.save(build_open_clip(CLIP_VARIANTS["ViT-B-16"], 224).state_dict(), clip)
    encoder = build_sam_encoder(SAM_VARIANTS["vit_l"]).state_dict()
    torch.save({"image_encoder." + k: v for k, v in encoder.items()}, sam)
    for name, path in (("clip-vit-b-16", clip), ("sam-vit-l", sam)):
        spec = hub.REGISTRY[name]
        hub.REGISTRY[name] = hub.WeightSpec(name, spec.url, hub.sha256_file(path), spec.filename, 0, spec.description)


def trained_paper_model() -> torch.nn.Module:
    model = models.build("aeroseg-vitb16-samvitl", backproj_classes=10)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("clip.model.") and name.endswith("attn.in_proj_weight"):
                d = p.shape[1]
                p[:d].add_(1e-3)  # q rows
                p[2 * d :].add_(-1e-3)  # v rows (k rows stay official)
            elif not name.startswith(("clip.", "sam.")):
                p.add_(1e-3)
    return model


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        stand_ins(Path(tmp) / "home")
        model = trained_paper_model()
        state_mb = sum(v.numel() * v.element_size() for v in model.state_dict().values()) / 1e6
        print(f"paper preset state dict: {state_mb:.1f} MB")
        forms = {
            "lean fp32": {},
            "lean fp16": {"dtype": torch.float16},
            "self-contained fp32": {"self_contained": True},
        }
        for label, kwargs in forms.items():
            path, t = Path(tmp) / f"{label.replace(' ', '_')}.pt", time.perf_counter()
            models.save_checkpoint(path, model, [f"class {i}" for i in range(10)], **kwargs)
            print(f"{label}: {path.stat().st_size / 1e6:.1f} MB (written in {time.perf_counter() - t:.0f} s)")
        t = time.perf_counter()
        loaded, _ = models.load_checkpoint(Path(tmp) / "lean_fp32.pt")
        a, b = model.state_dict(), loaded.state_dict()
        exact = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        print(f"lean fp32 loaded in {time.perf_counter() - t:.0f} s; bit-exact rebuild: {exact}")


if __name__ == "__main__":
    main()
