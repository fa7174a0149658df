"""``aeroseg datasets prepare isaid|dlrsd|openearthmap`` and ``aeroseg datasets check``: from the official downloads
to checked training data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from aeroseg_cli.commands.options import JSON_SUMMARY, PROGRESS, QUIET, parse_names
from aeroseg_cli.files.errors import CLIError, Interrupted, UsageError

datasets_app = typer.Typer(
    help="Prepare iSAID, DLRSD and OpenEarthMap from their official downloads; check a dataset folder.",
    no_args_is_help=True,
)
prepare_app = typer.Typer(
    help="Turn an official download into the layout `aeroseg train` and `aeroseg evaluate` read.",
    no_args_is_help=True,
)
datasets_app.add_typer(prepare_app, name="prepare")


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C or SIGTERM (raised as ``Interrupted`` by the app's signal handling, exit 130 / 143) ends in one line
    that says what is kept; temporary files are removed on the way out."""
    try:
        yield
    except Interrupted as exc:
        detail = "with every image finished so far kept whole; rerun the same command to finish"
        raise exc.with_detail(detail) from None


def _names(text: str | None) -> tuple[str, ...]:
    """``--skip``: image names; empty (``--skip ''``) is none, so the default skips can be turned off."""
    return tuple(parse_names(text, "image name", "--skip")) if text else ()


def _split_names(text: str) -> tuple[str, ...]:
    names = tuple(parse_names(text, "split", "--splits"))
    if set(names) - {"train", "val"}:
        raise UsageError(f"--splits takes train and/or val, got {text!r}")
    return names


def _report(summary: dict, lines: list[str], as_json: bool) -> None:
    """The summary on stdout (lines, or JSON); its warnings on stderr either way."""
    for warning in summary.get("warnings", []):
        typer.echo(f"aeroseg: warning: {summary['dataset']} {warning}", err=True)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for line in lines:
            typer.echo(line)


def _next_check(dataset: str, output: Path, counts: dict[str, int]) -> list[str]:
    """The check to run next, on the splits that hold something (none: nothing to check)."""
    full = [split for split, n in counts.items() if n]
    if not full:
        return []
    only = "" if len(full) == len(counts) else f" --splits {','.join(full)}"
    return [f"next: aeroseg datasets check {dataset} --data-root {output}{only}"]


def _counts(dataset: str, got: dict[str, int]) -> str:
    """``train 18,076 / val 6,363 (the paper: 18,076 / 6,363)``: what this run produced beside the paper's count."""
    from aeroseg_cli.datasets.specs import PAPER_COUNTS

    mine = " / ".join(f"{split} {n:,}" for split, n in got.items())
    paper = " / ".join(f"{PAPER_COUNTS[dataset][split]:,}" for split in got if split in PAPER_COUNTS[dataset])
    return f"{mine} (the paper: {paper})"


@prepare_app.command("isaid")
def prepare_isaid(
    raw: Path = typer.Option(
        ..., "--from", help="The download: RAW/train, RAW/val with DOTA images and iSAID Semantic_masks (zips or not)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (what `train --dataset isaid` reads)."),
    patch: int = typer.Option(256, "--patch", help="Patch side in pixels [256, the paper's; mmsegmentation: 896]."),
    stride: int = typer.Option(
        206, "--stride", help="Step between patches [206; mmsegmentation: 512]; the last ends at the edge."
    ),
    min_foreground: float = typer.Option(
        0.1, "--min-foreground", help="Keep a patch when this share of it is one of the 15 classes [0.1; 0: all]."
    ),
    keep_list: list[Path] = typer.Option(
        None,
        "--keep-list",
        help="Keep exactly the patches these lists name (e.g. the iSAID-5i fold lists); repeatable.",
    ),
    skip: str = typer.Option(
        "P1527,P1530", "--skip", help="Image names to leave out, exactly [P1527,P1530, as iSAID_Devkit; '': none]."
    ),
    splits: str = typer.Option("train,val", "--splits", help="Splits to prepare [train,val]."),
    workers: int = typer.Option(1, "--workers", "-j", help="Images converted at once, one process each [1]."),
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """DOTA images + iSAID colour masks -> patches with class ids (0..14 in the paper's order, 255 background)."""
    from aeroseg_cli.datasets.isaid import ID_CONVENTION
    from aeroseg_cli.datasets.isaid import prepare_isaid as run

    selection = {"min_foreground": min_foreground, "keep_lists": tuple(keep_list or ())}
    with interruptible():
        s = run(raw, output, patch, stride, _split_names(splits), _names(skip), quiet, workers, **selection)
    per_split = "; ".join(
        f"{k}: {v['images']} images, {v['patches']} patches ({len(v['images_without_patches'])} images gave none)"
        for k, v in s["splits"].items()
    )
    patches = {k: v["patches"] for k, v in s["splits"].items()}
    lines = [
        f"isaid: {per_split} in {output} ({s['resumed_images']} images were finished by an earlier run)",
        f"patches: {_counts('isaid', patches)}",
        f"ids: {ID_CONVENTION}; summary in {output / 'aeroseg-prepare.json'}",
        *_next_check("isaid", output, patches),
    ]
    _report(s, lines, as_json)


@prepare_app.command("dlrsd")
def prepare_dlrsd(
    raw: Path = typer.Option(..., "--from", help="UC Merced images (<category>NN.tif) and DLRSD labels (.png)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (what `train --dataset dlrsd` reads)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of each scene category in val [0.2]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split [0]."),
    split_file: Path = typer.Option(
        None, "--split-file", help="Reproduce a split: `name,split` lines (e.g. another run's OUT/split.csv)."
    ),
    label_base: str = typer.Option("auto", "--label-base", help="Label ids count from 1 or 0 [auto: detected]."),
    skip: str = typer.Option(None, "--skip", help="Images to leave out, comma-separated."),
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """UC Merced + DLRSD labels -> a seeded train/val split stratified by the 21 scene categories."""
    from aeroseg_cli.datasets.dlrsd import prepare_dlrsd as run

    with interruptible():
        s = run(raw, output, val_fraction, seed, split_file, label_base, _names(skip), quiet)
    lines = [
        f"dlrsd: {s['images'].get('train', 0)} train, {s['images'].get('val', 0)} val images in {output} "
        f"(lists: train.txt, val.txt, split.csv; {s['left_out']} images not in the split)",
        f"images: {_counts('dlrsd', s['images'])}; the release has 2,100 images: OVRS's DLRSD_split is the exact one",
        f"labels: {s['label_format']} PNGs, ids from {s['label_base']} ({s['label_base_evidence']}); "
        "written as 0..16 in the paper's order, 255 ignore",
        f"next: aeroseg datasets check dlrsd --data-root {output}",
    ]
    _report(s, lines, as_json)


@prepare_app.command("openearthmap")
def prepare_openearthmap(
    raw: Path = typer.Option(..., "--from", help="The release: <region>/images, <region>/labels, train.txt..."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write the tiles here [default: only check RAW (and compile --xbd into it)]."
    ),
    tile: int = typer.Option(256, "--tile", help="Tile side in pixels [256, the paper's]; 0: whole images (a mirror)."),
    edge: str = typer.Option("drop", "--edge", help="At the right/bottom edge: drop the remainder or shift [drop]."),
    with_xbd: bool = typer.Option(
        False, "--with-xbd", help="Tile the xBD-sourced images too (compiled in RAW or --xbd)."
    ),
    xbd: Path = typer.Option(
        None, "--xbd", help="xView2 download: compile the missing xBD-sourced images (and tile them)."
    ),
    copy: bool = typer.Option(False, "--copy", help="With --tile 0: copy files instead of linking them."),
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """Verify the release's lists against its files; cut train and val into tiles (-o), xBD-sourced images left out."""
    from aeroseg_cli.datasets.openearthmap import prepare_openearthmap as run

    with interruptible():
        s = run(raw, output, xbd, copy, quiet, tile, edge, with_xbd)
    if "settings" in s:  # tiles
        split_lines = [
            f"openearthmap {k}: {v['images']} images -> {v['tiles']} tiles ({len(v['images_without_tiles'])} images "
            f"gave none; {v['xbd_left_out']} xBD-sourced left out)"
            for k, v in s["splits"].items()
        ]
        tiles = {k: v["tiles"] for k, v in s["splits"].items()}
        lines = [*split_lines, f"tiles: {_counts('openearthmap', tiles)}", *_next_check("openearthmap", output, tiles)]
        return _report(s, lines, as_json)
    lines = [f"openearthmap {k}: {v['usable']} of {v['listed']} listed files usable" for k, v in s["splits"].items()]
    if s["compiled_xbd_images"]:
        lines.append(f"compiled {s['compiled_xbd_images']} xBD images into {s['root']}")
    if s["missing_xbd_by_region"]:
        regions = ", ".join(f"{r} ({n})" for r, n in s["missing_xbd_by_region"].items())
        lines += [f"missing xBD-sourced images by region: {regions}", s["how_to_compile"]]
    _report(s, lines, as_json)


@datasets_app.command("check")
def check(
    name: str = typer.Argument(..., help="isaid, dlrsd, openearthmap, dubai or folder."),
    data_root: Path = typer.Option(..., "--data-root", help="The folder `train --data-root` would get."),
    splits: str = typer.Option("train,val", "--splits", help="Splits to check [train,val]."),
    full: bool = typer.Option(False, "--full", help="Decode every mask and count every pixel (slow)."),
    as_json: bool = JSON_SUMMARY,
) -> None:
    """Pairs, sizes, modes, mask values, class shares, seen/unseen shares; exit 1 on problems that block training."""
    from aeroseg_cli.datasets.check import run_check, to_json

    data = to_json(run_check(name, data_root, _split_names(splits), full=full))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render(data)
    if data["errors"]:
        more = f" (and {len(data['errors']) - 1} more)" if len(data["errors"]) > 1 else ""
        raise CLIError(f"{name} at {data_root}: {data['errors'][0]}{more}")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def render(data: dict) -> None:
    """The check as two tables (splits; classes) and the problems, on stdout."""
    from rich.console import Console
    from rich.table import Table

    splits = data["splits"]
    step = next(iter(splits.values()), {}).get("pixel_step", 1)
    how = "every pixel of every mask" if data["full"] else f"sampled masks, every {step}th pixel"
    t = Table(title=f"{data['dataset']} at {data['root']}: {data['layout']} layout ({how})")
    for col in ("split", "pairs", "image modes", "mask modes", "sides px", "masks read", "values"):
        t.add_column(col)
    for col in ("seen %", "unseen %", "ignore %"):
        t.add_column(col, justify="right")
    for split, s in splits.items():
        values = f"{s['values']['min']}..{s['values']['max']}" if s["values"] else "-"
        sides = f"{s['side_px']['min']}..{s['side_px']['max']}"
        modes = [", ".join(f"{m} ({n})" for m, n in s[k].items()) for k in ("image_modes", "mask_modes")]
        sh = s["shares"]
        t.add_row(
            split,
            str(s["pairs"]),
            *modes,
            sides,
            str(s["masks_read"]),
            values,
            *map(_pct, (sh["seen"], sh["unseen"], sh["ignore"])),
        )
    c = Table(title="class pixel shares %")
    c.add_column("class")
    c.add_column("seen/unseen")
    for split in splits:
        c.add_column(split, justify="right")
    for cls in data["classes"]:
        row = [_pct(s["shares"]["classes"][cls]) for s in splits.values()]
        c.add_row(cls, "unseen" if cls in data["unseen"] else "seen", *row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log or a pipe: do not squeeze the tables into 80 columns
    console.print(t)
    console.print(c)
    for level in ("errors", "warnings"):
        for line in data[level]:
            console.print(f"{level[:-1]}: {line}", markup=False, highlight=False)
    if not data["errors"]:
        console.print("no blocking problems", markup=False)
