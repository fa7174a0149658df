"""OpenEarthMap's release images cut into the tiles the paper trains and evaluates on.

The paper counts 31,154 train / 5,195 val tiles of the release without its xBD-sourced images: 13.5 tiles per image
in both splits (the release lists 3,000 / 500 images of 650 to 1,024 px, xBD-sourced ones among them), which is what
a plain grid of whole 256 px tiles gives (``edge="drop"``: the remainder at the right and bottom edges is left out;
docs/datasets.md has the sums). Tiles are GeoTIFFs on their source's grid (CRS, window transform) in the release's own
layout (``OUT/<region>/{images,labels}/<name>_<y0>_<y1>_<x0>_<x1>.tif``, ``OUT/{train,val}.txt``), so the same
reader, check and label convention (0 unknown -> ignore) apply.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aeroseg_cli.datasets import jobstate
from aeroseg_cli.datasets.layouts import OPENEARTHMAP_LAYOUT
from aeroseg_cli.datasets.patches import Windowing, patch_name
from aeroseg_cli.datasets.specs import PAPER_COUNTS
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.progress import work_progress

TILE, EDGE = 256, "drop"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Item:
    split: str
    name: str  # "aachen_1.tif"
    region: str
    image: Path  # the release's GeoTIFF, or the xBD PNG it is compiled from
    label: Path


def choose(report, sources: dict[str, Path], with_xbd: bool) -> tuple[list[Item], dict[str, int]]:
    """The images to tile per split: every listed pair, xBD-sourced ones only ``with_xbd`` (their images from the
    release if compiled there, else from the xBD PNGs in ``sources``). Returns the items and the xBD images left out
    per split."""
    f, items, left_out = report.files, [], {}
    for split in SPLITS:
        left_out[split] = 0
        for n in report.lists[split]:
            if n in report.xbd and not with_xbd:
                left_out[split] += 1
                continue
            image = f.image.get(n) or sources.get(n)
            if image is None:
                raise UsageError(
                    f"openearthmap: {n} is xBD-sourced and not compiled; give --xbd XBD (the xView2 download) or "
                    "leave the xBD images out (no --with-xbd); nothing was written"
                )
            items.append(Item(split, n, f.region[n], image, f.label[n]))
    return items, left_out


def _write(path: Path, data: np.ndarray, profile: dict) -> None:
    import rasterio

    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile, count=data.shape[0]) as dst:
        dst.write(data)


def cut(item: Item, staging: Path, win: Windowing) -> tuple[list[str], list[int]]:
    """Every tile of one image and its label, written under ``staging``; returns the tile names and the image's
    size (height, width)."""
    import rasterio
    from rasterio.windows import Window, transform

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(item.label) as lb:
            label, crs, grid = lb.read(1), lb.crs, lb.transform
        with rasterio.open(item.image) as im:
            image = im.read([1, 2, 3] if im.count >= 3 else [1, 1, 1])
    if image.shape[1:] != label.shape:
        raise UsageError(f"{item.image}: {image.shape[2]}x{image.shape[1]}, its label {label.shape[::-1]}")
    stem, names = Path(item.name).stem, []
    base = {"driver": "GTiff", "dtype": "uint8", "crs": crs, "compress": "deflate"}
    for y0, y1, x0, x1 in win.windows(*label.shape):
        name = f"{patch_name(stem, (y0, y1, x0, x1))}.tif"
        profile = {**base, "height": y1 - y0, "width": x1 - x0}
        profile["transform"] = transform(Window(x0, y0, x1 - x0, y1 - y0), grid)
        rgb, ids = image[:, y0:y1, x0:x1], label[None, y0:y1, x0:x1]
        _write(staging / "images" / name, np.ascontiguousarray(rgb), {**profile, "photometric": "RGB"})
        _write(staging / "labels" / name, np.ascontiguousarray(ids), profile)
        names.append(name)
    return names, list(label.shape)


def do_item(item: Item, out: Path, state: Path, win: Windowing) -> None:
    """Cut, publish (renames: an image's tiles appear together) and mark one image."""
    staging = state / "staging" / item.split / item.name
    shutil.rmtree(staging, ignore_errors=True)
    names, size = cut(item, staging, win)
    for kind in ("images", "labels"):
        target = out / item.region / kind
        target.mkdir(parents=True, exist_ok=True)
        for n in names:
            os.replace(staging / kind / n, target / n)
    shutil.rmtree(staging, ignore_errors=True)
    record = {"region": item.region, "tiles": names, "size": size}
    jobstate.write_json(jobstate.marker(state, item.split, item.name), record)


def write_lists(out: Path, state: Path, items: list[Item]) -> dict[str, dict]:
    """``OUT/train.txt`` and ``OUT/val.txt`` (tile names, from the per-image records); returns the counts and the
    images that gave no tile (name -> [height, width])."""
    counts = {}
    for split in SPLITS:
        tiles, images, none = [], 0, {}
        for item in (i for i in items if i.split == split):
            record = jobstate.done(state, split, item.name) or {}
            tiles += record.get("tiles", [])
            images += 1
            if not record.get("tiles"):
                none[item.name] = record.get("size")
        with atomic_output(OPENEARTHMAP_LAYOUT.list_path(out, split)) as tmp:
            tmp.write_text("".join(f"{t}\n" for t in tiles))
        counts[split] = {"images": images, "tiles": len(tiles), "images_without_tiles": none}
    return counts


def tileless(counts: dict[str, dict], win: Windowing) -> list[str]:
    """Images that gave no tile (a side shorter than the tile, with ``edge="drop"``) are said by name, and a split
    without any tile is said to be unusable."""
    out = []
    for split, c in counts.items():
        none = c["images_without_tiles"]
        if none:
            sizes = ", ".join(f"{n} ({s[1]}x{s[0]})" if s else n for n, s in list(none.items())[:5])
            more = f" and {len(none) - 5} more" if len(none) > 5 else ""
            out.append(
                f"{split}: {len(none)} of {c['images']} image(s) gave no tile, a side shorter than --tile {win.patch} "
                f"(with --edge {win.edge}; --edge shift gives them one): {sizes}{more}"
            )
        if not c["tiles"]:
            out.append(f"{split}: 0 tiles; `datasets check` and `train` refuse an empty split")
    return out


def prepare_tiles(report, out: Path, sources: dict[str, Path], win: Windowing, with_xbd: bool, quiet: bool) -> dict:
    """Tile every chosen image not finished by an earlier run; returns the summary."""
    items, left_out = choose(report, sources, with_xbd)
    settings = {"dataset": "openearthmap", "tile": win.patch, "stride": win.stride, "edge": win.edge}
    settings["with_xbd"] = with_xbd
    state = jobstate.open_state(out, settings)
    shutil.rmtree(state / "staging", ignore_errors=True)
    for region in {i.region for i in items}:
        for kind in ("images", "labels"):
            jobstate.remove_stale_temps(out / region / kind)
    todo = [i for i in items if jobstate.done(state, i.split, i.name) is None]
    with work_progress("openearthmap: tiling", len(todo), len(todo), unit="images", quiet=quiet) as bar:
        for item in todo:
            do_item(item, out, state, win)
            bar.advance(1, items=1)
    counts = write_lists(out, state, items)
    for split, n in left_out.items():
        counts[split]["xbd_left_out"] = n
    summary = {"dataset": "openearthmap", "root": str(out), "settings": settings, "splits": counts}
    summary["warnings"] = tileless(counts, win)
    summary.update(paper=PAPER_COUNTS["openearthmap"], resumed_images=len(items) - len(todo))
    summary["xbd_images_tiled"] = sum(1 for i in items if i.name in report.xbd)
    return summary
