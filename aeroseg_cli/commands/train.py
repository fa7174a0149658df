"""``aeroseg train``: the paper's recipe on the seen classes of a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import typer

from aeroseg_cli.commands.options import (
    DEVICE,
    HELP_PRECISION,
    JSON_SUMMARY,
    PROGRESS,
    QUIET,
    default,
    given,
    shown_warnings,
)
from aeroseg_cli.datasets.specs import DATASETS, SPECS
from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.training.config import TrainConfig as C

# The options of this command, one constant each. A setting's option defaults to None (not given: the --config file
# decides, else the dataclass); the default shown in [brackets] is read from TrainConfig, where it is written once.
DATASET = typer.Option(None, "--dataset", "-d", help=f"One of: {', '.join(DATASETS)} [{default(C, 'dataset')}].")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder of the dataset (layout in the README).")
CONFIG = typer.Option(None, "--config", help="TOML or YAML file with any of these settings (options given win).")
PRESET = typer.Option(None, "--preset", help=f"Model preset [{default(C, 'preset')}].")
INIT = typer.Option(
    None, "--init", help="Start from the tensors of this AerOSeg checkpoint that fit the preset (see the run log)."
)
ITERS = typer.Option(
    None, "--iters", help=f"Iterations [{default(C, 'iters')}: the paper's: iSAID 10k, DLRSD 5k, OEM 15k]."
)
BATCH = typer.Option(None, "--batch-size", "-b", help=f"Global batch size [{default(C, 'batch_size')}].")
LR = typer.Option(None, "--lr", help=f"Learning rate of the new layers [{default(C, 'lr')}].")
BACKBONE_LR = typer.Option(None, "--backbone-lr", help=f"Learning rate of CLIP q/v [{default(C, 'backbone_lr')}].")
OUTPUT = typer.Option(None, "--output", "-o", help=f"Run folder [{default(C, 'output')}].")
RESUME = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint.")
PRECISION = typer.Option(None, "--precision", help=f"{HELP_PRECISION} [{default(C, 'precision')}]")
SEED = typer.Option(None, "--seed", help=f"Random seed [{default(C, 'seed')}].")
NUM_WORKERS = typer.Option(None, "--num-workers", help=f"Data loading processes [{default(C, 'num_workers')}].")
CKPT_EVERY = typer.Option(None, "--ckpt-every", help=f"Checkpoint period in iterations [{default(C, 'ckpt_every')}].")
VAL_EVERY = typer.Option(None, "--val-every", help=f"Validate every N iterations [{default(C, 'val_every')}: never].")


def train(
    dataset: str = DATASET,
    data_root: Path = DATA_ROOT,
    config: Path = CONFIG,
    preset: str = PRESET,
    init: Path = INIT,
    iters: int = ITERS,
    batch_size: int = BATCH,
    lr: float = LR,
    backbone_lr: float = BACKBONE_LR,
    output: Path = OUTPUT,
    resume: bool = RESUME,
    precision: str = PRECISION,
    seed: int = SEED,
    num_workers: int = NUM_WORKERS,
    ckpt_every: int = CKPT_EVERY,
    val_every: int = VAL_EVERY,
    device: str = DEVICE,
    quiet: bool = QUIET,
    progress: str = PROGRESS,
    as_json: bool = JSON_SUMMARY,
) -> None:
    """Train on the seen classes of a dataset (runs under torchrun for several GPUs or nodes, one device each)."""
    base = C.from_file(config) if config else C()  # the file's settings over the defaults
    cfg = replace(  # an option given on the command line over the file's setting
        base,
        dataset=given(dataset, base.dataset),
        data_root=given(data_root and str(data_root), base.data_root),
        preset=given(preset, base.preset),
        init=given(init and str(init), base.init),
        iters=given(iters, base.iters),
        batch_size=given(batch_size, base.batch_size),
        lr=given(lr, base.lr),
        backbone_lr=given(backbone_lr, base.backbone_lr),
        output=given(output and str(output), base.output),
        precision=given(precision, base.precision),
        seed=given(seed, base.seed),
        num_workers=given(num_workers, base.num_workers),
        ckpt_every=given(ckpt_every, base.ckpt_every),
        val_every=given(val_every, base.val_every),
    )
    cfg.validate()
    run_train(cfg, device, resume=resume, quiet=quiet, as_json=as_json, config=config)


def run_train(cfg: C, device: str, *, resume: bool, quiet: bool, as_json: bool, config: Path | None) -> None:
    """The model settings checked, the data read, the run (its warnings as they come), its summary."""
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


def check_model_settings(cfg: C) -> None:
    """The preset and model overrides, checked before any data is read or weights are loaded."""
    from models.presets import preset_config

    try:
        preset_config(cfg.preset, **cfg.model_overrides)
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"model settings: {exc}") from None
