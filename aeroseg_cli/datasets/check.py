"""Is a dataset folder what ``train`` and ``evaluate`` read? Layout, pairs, sizes, modes, mask values, class shares.

Quick by default (seconds on thousands of files): every file's header is read (pairs, sizes, modes), masks are
decoded for an evenly spread sample of each split and counted on every 4th pixel of every 4th row. ``full=True``
decodes every mask and counts every pixel. Values are counted after the reader's own decoding (OpenEarthMap
0 -> ignore, k -> k-1; Dubai colours), so what is checked is what training sees.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aeroseg_cli.datasets.layouts import LAYOUTS, GenericFolder, Listing, detect, layout_for
from aeroseg_cli.datasets.readers import decode_mask
from aeroseg_cli.datasets.specs import IGNORE, DatasetSpec
from aeroseg_cli.files.errors import UsageError

SAMPLE, STEP = 64, 4  # quick mode: masks decoded per split, pixel step


@dataclass
class SplitReport:
    pairs: int = 0
    image_modes: Counter = field(default_factory=Counter)
    mask_modes: Counter = field(default_factory=Counter)
    size_range: list[int] = field(default_factory=lambda: [0, 0])
    sampled: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(1 << 16, np.int64))
    bad_value_files: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    dataset: str
    root: Path
    layout: str
    spec: DatasetSpec
    full: bool
    splits: dict[str, SplitReport] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def folder_spec(root: Path) -> DatasetSpec:
    """The generic folder dataset's classes (``*name`` = unseen), as the reader reads them."""
    return GenericFolder().spec(root, iters=0)


def list_split(name: str, root: Path, split: str) -> Listing:
    """The split's image/mask pairs as the reader of ``name`` finds them (the same layout object)."""
    return layout_for(name).listing(root, split)


def header(path: Path) -> tuple[int, int, str]:
    """(height, width, mode) from the file header only: PIL's mode, or "<bands>x<dtype>" for TIFF."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return ds.height, ds.width, f"{ds.count}x{ds.dtypes[0]}"
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width, im.mode


def _sample(n: int, k: int) -> list[int]:
    """``k`` indices evenly spread over ``range(n)`` (all of them if ``k >= n``)."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _headers(listing: Listing, rep: SplitReport, errors: list[str], split: str) -> None:
    mismatched = []
    sides = []
    for image, mask in listing.pairs:
        try:
            ih, iw, imode = header(image)
            mh, mw, mmode = header(mask)
        except Exception as exc:  # any unreadable file is reported, not raised
            errors.append(f"{split}: cannot read {image.name} or {mask.name} ({type(exc).__name__}: {exc})")
            continue
        rep.image_modes[imode] += 1
        rep.mask_modes[mmode] += 1
        sides += [ih, iw]
        if (ih, iw) != (mh, mw):
            mismatched.append(f"{mask.name} {mw}x{mh} vs image {iw}x{ih}")
    if sides:
        rep.size_range = [min(sides), max(sides)]
    if mismatched:
        errors.append(f"{split}: {len(mismatched)} mask(s) differ in size from their image (first: {mismatched[0]})")


def read_decimated(path: Path, decode: str, step: int) -> np.ndarray:
    """Every ``step``-th pixel of every ``step``-th row of a mask, decoded as the reader decodes it (decimated
    before the decoding, which is the costly part for colour masks)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                raw = ds.read(1)[::step, ::step]
    else:
        from PIL import Image

        with Image.open(path) as im:
            raw = np.asarray(im.convert("RGB") if decode == "dubai_rgb" else im)[::step, ::step]
    if raw.ndim == 3 and decode != "dubai_rgb":
        raw = raw[..., 0]
    return decode_mask(raw, decode)


def _values(name: str, listing: Listing, rep: SplitReport, k: int, full: bool, sample: int) -> None:
    step = 1 if full else STEP
    chosen = range(len(listing.pairs)) if full else _sample(len(listing.pairs), sample)
    for i in chosen:
        mask_path = listing.pairs[i][1]
        try:
            mask = read_decimated(mask_path, LAYOUTS[name].decode, step)
        except Exception:
            continue  # already reported by the header pass, or reported as a mode problem
        values = np.clip(mask, 0, len(rep.counts) - 1)
        counts = np.bincount(values.ravel(), minlength=len(rep.counts))
        rep.counts += counts
        rep.sampled += 1
        if counts[k:IGNORE].any() or counts[IGNORE + 1 :].any():
            rep.bad_value_files.append(mask_path.name)


def _modes(name: str, split: str, rep: SplitReport, errors: list[str], warns: list[str]) -> None:
    """Mask modes the reader decodes wrongly are errors (an RGB mask read as index keeps its red channel)."""
    rgb = sum(n for m, n in rep.mask_modes.items() if m in ("RGB", "RGBA") or m.startswith("3x"))
    wide = sum(n for m, n in rep.mask_modes.items() if m in ("I", "I;16", "F") or "int16" in m or "32" in m)
    palette = rep.mask_modes.get("P", 0)
    if name == "dubai" and rgb + palette < rep.pairs:
        errors.append(f"{split}: {rep.pairs - rgb - palette} mask(s) are not colour images; Dubai masks are")
    elif name != "dubai" and rgb:
        errors.append(
            f"{split}: {rgb} mask(s) are RGB colour images; {name} reads one band of class ids "
            "(convert them with `aeroseg datasets prepare`)"
        )
    if wide:
        warns.append(f"{split}: {wide} mask(s) are not 8-bit; ids are read as integers, 255 is ignore")
    grey = sum(n for m, n in rep.image_modes.items() if m in ("L", "P", "1x uint8", "1xuint8"))
    if grey:
        warns.append(f"{split}: {grey} image(s) have one band; they are repeated to RGB")


def _value_problems(split: str, rep: SplitReport, k: int, errors: list[str], full: bool) -> None:
    """Ids beyond the class list; 1-based masks (values 1..K, no 0) named as such."""
    present = set(np.flatnonzero(rep.counts).tolist())
    beyond = sorted(v for v in present if v >= k and v != IGNORE)
    if not beyond:
        return
    seen = "" if full else f" (in {rep.sampled} sampled masks; --full reads all)"
    first = rep.bad_value_files[0] if rep.bad_value_files else "?"
    if beyond == [k] and 0 not in present:
        errors.append(
            f"{split}: masks look 1-based (values 1..{k}, no 0){seen}; the readers want 0..{k - 1} and "
            f"{IGNORE} = ignore (first: {first})"
        )
    else:
        errors.append(
            f"{split}: mask values {', '.join(map(str, beyond[:5]))} are beyond the {k} classes "
            f"(0..{k - 1}, {IGNORE} = ignore) in {len(rep.bad_value_files)} mask(s){seen} (first: {first})"
        )


def _check_split(result: CheckResult, split: str, sample: int) -> None:
    name, root, errors, warns = result.dataset, result.root, result.errors, result.warnings
    listing = list_split(name, root, split)
    if listing.absent:
        errors.append(f"{split}: {listing.absent}")
        return
    if listing.unpaired_images:
        errors.append(
            f"{split}: {len(listing.unpaired_images)} image(s) have no mask (first: {listing.unpaired_images[0]})"
        )
    if listing.unpaired_masks:
        n, first = len(listing.unpaired_masks), listing.unpaired_masks[0]
        warns.append(f"{split}: {n} mask(s) have no image (first: {first})")
    if listing.listed_missing:
        warns.append(
            f"{split}: {len(listing.listed_missing)} listed image(s) are missing and will not be used "
            f"(first: {listing.listed_missing[0]}; xBD-sourced ones: `aeroseg datasets prepare openearthmap --xbd`)"
        )
    if not listing.pairs:
        errors.append(f"{split}: no image/mask pairs")
        return
    rep = result.splits[split] = SplitReport(pairs=len(listing.pairs))
    _headers(listing, rep, errors, split)
    _modes(name, split, rep, errors, warns)
    _values(name, listing, rep, len(result.spec.classes), result.full, sample)
    _value_problems(split, rep, len(result.spec.classes), errors, result.full)
    if rep.sampled and rep.counts.sum() == rep.counts[IGNORE]:
        errors.append(
            f"{split}: every pixel of the {rep.sampled} mask(s) read is {IGNORE} (ignore): there is nothing to "
            "train on or score"
        )


def run_check(
    name: str, root: Path, splits: tuple[str, ...] = ("train", "val"), full: bool = False, sample: int = SAMPLE
) -> CheckResult:
    """Check ``root`` as dataset ``name``; problems are collected (``errors`` block training), not raised, except
    a folder in another layout."""
    expected = layout_for(name)
    layout, description = detect(root)
    if layout != expected.key:
        raise UsageError(f"{name}: expected {expected.description} under {root}, found {description}")
    spec = folder_spec(root) if name == "folder" else expected.spec(root)
    result = CheckResult(name, root, layout, spec, full)
    lowered = [c.lower() for c in spec.classes]
    twice = sorted({c for c, low in zip(spec.classes, lowered, strict=True) if lowered.count(low) > 1})
    if twice:  # ids would be ambiguous, and segment refuses a checkpoint that lists a class twice
        result.errors.append(f"classes: {', '.join(map(repr, twice))} listed twice")
    for split in splits:
        _check_split(result, split, sample)
    return result


def quick_check(name: str, root: Path, splits: tuple[str, ...] | list[str]) -> CheckResult:
    """The check ``train`` and ``evaluate`` run first: blocking problems raise one ``UsageError`` line, warnings
    go to stderr (once, from rank 0 under torchrun)."""
    result = run_check(name, Path(root), tuple(splits), full=False, sample=16)
    if result.errors:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise UsageError(
            f"{name} at {root}: {result.errors[0]}{more}; details: `aeroseg datasets check {name} --data-root {root}`"
        )
    if os.environ.get("RANK", "0") == "0":
        for line in result.warnings:
            print(f"aeroseg: warning: {name}: {line}", file=sys.stderr)
    return result


def shares(spec: DatasetSpec, rep: SplitReport) -> dict:
    """Pixel shares (of counted pixels) per class, seen, unseen, ignore, other."""
    total = max(int(rep.counts.sum()), 1)
    per_class = {c: int(rep.counts[i]) / total for i, c in enumerate(spec.classes)}
    seen = sum(per_class[c] for c in spec.seen)
    unseen = sum(per_class[c] for c in spec.unseen)
    ignore = int(rep.counts[IGNORE]) / total
    other = (int(rep.counts[len(spec.classes) :].sum()) - int(rep.counts[IGNORE])) / total
    return {"classes": per_class, "seen": seen, "unseen": unseen, "ignore": ignore, "beyond_classes": other}


def to_json(result: CheckResult) -> dict:
    splits = {}
    for split, rep in result.splits.items():
        present = np.flatnonzero(rep.counts)
        splits[split] = {
            "pairs": rep.pairs,
            "image_modes": dict(rep.image_modes),
            "mask_modes": dict(rep.mask_modes),
            "side_px": {"min": rep.size_range[0], "max": rep.size_range[1]},
            "masks_read": rep.sampled,
            "pixel_step": 1 if result.full else STEP,
            "pixels_counted": int(rep.counts.sum()),
            "values": {"min": int(present.min()), "max": int(present.max())} if len(present) else None,
            "shares": shares(result.spec, rep),
        }
    return {
        "dataset": result.dataset,
        "root": str(result.root),
        "layout": result.layout,
        "classes": list(result.spec.classes),
        "unseen": list(result.spec.unseen),
        "full": result.full,
        "splits": splits,
        "errors": result.errors,
        "warnings": result.warnings,
        "ok": not result.errors,
    }
