"""The training loop: resumable to the same weights, on one device or many under torchrun."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import models
from aeroseg_cli.datasets.readers import SegmentationDataset
from aeroseg_cli.files import signals
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import AerosegWarning, CLIError, Interrupted, UsageError
from aeroseg_cli.files.safety import Output, check_outputs, exclusive, file_kind, same_file
from aeroseg_cli.runtime.ddp import init_distributed
from aeroseg_cli.runtime.modelio import autocast
from aeroseg_cli.training.config import TrainConfig
from aeroseg_cli.training.init import InitReport, init_from
from aeroseg_cli.training.recipe import cosine, param_groups, save_run, set_rng_state
from aeroseg_cli.training.sampling import SeededStream, TrainSamples
from models.hub import load_tensors


@dataclass
class TrainResult:
    run_dir: str
    iterations: int
    seconds: float
    first_loss: float
    last_loss: float
    checkpoint: str


@dataclass
class Run:
    """Everything a training run holds between steps."""

    cfg: TrainConfig
    ddp: object  # runtime.ddp.Dist
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, None for fp32
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    seen: list[str]
    run_dir: Path
    iters: int
    start: int = 0
    saved: int = 0  # iteration of the last checkpoint on disk
    init: InitReport | None = None  # what --init took from its checkpoint

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoint.pt"


RUN_FILES = ("checkpoint.pt", "train_state.pt", "config.json", "metrics.jsonl")


def open_run_folder(cfg: TrainConfig, resume: bool, inputs: Sequence[Path]) -> Path:
    """The run folder, checked before anything is built: not in the dataset, no run file an input, an existing run
    only with ``--resume``; created (with its parents) only then."""
    run_dir, data_root = Path(cfg.output), Path(cfg.data_root)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--output {run_dir} is {file_kind(run_dir) or 'a file'}; the run needs a folder")
    if same_file(run_dir, data_root) or data_root.resolve() in run_dir.resolve().parents:
        raise UsageError(f"--output {run_dir} is inside the dataset folder {data_root}; write runs elsewhere")
    outputs = [Output(run_dir / name, "run file") for name in RUN_FILES]
    check_outputs(outputs, [data_root, *inputs], overwrite=True, new_folder=run_dir)
    if not resume and (run_dir / "checkpoint.pt").exists():
        raise UsageError(f"{run_dir} already holds a run (use --resume to continue it, or another --output)")
    if resume and not (run_dir / "train_state.pt").is_file():  # before the folder is made
        raise UsageError(f"--resume: no training state in {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def prepare_run(cfg: TrainConfig, data: SegmentationDataset, ddp, device: torch.device, resume: bool) -> Run:
    """Seeds, the model on its device, the optimiser and schedule, restored from the run folder on ``resume``."""
    from aeroseg_cli.runtime.modelio import precision_warning, resolve_precision

    iters = cfg.iters or data.spec.iters
    run_dir = Path(cfg.output)
    seed_everything(cfg.seed)
    seen = list(data.spec.seen)
    model = models.build(cfg.preset, backproj_classes=len(seen), **cfg.model_overrides).to(device)
    init = init_from(model, Path(cfg.init).expanduser()) if cfg.init and not resume else None
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(iters))
    dtype = resolve_precision(cfg.precision, device)
    if (warning := precision_warning(cfg.precision, device)) and ddp.main:
        warnings.warn(warning, AerosegWarning, stacklevel=1)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    net = model
    if ddp.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    run = Run(cfg, ddp, device, dtype, model, net, optimizer, scheduler, scaler, seen, run_dir, iters, init=init)
    if resume:
        run.start = run.saved = restore(run)
    return run


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def restore(run: Run) -> int:
    """Load model, optimiser, schedule and RNG state of the run folder; -> the iteration to continue from."""
    state_path = run.run_dir / "train_state.pt"
    if not state_path.is_file():
        raise UsageError(f"--resume: no training state in {run.run_dir}")
    st = load_tensors(state_path, f"--resume: cannot read the training state {state_path}")
    run.model.load_state_dict(st["model"])
    run.optimizer.load_state_dict(st["optimizer"])
    run.scheduler.load_state_dict(st["scheduler"])
    set_rng_state(st["rng"])
    return int(st["iteration"])


def write_config(run: Run) -> None:
    resolved = {
        **asdict(run.cfg),
        "iters": run.iters,
        "seen_classes": run.seen,
        "world_size": run.ddp.world,
        "model_config": run.model.cfg.to_dict(),
    }
    with atomic_output(run.run_dir / "config.json") as tmp:
        tmp.write_text(json.dumps(resolved, indent=2, default=str))


def make_loader(run: Run, data: SegmentationDataset) -> DataLoader:
    """Batches of this rank's share of the seeded stream, starting where the run stands."""
    cfg = run.cfg
    samples = TrainSamples(data, run.model.cfg.crop_size, run.seen, cfg.max_category_area)
    return DataLoader(
        samples,
        batch_size=cfg.batch_size // run.ddp.world,
        num_workers=cfg.num_workers,
        pin_memory=run.device.type == "cuda",
        sampler=SeededStream(len(data), cfg.seed, run.start * cfg.batch_size, run.ddp.rank, run.ddp.world),
        persistent_workers=cfg.num_workers > 0,
    )


def train_step(run: Run, images: torch.Tensor, masks: torch.Tensor, it: int) -> dict[str, torch.Tensor]:
    """One optimiser step; a non-finite loss on any rank stops every rank with the last good checkpoint named."""
    images, masks = images.to(run.device, non_blocking=True), masks.to(run.device, non_blocking=True)
    with autocast(run.device, run.dtype):
        out = run.net(images, run.seen)
    terms = models.total_loss(out, masks, run.model.cfg.backproj_weight)
    loss = terms["loss"]
    finite = torch.tensor(float(torch.isfinite(loss)), device=run.device)
    if run.ddp.world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item() < 1:
        last = run.checkpoint if run.checkpoint.exists() else "not written yet"
        raise CLIError(
            f"loss became {loss.item()} at iteration {it + 1}; stopped. The last good checkpoint is {last} "
            "(try a lower --lr or --precision fp32)"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    if run.cfg.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.clip_grad)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    return {k: v.detach() for k, v in terms.items()}


class MetricsLog:
    """``metrics.jsonl`` (rank 0 only) and the progress display: iteration, loss terms, lr, ETA (a bar on a
    terminal, a plain line every few seconds in a log, nothing with -q)."""

    def __init__(self, run: Run, quiet: bool) -> None:
        from aeroseg_cli.progress import progress_display

        self.run = run
        self.file = (run.run_dir / "metrics.jsonl").open("a") if run.ddp.main else None
        self._display = contextlib.ExitStack()
        label = f"training {run.model.cfg.arch}"
        self.update = self._display.enter_context(progress_display(label, unit="it", quiet=quiet or not run.ddp.main))
        self.update(run.start, run.iters)
        self.window_t, self.window_it = time.perf_counter(), run.start

    def step(self, done: int, terms: dict[str, torch.Tensor]) -> None:
        if self.file is None:
            return
        values = {k: float(v) for k, v in terms.items()}
        lr = self.run.scheduler.get_last_lr()[0]
        self.update(done, self.run.iters, **{k: f"{v:.4f}" for k, v in values.items()}, lr=f"{lr:.2e}")
        if done % self.run.cfg.log_every == 0 or done == self.run.iters:
            now = time.perf_counter()
            rate = (done - self.window_it) / (now - self.window_t)
            self.write({"iter": done, **values, "lr": lr, "it_per_s": rate})
            self.window_t, self.window_it = now, done

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        self._display.close()
        if self.file is not None:
            self.file.close()


def checkpoint_and_validate(run: Run, done: int, log: MetricsLog, val_data: SegmentationDataset | None) -> None:
    """Save the run every ``ckpt_every`` iterations and at the end; validate every ``val_every`` (rank 0)."""
    cfg = run.cfg
    if done % cfg.ckpt_every == 0 or done == run.iters:
        with signals.deferred():  # a Ctrl-C while saving lands after it: checkpoint and state stay a pair
            if run.ddp.main:
                save_run(run.model, run.optimizer, run.scheduler, done, cfg, run.seen, run.run_dir)
            run.saved = done
        if run.ddp.world > 1:
            dist.barrier()
    if cfg.val_every and val_data is not None and done % cfg.val_every == 0 and run.ddp.main:
        from aeroseg_cli.training.evaluation import evaluate_dataset

        run.model.eval()
        res = evaluate_dataset(run.model, val_data, run.device, run.dtype, limit=cfg.val_limit or None)
        run.model.train()
        log.write({"iter": done, "val": res.summary()})


def train(
    cfg: TrainConfig,
    data: SegmentationDataset,
    device_text: str = "auto",
    resume: bool = False,
    val_data: SegmentationDataset | None = None,
    quiet: bool = False,
    inputs: Sequence[Path] = (),
) -> TrainResult:
    """Train on the seen classes of ``data``; the run folder holds the checkpoint, training state and metrics.
    ``inputs``: files the run reads (e.g. its --config), which no run file may replace."""
    if resume and cfg.init:
        raise UsageError("--init starts a new run from a checkpoint and --resume continues one: give only one")
    ddp, device = init_distributed(device_text)
    if cfg.batch_size % ddp.world:
        raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the {ddp.world} processes")
    run_dir = open_run_folder(cfg, resume, inputs) if ddp.main else Path(cfg.output)
    with exclusive([run_dir]) if ddp.main else contextlib.nullcontext():  # one run per folder, locked before work
        return run_locked(prepare_run(cfg, data, ddp, device, resume), data, val_data, quiet)


def run_locked(run: Run, data: SegmentationDataset, val_data: SegmentationDataset | None, quiet: bool) -> TrainResult:
    if run.ddp.main:
        write_config(run)
    batches = iter(make_loader(run, data))
    log = MetricsLog(run, quiet)
    if run.init is not None and run.ddp.main:
        log.write(run.init.record())
        if not quiet:
            print("\n".join(run.init.lines()), file=sys.stderr)
    t0, first_loss, last_loss = time.perf_counter(), float("nan"), float("nan")
    it = run.start
    try:
        for it in range(run.start, run.iters):
            images, masks = next(batches)
            terms = train_step(run, images, masks, it)
            last_loss = float(terms["loss"])
            first_loss = last_loss if it == run.start else first_loss
            log.step(it + 1, terms)
            checkpoint_and_validate(run, it + 1, log, val_data)
    except Interrupted as exc:
        saved = f"iteration {run.saved}" if run.saved else "none yet"
        raise exc.with_detail(f"at iteration {it}; last checkpoint: {saved}; rerun with --resume to continue") from None
    finally:
        log.close()
    seconds = time.perf_counter() - t0
    return TrainResult(str(run.run_dir), run.iters, seconds, first_loss, last_loss, str(run.checkpoint))
