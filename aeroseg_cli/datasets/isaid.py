"""iSAID from its official downloads (DOTA-v1.0 images + iSAID semantic masks) to the patches ``train`` reads.

In: ``RAW/{train,val}/...`` holding ``P<digits>.png`` images and ``P<digits>_instance_color_RGB.png`` masks anywhere
below, extracted or inside the official zip files. Out: ``OUT/{train,val}/imgs/<patch>.png`` (RGB) and
``OUT/{train,val}/D2masks/<patch>.png`` (one uint8 band).

Id convention of the output (what ``readers.load_dataset("isaid", ...)`` reads): the official colour table gives
ids 0 = background, 1..15 = the classes in the paper's order; the output holds ``id - 1`` (0..14, the index of the
class in ``specs.ISAID.classes``) and 255 for background. Background has no class among the paper's 15, so it is
ignore, as in OVRS's detectron2 registration (ignore_label 255, class ids listed from 1) and CAT-Seg's converters
(``label - 1``, 0 wrapping to 255).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aeroseg_cli.datasets import jobstate
from aeroseg_cli.datasets.layouts import ISAID_LAYOUT
from aeroseg_cli.datasets.patches import PATCH_NAME, Windowing, bands, patch_name
from aeroseg_cli.datasets.rawfiles import RawFile, find_files
from aeroseg_cli.datasets.specs import IGNORE, ISAID, PAPER_COUNTS
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.progress import Work, work_progress

# official colour of id 0 (background) .. 15, as iSAID_Devkit, mmsegmentation and OVRS list them
ISAID_COLOURS = (
    (0, 0, 0),
    (0, 0, 63),  # ship
    (0, 63, 63),  # storage tank
    (0, 63, 0),  # baseball diamond
    (0, 63, 127),  # tennis court
    (0, 63, 191),  # basketball court
    (0, 63, 255),  # ground track field
    (0, 127, 63),  # bridge
    (0, 127, 127),  # large vehicle
    (0, 0, 127),  # small vehicle
    (0, 0, 191),  # helicopter
    (0, 0, 255),  # swimming pool
    (0, 191, 127),  # roundabout
    (0, 127, 191),  # soccer ball field
    (0, 127, 255),  # plane
    (0, 100, 155),  # harbor
)
IMAGE_STEM = re.compile(r"P\d+")
IMAGE_NAME = re.compile(r"P\d+\.png")
MASK_NAME = re.compile(r"P\d+_instance_color_RGB\.png")
MASK_SUFFIX = "_instance_color_RGB"
UNKNOWN = 254  # never a class id: marks a colour outside the table
# The paper's iSAID (OVRS's iSAID_split = the iSAID-5i patches): 256 px windows every 206 px, the last one shifted to
# the edge, kept when at least 10 % of the window is one of the 15 classes (see docs/datasets.md for the evidence)
PATCH, STRIDE, MIN_FOREGROUND = 256, 206, 0.1
SKIP = ("P1527", "P1530")  # iSAID_Devkit's split.py always leaves these two out; the iSAID-5i lists have neither
ID_CONVENTION = (
    "mask value = 0-based index of the class in the paper's order (official id - 1); 255 = background / ignore"
)


def train_id(official: int) -> int:
    """Official id (0 background, 1..15) -> output value (255, 0..14)."""
    return IGNORE if official == 0 else official - 1


def colour_lut() -> np.ndarray:
    """A table from packed RGB (r << 16 | g << 8 | b) to output id, ``UNKNOWN`` for every colour not in the table."""
    lut = np.full(1 << 24, UNKNOWN, np.uint8)
    for official, (r, g, b) in enumerate(ISAID_COLOURS):
        lut[(r << 16) | (g << 8) | b] = train_id(official)
    return lut


def packed(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class UnknownColour(Exception):
    """A mask holds a colour outside the official table."""


def encode(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """RGB mask rows -> output ids; raises ``UnknownColour`` for a colour outside the table."""
    ids = lut[packed(rgb)]
    if (ids == UNKNOWN).any():
        raise UnknownColour
    return ids


def unknown_colours(mask: RawFile, lut: np.ndarray) -> UsageError:
    """The error for a mask with unknown colours: the commonest one and its pixel count over the whole file."""
    import rasterio

    found: dict[int, int] = {}
    with rasterio.open(mask.gdal_path) as ds:
        for _, rgb in bands(ds, list(range(0, ds.height, 1024)), 1024, rgb=True):
            keys = packed(rgb)
            colours, counts = np.unique(keys[lut[keys] == UNKNOWN], return_counts=True)
            for c, n in zip(colours.tolist(), counts.tolist(), strict=True):
                found[c] = found.get(c, 0) + n
    c, n = max(found.items(), key=lambda item: item[1])
    more = f" (and {len(found) - 1} other unknown colours)" if len(found) > 1 else ""
    return UsageError(
        f"{mask.where}: colour {(c >> 16, (c >> 8) & 255, c & 255)} on {n} pixels is not in iSAID's colour "
        f"table{more}; fix the mask or leave the image out with --skip"
    )


@dataclass
class Pair:
    split: str
    name: str  # "P0000"
    image: RawFile
    mask: RawFile
    height: int = 0
    width: int = 0


def _first(names: list[str]) -> str:
    return f"{len(names)} (first: {sorted(names)[0]})"


def find_pairs(raw: Path, splits: tuple[str, ...], skip: set[str]) -> tuple[list[Pair], int]:
    """Image/mask pairs of each split by name; unpaired files are an error. Returns pairs and duplicate count."""
    pairs, duplicates = [], 0
    for split in splits:
        folder = raw / split
        if not folder.is_dir():
            raise UsageError(f"iSAID: expected {folder} (the official {split} download: images and Semantic_masks)")
        images, masks = find_files(folder, IMAGE_NAME), find_files(folder, MASK_NAME)
        duplicates += images.duplicates + masks.duplicates
        stems = {n[: -len(".png")] for n in images.files} - skip
        mask_stems = {n[: -len(MASK_SUFFIX + ".png")] for n in masks.files} - skip
        if not stems:
            raise UsageError(f"iSAID: no P<digits>.png images under {folder} (folders or zip files)")
        if stems - mask_stems:
            raise UsageError(f"iSAID {split}: images without a *{MASK_SUFFIX}.png mask: {_first(stems - mask_stems)}")
        if mask_stems - stems:
            raise UsageError(f"iSAID {split}: masks without a P<digits>.png image: {_first(mask_stems - stems)}")
        for stem in sorted(stems):
            pairs.append(Pair(split, stem, images.files[f"{stem}.png"], masks.files[f"{stem}{MASK_SUFFIX}.png"]))
    return pairs, duplicates


def read_sizes(pairs: list[Pair]) -> None:
    """Header of every file: sizes must agree and samples be 8-bit (checked before anything is written)."""
    import rasterio
    from rasterio.enums import ColorInterp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for p in pairs:
            shapes = []
            for f in (p.image, p.mask):
                try:
                    with rasterio.open(f.gdal_path) as ds:
                        shapes.append(ds.shape)
                        if ds.dtypes[0] != "uint8":
                            raise UsageError(f"{f.where}: {ds.dtypes[0]} samples; iSAID files are 8-bit PNGs")
                        if f is p.mask and ds.count < 3 and ds.colorinterp[0] != ColorInterp.palette:
                            raise UsageError(f"{f.where}: one grey band; iSAID's semantic masks are RGB colour PNGs")
                except rasterio.errors.RasterioIOError as exc:
                    raise UsageError(f"cannot read {f.where}: {exc}") from None
            if shapes[0] != shapes[1]:
                raise UsageError(
                    f"{p.split}/{p.name}: mask {shapes[1][1]}x{shapes[1][0]} differs from image "
                    f"{shapes[0][1]}x{shapes[0][0]} (width x height); fix it or leave it out with --skip {p.name}"
                )
            p.height, p.width = shapes[0]


def _save_png(array: np.ndarray, path: Path, level: int) -> None:
    from PIL import Image

    with atomic_output(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=level)


def publish(staging: Path, out: Path, split: str) -> None:
    """Move one image's staged patches into place (renames on one file system: each appears whole)."""
    for sub, target in (("imgs", ISAID_LAYOUT.images_dir(out, split)), ("D2masks", ISAID_LAYOUT.masks_dir(out, split))):
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted((staging / sub).glob("*.png")):
            os.replace(f, target / f.name)


def convert(pair: Pair, staging: Path, win: Windowing, lut: np.ndarray, progress: Work | None) -> dict:
    """Cut one image and its mask into the windows ``win`` keeps, under ``staging`` (published only once the whole
    image is done, so a failure or an interruption never leaves part of an image among the patches); returns the
    record (patches kept of the windows cut, class pixel counts of the whole source mask by output id)."""
    import rasterio

    counts = np.zeros(256, np.int64)
    ys, xs = win.starts(pair.height), win.starts(pair.width)
    ph, pw = min(win.patch, pair.height), min(win.patch, pair.width)
    imgs, masks = staging / "imgs", staging / "D2masks"
    counted = 0  # rows of the source already in `counts`
    n = 0
    with rasterio.open(pair.image.gdal_path) as im, rasterio.open(pair.mask.gdal_path) as mk:
        for (y, rgb), (_, colours) in zip(bands(im, ys, ph), bands(mk, ys, ph, rgb=True), strict=True):
            try:
                ids = encode(colours, lut)
            except UnknownColour:
                raise unknown_colours(pair.mask, lut) from None
            fresh = ids[max(0, counted - y) :]
            counts += np.bincount(fresh.ravel(), minlength=256)
            if progress is not None:
                progress.advance(fresh.size)
            counted = y + ph
            for x in xs:
                name, window = patch_name(pair.name, (y, y + ph, x, x + pw)), ids[:, x : x + pw]
                if not win.kept(name, int(np.count_nonzero(window != IGNORE)), window.size):
                    continue
                _save_png(np.ascontiguousarray(rgb[:, x : x + pw]), imgs / f"{name}.png", 1)
                _save_png(np.ascontiguousarray(window), masks / f"{name}.png", 6)
                n += 1
    return {
        "image": pair.image.where,
        "mask": pair.mask.where,
        "size": [pair.height, pair.width],
        "patches": n,
        "windows": len(ys) * len(xs),
        "pixels": {str(k): int(c) for k, c in enumerate(counts) if c},
    }


def summarise(state: Path, pairs: list[Pair], settings: dict, duplicates: int) -> dict:
    """Totals per split from the per-image records (exact after any number of interrupted runs)."""
    splits: dict[str, dict] = {}
    for p in pairs:
        record = jobstate.done(state, p.split, p.name) or {}
        s = splits.setdefault(p.split, {"images": 0, "patches": 0, "windows": 0, "pixels": {}})
        s.setdefault("images_without_patches", [])
        s["images"] += 1
        s["patches"] += record.get("patches", 0)
        s["windows"] += record.get("windows", 0)
        if not record.get("patches"):
            s["images_without_patches"].append(p.name)
        for k, c in record.get("pixels", {}).items():
            name = "background (ignore)" if int(k) == IGNORE else ISAID.classes[int(k)]
            s["pixels"][name] = s["pixels"].get(name, 0) + c
    return {
        "dataset": "isaid",
        "settings": settings,
        "id_convention": ID_CONVENTION,
        "classes": list(ISAID.classes),
        "files_found_twice": duplicates,
        "splits": splits,
        "paper": PAPER_COUNTS["isaid"],
        "warnings": empty_splits(splits, settings),
    }


def empty_splits(splits: dict[str, dict], settings: dict) -> list[str]:
    """A split without a patch cannot be checked, trained on or scored: said, with the images that gave none."""
    if settings["min_foreground"] is None:
        rule = "the --keep-list names none of their windows"
    else:
        rule = f"no window of theirs has {settings['min_foreground']:.0%} of its pixels in the 15 classes"
    out = []
    for split, s in splits.items():
        if s["patches"] == 0:
            names = s["images_without_patches"]
            listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(
                f"{split}: 0 patches from its {s['images']} image(s) ({listed}): {rule}; `datasets check` and "
                f"`train` refuse an empty split (lower --min-foreground, or leave {split} out with --splits)"
            )
    return out


_LUT: list[np.ndarray] = []  # one colour table per process


def do_pair(pair: Pair, out: Path, state: Path, win: Windowing, progress: Work | None = None) -> int:
    """Convert, publish and mark one image (here or in a worker process); returns its pixel count."""
    import rasterio

    if not _LUT:
        _LUT.append(colour_lut())
    staging = state / "staging" / pair.split / pair.name
    shutil.rmtree(staging, ignore_errors=True)
    with rasterio.Env(GDAL_CACHEMAX=64), warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        try:
            record = convert(pair, staging, win, _LUT[0], progress)
        except (rasterio.errors.RasterioIOError, ValueError) as exc:
            raise CLIError(f"{pair.split}/{pair.name}: cannot read {pair.image.where} or its mask: {exc}") from None
    publish(staging, out, pair.split)
    shutil.rmtree(staging, ignore_errors=True)
    jobstate.write_json(jobstate.marker(state, pair.split, pair.name), record)
    return pair.height * pair.width


def run_pairs(todo: list[Pair], out: Path, state: Path, win: Windowing, workers: int, bar: Work) -> None:
    """Every pair, in this process or in ``workers`` processes (one image each at a time). On an error or an
    interruption, images not started are cancelled and the ones running finish whole."""
    if workers <= 1:
        for pair in todo:
            do_pair(pair, out, state, win, bar)
            bar.advance(items=1)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(do_pair, p, out, state, win) for p in todo]
        for future in as_completed(futures):
            bar.advance(future.result(), items=1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def read_keep_lists(paths: tuple[Path, ...]) -> frozenset[str] | None:
    """Window names from lists such as the iSAID-5i fold lists (``P1092_1648_1904_824_1080__04``: a class suffix
    after ``__`` and an extension are dropped)."""
    if not paths:
        return None
    names = set()
    for path in paths:
        if not path.is_file():
            raise UsageError(f"--keep-list {path} does not exist")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            name = Path(line.strip().split("__")[0]).stem if line.strip() else ""
            if name and not PATCH_NAME.fullmatch(name):
                raise UsageError(f"--keep-list {path} line {number}: {line.strip()!r} is no P<id>_<y0>_<y1>_<x0>_<x1>")
            names.add(name)
    return frozenset(names - {""})


def check_keep_list(pairs: list[Pair], win: Windowing) -> int:
    """Every listed window of an image being prepared must be a window of its grid; returns how many are listed."""
    if win.keep is None:
        return 0
    grids = {p.name: (p, {patch_name(p.name, w) for w in win.windows(p.height, p.width)}) for p in pairs}
    listed = 0
    for name in sorted(win.keep):
        stem = PATCH_NAME.fullmatch(name)["stem"]
        if stem in grids:
            listed += 1
            pair, grid = grids[stem]
            if name not in grid:
                raise UsageError(
                    f"--keep-list: {name} is not a window of the {win.patch}/{win.stride} grid of {stem} "
                    f"({pair.width}x{pair.height}); give the --patch and --stride the list was made with"
                )
    return listed


def check_skip(skip: tuple[str, ...]) -> None:
    """``--skip`` names images exactly (``P1527``): never a pattern, since what an earlier run wrote of a skipped
    image is deleted."""
    bad = [name for name in skip if not IMAGE_STEM.fullmatch(name)]
    if bad:
        raise UsageError(
            f"--skip {bad[0]!r} is not an iSAID image name; give names such as P1527,P1530 (P and digits, no "
            "patterns or extensions)"
        )


def remove_skipped(out: Path, state: Path, split: str, skip: set[str]) -> None:
    """What an earlier run wrote of an image now left out: its patches (files named ``<image>_<y0>_<y1>_<x0>_<x1>
    .png`` of exactly that image) and its marker, so that the summary counts only what is there."""
    for folder in (ISAID_LAYOUT.images_dir(out, split), ISAID_LAYOUT.masks_dir(out, split)):
        jobstate.remove_stale_temps(folder)
        if skip and folder.is_dir():
            for f in folder.iterdir():
                m = PATCH_NAME.fullmatch(f.stem)
                if f.suffix == ".png" and m is not None and m["stem"] in skip:
                    f.unlink()
    for name in skip:
        jobstate.marker(state, split, name).unlink(missing_ok=True)


def prepare_isaid(
    raw: Path,
    out: Path,
    patch: int = PATCH,
    stride: int = STRIDE,
    splits: tuple[str, ...] = ("train", "val"),
    skip: tuple[str, ...] = SKIP,
    quiet: bool = False,
    workers: int = 1,
    min_foreground: float = MIN_FOREGROUND,
    keep_lists: tuple[Path, ...] = (),
) -> dict:
    """Convert and cut every pair not finished by an earlier run; returns the summary also written to
    ``OUT/aeroseg-prepare.json``."""
    if patch < 32 or not 0 < stride <= patch:
        raise UsageError(f"--patch must be at least 32 and 0 < --stride <= --patch (got {patch}, {stride})")
    if not 0 <= min_foreground <= 1:
        raise UsageError(f"--min-foreground must be between 0 and 1, got {min_foreground}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    check_skip(skip)
    jobstate.check_paths(raw, out)
    keep = read_keep_lists(keep_lists)
    win = Windowing(patch, stride, "shift", 0.0 if keep is not None else min_foreground, keep)
    pairs, duplicates = find_pairs(raw, splits, set(skip))
    read_sizes(pairs)
    listed = check_keep_list(pairs, win)
    settings = {"dataset": "isaid", "patch": patch, "stride": stride, "splits": list(splits)}
    settings["min_foreground"] = None if keep is not None else min_foreground
    settings["keep_lists_sha256"] = [hashlib.sha256(p.read_bytes()).hexdigest() for p in keep_lists] or None
    state = jobstate.open_state(out, settings)
    shutil.rmtree(state / "staging", ignore_errors=True)  # what a failed or killed run left
    for split in splits:
        remove_skipped(out, state, split, set(skip))
    todo = [p for p in pairs if jobstate.done(state, p.split, p.name) is None]
    total = sum(p.height * p.width for p in todo)
    with work_progress("isaid", total, len(todo), unit="pixels", quiet=quiet) as bar:
        run_pairs(todo, out, state, win, workers, bar)
    summary = {**summarise(state, pairs, settings, duplicates), "skipped": sorted(skip)}
    if keep is not None:
        summary["keep_list"] = {"windows_listed": len(keep), "of_images_prepared": listed}
    summary["resumed_images"] = len(pairs) - len(todo)
    jobstate.write_json(out / "aeroseg-prepare.json", summary)
    return summary
