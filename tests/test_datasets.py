"""``aeroseg datasets``: official downloads in, the layout ``train`` reads out, every pixel's class kept; checks.

Every fixture is written here, in the official format of its release (iSAID's real colour table, official zip
names; UC Merced / DLRSD names; OpenEarthMap's lists and xbd_files.csv), small enough to run in seconds.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from aeroseg_cli.datasets.patches import window_starts, windows
from aeroseg_cli.datasets.readers import load_dataset
from aeroseg_cli.datasets.specs import ISAID
from tests.support.cli import run_cli
from tests.support.docs import DOCS
from tests.support.paths import ROOT

# iSAID's official colour table, written out here (not imported) so that a wrong table in the code fails the tests
ISAID_TABLE = [
    (0, 0, 0), (0, 0, 63), (0, 63, 63), (0, 63, 0), (0, 63, 127), (0, 63, 191), (0, 63, 255), (0, 127, 63),
    (0, 127, 127), (0, 0, 127), (0, 0, 191), (0, 0, 255), (0, 191, 127), (0, 127, 191), (0, 127, 255), (0, 100, 155),
]  # fmt: skip
DLRSD_TABLE = [
    (166, 202, 240), (128, 128, 0), (0, 0, 128), (255, 0, 0), (0, 128, 0), (128, 0, 0), (255, 233, 233),
    (160, 160, 164), (0, 128, 128), (90, 87, 255), (255, 255, 0), (255, 192, 0), (0, 0, 255), (255, 0, 192),
    (128, 0, 128), (0, 255, 0), (0, 255, 255),
]  # fmt: skip
UCM = [
    "agricultural",
    "airplane",
    "baseballdiamond",
    "beach",
    "buildings",
    "chaparral",
    "denseresidential",
    "forest",
    "freeway",
    "golfcourse",
    "harbor",
    "intersection",
    "mediumresidential",
    "mobilehomepark",
    "overpass",
    "parkinglot",
    "river",
    "runway",
    "sparseresidential",
    "storagetanks",
    "tenniscourt",
]


def png_bytes(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1, **kw)
    return buf.getvalue()


def blocks(h: int, w: int, k: int, seed: int, background: int | None = 0) -> np.ndarray:
    """An id map with every id in 1..k (and ``background`` elsewhere) as rectangles of many sizes."""
    rng = np.random.default_rng(seed)
    ids = np.full((h, w), background if background is not None else 1, np.uint8)
    for _ in range(3):
        for c in range(1, k + 1):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            ids[y : y + int(rng.integers(2, h // 3 + 3)), x : x + int(rng.integers(2, w // 3 + 3))] = c
    return ids


def rgb_coded(h: int, w: int, seed: int) -> np.ndarray:
    """An image whose pixels spell their own position (unique up to 4096 px a side): a misplaced patch shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y & 255, x & 255, ((y >> 8) << 4 | (x >> 8)) ^ seed], -1).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------- iSAID

MMSEG = ("--patch", "896", "--stride", "512", "--min-foreground", "0")  # mmsegmentation's windows, every one kept


def isaid_raw(root: Path, sizes: dict[str, list[tuple[int, int]]], zipped: tuple[str, ...] = ("train",)) -> dict:
    """The official download: zip files (as mmsegmentation's docs show them) for the splits in ``zipped``, extracted
    folders for the others; the distractor *_instance_id_RGB.png files of the release too. Returns the ids."""
    truth = {}
    for split, shapes in sizes.items():
        files = {}
        for i, (h, w) in enumerate(shapes):
            name = f"P{i + (100 if split == 'val' else 0):04d}"
            ids = blocks(h, w, 15, seed=i + len(split))
            image = rgb_coded(h, w, i)
            if split == "val":  # DOTA has grey images too (GF-2 / JL-1 panchromatic): one band in the PNG
                image = np.repeat(image[..., :1], 3, axis=-1)
            truth[(split, name)] = (image, ids)
            files[f"images/{name}.png"] = png_bytes(image[..., 0] if split == "val" else image)
            files[f"masks/{name}_instance_color_RGB.png"] = png_bytes(np.array(ISAID_TABLE, np.uint8)[ids])
            files[f"masks/{name}_instance_id_RGB.png"] = png_bytes(np.zeros((h, w, 3), np.uint8))
        if split in zipped:
            for folder, zipname, kind in (
                ("images", "part1.zip", "images/"),
                ("Semantic_masks", "images.zip", "masks/"),
            ):
                (root / split / folder).mkdir(parents=True)
                with zipfile.ZipFile(root / split / folder / zipname, "w") as z:
                    for k, data in files.items():
                        if k.startswith(kind):
                            z.writestr("images/" + k.split("/")[1], data)
        else:
            for k, data in files.items():
                path = (
                    root / split / ("images" if k.startswith("images/") else "Semantic_masks/images") / k.split("/")[1]
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    return truth


def rebuild(out: Path, split: str, name: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, mask and coverage count put back together from the patches (asserting each lies inside the image)."""
    h, w = shape
    image, mask, cover = np.zeros((h, w, 3), np.uint8), np.full((h, w), 77, np.uint8), np.zeros((h, w), int)
    for p in sorted((out / split / "D2masks").glob(f"{name}_*.png")):
        y0, y1, x0, x1 = map(int, p.stem.split("_")[1:])
        assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w, p.name
        m = np.asarray(Image.open(p))
        im = np.asarray(Image.open(out / split / "imgs" / p.name))
        assert m.shape == (y1 - y0, x1 - x0) and im.shape == (y1 - y0, x1 - x0, 3)
        assert (mask[y0:y1, x0:x1][cover[y0:y1, x0:x1] > 0] == m[cover[y0:y1, x0:x1] > 0]).all()  # overlaps agree
        mask[y0:y1, x0:x1], image[y0:y1, x0:x1] = m, im
        cover[y0:y1, x0:x1] += 1
    return image, mask, cover


def mmseg_windows(h: int, w: int, patch: int, stride: int) -> set:
    """The windows mmsegmentation's iSAID converter cuts (its loop: steps of the stride, shifted back at the edge)."""
    out = set()
    for x in range(0, w, stride):
        for y in range(0, h, stride):
            x0, y0 = min(x, max(w - patch, 0)), min(y, max(h - patch, 0))
            out.add((y0, min(y0 + patch, h), x0, min(x0 + patch, w)))
    return out


def test_window_grid_covers_every_pixel_stays_inside_and_matches_mmsegmentation() -> None:
    cases = [(2300, 1900, 896, 512), (896, 897, 896, 512), (500, 300, 896, 512), (1000, 1000, 256, 256)]
    for h, w, patch, stride in [*cases, (20_000, 13, 896, 512), (3000, 2000, 800, 600)]:
        wins = windows(h, w, patch, stride)
        assert set(wins) == mmseg_windows(h, w, patch, stride) and len(wins) == len(set(wins))
        cover = np.zeros((min(h, 3000), w), int)
        for y0, y1, x0, x1 in wins:
            assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w and y1 - y0 == min(patch, h) and x1 - x0 == min(patch, w)
            cover[y0 : min(y1, 3000), x0:x1] += 1
        assert cover.min() >= 1
    assert window_starts(2300, 896, 512) == [0, 512, 1024, 1404]


def test_isaid_from_official_zips_and_folders_keeps_every_pixel_class(tmp_path: Path) -> None:
    sizes = {"train": [(2300, 1900), (500, 300), (1000, 1200)], "val": [(900, 700)]}
    truth = isaid_raw(tmp_path / "raw", sizes)
    out = tmp_path / "out"
    r = run_cli("datasets", "prepare", "isaid", "--from", tmp_path / "raw", "-o", out, "--json", *MMSEG)
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["splits"]["train"]["patches"] == 12 + 1 + 4 and summary["splits"]["val"]["patches"] == 2
    assert "isaid: started" in r.stderr and "(100 %)" in r.stderr  # plain progress lines when stderr is no terminal
    for (split, name), (image, ids) in truth.items():
        got_image, got_mask, cover = rebuild(out, split, name, ids.shape)
        assert cover.min() >= 1  # every pixel in some patch
        assert (got_image == image).all()
        expected = np.where(ids == 0, 255, ids - 1)  # background -> ignore, official id k -> class index k-1
        assert (got_mask == expected).all()
    r = run_cli(
        "datasets", "prepare", "isaid", "--from", tmp_path / "raw", "-o", tmp_path / "par", "-j", "2", "-q", *MMSEG
    )
    assert r.code == 0 and r.stderr == ""  # two worker processes: the same files (-q: no progress at all)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} == {
        p.relative_to(tmp_path / "par"): p.read_bytes() for p in (tmp_path / "par").rglob("*.png")
    }
    train = load_dataset("isaid", out, "train")  # exactly what `aeroseg train --dataset isaid` opens
    assert len(train) == 17 and train.spec is ISAID
    _, mask = train.load(0)
    assert set(np.unique(mask)) <= {*range(15), 255}
    counts = summary["splits"]["train"]["pixels"]
    want = sum(np.bincount(ids.ravel(), minlength=16) for (s, _), (_, ids) in truth.items() if s == "train")
    assert [counts[c] for c in ISAID.classes] == want[1:].tolist()
    assert counts["background (ignore)"] == want[0]


def test_isaid_bad_inputs_get_one_clear_line_and_nothing_written(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    isaid_raw(raw, {"train": [(300, 200), (200, 200)]}, zipped=())
    masks = raw / "train" / "Semantic_masks" / "images"

    def fails(*extra: str, code: int = 2) -> str:
        r = run_cli("datasets", "prepare", "isaid", "--from", raw, "-o", out, "--splits", "train", "-q", *MMSEG, *extra)
        assert r.code == code and r.stderr.startswith("aeroseg: error: ") and r.stderr.count("\n") == 1, r.stderr
        return r.stderr

    colours = np.array(ISAID_TABLE, np.uint8)[np.zeros((200, 200), np.uint8)]
    colours[150:153, :4] = (9, 8, 7)
    Image.fromarray(colours).save(masks / "P0001_instance_color_RGB.png")
    msg = fails()
    assert "P0001_instance_color_RGB.png" in msg and "(9, 8, 7) on 12 pixels" in msg
    # found while converting: P0000 is finished and kept, nothing of P0001 is among the patches
    assert list((out / "train" / "D2masks").glob("P0000_*")) and not list(out.rglob("P0001_*"))
    shutil.rmtree(out)
    Image.fromarray(colours[:150]).save(masks / "P0001_instance_color_RGB.png")
    msg = fails()
    assert "P0001" in msg and "differs from image" in msg and "--skip P0001" in msg
    (masks / "P0001_instance_color_RGB.png").unlink()
    assert "images without a *_instance_color_RGB.png mask: 1 (first: P0001)" in fails()
    Image.fromarray(colours).save(masks / "P0005_instance_color_RGB.png")
    assert "masks without a P<digits>.png image: 1 (first: P0005)" in fails("--skip", "P0001")
    assert not out.exists()  # every check above came before anything was written
    (masks / "P0005_instance_color_RGB.png").unlink()
    ok = run_cli(
        "datasets", "prepare", "isaid", "--from", raw, "-o", out, "--splits", "train", "--skip", "P0001", *MMSEG
    )
    assert ok.code == 0, ok.stderr
    assert "other settings (patch=896)" in fails("--patch", "512", "--skip", "P0001")
    r = run_cli("datasets", "prepare", "isaid", "--from", raw, "-o", raw / "prepared")
    assert r.code == 2 and "inside --from" in r.stderr and not (raw / "prepared").exists()


def finished(done: Path) -> int:
    """Images finished: their markers (not the temporary file of one being written)."""
    return len(list(done.glob("P*.json"))) if done.is_dir() else 0


def signal_when_started(procs: dict, dirs: dict, timeout: float = 180) -> None:
    """Send each process its signal as soon as it has finished its first image (markers appear one per image)."""
    end, pending = time.monotonic() + timeout, dict(procs)
    while pending:
        for sig, proc in list(pending.items()):
            assert proc.poll() is None, proc.communicate()[1][-2000:]  # still running: midway
            if finished(dirs[sig]):
                proc.send_signal(sig)
                del pending[sig]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


@pytest.mark.slow
def test_isaid_interrupted_by_sigint_and_sigterm_then_rerun_gives_the_same_output(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    isaid_raw(raw, {"train": [(640, 600)] * 8}, zipped=("train",))
    args = ["datasets", "prepare", "isaid", "--from", str(raw), "--splits", "train", "--patch", "256"]
    args += ["--stride", "256", "--min-foreground", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = {}  # one real `python -m aeroseg_cli` run per signal, side by side
    for sig in (signal.SIGINT, signal.SIGTERM):
        cmd = [sys.executable, "-m", "aeroseg_cli", *args, "-o", str(tmp_path / sig.name)]
        procs[sig] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    dirs = {sig: tmp_path / sig.name / ".aeroseg-prepare" / "done" / "train" for sig in procs}
    signal_when_started(procs, dirs)
    for sig, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        code, said = (130, "interrupted") if sig == signal.SIGINT else (143, "stopped by SIGTERM")
        assert proc.returncode == code and said in err and "rerun the same command" in err, err[-2000:]
        assert 1 <= finished(dirs[sig]) < 8  # it really stopped midway
        assert not [p for p in (tmp_path / sig.name).rglob("*") if p.name.endswith(".tmp")]  # no temporary file left
    r = run_cli(*args, "-o", tmp_path / "clean", "-q")
    assert r.code == 0 and r.stderr == ""  # -q: no progress at all
    clean = {p.relative_to(tmp_path / "clean"): p.read_bytes() for p in (tmp_path / "clean").rglob("*.png")}
    assert len(clean) == 8 * 2 * len(windows(640, 600, 256, 256))
    for sig in procs:
        out = tmp_path / sig.name
        r = run_cli(*args, "-o", out, "--json", "-q")
        assert r.code == 0 and json.loads(r.stdout)["resumed_images"] >= 1
        assert clean == {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
        a = json.loads((tmp_path / "clean" / "aeroseg-prepare.json").read_text())["splits"]
        assert a == json.loads((out / "aeroseg-prepare.json").read_text())["splits"]


# ----------------------------------------------------------------------------------------------------------- DLRSD


def dlrsd_raw(root: Path, per_category: int = 5, fmt: str = "palette", size: int = 24) -> dict:
    """UC Merced images (``Images/<category>/<category>NN.tif``) and DLRSD labels (here under a folder of another
    name, as only the file names count) in one of the plausible label formats. Returns name -> (image, ids 0..16)."""
    truth = {}
    palette = [0, 0, 0, *[v for c in DLRSD_TABLE for v in c]]
    for ci, cat in enumerate(UCM):
        for n in range(per_category):
            name, seed = f"{cat}{n:02d}", ci * 100 + n
            image = rgb_coded(size, size, seed % 16)
            ids = np.random.default_rng(seed).integers(0, 17, (size, size)).astype(np.uint8)
            (root / "UCMerced_LandUse" / "Images" / cat).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "UCMerced_LandUse" / "Images" / cat / f"{name}.tif")
            label = root / "DLRSD" / "Labels" / cat / f"{name}.png"
            label.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "palette":
                im = Image.fromarray(ids + 1)
                im.putpalette(palette)
            elif fmt == "rgb":
                im = Image.fromarray(np.array(DLRSD_TABLE, np.uint8)[ids])
            else:
                im = Image.fromarray(ids + (1 if fmt == "grey1" else 0))
            im.save(label)
            truth[name] = (image, ids)
    return truth


def prepare_dlrsd(raw: Path, out: Path, *extra: str) -> dict:
    r = run_cli("datasets", "prepare", "dlrsd", "--from", raw, "-o", out, "--json", "-q", *extra)
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


def test_dlrsd_split_is_seeded_stratified_reproducible_and_every_pixel_kept(tmp_path: Path) -> None:
    truth = dlrsd_raw(tmp_path / "raw")
    s = prepare_dlrsd(tmp_path / "raw", tmp_path / "a")
    assert s["label_format"] == "index" and s["label_base"] == 1 and "palette" in s["label_base_evidence"]
    assert all(s["per_category"]["val"][c] == 1 and s["per_category"]["train"][c] == 4 for c in UCM)  # stratified
    for split in ("train", "val"):
        data = load_dataset("dlrsd", tmp_path / "a", split)  # what `aeroseg train --dataset dlrsd` opens
        for i, sample in enumerate(data.samples):
            image, mask = data.load(i)
            want_image, want_ids = truth[sample.image.stem]
            assert (image == want_image).all() and (mask == want_ids).all()
    lists = {p: (tmp_path / "a" / p).read_text() for p in ("train.txt", "val.txt", "split.csv")}
    prepare_dlrsd(tmp_path / "raw", tmp_path / "b")
    assert lists == {p: (tmp_path / "b" / p).read_text() for p in lists}  # deterministic
    prepare_dlrsd(tmp_path / "raw", tmp_path / "c", "--seed", "1")
    other = (tmp_path / "c" / "val.txt").read_text()
    assert other != lists["val.txt"] and len(other.split()) == 21  # another seed: another, still stratified, split
    prepare_dlrsd(tmp_path / "raw", tmp_path / "d", "--seed", "1", "--split-file", tmp_path / "a" / "split.csv")
    assert lists == {p: (tmp_path / "d" / p).read_text() for p in lists}  # --split-file reproduces it exactly
    theirs = tmp_path / "theirs.txt"  # someone else's split: header, folders, other extensions, spaces
    theirs.write_text("name split\nDLRSD_split/val/imgs/beach03.jpg val\nairplane01.jpg train\n\nriver00 train\n")
    s = prepare_dlrsd(tmp_path / "raw", tmp_path / "e", "--split-file", theirs)
    assert (tmp_path / "e" / "val.txt").read_text() == "beach03\n" and s["left_out"] == 21 * 5 - 3
    assert (tmp_path / "e" / "train.txt").read_text() == "airplane01\nriver00\n"


def test_dlrsd_label_formats_are_detected_and_bad_labels_refused(tmp_path: Path) -> None:
    for fmt, base, evidence in (("grey1", 1, "never 0"), ("grey0", 0, "never 17"), ("rgb", 0, "colour")):
        truth = dlrsd_raw(tmp_path / fmt, per_category=1, fmt=fmt)
        s = prepare_dlrsd(tmp_path / fmt, tmp_path / f"{fmt}-out")
        assert s["label_base"] == base and evidence in s["label_base_evidence"], s
        got = {p.stem: np.asarray(Image.open(p)) for p in (tmp_path / f"{fmt}-out").rglob("D2masks/*.png")}
        assert len(got) == 21 and all((got[n] == ids).all() for n, (_, ids) in truth.items())
    raw, out = tmp_path / "grey1", tmp_path / "bad-out"

    def fails(*extra: str) -> str:
        r = run_cli("datasets", "prepare", "dlrsd", "--from", raw, "-o", out, "-q", *extra)
        assert r.code == 2 and r.stderr.startswith("aeroseg: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert not out.exists()  # every label is read before anything is written
        return r.stderr

    label = raw / "DLRSD" / "Labels" / "beach" / "beach00.png"
    ids = np.asarray(Image.open(label)).copy()
    ids[:2, :3] = 18
    Image.fromarray(ids).save(label)
    assert "label value 18 on 6 pixels is outside ids 1..17" in fails()
    Image.fromarray(np.where(ids == 18, 0, ids).astype(np.uint8)).save(label)
    assert "both 0 and 17" in fails() and "--label-base" in fails()
    Image.fromarray(np.array(DLRSD_TABLE, np.uint8)[ids % 17]).save(label)
    assert "beach00.png is a colour PNG but earlier labels are index PNGs" in fails()
    Image.fromarray(ids[:, :20]).save(label)
    msg = fails()
    assert "beach00: label 20x24 differs from image 24x24" in msg and "never resized" in msg
    label.rename(label.with_name("beach77.png"))
    msg = fails()
    assert "1 images without a label" in msg and "beach00.tif" in msg
    split = tmp_path / "split.csv"
    split.write_text("name,split\nnowhere00,val\n")
    rgb = tmp_path / "rgb"
    colours = np.zeros((24, 24, 3), np.uint8)
    Image.fromarray(colours).save(rgb / "DLRSD" / "Labels" / "forest" / "forest00.png")
    r = run_cli("datasets", "prepare", "dlrsd", "--from", rgb, "-o", tmp_path / "rgb-bad", "-q")
    assert r.code == 2 and "forest00.png: colour (0, 0, 0) on 576 pixels" in r.stderr
    r = run_cli("datasets", "prepare", "dlrsd", "--from", rgb, "-o", tmp_path / "x", "--split-file", split)
    assert r.code == 2 and "line 2: nowhere00 is not among the images" in r.stderr


# ---------------------------------------------------------------------------------------------------- OpenEarthMap


def geotiff(path: Path, data: np.ndarray, x0: float = 500_000.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2], "count": data.shape[0]}
    meta.update(dtype="uint8", crs="EPSG:32651", transform=from_origin(x0, 9_000_000.0, 0.5, 0.5))
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)


def oem_raw(root: Path, xbd: Path) -> dict:
    """A release: aachen complete; palu xBD-sourced (labels only, images in xView2 PNGs listed in xbd_files.csv);
    test.txt with an image and no label (test labels are not public)."""
    labels = {}
    for i, name in enumerate(["aachen_1.tif", "aachen_2.tif", "aachen_3.tif", "palu_1.tif", "palu_2.tif"]):
        region = name.split("_")[0]
        labels[name] = np.random.default_rng(i).integers(0, 9, (1, 32, 40)).astype(np.uint8)
        geotiff(root / region / "labels" / name, labels[name], x0=500_000.0 + 100 * i)
        if region == "aachen":
            geotiff(root / region / "images" / name, rgb_coded(32, 40, i).transpose(2, 0, 1).copy())
    geotiff(root / "aachen" / "images" / "aachen_4.tif", rgb_coded(32, 40, 9).transpose(2, 0, 1).copy())
    (root / "train.txt").write_text("aachen_1.tif\naachen_2.tif\npalu_1.tif\n")
    (root / "val.txt").write_text("aachen_3.tif\npalu_2.tif\n")
    (root / "test.txt").write_text("aachen_4.tif\n")
    pngs = {}
    rows = []
    for i, name in enumerate(["palu_1.tif", "palu_2.tif"], 1):
        src = f"palu-tsunami_0000000{i}_pre_disaster.png"
        rows.append(f"{src},{name}")
        pngs[name] = rgb_coded(32, 40, i)
        (xbd / "tier3" / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pngs[name]).save(xbd / "tier3" / "images" / src)
        Image.fromarray(pngs[name][::-1]).save(xbd / "tier3" / "images" / src.replace("pre", "post"))
    (root / "xbd_files.csv").write_text("\n".join(rows) + "\n")
    return pngs


def snapshot(root: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_openearthmap_reports_missing_xbd_images_by_region_without_writing(tmp_path: Path) -> None:
    raw = tmp_path / "OpenEarthMap_wo_xBD"
    oem_raw(raw, tmp_path / "xbd")
    before = snapshot(raw)
    r = run_cli("datasets", "prepare", "openearthmap", "--from", raw)
    assert r.code == 0, r.stderr
    assert "train: 2 of 3 listed files usable" in r.stdout and "palu (2)" in r.stdout and "--xbd" in r.stdout
    assert "compile_xbd.py" in r.stdout and snapshot(raw) == before  # checked in place: nothing written
    r = run_cli("datasets", "check", "openearthmap", "--data-root", raw, "--json")
    assert r.code == 0 and "1 listed image(s) are missing" in json.loads(r.stdout)["warnings"][0]
    nested = run_cli("datasets", "prepare", "openearthmap", "--from", tmp_path)
    assert nested.code == 2 and f"did you mean --from {raw}" in nested.stderr


def test_openearthmap_xbd_images_compiled_into_a_mirror(tmp_path: Path) -> None:
    raw, xbd, out = tmp_path / "raw", tmp_path / "xbd", tmp_path / "oem"
    pngs = oem_raw(raw, xbd)
    before = snapshot(raw)
    r = run_cli(
        "datasets", "prepare", "openearthmap", "--from", raw, "-o", out, "--xbd", xbd, "--json", "-q", "--tile", "0"
    )
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["compiled_xbd_images"] == 2 and s["missing_xbd_by_region"] == {}
    assert s["splits"]["train"] == {"listed": 3, "usable": 3, "missing_xbd": 0}
    assert snapshot(raw) == before and (out / "aachen" / "images" / "aachen_1.tif").is_symlink()
    for name, rgb in pngs.items():
        with rasterio.open(out / "palu" / "images" / name) as im, rasterio.open(raw / "palu" / "labels" / name) as lb:
            assert im.crs == lb.crs and im.transform == lb.transform and im.shape == lb.shape
            assert (np.moveaxis(im.read(), 0, -1) == rgb).all()
    assert len(load_dataset("openearthmap", out, "train")) == 3
    r = run_cli("datasets", "check", "openearthmap", "--data-root", out, "--json")
    assert r.code == 0 and json.loads(r.stdout)["warnings"] == []


def test_openearthmap_problems_stop_before_anything_is_written(tmp_path: Path) -> None:
    raw, xbd, out = tmp_path / "raw", tmp_path / "xbd", tmp_path / "oem"
    oem_raw(raw, xbd)
    (xbd / "tier3" / "images" / "palu-tsunami_00000002_pre_disaster.png").unlink()
    r = run_cli("datasets", "prepare", "openearthmap", "--from", raw, "-o", out, "--xbd", xbd)
    assert r.code == 2 and "1 of the 2 xBD images needed are not there" in r.stderr and not out.exists()
    (raw / "aachen" / "images" / "aachen_2.tif").unlink()
    r = run_cli("datasets", "prepare", "openearthmap", "--from", raw, "-o", out)
    assert r.code == 2 and "train.txt lists aachen_2.tif but no <region>/images/aachen_2.tif" in r.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------------- check


@pytest.mark.slow
def test_check_on_the_real_dubai_data(tmp_path: Path, shared_dubai: Path) -> None:
    r = run_cli("datasets", "check", "dubai", "--data-root", shared_dubai, "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["layout"] == "dubai" and data["errors"] == [] and data["warnings"] == []
    assert data["splits"]["train"]["pairs"] == 54 and data["splits"]["val"]["pairs"] == 18
    # class shares of all 72 masks, from ../shared/data/README.md (pixel counts measured on every mask)
    readme = {"building": 13.2, "land": 51.9, "road": 9.3, "vegetation": 10.2, "water": 13.5}
    total = sum(readme.values()) + 1.1  # + unlabelled and stray pixels (ignore)
    counted = {s: v["pixels_counted"] for s, v in data["splits"].items()}
    for cls, mpx in readme.items():
        share = sum(data["splits"][s]["shares"]["classes"][cls] * n for s, n in counted.items()) / sum(counted.values())
        assert abs(100 * share - 100 * mpx / total) < 1.0, cls


def ovrs_folder(root: Path, masks: list[np.ndarray], split: str = "train") -> Path:
    for i, m in enumerate(masks):
        for sub, arr in (("imgs", rgb_coded(*m.shape, i)), ("D2masks", m)):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / split / sub / f"P{i:04d}_0_16_0_16.png")
    return root


def test_check_finds_bad_masks_and_train_evaluate_refuse_them_first(tmp_path: Path) -> None:
    zero_based = [blocks(16, 16, 15, seed=i, background=255) - 1 for i in range(3)]
    zero_based = [np.where(m == 254, 255, m).astype(np.uint8) for m in zero_based]
    good = ovrs_folder(tmp_path / "good", zero_based)
    r = run_cli("datasets", "check", "isaid", "--data-root", good, "--splits", "train")  # the table
    assert r.code == 0 and "no blocking problems" in r.stdout and "ovrs layout" in r.stdout
    assert re.search(r"│ tennis court\s+│ unseen\s+│", r.stdout) and re.search(r"│ ship\s+│ seen\s+│", r.stdout)
    one_based = ovrs_folder(tmp_path / "one", [np.where(m == 255, 255, m + 1).astype(np.uint8) for m in zero_based])
    r = run_cli("datasets", "check", "isaid", "--data-root", one_based, "--splits", "train")
    assert r.code == 1 and "masks look 1-based (values 1..15, no 0)" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("train", "--dataset", "isaid", "--data-root", one_based, "--iters", "1", "-q")
    assert r.code == 2 and "masks look 1-based" in r.stderr  # before any model is built
    r = run_cli("evaluate", "--dataset", "isaid", "--data-root", one_based, "--split", "train", "-m", "nothing.pt")
    assert r.code == 2 and "masks look 1-based" in r.stderr
    beyond = [m.copy() for m in zero_based]
    beyond[1][0, :5] = 40
    bad = ovrs_folder(tmp_path / "beyond", beyond)
    r = run_cli("datasets", "check", "isaid", "--data-root", bad, "--splits", "train", "--json")
    assert r.code == 1 and "mask values 40 are beyond the 15 classes" in json.loads(r.stdout)["errors"][0]
    (bad / "train" / "D2masks" / "P0000_0_16_0_16.png").unlink()
    Image.fromarray(zero_based[2][:8]).save(bad / "train" / "D2masks" / "P0002_0_16_0_16.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad / "train" / "D2masks" / "P0001_0_16_0_16.png")
    errors = json.loads(run_cli("datasets", "check", "isaid", "--data-root", bad, "--json").stdout)["errors"]
    assert any("1 image(s) have no mask (first: P0000_0_16_0_16.png)" in e for e in errors)
    assert any("differ in size from their image (first: P0002_0_16_0_16.png 16x8 vs image 16x16)" in e for e in errors)
    assert any("1 mask(s) are RGB colour images" in e for e in errors) and any("val: no folder" in e for e in errors)


def test_check_reads_a_sample_quickly_and_everything_with_full(tmp_path: Path) -> None:
    masks = [np.full((8, 8), i % 15, np.uint8) for i in range(100)]
    masks[37][0, 0] = 99  # one bad pixel in one mask outside the sample: only --full sees it
    root = ovrs_folder(tmp_path / "many", masks)
    quick = json.loads(run_cli("datasets", "check", "isaid", "--data-root", root, "--splits", "train", "--json").stdout)
    assert quick["splits"]["train"]["masks_read"] == 64 and quick["errors"] == []
    r = run_cli("datasets", "check", "isaid", "--data-root", root, "--splits", "train", "--json", "--full")
    full = json.loads(r.stdout)
    assert full["splits"]["train"]["masks_read"] == 100 and r.code == 1 and "values 99" in full["errors"][0]


def test_check_tells_which_layout_a_folder_is_in(tmp_path: Path, shared_dubai: Path) -> None:
    isaid_raw(tmp_path / "isaid_download", {"train": [(40, 40)]})
    r = run_cli("datasets", "check", "isaid", "--data-root", tmp_path / "isaid_download")
    assert r.code == 2 and "the official iSAID download" in r.stderr and "datasets prepare isaid" in r.stderr
    r = run_cli("datasets", "check", "isaid", "--data-root", shared_dubai)
    assert r.code == 2 and "the Dubai layout" in r.stderr
    ovrs_folder(tmp_path / "parent" / "DLRSD_split", [np.zeros((8, 8), np.uint8)])
    r = run_cli("datasets", "check", "dlrsd", "--data-root", tmp_path / "parent")
    assert r.code == 2 and f"use --data-root {tmp_path / 'parent' / 'DLRSD_split'}" in r.stderr


def test_help_and_the_datasets_page_agree() -> None:
    """Every ``aeroseg datasets`` command line of docs/datasets.md takes only options its ``--help`` lists."""
    section = (DOCS / "datasets.md").read_text()
    assert section.startswith("# Datasets: from the official downloads")
    commands = re.findall(r"^aeroseg datasets (prepare \w+|check)\b(.*)$", section, re.M)
    assert {c for c, _ in commands} >= {"prepare isaid", "prepare dlrsd", "prepare openearthmap", "check"}
    for command, rest in commands:
        r = run_cli("datasets", *command.split(), "--help")
        assert r.code == 0 and "Usage:" in r.stdout, r.stderr
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-o|-q)\b", rest):
            assert option in r.stdout, (command, option)


def test_train_runs_on_prepared_isaid_with_no_other_change(tmp_path: Path) -> None:
    isaid_raw(tmp_path / "raw", {"train": [(300, 260)]})
    out = tmp_path / "iSAID_split"
    assert run_cli("datasets", "prepare", "isaid", "--from", tmp_path / "raw", "-o", out, "--splits", "train").code == 0
    small = tmp_path / "small.toml"
    small.write_text("[model_overrides]\ncrop_size = 64\nsam_input_size = 64\n")
    args = ["--preset", "tiny", "--iters", "1", "--batch-size", "1", "--num-workers", "0", "--precision", "fp32"]
    r = run_cli("train", "--dataset", "isaid", "--data-root", out, *args, "--config", small, "-o", tmp_path / "run")
    assert r.code == 0, r.stderr
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
