"""`aeroseg segment` benchmark: pipeline efficiency and peak memory.

(a) efficiency = end-to-end segment time / time of the model alone on the same windows (same batches, same device);
(b) peak RSS of a whole `segment` process on synthetic scenes of growing size: square scenes, and tall scenes of a
    fixed width (the strip blender's memory depends on width, never on height).

    python benchmarks/segment_pipeline.py [--model tiny] [--sizes 2048 8192 16384] [--batch-size 4] [--tile 384]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._synthetic import rgb_scene


def efficiency(model_spec: str, tile: int, batch: int, size: int, workdir: Path, repeats: int = 3) -> dict:
    from aeroseg_cli.runtime.host import configure_process
    from aeroseg_cli.runtime.modelio import load_model
    from aeroseg_cli.segment.engine import SegmentOptions, segment_scene

    configure_process()  # as the command line does (GDAL cache, allocator)
    from aeroseg_cli.segment.feeder import Feeder
    from aeroseg_cli.segment.predictor import Predictor
    from aeroseg_cli.segment.reader import inspect_scene
    from aeroseg_cli.segment.tiler import Grid

    scene = rgb_scene(workdir / "eff.tif", size, size)
    net = load_model(model_spec).model
    names = ["building", "road", "tree", "water"]
    predictor = Predictor(net, names, torch.device("cpu"))
    info = inspect_scene(scene, None, None, None, False)
    predictor(torch.rand(batch, 3, tile, tile), batch)  # warm-up
    opts = SegmentOptions(tile=tile, batch_size=batch, overwrite=True)
    grid = Grid.from_overlap(info.height, info.width, tile, 0.25)
    block = grid.superblocks(grid.width)[0]
    with Feeder(info, grid, torch.device("cpu"), batch) as feeder:  # the same batches the pipeline makes
        batches = [b.images for b in feeder.batches(block, 0, len(grid.rows)) if b.size]
    end_to_end = model_alone = float("inf")
    for _ in range(repeats):  # best of N for both: the machine's noise is larger than the effect measured
        t0 = time.perf_counter()
        res = segment_scene(info, predictor, workdir / "eff_out.tif", opts, {}, {"bench": 1})
        end_to_end = min(end_to_end, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for images in batches:
            predictor(images, batch)
        model_alone = min(model_alone, time.perf_counter() - t0)
    return {
        "scene": f"{size}x{size}",
        "windows": res.windows["done"],
        "end_to_end_s": end_to_end,
        "model_alone_s": model_alone,
        "ratio": end_to_end / model_alone,
    }


def peak_rss(model_spec: str, tile: int, batch: int, height: int, width: int, workdir: Path) -> dict:
    scene = rgb_scene(workdir / f"s{height}x{width}.tif", height, width)
    out = workdir / f"o{height}x{width}.tif"
    cmd = [
        sys.executable,
        "-m",
        "aeroseg_cli",
        "segment",
        str(scene),
        "-c",
        "building,road,tree,water",
        "-o",
        str(out),
        "--model",
        model_spec,
        "--tile",
        str(tile),
        "--batch-size",
        str(batch),
        "--json",
        "-q",
        "--overwrite",
        "--device",
        "cpu",
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    summary = json.loads(r.stdout)
    return {
        "scene": f"{height}x{width}",
        "megapixels": height * width / 1e6,
        "windows": summary["windows"]["done"],
        "seconds": time.perf_counter() - t0,
        "blender_mb": summary["blender_mb"],
        "peak_rss_mb": summary["peak_rss_mb"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--tile", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--efficiency-size", type=int, default=4096)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192, 16384])
    ap.add_argument("--tall-width", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="aeroseg-bench-") as tmp:
        work = Path(tmp)
        e = efficiency(args.model, args.tile, args.batch_size, args.efficiency_size, work)
        print(f"\n(a) pipeline efficiency, {args.model}, CPU, batch {args.batch_size}, tile {args.tile}")
        print(f"{'scene':>12} {'windows':>8} {'end-to-end s':>13} {'model alone s':>14} {'ratio':>6}")
        print(
            f"{e['scene']:>12} {e['windows']:>8} {e['end_to_end_s']:>13.2f} {e['model_alone_s']:>14.2f} "
            f"{e['ratio']:>6.3f}"
        )
        if args.skip_memory:
            return
        rows = [peak_rss(args.model, args.tile, args.batch_size, s, s, work) for s in args.sizes]
        rows += [
            peak_rss(args.model, args.tile, args.batch_size, s, args.tall_width, work)
            for s in args.sizes
            if s != args.tall_width
        ]
        print(f"\n(b) peak RSS of `aeroseg segment` ({args.model}, CPU, batch {args.batch_size}, tile {args.tile})")
        print(f"{'scene HxW':>12} {'Mpx':>7} {'windows':>8} {'seconds':>8} {'blender MB':>11} {'peak RSS MB':>12}")
        for r in rows:
            print(
                f"{r['scene']:>12} {r['megapixels']:>7.1f} {r['windows']:>8} {r['seconds']:>8.1f} "
                f"{r['blender_mb']:>11.1f} {r['peak_rss_mb']:>12.1f}"
            )


if __name__ == "__main__":
    main()
