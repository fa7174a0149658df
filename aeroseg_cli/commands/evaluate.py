"""``aeroseg evaluate``: s-/u-/h-mIoU on a dataset, or IoU between two label rasters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from aeroseg_cli.datasets.specs import DATASETS
from aeroseg_cli.files.errors import UsageError


def print_table(summary: dict, unseen: list[str], title: str) -> None:
    table = Table(title=title)
    table.add_column("class")
    table.add_column("split")
    table.add_column("IoU %", justify="right")
    for name, iou in summary["iou"].items():
        table.add_row(name, "unseen" if name in unseen else "seen", "n/a" if np.isnan(iou) else f"{iou:.2f}")
    for key in ("mIoU", "s-mIoU", "u-mIoU", "h-mIoU", "pixel_accuracy"):
        v = summary[key]
        table.add_row(f"[bold]{key}", "", "n/a" if np.isnan(v) else f"{v:.2f}")
    Console(stderr=True).print(table)


def _jsonable(summary: dict) -> dict:
    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return None if isinstance(v, float) and np.isnan(v) else v

    return fix(summary)


def evaluate(
    dataset: str = typer.Option(None, "--dataset", "-d", help=f"One of: {', '.join(DATASETS)}."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of the dataset."),
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint file or preset."),
    split: str = typer.Option("val", "--split", help="Split to evaluate [val]."),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N images."),
    pred: Path = typer.Option(None, "--pred", help="A predicted label raster (instead of a dataset)."),
    label: Path = typer.Option(None, "--label", help="The reference label raster on the same grid as --pred."),
    classes: str = typer.Option(None, "--classes", help="Class names of the label ids (with --pred/--label)."),
    unseen: str = typer.Option(None, "--unseen", help="Which of --classes count as unseen (with --pred/--label)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16, fp16."),
    json_out: Path = typer.Option(None, "--json", help="Also write the metrics as JSON to this file ('-': stdout)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table or progress."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """All classes (seen + unseen) given to the model; IoU per class, mIoU, s-/u-/h-mIoU, pixel accuracy."""
    if pred is not None or label is not None:
        summary, unseen_list, title = _raster_pair(pred, label, classes, unseen)
    else:
        summary, unseen_list, title = _dataset(dataset, data_root, model, split, limit, device, precision, quiet)
    if not quiet:
        print_table(summary, unseen_list, title)
    if json_out is not None:
        text = json.dumps(_jsonable(summary), indent=2)
        if str(json_out) == "-":
            typer.echo(text)
        else:
            json_out.write_text(text + "\n")


def _dataset(dataset, data_root, model, split, limit, device, precision, quiet):
    from rich.progress import Progress

    from aeroseg_cli.datasets.check import quick_check
    from aeroseg_cli.datasets.readers import load_dataset
    from aeroseg_cli.runtime.modelio import load_model, resolve_device, resolve_precision
    from aeroseg_cli.training.evaluation import evaluate_dataset

    if not dataset or not data_root or not model:
        raise UsageError("give --dataset, --data-root and --model (or --pred and --label)")
    quick_check(dataset, data_root, [split])
    data = load_dataset(dataset, data_root, split)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    net, _, label_ = load_model(model)
    net = net.to(dev).eval()
    console = Console(stderr=True, quiet=quiet)
    with Progress(console=console, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task(f"evaluating {dataset}/{split}", total=None)
        result = evaluate_dataset(
            net, data, dev, dtype, limit=limit, progress=lambda i, n: bar.update(task, completed=i, total=n)
        )
    summary = {
        **result.summary(),
        "dataset": dataset,
        "split": split,
        "model": label_,
        "unseen_classes": list(data.spec.unseen),
    }
    return summary, list(data.spec.unseen), f"{label_} on {dataset}/{split} ({result.images} images)"


def _raster_pair(pred: Path | None, label: Path | None, classes: str | None, unseen: str | None):
    from aeroseg_cli.segment.reader import open_dataset
    from aeroseg_cli.training.evaluation import Metrics, confusion

    if pred is None or label is None:
        raise UsageError("--pred and --label go together")
    with open_dataset(pred) as p, open_dataset(label) as g:
        if p.shape != g.shape or p.transform != g.transform:
            raise UsageError(f"{pred.name} and {label.name} are not on the same grid (size or transform differ)")
        if (p.crs is None) != (g.crs is None) or (p.crs is not None and p.crs != g.crs):
            raise UsageError(f"{pred.name} and {label.name} have different CRSs")
        names = [c.strip() for c in classes.split(",")] if classes else None
        if names is None and "CLASS_NAMES" in p.tags():
            names = json.loads(p.tags()["CLASS_NAMES"])
        if names is None:
            raise UsageError("--classes is needed: the rasters do not record their class names")
        k = len(names)
        matrix = np.zeros((k + 1, k), np.int64)
        for _, window in g.block_windows(1):
            gt = g.read(1, window=window).astype(np.int64)
            if g.nodata is not None:
                gt[gt == g.nodata] = 255
            pr = p.read(1, window=window).astype(np.int64)
            matrix += confusion(pr, gt, k)
    unseen_list = [c.strip() for c in unseen.split(",")] if unseen else []
    summary = {**Metrics(names, unseen_list, matrix).summary(), "pred": str(pred), "label": str(label)}
    return summary, unseen_list, f"{pred.name} vs {label.name}"
