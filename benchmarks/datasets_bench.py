"""`aeroseg datasets` benchmark: time, disk and peak memory of each preparation, and how fast `check` is.

python benchmarks/datasets_bench.py [--isaid-samples DIR] [--big 12000] [--only isaid,dlrsd,oem,check]

Imagery is real (crops of the CC0 Dubai aerial photos in ../shared/data), labels synthetic; --isaid-samples takes a
folder of real iSAID files ({train,val}/images/P*.png with their *_instance_color_RGB.png, e.g. the samples in
CAPTAIN-WHU/iSAID_Devkit preprocess/dataset/iSAID). Every preparation runs in its own process (peak RSS is its own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DUBAI = (ROOT / ".." / "shared" / "data" / "dubai-aerial-cc0").resolve()
sys.path.insert(0, str(ROOT))
from aeroseg_cli.datasets.dlrsd import DLRSD_COLOURS, UCM_CATEGORIES  # noqa: E402
from aeroseg_cli.datasets.isaid import ISAID_COLOURS  # noqa: E402


def photos() -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(DUBAI.glob("Tile */images/*.jpg"))]


def mosaic(h: int, w: int, pics: list[np.ndarray]) -> np.ndarray:
    """Real aerial texture of any size: the photos tiled (cropped to 500 x 500)."""
    out = np.zeros((h, w, 3), np.uint8)
    k = 0
    for y in range(0, h, 500):
        for x in range(0, w, 500):
            p = pics[k % len(pics)][:500, :500]
            out[y : y + 500, x : x + 500] = p[: min(500, h - y), : min(500, w - x)]
            k += 1
    return out


def rectangles(h: int, w: int, k: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.zeros((h, w), np.uint8)
    for _ in range(n):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        ids[y : y + int(rng.integers(4, 80)), x : x + int(rng.integers(4, 80))] = rng.integers(1, k + 1)
    return ids


def run(code: str) -> dict:
    """Python code printing a JSON dict, in a fresh process; adds seconds and peak RSS."""
    wrapped = (
        "import json, time, warnings; warnings.simplefilter('ignore'); t = time.perf_counter()\n"
        f"{code}\n"
        "r['seconds'] = time.perf_counter() - t\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report this (large) parent's memory
        "r['peak_rss_mb'] = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024\n"
        "print(json.dumps(r))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def prepare(name: str, raw: Path, out: Path | None, **kw) -> dict:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items()).replace("PosixPath(", "Path(")
    dest = f"Path({str(out)!r})" if out else "None"
    r = run(
        f"from pathlib import Path; from aeroseg_cli.datasets.{name} import prepare_{name} as f\n"
        f"r = {{'summary': f(Path({str(raw)!r}), {dest}, quiet=True, {args})}}"
    )
    r["bytes"] = size_of(out) if out and out.exists() else 0
    return r


def bench_isaid(tmp: Path, samples: Path | None, big: int, pics: list[np.ndarray]) -> None:
    print("\n## iSAID")
    if samples:  # the paper's windows (the defaults); P0002.png is not in iSAID_Devkit's repository snapshot
        r = prepare("isaid", samples, tmp / "real", skip=("P0002",))
        splits = r["summary"]["splits"].values()
        n, windows = sum(s["patches"] for s in splits), sum(s["windows"] for s in splits)
        mpx = sum(p["size"][0] * p["size"][1] for p in records(tmp / "real")) / 1e6
        print(
            f"real samples: {n} of {windows} windows kept from {mpx:.1f} Mpx, {r['seconds']:.1f} s "
            f"({r['seconds'] / mpx:.2f} s/Mpx, {r['seconds'] / n:.3f} s per kept patch), "
            f"{r['bytes'] / n / 1e3:.0f} kB per patch (image + mask), peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    table = np.array(ISAID_COLOURS, np.uint8)
    for h in (big // 4, big):
        raw = tmp / f"big{h}" / "train" / "images"
        raw.mkdir(parents=True)
        Image.fromarray(mosaic(h, big, pics)).save(raw / "P9000.png", compress_level=1)
        Image.fromarray(table[rectangles(h, big, 15, h * big // 20000, 0)]).save(raw / "P9000_instance_color_RGB.png")
        r = prepare("isaid", raw.parents[1], tmp / f"big{h}-out", splits=("train",))
        n, windows = r["summary"]["splits"]["train"]["patches"], r["summary"]["splits"]["train"]["windows"]
        print(
            f"one {big} wide x {h} high image: {n} of {windows} windows kept, {r['seconds']:.1f} s "
            f"({r['seconds'] / (h * big / 1e6):.2f} s/Mpx), {r['bytes'] / 1e6:.0f} MB, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )


def records(out: Path) -> list[dict]:
    """The per-image records a prepare run left (size, patches)."""
    return [json.loads(p.read_text()) for p in (out / ".aeroseg-prepare" / "done").rglob("*.json")]


def bench_dlrsd(tmp: Path, pics: list[np.ndarray]) -> Path:
    print("\n## DLRSD (2,100 images of 256 x 256, the full size)")
    raw = tmp / "dlrsd"
    palette = [0, 0, 0, *[v for c in DLRSD_COLOURS for v in c]]
    k = 0
    for cat in UCM_CATEGORIES:
        (raw / "Images" / cat).mkdir(parents=True)
        (raw / "Labels" / cat).mkdir(parents=True)
        for n in range(100):
            pic = pics[k % len(pics)]
            y, x = (k * 97) % (pic.shape[0] - 256), (k * 131) % (pic.shape[1] - 256)
            Image.fromarray(pic[y : y + 256, x : x + 256]).save(raw / "Images" / cat / f"{cat}{n:02d}.tif")
            label = Image.fromarray(rectangles(256, 256, 16, 40, k) + 1)  # ids 1..17
            label.putpalette(palette)
            label.save(raw / "Labels" / cat / f"{cat}{n:02d}.png")
            k += 1
    r = prepare("dlrsd", raw, tmp / "dlrsd-out")
    print(f"prepare: {r['seconds']:.1f} s, {r['bytes'] / 1e6:.0f} MB written, peak RSS {r['peak_rss_mb']:.0f} MB")
    return tmp / "dlrsd-out"


def bench_oem(tmp: Path, pics: list[np.ndarray], pairs: int = 100, xbd: int = 20) -> None:
    import rasterio
    from rasterio.transform import from_origin

    print(f"\n## OpenEarthMap ({pairs} pairs and {xbd} xBD images of 1024 x 1024)")
    raw, xbd_root = tmp / "oem", tmp / "xbd" / "tier1" / "images"
    xbd_root.mkdir(parents=True)
    names, rows = [], []
    for i in range(pairs + xbd):
        region = "aachen" if i < pairs else "palu"
        name = f"{region}_{i}.tif"
        names.append(name)
        rgb = mosaic(1024, 1024, pics[i % len(pics) :])
        meta = {"driver": "GTiff", "height": 1024, "width": 1024, "dtype": "uint8", "crs": "EPSG:32632"}
        meta.update(transform=from_origin(300000 + 600 * i, 5600000, 0.5, 0.5), compress="deflate")
        (raw / region / "labels").mkdir(parents=True, exist_ok=True)
        with rasterio.open(raw / region / "labels" / name, "w", count=1, **meta) as dst:
            dst.write(rectangles(1024, 1024, 8, 200, i)[None])
        if region == "aachen":
            (raw / region / "images").mkdir(parents=True, exist_ok=True)
            with rasterio.open(raw / region / "images" / name, "w", count=3, **meta) as dst:
                dst.write(np.moveaxis(rgb, -1, 0))
        else:
            src = f"palu-tsunami_{i:08d}_pre_disaster.png"
            Image.fromarray(rgb).save(xbd_root / src)
            rows.append(f"{src},{name}")
    (raw / "train.txt").write_text("\n".join(names[: len(names) * 4 // 5]) + "\n")
    (raw / "val.txt").write_text("\n".join(names[len(names) * 4 // 5 :]) + "\n")
    (raw / "xbd_files.csv").write_text("\n".join(rows) + "\n")
    r = prepare("openearthmap", raw, None)
    print(
        f"verify in place: {r['seconds']:.1f} s for {pairs + xbd} listed files "
        f"({1000 * r['seconds'] / (pairs + xbd):.1f} ms each), missing xBD {r['summary']['missing_xbd_by_region']}"
    )
    r = prepare("openearthmap", raw, tmp / "oem-out", xbd=tmp / "xbd", tile=0)
    print(
        f"--tile 0: mirror + compile {xbd} xBD images: {r['seconds']:.1f} s, {r['bytes'] / xbd / 1e6:.2f} MB per "
        f"compiled image, peak RSS {r['peak_rss_mb']:.0f} MB"
    )
    r = prepare("openearthmap", raw, tmp / "oem-tiles")
    n = sum(s["tiles"] for s in r["summary"]["splits"].values())
    images = sum(s["images"] for s in r["summary"]["splits"].values())
    print(
        f"tiles (the defaults: 256 px, xBD left out): {images} images -> {n} tiles in {r['seconds']:.1f} s "
        f"({1000 * r['seconds'] / n:.1f} ms per tile), {r['bytes'] / n / 1e3:.0f} kB per tile (image + label), "
        f"peak RSS {r['peak_rss_mb']:.0f} MB"
    )


def bench_check(tmp: Path, dlrsd_out: Path, copies: int = 3) -> None:
    print("\n## check")
    many = tmp / "many"
    for split in ("train", "val"):
        for sub in ("imgs", "D2masks"):
            (many / split / sub).mkdir(parents=True)
            for f in sorted((dlrsd_out / split / sub).glob("*.png")):
                for c in range(copies):
                    os.link(f, many / split / sub / f"{f.stem}_{c}.png")
    n = sum(1 for _ in (many / "train" / "imgs").iterdir()) + sum(1 for _ in (many / "val" / "imgs").iterdir())
    for full in (False, True):
        r = run(
            "from pathlib import Path; from aeroseg_cli.datasets.check import run_check, to_json\n"
            f"r = {{'ok': to_json(run_check('dlrsd', Path({str(many)!r}), full={full}))['ok']}}"
        )
        print(f"check dlrsd {'--full' if full else '(quick)'} on {n} pairs of 256 x 256: {r['seconds']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isaid-samples", type=Path)
    ap.add_argument("--big", type=int, default=12000, help="side of the large synthetic iSAID image")
    ap.add_argument("--only", default="isaid,dlrsd,oem,check")
    args = ap.parse_args()
    only = set(args.only.split(","))
    pics = photos()
    with tempfile.TemporaryDirectory(prefix="aeroseg-dsbench-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        if "isaid" in only:
            bench_isaid(tmp, args.isaid_samples, args.big, pics)
        if only & {"dlrsd", "check"}:
            out = bench_dlrsd(tmp, pics)
            if "check" in only:
                bench_check(tmp, out)
        if "oem" in only:
            bench_oem(tmp, pics)
        print(f"\n(benchmark total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
