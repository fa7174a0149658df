"""Cost of the ``probe`` preset per 384 window on CPU, against the cost of just writing its output tensor.

python benchmarks/probe_cost.py [--classes 1 2 5 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models


def best_ms(fn, windows: int, repeat: int = 7, number: int = 20) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number / windows * 1e3)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, nargs="+", default=[1, 2, 5, 10])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = models.build("probe").eval()
    x = torch.rand(args.batch, 3, 384, 384)
    print(f"ms per 384 window, batch {args.batch}, {args.threads} thread(s), best of 7")
    with torch.inference_mode():
        for k in args.classes:
            names = [f"class {i}" for i in range(k)]
            probe = best_ms(lambda names=names: model(x, names), args.batch)
            write = best_ms(lambda k=k: torch.empty(args.batch, k, 384, 384).fill_(0.0), args.batch)
            print(f"{k:3d} classes: probe {probe:.3f} ms; writing a ({k}, 384, 384) fp32 output alone {write:.3f} ms")


if __name__ == "__main__":
    main()
