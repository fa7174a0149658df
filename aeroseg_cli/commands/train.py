"""``aeroseg train``: the paper's recipe on the seen classes of a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from aeroseg_cli.commands.options import PROGRESS, shown_warnings
from aeroseg_cli.datasets.specs import DATASETS, SPECS
from aeroseg_cli.files.errors import UsageError


def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help=f"One of: {', '.join(DATASETS)}."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of the dataset (layout in the README)."),
    config: Path = typer.Option(None, "--config", help="TOML or YAML file with any of these settings."),
    preset: str = typer.Option(None, "--preset", help="Model preset [aeroseg-vitb16-samvitl]."),
    init: Path = typer.Option(
        None, "--init", help="Start from the tensors of this AerOSeg checkpoint that fit the preset (see the run log)."
    ),
    iters: int = typer.Option(None, "--iters", help="Iterations [the paper's: iSAID 10k, DLRSD 5k, OEM 15k]."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Global batch size [4]."),
    lr: float = typer.Option(None, "--lr", help="Learning rate of the new layers [2e-4]."),
    backbone_lr: float = typer.Option(None, "--backbone-lr", help="Learning rate of CLIP q/v [2e-6]."),
    output: Path = typer.Option(None, "--output", "-o", help="Run folder [runs/train]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    precision: str = typer.Option(
        None,
        "--precision",
        help="auto (GPU bf16, CPU fp32), fp32, bf16 (slower than fp32 on CPUs without AMX), fp16 (CUDA only).",
    ),
    seed: int = typer.Option(None, "--seed", help="Random seed [0]."),
    num_workers: int = typer.Option(None, "--num-workers", help="Data loading processes [2]."),
    ckpt_every: int = typer.Option(None, "--ckpt-every", help="Checkpoint period in iterations [1000]."),
    val_every: int = typer.Option(None, "--val-every", help="Validate every N iterations [0: never]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (one per process)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    progress: str = PROGRESS,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Train on the seen classes of a dataset (runs under torchrun for several GPUs or nodes)."""
    given = dict(locals())  # the options as given (None = not given); those named like settings override --config
    from aeroseg_cli.training.config import TrainConfig

    given.update(data_root=str(data_root) if data_root else None, output=str(output) if output else None)
    given.update(init=str(init) if init else None)  # paths as the strings TrainConfig holds
    cfg = TrainConfig.resolve(TrainConfig.from_file(config) if config else {}, given)
    check_model_settings(cfg)
    from aeroseg_cli.datasets.check import quick_check
    from aeroseg_cli.datasets.readers import load_dataset
    from aeroseg_cli.training.loop import train as run_training

    quick_check(cfg.dataset, Path(cfg.data_root), ["train", "val"] if cfg.val_every else ["train"])
    data = load_dataset(cfg.dataset, Path(cfg.data_root), "train")
    val = load_dataset(cfg.dataset, Path(cfg.data_root), "val") if cfg.val_every else None
    if not data.spec.seen:
        raise UsageError(f"{cfg.dataset}: no seen classes to train on")
    inputs = [p for p in (config, Path(cfg.init) if cfg.init else None) if p]
    with shown_warnings(quiet):
        result = run_training(cfg, data, device, resume=resume, val_data=val, quiet=quiet, inputs=inputs)
    if as_json:
        seen = list(SPECS[cfg.dataset].seen) if cfg.dataset in SPECS else None
        typer.echo(json.dumps({**asdict(result), "dataset": cfg.dataset, "seen": seen}, indent=2))
    elif not quiet:
        typer.echo(
            f"trained {result.iterations} iterations in {result.seconds:.0f} s; loss {result.first_loss:.4f} "
            f"-> {result.last_loss:.4f}; checkpoint {result.checkpoint}",
            err=True,
        )


def check_model_settings(cfg) -> None:
    """The preset and model overrides, checked before any data is read or weights are loaded."""
    from models.config import preset_config

    try:
        preset_config(cfg.preset, **cfg.model_overrides)
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"model settings: {exc}") from None
