"""How long `aeroseg` takes before it does anything: help, version, the weights list and usage errors should answer
in well under half a second (heavy libraries load only when a command needs them).

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "naip_2020_rgbn_utm14n.tif"
CASES = [
    ("aeroseg --help", ["--help"]),
    ("aeroseg --version", ["--version"]),
    ("aeroseg segment --help", ["segment", "--help"]),
    ("aeroseg weights list", ["weights", "list"]),
    ("usage error: segment --overlap 2", ["segment", str(SCENE), "--overlap", "2"]),
    ("usage error: segment, untrained preset", ["segment", str(SCENE), "-c", "ship"]),
    ("usage error: segment --bands 9 (reads the header)", ["segment", str(SCENE), "--bands", "9", "--model", "tiny"]),
    ("usage error: vectorize missing file", ["vectorize", "missing.tif", "-o", "x.gpkg"]),
    ("usage error: train --dataset nope", ["train", "--dataset", "nope", "--data-root", "."]),
]


def best(args: list[str], repeat: int, cwd: str) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "aeroseg_cli", *args], cwd=cwd, capture_output=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False).returncode  # fmt: skip
        times.append(time.perf_counter() - t0)
    return min(times), code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"| command (best of {args.repeat}) | seconds | exit |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in CASES:
            seconds, code = best(argv, args.repeat, tmp)
            print(f"| {name} | {seconds:.2f} | {code} |")


if __name__ == "__main__":
    main()
