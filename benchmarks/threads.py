"""Seconds per training iteration and per segmented window of the small presets against torch's thread count.

    python benchmarks/threads.py [--iters 20] [--threads 1 2]

Why the test suite runs torch on one thread (tests/conftest.py): models as small as ``tiny`` spend their time in
per-operation overhead, which more threads only add to, most of all on a machine that is busy with other work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import models
from aeroseg_cli.datasets.readers import load_dataset
from aeroseg_cli.training.config import TrainConfig
from aeroseg_cli.training.loop import train


def folder_dataset(root: Path, n: int = 4, size: int = 96) -> Path:
    """A `folder` dataset of n random images with 3 classes."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (size, size), np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("a\nb\nc\n")
    return root


def train_seconds(iters: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = folder_dataset(Path(tmp) / "ds")
        cfg = TrainConfig(dataset="folder", data_root=str(root), preset="tiny", iters=iters, batch_size=2,
                          num_workers=0, output=str(Path(tmp) / "run"), ckpt_every=iters, precision="fp32",
                          model_overrides={"crop_size": 128, "sam_input_size": 128})  # fmt: skip
        t0 = time.perf_counter()
        train(cfg, load_dataset("folder", root, "train"), "cpu", quiet=True)
        return (time.perf_counter() - t0) / iters


def window_seconds(calls: int) -> float:
    model = models.build("tiny").eval()
    x = torch.rand(4, 3, 384, 384)
    with torch.inference_mode():
        model(x, ["a", "b", "c"])
        t0 = time.perf_counter()
        for _ in range(calls):
            model(x, ["a", "b", "c"])
    return (time.perf_counter() - t0) / (4 * calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print("| torch threads | s per training iteration (tiny, 128 px, batch 2) | s per window (tiny, 384 px, batch 4) |")
    print("|---|---|---|")
    for n in args.threads:
        torch.set_num_threads(n)
        print(f"| {n} | {train_seconds(args.iters):.3f} | {window_seconds(max(1, args.iters // 4)):.3f} |")


if __name__ == "__main__":
    main()
