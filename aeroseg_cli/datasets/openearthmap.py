"""OpenEarthMap's release checked against its own lists, and the xBD-sourced images it leaves out compiled.

The release is already in the layout ``train`` reads (``<region>/images/*.tif``, ``<region>/labels/*.tif``,
``train.txt`` / ``val.txt`` / ``test.txt``), but the images of its xBD-sourced regions are not in the archive:
``xbd_files.csv`` (one ``<xBD file>,<OpenEarthMap file>`` row per image) says which xView2 ``*_pre_disaster.png``
each one is, and the release's ``data/compile_xbd.py`` writes it as a GeoTIFF with its label's georeferencing. This
module finds every listed file, reports what is missing by region before anything is written, and (with ``--xbd``)
does the same compilation itself.
"""

from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aeroseg_cli.datasets import jobstate
from aeroseg_cli.datasets.layouts import OPENEARTHMAP_LAYOUT, RegionFiles
from aeroseg_cli.datasets.oem_tiles import EDGE, TILE, prepare_tiles
from aeroseg_cli.datasets.patches import EDGES, Windowing
from aeroseg_cli.datasets.rawfiles import find_files
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.progress import Work, work_progress

LISTS = OPENEARTHMAP_LAYOUT.LISTS
XBD_CSV = "xbd_files.csv"
COMPILE_HINT = (
    "compile them with `aeroseg datasets prepare openearthmap --from RAW [-o OUT] --xbd XBD` (XBD: the xView2 "
    "download holding *_pre_disaster.png) or the release's `python data/compile_xbd.py --path_to_OpenEarthMap RAW "
    "--path_to_xBD XBD`"
)


@dataclass
class Report:
    lists: dict[str, list[str]]
    xbd: dict[str, str]  # OpenEarthMap name -> xBD file name
    files: RegionFiles
    missing_xbd: dict[str, list[str]] = field(default_factory=dict)  # split -> names (image missing, xBD-sourced)
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for split, names in self.lists.items():
            usable = [n for n in names if n in self.files.image and (split == "test" or n in self.files.label)]
            out[split] = {"listed": len(names), "usable": len(usable), "missing_xbd": len(self.missing_xbd[split])}
        return out

    def regions_missing_xbd(self) -> dict[str, int]:
        regions: dict[str, int] = {}
        for names in self.missing_xbd.values():
            for n in names:
                r = self.files.region.get(n, n.split("_")[0])
                regions[r] = regions.get(r, 0) + 1
        return dict(sorted(regions.items()))


def read_lists(root: Path) -> dict[str, list[str]]:
    """The release's split lists as the layout reads them (names without extension are ``.tif`` files);
    ``train.txt`` and ``val.txt`` are required."""
    if not (root / "train.txt").is_file():
        nested = [d for d in sorted(root.iterdir()) if (d / "train.txt").is_file()] if root.is_dir() else []
        hint = f" (did you mean --from {nested[0]}?)" if nested else ""
        raise UsageError(f"openearthmap: no train.txt in {root}{hint}")
    lists = {}
    for split in LISTS:
        names = OPENEARTHMAP_LAYOUT.split_names(root, split)
        if names is not None:
            lists[split] = names
        elif split != "test":
            raise UsageError(f"openearthmap: no {split}.txt in {root}")
    return lists


def read_xbd_csv(root: Path) -> dict[str, str]:
    path = root / XBD_CSV
    if not path.is_file():
        return {}
    rows = [re.split(r"\s*,\s*", line.strip()) for line in path.read_text().splitlines() if line.strip()]
    return {r[1]: r[0] for r in rows if len(r) >= 2 and r[0].lower().endswith(".png")}


def verify(root: Path) -> Report:
    """Lists against files: missing images of xBD-sourced regions are reported; anything else missing is a
    problem (a broken or partial download)."""
    report = Report(read_lists(root), read_xbd_csv(root), OPENEARTHMAP_LAYOUT.index(root))
    f = report.files
    for split, names in report.lists.items():
        report.missing_xbd[split] = []
        for n in names:
            if n not in f.image and n in report.xbd:
                report.missing_xbd[split].append(n)
            elif n not in f.image:
                report.problems.append(f"{split}.txt lists {n} but no <region>/images/{n} exists")
            if split != "test" and n not in f.label:
                report.problems.append(f"{split}.txt lists {n} but no <region>/labels/{n} exists")
    return report


def check_headers(report: Report, progress: Work) -> None:
    """Label: one uint8 band; image: three or more uint8 bands; same size. Every listed pair, headers only."""
    import rasterio

    f = report.files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for split in ("train", "val"):
            for n in report.lists[split]:
                progress.advance(1, items=1)
                if n not in f.image or n not in f.label:
                    continue
                with rasterio.open(f.image[n]) as im, rasterio.open(f.label[n]) as lb:
                    if lb.count != 1 or lb.dtypes[0] != "uint8":
                        report.problems.append(f"{f.label[n]}: {lb.count} band(s) of {lb.dtypes[0]}, not one uint8")
                    elif im.count < 3 or im.dtypes[0] != "uint8":
                        report.problems.append(f"{f.image[n]}: {im.count} band(s) of {im.dtypes[0]}, not RGB uint8")
                    elif im.shape != lb.shape:
                        report.problems.append(f"{n}: image {im.width}x{im.height}, label {lb.width}x{lb.height}")


def xbd_sources(report: Report, xbd_root: Path) -> dict[str, Path]:
    """The xView2 PNG of every missing xBD-sourced image; all must exist, with their labels' size, or nothing is
    written."""
    from PIL import Image

    if not xbd_root.is_dir():
        raise UsageError(f"--xbd {xbd_root} is not a folder")
    needed = sorted({n for names in report.missing_xbd.values() for n in names})
    found = find_files(xbd_root, re.compile(r".+_pre_disaster\.png"), look_in_zips=False).files
    absent = [report.xbd[n] for n in needed if report.xbd[n] not in found]
    if absent:
        raise UsageError(
            f"--xbd {xbd_root}: {len(absent)} of the {len(needed)} xBD images needed are not there "
            f"(first: {absent[0]}); nothing was written"
        )
    sources = {}
    for n in needed:
        src = found[report.xbd[n]].container
        label = report.files.label.get(n)
        if label is None:
            raise UsageError(f"{n}: xBD-sourced, but its label (which holds the georeferencing) is missing too")
        with Image.open(src) as im:
            import rasterio

            with rasterio.open(label) as lb:
                if (im.height, im.width) != lb.shape:
                    raise UsageError(f"{src.name}: {im.width}x{im.height}, but label {n} is {lb.width}x{lb.height}")
        sources[n] = src
    return sources


def compile_one(src: Path, label: Path, dest: Path) -> None:
    """One xBD PNG as a three-band GeoTIFF on its label's grid (CRS, transform, size)."""
    import rasterio
    from PIL import Image

    with Image.open(src) as im:
        rgb = np.asarray(im.convert("RGB"))
    with rasterio.open(label) as lb:
        profile = {
            "driver": "GTiff",
            "width": lb.width,
            "height": lb.height,
            "count": 3,
            "dtype": "uint8",
            "crs": lb.crs,
            "transform": lb.transform,
            "photometric": "RGB",
            "compress": "deflate",
        }
    with atomic_output(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))


def mirror(raw: Path, out: Path, report: Report, copy: bool) -> None:
    """OUT as the same tree as RAW: symbolic links to RAW's files (or copies with --copy), lists and csv copied."""
    f = report.files
    for kind, table in (("images", f.image), ("labels", f.label)):
        for name, src in table.items():
            dest = out / f.region[name] / kind / name
            if dest.is_file() or dest.is_symlink():
                continue  # done by an earlier run
            dest.parent.mkdir(parents=True, exist_ok=True)
            if copy:
                with atomic_output(dest) as tmp:
                    shutil.copyfile(src, tmp)
            else:
                dest.symlink_to(src.resolve())
    for name in [f"{s}.txt" for s in report.lists] + ([XBD_CSV] if (raw / XBD_CSV).is_file() else []):
        with atomic_output(out / name) as tmp:
            shutil.copyfile(raw / name, tmp)


def summary(report: Report, target: Path, compiled: int) -> dict:
    missing = report.regions_missing_xbd()
    return {
        "dataset": "openearthmap",
        "root": str(target),
        "splits": report.counts(),
        "compiled_xbd_images": compiled,
        "missing_xbd_by_region": missing,
        "how_to_compile": COMPILE_HINT if missing else None,
        "files_not_in_any_list": len(set(report.files.image) - {n for v in report.lists.values() for n in v}),
    }


def checked(raw: Path, quiet: bool) -> Report:
    """The release verified (lists, files, every listed pair's headers); any problem stops here, before writing."""
    if not raw.is_dir():
        raise UsageError(f"--from {raw} is not a folder")
    report = verify(raw)
    pairs = len(report.lists["train"]) + len(report.lists["val"])
    with work_progress("openearthmap: reading headers", pairs, pairs, unit="images", quiet=quiet) as progress:
        check_headers(report, progress)
    if report.problems:
        more = f" (and {len(report.problems) - 1} more problems)" if len(report.problems) > 1 else ""
        raise UsageError(f"openearthmap: {report.problems[0]}{more}; nothing was written")
    return report


def release_layout(raw: Path, out: Path | None, report: Report, sources: dict, copy: bool, quiet: bool) -> dict:
    """Whole release images: mirror RAW to OUT (if given) and compile the missing xBD images into OUT, or into RAW
    itself without -o (files are only added)."""
    target = raw
    if out is not None:
        jobstate.open_state(out, {"dataset": "openearthmap", "copy": copy})
        mirror(raw, out, report, copy)
        target = out
    with work_progress(
        "openearthmap: compiling xBD images", len(sources), len(sources), unit="images", quiet=quiet
    ) as progress:
        for name, src in sources.items():
            dest = target / report.files.region[name] / "images" / name
            if not dest.is_file():
                compile_one(src, report.files.label[name], dest)
            progress.advance(1, items=1)
    return summary(verify(target), target, len(sources))


def prepare_openearthmap(
    raw: Path,
    out: Path | None = None,
    xbd: Path | None = None,
    copy: bool = False,
    quiet: bool = False,
    tile: int = TILE,
    edge: str = EDGE,
    with_xbd: bool = False,
) -> dict:
    """Verify RAW (lists, files, headers) and, before writing anything, every xBD source. With -o and ``tile``:
    the train and val images cut into tiles in OUT (xBD-sourced images only ``with_xbd`` or with ``xbd``);
    ``tile=0`` or no -o: the release as it is (mirrored to OUT, missing xBD images compiled)."""
    if tile < 0 or 0 < tile < 16 or edge not in EDGES:
        raise UsageError(f"--tile must be 0 or at least 16 and --edge one of {', '.join(EDGES)} (got {tile}, {edge})")
    if out is not None:
        jobstate.check_paths(raw, out)
    report = checked(raw, quiet)
    sources = xbd_sources(report, xbd) if xbd is not None else {}
    if out is None or not tile:
        result = release_layout(raw, out, report, sources, copy, quiet)
    else:
        win = Windowing(tile, tile, edge)
        result = prepare_tiles(report, out, sources, win, with_xbd or xbd is not None, quiet)
    if out is not None:
        jobstate.write_json(out / "aeroseg-prepare.json", result)
    return result
