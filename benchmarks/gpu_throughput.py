"""GPU throughput of the full model: windows/s, megapixels/s of scene, achieved TFLOP/s, MFU against the measured
bf16 matmul peak of the same GPU, peak memory, and the speed-up over a reference-style run (fp32, batch 1, rotations
one at a time, segment_anything's own attention).

    python benchmarks/gpu_throughput.py [--presets aeroseg-vitb16-samvitl] [--batch-size 16] [--windows 64]

Random weights (throughput does not depend on them). Needs a CUDA device; exits 2 without one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models
from benchmarks.flops import count


def matmul_peak(device: torch.device, n: int = 8192, iters: int = 50) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - t0)


def run(preset: str, device, dtype, batch: int, windows: int, classes: int, reference: bool = False) -> dict:
    overrides = {"clip_weights": None, "sam_weights": None}
    if reference:
        overrides.update(batch_rotations=False, sdpa=False)
    model = models.build(preset, **overrides).to(device).eval()
    if dtype is None:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    crop = model.cfg.crop_size
    names = [f"class {i}" for i in range(classes)]
    x = torch.rand(batch, 3, crop, crop, device=device)
    ctx = torch.autocast("cuda", dtype=dtype) if dtype is not None else torch.autocast("cuda", enabled=False)
    with torch.inference_mode(), ctx:
        for _ in range(3):
            model(x, names)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        done = 0
        while done < windows:
            model(x, names)
            done += batch
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    stride = crop - round(0.25 * crop)
    return {
        "windows_per_s": done / seconds,
        "mpx_per_s": done / seconds * stride**2 / 1e6,
        "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["aeroseg-vitb16-samvitl"])
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp16", "fp32"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        sys.exit(2)
    device = torch.device("cuda")
    peak = matmul_peak(device)
    print(f"\n{torch.cuda.get_device_name(device)}: measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s")
    print(
        f"{'preset':<24} {'precision':>9} {'batch':>5} {'win/s':>8} {'Mpx/s':>8} {'TFLOP/s':>8} {'MFU %':>6} "
        f"{'peak GB':>8} {'speed-up':>9}"
    )
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
    for preset in args.presets:
        flops = count(preset, args.classes, None, False)["total"]
        ref = run(preset, device, None, 1, max(4, args.windows // 16), args.classes, reference=True)
        print(
            f"{preset:<24} {'reference':>9} {1:>5} {ref['windows_per_s']:>8.2f} {ref['mpx_per_s']:>8.2f} "
            f"{flops * ref['windows_per_s'] / 1e12:>8.1f} {flops * ref['windows_per_s'] / peak * 100:>6.1f} "
            f"{ref['peak_gb']:>8.1f} {1.0:>9.2f}"
        )
        for p in args.precisions:
            r = run(preset, device, dtypes[p], args.batch_size, args.windows, args.classes)
            tflops = flops * r["windows_per_s"]
            print(
                f"{preset:<24} {p:>9} {args.batch_size:>5} {r['windows_per_s']:>8.2f} {r['mpx_per_s']:>8.2f} "
                f"{tflops / 1e12:>8.1f} {tflops / peak * 100:>6.1f} {r['peak_gb']:>8.1f} "
                f"{r['windows_per_s'] / ref['windows_per_s']:>9.2f}"
            )


if __name__ == "__main__":
    main()
