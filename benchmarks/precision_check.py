"""Mixed precision against fp32: accuracy on real imagery, and speed.

    python benchmarks/precision_check.py --model sample_data/demo_model.pt [--device cpu|cuda] [--precisions bf16 fp16]
    python benchmarks/precision_check.py --speed [--device cpu] [--model tiny] [--repeats 5] [--batch 4]
    python benchmarks/precision_check.py --speed --model aeroseg-vitb16-samvitl --random-weights --batch 1 --repeats 1

Accuracy: relative logit error and the share of pixels whose argmax changes, on windows read from the real scenes in
../shared/data/geotiff (or --scenes). Speed: matrix-multiply GFLOP/s per dtype (the shapes of ViT-B/16 at 384 and
square ones), then one model forward (batch 4) per precision; the best of --repeats runs, so other load on the
machine inflates the times less.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import models  # noqa: E402
from aeroseg_cli.runtime.modelio import cpu_bf16_matrix_units, load_model  # noqa: E402
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


# (M, K, N): CLIP ViT-B/16 at 384, 4 rotations: packed q/k/v (2308 tokens x 768 -> 2304), MLP (768 -> 3072);
# square ones for comparison with published figures
MATMULS = [(2308, 768, 2304), (2308, 768, 3072), (2308, 3072, 768), (1024, 1024, 1024), (2048, 2048, 2048)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def best_time(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed(device: torch.device, precisions: list[str], args: argparse.Namespace) -> None:
    """GFLOP/s of the network's matrix multiplies per dtype, then one forward of ``args.model`` per precision."""
    repeats = args.repeats
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    names = ["fp32", *precisions]
    print(f"\nmatrix multiply GFLOP/s on {device} ({torch.get_num_threads()} threads), best of {repeats}")
    if device.type == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        print(f"CPU capability {capability}; bf16 matrix units (AMX): {cpu_bf16_matrix_units()}")
    print(f"{'M x K x N':>20}" + "".join(f"{p:>10}" for p in names))
    for m, k, n in MATMULS:
        row = []
        for p in names:
            a = torch.randn(m, k, device=device).to(DTYPES[p])
            b = torch.randn(k, n, device=device).to(DTYPES[p])
            row.append(2 * m * k * n / best_time(lambda a=a, b=b: (a @ b, sync()), repeats) / 1e9)
        print(f"{f'{m} x {k} x {n}':>20}" + "".join(f"{v:>10.1f}" for v in row))
    if args.random_weights:  # a preset without its pretrained files: the same compute, random weights
        torch.manual_seed(0)
        model, label = models.build(args.model, clip_weights=None, sam_weights=None), f"{args.model} (random weights)"
    else:
        loaded = load_model(args.model)
        model, label = loaded.model, loaded.label
    model = model.to(device).eval()
    crop = model.cfg.crop_size
    x = torch.rand(args.batch, 3, crop, crop, device=device)
    names_k = ["building", "land", "road", "vegetation", "water"]
    print(f"\n{label}: one forward, batch {args.batch} at {crop} px, 5 classes")
    print(f"{'precision':>9} {'seconds':>9} {'vs fp32':>8}")
    base = None
    for p in names:
        dtype = None if p == "fp32" else DTYPES[p]

        def forward(dtype=dtype) -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                model(x, names_k)
            sync()

        t = best_time(forward, repeats)
        base = base or t
        print(f"{p:>9} {t:>9.3f} {t / base:>7.2f}x")


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
    ap.add_argument("--speed", action="store_true", help="time matrix multiplies and a forward per precision instead")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4, help="windows per forward (with --speed)")
    ap.add_argument("--random-weights", action="store_true", help="--model is a preset built without its weight files")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.speed:
        precisions = [p for p in args.precisions if not (p == "fp16" and device.type == "cpu")]
        return speed(device, precisions, args)
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
