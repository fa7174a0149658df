"""FLOPs per window of each preset, by component, counted with torch.utils.flop_counter on the meta device
(shapes only: nothing is computed, so the full-size presets count in seconds on any machine).

    python benchmarks/flops.py [--classes 10] [--presets ...] [--sam-input 1024]
    python benchmarks/flops.py --train [--classes 9] [--batch 4]   # one training iteration, forward + backward
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models

COMPONENTS = {
    "CLIP (image x rotations)": ("clip",),
    "SAM encoder": ("sam",),
    "correlation + refinement": (
        "correlation",
        "spatial_blocks",
        "class_blocks",
        "spatial_guidance",
        "guidance_upsample",
        "text_guidance",
        "decoder_guidance1",
        "decoder_guidance2",
    ),
    "decoder": ("decoder",),
    "SimFeatUp": ("upsampler",),
}


def count(preset: str, classes: int, sam_input: int | None, text: bool) -> dict[str, float]:
    overrides = {"clip_weights": None, "sam_weights": None}
    if sam_input:
        overrides["sam_input_size"] = sam_input
    if models.preset_config(preset).arch == "segearth":
        overrides["segearth"] = {"upsampler_weights": None}
    with torch.device("meta"):
        model = models.build(preset, **overrides).eval()
    crop = model.cfg.crop_size
    names = [f"class {i}" for i in range(classes)]
    x = torch.rand(1, 3, crop, crop, device="meta")
    if not text and hasattr(model, "clip"):  # inference: text embeddings are computed once per run, not per window
        with torch.no_grad():  # cached in evaluation mode
            if hasattr(model.clip, "query_features"):
                model.clip.query_features(names)
            else:
                model.clip.text_features(names)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x, names)
    flops = counter.get_flop_counts()
    root = type(model).__name__  # the top module's name in the counter, e.g. "AerOSeg"
    per = {}
    for label, prefixes in COMPONENTS.items():
        # a module's count includes its children; modules called directly (not through their parent's forward)
        # appear without the parent, so sum the highest modules present in each subtree
        inside = [m for m in flops if any(m == f"{root}.{p}" or m.startswith(f"{root}.{p}.") for p in prefixes)]
        tops = [m for m in inside if not any(m.startswith(o + ".") for o in inside)]
        per[label] = sum(sum(flops[m].values()) for m in tops)
    per["total"] = sum(flops["Global"].values())
    per["other"] = per["total"] - sum(v for k, v in per.items() if k != "total")
    return per


def count_train(preset: str, classes: int, batch: int) -> float:
    """FLOPs of one training iteration (forward and backward, text tower included: it learns)."""
    overrides = {"clip_weights": None, "sam_weights": None, "backproj_classes": classes}
    with torch.device("meta"):
        model = models.build(preset, **overrides).train()
    crop = model.cfg.crop_size
    x = torch.rand(batch, 3, crop, crop, device="meta")
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x, [f"class {i}" for i in range(classes)])
        # a stand-in for the losses (their own cost is negligible; data-dependent checks cannot run on meta)
        loss = out.logits.float().sigmoid().mean() + (out.backproj - out.backproj_target).square().mean()
        loss.backward()
    return sum(counter.get_flop_counts()["Global"].values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--sam-input", type=int, default=None, help="override SAM's input size (default: the preset's)")
    ap.add_argument("--with-text", action="store_true", help="count the text tower in every window")
    ap.add_argument("--presets", nargs="+", default=[p for p in models.PRESETS if p != "probe"])
    ap.add_argument("--train", action="store_true", help="count one training iteration instead (forward + backward)")
    ap.add_argument("--batch", type=int, default=4, help="training batch (with --train)")
    args = ap.parse_args()
    if args.train:
        for preset in args.presets:
            total = count_train(preset, args.classes, args.batch)
            setting = f"{args.classes} classes, batch {args.batch}"
            print(f"{preset:<24} {total / 1e12:8.2f} TFLOP per training iteration ({setting})")
        return
    cols = [*COMPONENTS, "other", "total"]
    print(f"\nGFLOP per window ({args.classes} classes; text tower {'included' if args.with_text else 'cached'})")
    print(f"{'preset':<24}" + "".join(f"{c[:24]:>26}" for c in cols))
    for preset in args.presets:
        per = count(preset, args.classes, args.sam_input, args.with_text)
        print(f"{preset:<24}" + "".join(f"{per[c] / 1e9:>26.1f}" for c in cols))


if __name__ == "__main__":
    main()
