"""`aeroseg vectorize` benchmark: polygons/s and peak RSS on a large synthetic label raster with many regions.

python benchmarks/vectorize_bench.py [--size 16384] [--block-rows 1024]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._synthetic import label_raster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--block-rows", type=int, nargs="+", default=[1024])
    ap.add_argument("--format", default="gpkg")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aeroseg-vbench-") as tmp:
        labels = label_raster(Path(tmp) / "labels.tif", args.size)
        print(f"\nvectorize, {args.size}x{args.size} synthetic labels, {args.format}")
        print(f"{'block rows':>10} {'polygons':>9} {'seconds':>8} {'polygons/s':>11} {'peak RSS MB':>12}")
        for rows in args.block_rows:
            out = Path(tmp) / f"out{rows}.{args.format}"
            code = (
                "import json, resource, sys; from pathlib import Path;"
                "from aeroseg_cli.polygons.vectorize import VectorizeOptions, vectorize_raster;"
                f"s = vectorize_raster(Path({str(labels)!r}), Path({str(out)!r}), VectorizeOptions(block_rows={rows}));"
                "s['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024;"
                "print(json.dumps(s))"
            )
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - t0
            s = json.loads(r.stdout.strip().splitlines()[-1])
            print(
                f"{rows:>10} {s['features']:>9} {seconds:>8.1f} {s['features'] / seconds:>11.0f} "
                f"{s['peak_rss_mb']:>12.1f}"
            )


if __name__ == "__main__":
    main()
