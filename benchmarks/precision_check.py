"""Mixed precision against fp32 on real imagery: relative logit error and the share of pixels whose argmax changes.

    python benchmarks/precision_check.py --model sample_data/demo_model.pt [--device cpu|cuda] [--precisions bf16 fp16]

Windows are read from the real scenes in ../shared/data/geotiff (or --scenes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from aeroseg_cli.runtime.modelio import load_model  # noqa: E402
from aeroseg_cli.segment.reader import SceneReader, inspect_scene  # noqa: E402
from aeroseg_cli.segment.tiler import Grid  # noqa: E402


def windows(scenes: list[Path], tile: int, limit: int) -> np.ndarray:
    out = []
    for scene in scenes:
        info = inspect_scene(scene, None, None, None, False)
        with SceneReader(info) as reader:
            for w in Grid.from_overlap(info.height, info.width, tile, 0.25).windows():
                out.append(reader.read(w.row, w.col, tile)[0])
    return np.stack(out[:limit])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "sample_data" / "demo_model.pt"))
    ap.add_argument("--classes", default="building,land,road,vegetation,water")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp16"])
    ap.add_argument(
        "--scenes", nargs="+", type=Path, default=sorted((ROOT.parent / "shared" / "data" / "geotiff").glob("*.tif"))
    )
    ap.add_argument("--limit", type=int, default=32)
    args = ap.parse_args()
    device = torch.device(args.device)
    loaded = load_model(args.model)
    model, label = loaded.model, loaded.label
    model = model.to(device).eval()
    names = args.classes.split(",")
    x = torch.from_numpy(windows(args.scenes, model.cfg.crop_size, args.limit)).to(device)
    with torch.inference_mode():
        ref = torch.cat([model(x[i : i + 4], names).float() for i in range(0, len(x), 4)])
    print(f"\n{label} on {len(x)} real windows ({device}); reference fp32")
    print(f"{'precision':>9} {'relative logit error':>21} {'argmax changed %':>17}")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    for p in args.precisions:
        if p == "fp16" and device.type == "cpu":
            continue
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtypes[p]):
            out = torch.cat([model(x[i : i + 4], names).float() for i in range(0, len(x), 4)])
        rel = float((out - ref).norm() / ref.norm())
        changed = float((out.argmax(1) != ref.argmax(1)).float().mean() * 100)
        print(f"{p:>9} {rel:>21.5f} {changed:>17.3f}")


if __name__ == "__main__":
    main()
