"""DLRSD from its official downloads (UC Merced images + DLRSD labels) to a seeded, stratified train/val split.

In: ``<category>NN.tif`` UC Merced images and ``<category>NN.png`` DLRSD labels anywhere under RAW (folders or zip
files). Out: ``OUT/{train,val}/imgs/<name>.png`` (lossless copies of the images), ``OUT/{train,val}/D2masks/<name>.png``
(class index 0..16 in the paper's order, 255 ignore), ``OUT/train.txt`` and ``OUT/val.txt`` (one name per line) and
``OUT/split.csv`` (``name,split,category``; ``--split-file`` takes it back).

The labels' format is not documented: every label is read before anything is written, and the format is decided
from what is found: single-channel index PNGs (ids 1..17 or 0..16: told by the palette, else by the histogram) or
RGB PNGs in OVRS's colours; anything else is refused in one line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aeroseg_cli.datasets import jobstate
from aeroseg_cli.datasets.layouts import DLRSD_LAYOUT
from aeroseg_cli.datasets.rawfiles import RawFile, find_files
from aeroseg_cli.datasets.specs import DLRSD, IGNORE, PAPER_COUNTS
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.progress import Work, work_progress

UCM_CATEGORIES = (
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
)
# colour of class 0..16 (airplane .. water), as OVRS's register_DLRSD.py lists them for ids 1..17
DLRSD_COLOURS = (
    (166, 202, 240),
    (128, 128, 0),
    (0, 0, 128),
    (255, 0, 0),
    (0, 128, 0),
    (128, 0, 0),
    (255, 233, 233),
    (160, 160, 164),
    (0, 128, 128),
    (90, 87, 255),
    (255, 255, 0),
    (255, 192, 0),
    (0, 0, 255),
    (255, 0, 192),
    (128, 0, 128),
    (0, 255, 0),
    (0, 255, 255),
)
_CATS = "|".join(UCM_CATEGORIES)
IMAGE_NAME = re.compile(rf"(?:{_CATS})\d\d\.tiff?", re.IGNORECASE)
LABEL_NAME = re.compile(rf"(?:{_CATS})\d\d\.png", re.IGNORECASE)
K = len(DLRSD.classes)


def category(name: str) -> str:
    return name[:-2].lower()


@dataclass
class Item:
    name: str  # "airplane00"
    image: RawFile
    label: RawFile


@dataclass
class Scan:
    """What reading every label found."""

    kind: str = ""  # "index" or "colour"
    index_counts: np.ndarray = field(default_factory=lambda: np.zeros(1 << 16, np.int64))
    colour_counts: dict[tuple[int, int, int], int] = field(default_factory=dict)
    palette_base: int | None = None
    modes: dict[str, int] = field(default_factory=dict)


def find_items(raw: Path, skip: set[str]) -> list[Item]:
    """Pair images and labels by name; an unpaired file is an error."""
    images = {Path(n).stem.lower(): f for n, f in find_files(raw, IMAGE_NAME).files.items()}
    labels = {Path(n).stem.lower(): f for n, f in find_files(raw, LABEL_NAME).files.items()}
    for d in (images, labels):
        for name in skip:
            d.pop(name, None)
    if not images:
        raise UsageError(f"DLRSD: no UC Merced images (<category>NN.tif) under {raw}")
    if not labels:
        raise UsageError(f"DLRSD: no DLRSD labels (<category>NN.png) under {raw}")
    for a, b, what in ((images, labels, "images without a label"), (labels, images, "labels without an image")):
        alone = sorted(set(a) - set(b))
        if alone:
            raise UsageError(f"DLRSD: {len(alone)} {what} (first: {a[alone[0]].where})")
    return [Item(n, images[n], labels[n]) for n in sorted(images)]


def read_label(f: RawFile) -> tuple[str, np.ndarray, list[int] | None]:
    """(kind, array, palette): kind "index" (2-D values) or "colour" (H, W, 3); refuses other formats."""
    from PIL import Image

    with f.open() as handle, Image.open(handle) as im:
        mode, palette = im.mode, im.getpalette() if im.mode == "P" else None
        if mode in ("P", "L", "I;16", "I"):
            return "index", np.asarray(im).astype(np.int64), palette
        if mode in ("RGB", "RGBA"):
            return "colour", np.asarray(im.convert("RGB")), None
    raise UsageError(f"{f.where}: a {mode} PNG; DLRSD labels must be index PNGs (one band) or RGB colour PNGs")


def _palette_base(palette: list[int] | None) -> int | None:
    """1 if palette entries 1..17 are OVRS's colours, 0 if entries 0..16 are, else None."""
    if not palette or len(palette) < 3 * (K + 1):
        return None
    entries = [tuple(palette[3 * i : 3 * i + 3]) for i in range(K + 1)]
    if entries[1:] == list(DLRSD_COLOURS):
        return 1
    return 0 if entries[:K] == list(DLRSD_COLOURS) else None


def _image_size(f: RawFile) -> tuple[int, int]:
    from PIL import Image

    with f.open() as handle, Image.open(handle) as im:
        return im.height, im.width


def scan(items: list[Item], progress: Work) -> Scan:
    """Read every label (and every image header) before anything is written: sizes, format, histogram."""
    s = Scan()
    for it in items:
        kind, arr, palette = read_label(it.label)
        if s.kind and kind != s.kind:
            raise UsageError(f"DLRSD: {it.label.where} is a {kind} PNG but earlier labels are {s.kind} PNGs")
        s.kind = kind
        h, w = _image_size(it.image)
        if arr.shape[:2] != (h, w):
            raise UsageError(
                f"{it.name}: label {arr.shape[1]}x{arr.shape[0]} differs from image {w}x{h} (width x height); "
                f"labels are never resized: fix it or leave it out with --skip {it.name}"
            )
        if kind == "index":
            if arr.min() < 0 or arr.max() >= len(s.index_counts):
                raise UsageError(f"{it.label.where}: values {arr.min()}..{arr.max()} are no class ids")
            s.index_counts += np.bincount(arr.ravel(), minlength=len(s.index_counts))
            if s.palette_base is None:
                s.palette_base = _palette_base(palette)
        else:
            colours, counts = np.unique(arr.reshape(-1, 3), axis=0, return_counts=True)
            for c, n in zip(map(tuple, colours.tolist()), counts.tolist(), strict=True):
                if c not in DLRSD_COLOURS:
                    raise UsageError(f"{it.label.where}: colour {c} on {n} pixels is not one of DLRSD's 17 colours")
                s.colour_counts[c] = s.colour_counts.get(c, 0) + n
        progress.advance(items=1)
    return s


def decide_base(s: Scan, requested: str) -> tuple[int, str]:
    """Whether index labels count classes from 1 or 0, and the evidence."""
    present = set(np.flatnonzero(s.index_counts).tolist())
    if requested in ("0", "1"):
        base, why = int(requested), "given with --label-base"
    elif s.palette_base is not None:
        base = s.palette_base
        why = f"the PNG palette gives OVRS's colours to ids {base}..{base + K - 1}"
    elif 0 in present and K in present:
        raise UsageError(
            f"DLRSD: labels hold both 0 and {K}; say whether ids count from 1 (0 = unlabelled -> ignore) or from 0 "
            "with --label-base 1|0"
        )
    elif 0 in present:
        base, why = 0, f"the labels hold 0 and never {K}"
    elif K in present:
        base, why = 1, f"the labels hold {K} and never 0"
    else:
        base, why = 1, f"assumed (neither 0 nor {K} occurs); DLRSD's labels are documented with ids from 1"
    bad = sorted(v for v in present if v != IGNORE and v > K - 1 + base)  # 0 with ids from 1: unlabelled
    if bad:
        raise UsageError(
            f"DLRSD: label value {bad[0]} on {int(s.index_counts[bad[0]])} pixels is outside ids {base}..{K - 1 + base}"
            f" (and {IGNORE} = ignore){' with --label-base ' + requested if requested != 'auto' else ''}"
        )
    return base, why


def to_ids(kind: str, arr: np.ndarray, base: int) -> np.ndarray:
    """Label array -> uint8 class index 0..16, 255 ignore (0 with ids from 1 is unlabelled -> ignore)."""
    if kind == "colour":
        lut = np.full(1 << 24, IGNORE, np.uint8)
        for k, (r, g, b) in enumerate(DLRSD_COLOURS):
            lut[(r << 16) | (g << 8) | b] = k
        rgb = arr.astype(np.uint32)
        return lut[(rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]]
    ids = arr - base
    return np.where((arr == IGNORE) | (ids < 0) | (ids >= K), IGNORE, ids).astype(np.uint8)


def stratified_split(names: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Per scene category, the ``round(n * val_fraction)`` names with the smallest SHA-256 of "seed:name" go to val.
    A hash, not a random generator: the same on every machine, Python and numpy version, whatever the file order."""
    by_cat: dict[str, list[str]] = {}
    for n in names:
        by_cat.setdefault(category(n), []).append(n)
    split = {}
    for members in by_cat.values():
        order = sorted(members, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
        k = round(len(order) * val_fraction)
        split.update({n: "val" if i < k else "train" for i, n in enumerate(order)})
    return split


def read_split_file(path: Path, names: list[str]) -> dict[str, str]:
    """``name,split`` lines (comma, tab or spaces; a header and ``#`` comments allowed; names may carry a folder and
    an extension). Every listed name must be among the images; images not listed are left out."""
    if not path.is_file():
        raise UsageError(f"--split-file {path} does not exist")
    known, split = set(names), {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = [x for x in re.split(r"[,\s]+", line.strip()) if x]
        if not fields or fields[0].startswith("#") or (number == 1 and fields[:2] == ["name", "split"]):
            continue
        name = Path(fields[0]).stem.lower()
        if len(fields) < 2 or fields[1] not in ("train", "val"):
            raise UsageError(f"--split-file {path} line {number}: expected `name,train` or `name,val`, got {line!r}")
        if name not in known:
            raise UsageError(f"--split-file {path} line {number}: {name} is not among the images found under --from")
        if name in split:
            raise UsageError(f"--split-file {path} line {number}: {name} is listed twice")
        split[name] = fields[1]
    if not split:
        raise UsageError(f"--split-file {path} lists no images")
    return split


def write_item(it: Item, out: Path, split: str, kind: str, base: int) -> None:
    from PIL import Image

    image = DLRSD_LAYOUT.images_dir(out, split) / f"{it.name}.png"
    mask = DLRSD_LAYOUT.masks_dir(out, split) / f"{it.name}.png"
    if image.is_file() and mask.is_file():
        return  # finished by an earlier run (both files are written whole or not at all)
    _, arr, _ = read_label(it.label)
    with atomic_output(mask) as tmp:
        Image.fromarray(to_ids(kind, arr, base)).save(tmp, format="PNG")
    with it.image.open() as handle, Image.open(handle) as im, atomic_output(image) as tmp:
        im.convert("RGB").save(tmp, format="PNG", compress_level=1)  # level 6: no smaller on photos, 2x slower


def _split(items: list[Item], val_fraction: float, seed: int, split_file: Path | None) -> dict[str, str]:
    names = [it.name for it in items]
    if split_file is not None:
        return read_split_file(split_file, names)
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    return stratified_split(names, val_fraction, seed)


def prepare_dlrsd(
    raw: Path,
    out: Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    split_file: Path | None = None,
    label_base: str = "auto",
    skip: tuple[str, ...] = (),
    quiet: bool = False,
) -> dict:
    """Check every label, split, then write the images and masks not written by an earlier run."""
    if label_base not in ("auto", "0", "1"):
        raise UsageError(f"--label-base must be auto, 0 or 1, got {label_base!r}")
    jobstate.check_paths(raw, out)
    items = find_items(raw, {s.lower() for s in skip})
    split = _split(items, val_fraction, seed, split_file)
    with work_progress("dlrsd: reading labels", len(items), len(items), unit="images", quiet=quiet) as progress:
        s = scan(items, progress)
    base, why = decide_base(s, label_base) if s.kind == "index" else (0, "RGB colour labels (OVRS's colours)")
    digest = hashlib.sha256(split_file.read_bytes()).hexdigest() if split_file else None
    settings = {"dataset": "dlrsd", "val_fraction": val_fraction, "seed": seed, "split_file_sha256": digest}
    settings["label_base"] = label_base
    state = jobstate.open_state(out, settings)
    for part in ("train", "val"):
        for folder in (DLRSD_LAYOUT.images_dir(out, part), DLRSD_LAYOUT.masks_dir(out, part)):
            jobstate.remove_stale_temps(folder)
    chosen = [it for it in items if it.name in split]
    with work_progress("dlrsd: writing", len(chosen), len(chosen), unit="images", quiet=quiet) as progress:
        for it in chosen:
            write_item(it, out, split[it.name], s.kind, base)
            progress.advance(1, items=1)
    summary = write_lists(out, chosen, split)
    summary.update(settings=settings, label_format=s.kind, label_base=base, label_base_evidence=why)
    summary["left_out"] = len(items) - len(chosen)
    summary["class_pixels"] = class_pixels(s, base)
    jobstate.write_json(out / "aeroseg-prepare.json", summary)
    jobstate.write_json(state / "summary.json", summary)
    return summary


def class_pixels(s: Scan, base: int) -> dict[str, int]:
    """Pixels per class (and ignore) over all labels read."""
    out: dict[str, int] = {}
    if s.kind == "colour":
        for c, n in s.colour_counts.items():
            out[DLRSD.classes[DLRSD_COLOURS.index(c)]] = n
        return out
    for v in np.flatnonzero(s.index_counts).tolist():
        k = v - base
        name = DLRSD.classes[k] if 0 <= k < K and v != IGNORE else "ignore"
        out[name] = out.get(name, 0) + int(s.index_counts[v])
    return out


def write_lists(out: Path, items: list[Item], split: dict[str, str]) -> dict:
    """``train.txt``, ``val.txt`` and ``split.csv``; returns the per-split, per-category counts."""
    rows = ["name,split,category"] + [f"{it.name},{split[it.name]},{category(it.name)}" for it in items]
    with atomic_output(out / "split.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    counts: dict[str, dict[str, int]] = {}
    for part in ("train", "val"):
        names = [it.name for it in items if split[it.name] == part]
        with atomic_output(out / f"{part}.txt") as tmp:
            tmp.write_text("".join(f"{n}\n" for n in names))
        for n in names:
            counts.setdefault(part, {}).setdefault(category(n), 0)
            counts[part][category(n)] += 1
    images = {p: sum(c.values()) for p, c in counts.items()}
    return {"dataset": "dlrsd", "images": images, "per_category": counts, "paper": PAPER_COUNTS["dlrsd"]}
