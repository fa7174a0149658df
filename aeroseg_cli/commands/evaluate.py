"""``aeroseg evaluate``: s-/u-/h-mIoU on a dataset, or IoU between two label rasters."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from aeroseg_cli.commands.options import DEVICE, OVERWRITE, PRECISION, PROGRESS, QUIET, parse_names
from aeroseg_cli.datasets.specs import DATASETS
from aeroseg_cli.files.errors import UsageError

HELP_MODEL = (
    "Checkpoint file, released model or preset [your default, else the best here]: zeroshot-vitb16 is the plain "
    "baseline (CLIP correlation, no training-free tricks), segearth-ov-vitb16 is SegEarth-OV (CVPR 2025), evaluated "
    "with its own resize (long side 448) and sliding window (224 at stride 112)."
)


def print_table(summary: dict, unseen: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("class")
    table.add_column("split")
    table.add_column("IoU %", justify="right")
    for name, iou in summary["iou"].items():
        table.add_row(name, "unseen" if name in unseen else "seen", "n/a" if math.isnan(iou) else f"{iou:.2f}")
    for key in ("mIoU", "s-mIoU", "u-mIoU", "h-mIoU", "pixel_accuracy"):
        v = summary[key]
        table.add_row(f"[bold]{key}", "", "n/a" if math.isnan(v) else f"{v:.2f}")
    Console(stderr=True).print(table)


def _jsonable(summary: dict) -> dict:
    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return None if isinstance(v, float) and math.isnan(v) else v

    return fix(summary)


def evaluate(
    dataset: str = typer.Option(None, "--dataset", "-d", help=f"One of: {', '.join(DATASETS)}."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of the dataset."),
    model: str = typer.Option(None, "--model", "-m", help=HELP_MODEL),
    split: str = typer.Option("val", "--split", help="Split to evaluate [val]."),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N images."),
    pred: Path = typer.Option(None, "--pred", help="A predicted label raster (instead of a dataset)."),
    label: Path = typer.Option(None, "--label", help="The reference label raster on the same grid as --pred."),
    classes: str = typer.Option(None, "--classes", help="Class names of the label ids (with --pred/--label)."),
    unseen: str = typer.Option(None, "--unseen", help="Which of --classes count as unseen (with --pred/--label)."),
    device: str = DEVICE,
    precision: str = PRECISION,
    json_out: Path = typer.Option(None, "--json", help="Also write the metrics as JSON to this file ('-': stdout)."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    progress: str = PROGRESS,
) -> None:
    """All classes (seen + unseen) given to the model; IoU per class, mIoU, s-/u-/h-mIoU, pixel accuracy."""
    if json_out is not None and str(json_out) != "-":  # before any work: the report never replaces an input
        from aeroseg_cli.files.safety import Output, check_outputs
        from aeroseg_cli.runtime.modelchoice import read_default

        chosen = model or read_default()
        inputs = [p for p in (pred, label, Path(chosen) if chosen else None) if p is not None and p.is_file()]
        check_outputs([Output(json_out, "metrics file")], inputs, overwrite)
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
            from aeroseg_cli.files.atomic import atomic_output

            with atomic_output(json_out) as tmp:
                tmp.write_text(text + "\n")


def _dataset(dataset, data_root, model, split, limit, device, precision, quiet):
    from aeroseg_cli.datasets.check import quick_check
    from aeroseg_cli.datasets.readers import load_dataset
    from aeroseg_cli.progress import progress_display
    from aeroseg_cli.runtime.modelcheck import check_preset, check_vocabulary
    from aeroseg_cli.runtime.modelchoice import choose_model
    from aeroseg_cli.runtime.modelio import load_model, resolve_device, resolve_precision
    from aeroseg_cli.training.evaluation import evaluate_dataset

    if not dataset or not data_root:
        raise UsageError("give --dataset and --data-root (and --model, or the default is used), or --pred and --label")
    choice = choose_model(model)
    model = choice.spec
    quick_check(dataset, data_root, [split])
    data = load_dataset(dataset, data_root, split)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    check_preset(model, "evaluate")
    loaded = load_model(model)
    check_vocabulary(loaded, list(data.spec.classes))
    net, label_ = loaded.model, loaded.label
    net = net.to(dev).eval()
    with progress_display(f"evaluating {dataset}/{split}", unit="images", quiet=quiet) as update:
        result = evaluate_dataset(net, data, dev, dtype, limit=limit, progress=update)
    summary = {
        **result.summary(),
        "dataset": dataset,
        "split": split,
        "model": label_,
        "model_choice": choice.why,
        "unseen_classes": list(data.spec.unseen),
    }
    return summary, list(data.spec.unseen), f"{label_} on {dataset}/{split} ({result.images} images)"


def _raster_pair(pred: Path | None, label: Path | None, classes: str | None, unseen: str | None):
    from aeroseg_cli.segment.reader import open_dataset
    from aeroseg_cli.training.evaluation import Metrics, raster_confusion

    if pred is None or label is None:
        raise UsageError("--pred and --label go together")
    with open_dataset(str(pred)) as p, open_dataset(str(label)) as g:
        names = parse_names(classes, "class", "--classes") if classes else None
        if names is None and "CLASS_NAMES" in p.tags():
            names = json.loads(p.tags()["CLASS_NAMES"])
        if names is None:
            raise UsageError("--classes is needed: the rasters do not record their class names")
        matrix = raster_confusion(p, g, names)
    unseen_list = parse_names(unseen, "class", "--unseen") if unseen else []
    summary = {**Metrics(names, unseen_list, matrix).summary(), "pred": str(pred), "label": str(label)}
    return summary, unseen_list, f"{pred.name} vs {label.name}"
