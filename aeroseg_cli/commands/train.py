"""``aeroseg train``: the paper's recipe on the seen classes of a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import typer

from aeroseg_cli.datasets.specs import DATASETS, SPECS
from aeroseg_cli.files.errors import UsageError


def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help=f"One of: {', '.join(DATASETS)}."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of the dataset (layout in the README)."),
    config: Path = typer.Option(None, "--config", help="TOML or YAML file with any of these settings."),
    preset: str = typer.Option(None, "--preset", help="Model preset [aeroseg-vitb16-samvitl]."),
    iters: int = typer.Option(None, "--iters", help="Iterations [the paper's: iSAID 10k, DLRSD 5k, OEM 15k]."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Global batch size [4]."),
    lr: float = typer.Option(None, "--lr", help="Learning rate of the new layers [2e-4]."),
    backbone_lr: float = typer.Option(None, "--backbone-lr", help="Learning rate of CLIP q/v [2e-6]."),
    output: Path = typer.Option(None, "--output", "-o", help="Run folder [runs/train]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    precision: str = typer.Option(None, "--precision", help="auto (bf16 on GPU), fp32, bf16, fp16."),
    seed: int = typer.Option(None, "--seed", help="Random seed [0]."),
    num_workers: int = typer.Option(None, "--num-workers", help="Data loading processes [2]."),
    ckpt_every: int = typer.Option(None, "--ckpt-every", help="Checkpoint period in iterations [1000]."),
    val_every: int = typer.Option(None, "--val-every", help="Validate every N iterations [0: never]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (one per process)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Train on the seen classes of a dataset (runs under torchrun for several GPUs or nodes)."""
    from aeroseg_cli.datasets.check import quick_check
    from aeroseg_cli.datasets.readers import load_dataset
    from aeroseg_cli.training.recipe import TrainConfig
    from aeroseg_cli.training.recipe import train as run_training

    settings = TrainConfig.from_file(config) if config else {}
    cli = {
        "dataset": dataset,
        "data_root": str(data_root) if data_root else None,
        "preset": preset,
        "iters": iters,
        "batch_size": batch_size,
        "lr": lr,
        "backbone_lr": backbone_lr,
        "output": str(output) if output else None,
        "precision": precision,
        "seed": seed,
        "num_workers": num_workers,
        "ckpt_every": ckpt_every,
        "val_every": val_every,
    }
    settings.update({k: v for k, v in cli.items() if v is not None})
    cfg = TrainConfig(**{f.name: settings[f.name] for f in fields(TrainConfig) if f.name in settings})
    if cfg.dataset not in DATASETS:
        raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {cfg.dataset!r}")
    if not cfg.data_root:
        raise UsageError("--data-root is required (the folder holding the dataset)")
    for name in ("iters", "batch_size", "ckpt_every", "log_every"):
        if getattr(cfg, name) < 0 or (name != "iters" and getattr(cfg, name) == 0):
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    quick_check(cfg.dataset, Path(cfg.data_root), ["train", "val"] if cfg.val_every else ["train"])
    data = load_dataset(cfg.dataset, Path(cfg.data_root), "train")
    val = load_dataset(cfg.dataset, Path(cfg.data_root), "val") if cfg.val_every else None
    if not data.spec.seen:
        raise UsageError(f"{cfg.dataset}: no seen classes to train on")
    result = run_training(cfg, data, device, resume=resume, val_data=val, quiet=quiet)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **asdict(result),
                    "dataset": cfg.dataset,
                    "seen": list(SPECS[cfg.dataset].seen) if cfg.dataset in SPECS else None,
                },
                indent=2,
            )
        )
    elif not quiet:
        typer.echo(
            f"trained {result.iterations} iterations in {result.seconds:.0f} s; loss {result.first_loss:.4f} "
            f"-> {result.last_loss:.4f}; checkpoint {result.checkpoint}",
            err=True,
        )
