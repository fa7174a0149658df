"""How fast the host side of `segment` feeds a model, and how much memory it takes: the `probe` model costs almost
nothing, so reading, tiling, blending and writing are what is measured.

Every configuration runs in its own process (peak RSS is per process) through `segment_scene`, the pipeline the
command runs; windows/s counts the scene's grid windows (halo windows recomputed at superblock edges are work, not
progress). "predicted" is the pipeline's own bound (`engine.memory_bound`) plus the process's RSS after the model
is loaded.

    python benchmarks/feeder.py [--classes 4 15 60 254] [--scenes 4096x4096 2048x16384] [--io off auto]
                                [--device cpu|cuda] [--batch-size 8] [--tile 384] [--max-memory auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import aeroseg_cli  # noqa: F401 - its environment defaults (GDAL cache, torch huge pages) before torch loads
from benchmarks._synthetic import rgb_scene


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(args: argparse.Namespace) -> dict:
    """One configuration in this process -> its measurements."""
    import torch

    import models
    from aeroseg_cli.commands.options import parse_size
    from aeroseg_cli.runtime.host import configure_process
    from aeroseg_cli.segment.engine import (
        SegmentOptions,
        decode_threads,
        memory_bound,
        memory_budget,
        segment_scene,
        superblock_width,
        windows_per_call,
    )
    from aeroseg_cli.segment.predictor import Predictor
    from aeroseg_cli.segment.reader import inspect_scene
    from aeroseg_cli.segment.tiler import Grid

    configure_process()  # as the command line does (GDAL cache, allocator)
    device = torch.device(args.device)
    names = [f"class {i}" for i in range(args.k)]
    predictor = Predictor(models.build(args.model), names, device)
    opts = SegmentOptions(tile=args.tile, batch_size=args.batch_size, io_threads=args.io, overwrite=True,
                          max_memory=parse_size(args.max_memory))  # fmt: skip
    info = inspect_scene(args.scene, None, None, None, False)
    calls = windows_per_call(args.batch_size, args.k, args.tile)
    predictor(torch.rand(calls, 3, args.tile, args.tile, device=device), calls)  # warm-up
    base = rss_mb()
    grid = Grid.from_overlap(info.height, info.width, args.tile, opts.overlap)
    width = superblock_width(grid, args.k, memory_budget(opts, device), False, opts.chunk_rows)
    bound = memory_bound(grid, args.k, opts, 3, 1, decode_threads(args.io, device), width)
    t0 = time.perf_counter()
    res = segment_scene(info, predictor, Path(args.out), opts, {}, {"bench": 1})
    seconds = time.perf_counter() - t0
    return {
        "scene": f"{info.height}x{info.width}",
        "classes": args.k,
        "io": args.io,
        "threads": decode_threads(args.io, device),
        "device": str(device),
        "windows": len(grid),
        "run": res.windows["run"],
        "superblocks": res.superblocks,
        "seconds": seconds,
        "windows_per_s": len(grid) / seconds,
        "mpx_per_s": info.height * info.width / 1e6 / seconds,
        "peak_rss_mb": rss_mb(),
        "baseline_rss_mb": base,
        "predicted_mb": base + sum(bound.values()) / 2**20,
        "cuda_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def table(rows: list[dict]) -> str:
    cols = ["scene (HxW)", "classes", "I/O (threads)", "windows (+halo)", "superblocks", "windows/s", "Mpx/s",
            "peak RSS", "predicted"]  # fmt: skip
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [
            r["scene"],
            str(r["classes"]),
            f"{r['io']} ({r['threads']})",
            f"{r['windows']} (+{r['run'] - r['windows']})",
            str(r["superblocks"]),
            f"{r['windows_per_s']:.1f}",
            f"{r['mpx_per_s']:.2f}",
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['predicted_mb']:.0f} MB",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[4, 15, 60, 254])
    p.add_argument("--scenes", nargs="+", default=["4096x4096", "2048x16384"])
    p.add_argument("--io", nargs="+", default=["off", "auto"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="probe")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tile", type=int, default=384)
    p.add_argument("--max-memory", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", nargs=4, metavar=("SCENE", "K", "IO", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        args.scene, args.k, args.io, args.out = args.one[0], int(args.one[1]), args.one[2], args.one[3]
        print(json.dumps(one(args)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.scenes:
            h, w = (int(v) for v in spec.split("x"))
            scene = rgb_scene(Path(tmp) / f"scene_{spec}.tif", h, w)
            for k in args.classes:
                for io in args.io:
                    cmd = [sys.executable, __file__, "--one", str(scene), str(k), io, str(Path(tmp) / "out.tif"),
                           "--device", args.device, "--model", args.model, "--batch-size", str(args.batch_size),
                           "--tile", str(args.tile), "--max-memory", args.max_memory]  # fmt: skip
                    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if r.returncode:
                        sys.exit(r.stderr[-2000:])
                    rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                    print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=2) if args.json else table(rows))


if __name__ == "__main__":
    main()
