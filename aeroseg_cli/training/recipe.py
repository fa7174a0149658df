"""Training: the reference recipe, resumable to the same weights, on one device or many under torchrun.

Every random choice of a sample (crop, jitter, flip) comes from a seed fixed by the sample's position in a seeded
stream, not from worker state, so an interrupted and resumed run sees exactly the data of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

import models
from aeroseg_cli.datasets.readers import IGNORE, SegmentationDataset
from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.runtime.ddp import init_distributed
from aeroseg_cli.runtime.modelio import autocast

CROP_PAD_IMAGE = 128


@dataclass
class TrainConfig:
    dataset: str = "dubai"
    data_root: str = ""
    preset: str = "aeroseg-vitb16-samvitl"
    iters: int = 0  # 0: the paper's length for the dataset
    batch_size: int = 4  # global, split across ranks
    lr: float = 2e-4
    backbone_lr: float = 2e-6  # CLIP q/v (lr x 0.01)
    weight_decay: float = 1e-4
    clip_grad: float = 0.01  # full-model gradient norm (CAT-Seg)
    precision: str = "auto"
    seed: int = 0
    num_workers: int = 2
    output: str = "runs/train"
    ckpt_every: int = 1000
    log_every: int = 10
    val_every: int = 0
    val_limit: int = 0  # 0: the whole validation split
    max_category_area: float = 1.0  # CAT-Seg/OVRS SINGLE_CATEGORY_MAX_AREA: 1.0 = no category-area constraint
    save_dtype: str = "float32"  # or "float16": half-size checkpoint (the training state stays fp32)
    model_overrides: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> dict:
        """Settings from a TOML or YAML file (unknown keys refused)."""
        if not path.is_file():
            raise UsageError(f"--config {path}: no such file")
        text = path.read_text()
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise UsageError("--config must be a .toml or .yaml file")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"--config {path.name}: unknown setting(s) {', '.join(unknown)}")
        return data


# -- augmentation -----------------------------------------------------------------------------------------------------
def resize_shortest(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return image, mask
    image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((nw, nh), Image.NEAREST)).astype(np.int64)
    return image, mask


def train_augment(
    image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator, max_category_area: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Resize shortest edge, random crop (category-area constraint below 1.0), ColorAugSSD jitter, flip, pad."""
    from aeroseg_cli.training.coloraug import color_aug_ssd

    image, mask = resize_shortest(image, mask, crop)
    h, w = mask.shape
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    for _ in range(10 if max_category_area < 1.0 else 0):  # detectron2's RandomCrop_CategoryAreaConstraint
        labels, counts = np.unique(mask[y : y + crop, x : x + crop], return_counts=True)
        counts = counts[labels != IGNORE]
        if len(counts) > 1 and counts.max() < max_category_area * counts.sum():
            break
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    image, mask = image[y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop]
    image = color_aug_ssd(image, rng).astype(np.float32)  # detectron2's ColorAugSSDTransform (CAT-Seg, OVRS)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    ph, pw = crop - image.shape[0], crop - image.shape[1]
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=CROP_PAD_IMAGE)
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


class TrainSamples(Dataset):
    """(index, seed) -> image (3, crop, crop) float in [0, 1], mask (crop, crop) of seen-class ids / 255."""

    def __init__(self, data: SegmentationDataset, crop: int, seen: list[str], max_category_area: float) -> None:
        self.data, self.crop, self.max_area = data, crop, max_category_area
        self.lut = np.full(256, IGNORE, np.int64)
        for i, name in enumerate(data.spec.classes):
            if name in seen:
                self.lut[i] = seen.index(name)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key
        image, mask = self.data.load(index)
        image, mask = train_augment(image, mask, self.crop, np.random.default_rng(seed), self.max_area)
        mask = self.lut[np.clip(mask, 0, 255)]
        return torch.from_numpy(image).permute(2, 0, 1) / 255.0, torch.from_numpy(mask)


class SeededStream(Sampler):
    """An endless stream of (index, seed): epoch-wise permutations from ``seed``; rank r takes every world-th item.

    Starting at any position reproduces exactly the items an uninterrupted stream would give there.
    """

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world

    def item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.n)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(perm[offset]), int(np.random.default_rng([self.seed, 1_000_003, position]).integers(2**31))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start + self.rank
        while True:
            yield self.item(position)
            position += self.world

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62


# -- optimisation -----------------------------------------------------------------------------------------------------
def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """CAT-Seg's optimizer groups: weight decay on every trainable tensor except those of normalisation layers and
    embeddings (detectron2 WEIGHT_DECAY_NORM = WEIGHT_DECAY_EMBED = 0); CLIP at the backbone lr. CLIP's q/v live in
    packed q/k/v tensors whose k rows are frozen by a zero gradient, so they get no decay (decay would move the k
    rows; at lr 2e-6 x wd 1e-4 CAT-Seg's decay of q/v changes them by < 2e-6 relative over a whole run). Frozen
    parameters (SAM) are left out."""
    exempt_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.Embedding)
    exempt = {id(p) for m in model.modules() if isinstance(m, exempt_types) for p in m.parameters(recurse=False)}
    clip = {id(p) for p in model.clip.trainable_parameters()}
    qv_masked = model.clip.qv_only
    groups: dict[str, list] = {"decay": [], "no_decay": [], "clip_qv": [], "clip_decay": [], "clip_no_decay": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in clip:
            groups["clip_qv" if qv_masked else "clip_no_decay" if id(p) in exempt else "clip_decay"].append(p)
        else:
            groups["no_decay" if id(p) in exempt else "decay"].append(p)
    settings = {
        "decay": (cfg.lr, cfg.weight_decay),
        "no_decay": (cfg.lr, 0.0),
        "clip_qv": (cfg.backbone_lr, 0.0),
        "clip_decay": (cfg.backbone_lr, cfg.weight_decay),
        "clip_no_decay": (cfg.backbone_lr, 0.0),
    }
    return [
        {"params": ps, "lr": settings[n][0], "weight_decay": settings[n][1], "name": n}
        for n, ps in groups.items()
        if ps
    ]


def cosine(iters: int):
    return lambda it: 0.5 * (1 + math.cos(math.pi * min(it, iters) / iters))


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(np.random.get_state()[1].tolist()),
        "python": json.dumps(random.getstate()[1]),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = np.random.get_state()
    np.random.set_state((np_state[0], np.array(json.loads(state["numpy"]), dtype=np.uint32), *np_state[2:]))
    py = random.getstate()
    random.setstate((py[0], tuple(json.loads(state["python"])), py[2]))


# -- the loop ---------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run_dir: str
    iterations: int
    seconds: float
    first_loss: float
    last_loss: float
    checkpoint: str


def train(
    cfg: TrainConfig,
    data: SegmentationDataset,
    device_text: str = "auto",
    resume: bool = False,
    val_data: SegmentationDataset | None = None,
    quiet: bool = False,
) -> TrainResult:
    from tqdm import tqdm

    from aeroseg_cli.runtime.modelio import resolve_precision

    ddp, device = init_distributed(device_text)
    spec = data.spec
    iters = cfg.iters or spec.iters
    if cfg.batch_size % ddp.world:
        raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the {ddp.world} processes")
    seen = list(spec.seen)
    run_dir = Path(cfg.output)
    state_path, ckpt_path = run_dir / "train_state.pt", run_dir / "checkpoint.pt"
    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume and ckpt_path.exists():
            raise UsageError(f"{run_dir} already holds a run (use --resume to continue it, or another --output)")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = models.build(cfg.preset, backproj_classes=len(seen), **cfg.model_overrides).to(device)
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(iters))
    dtype = resolve_precision(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    start = 0
    if resume:
        if not state_path.is_file():
            raise UsageError(f"--resume: no training state in {run_dir}")
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        set_rng_state(st["rng"])
        start = int(st["iteration"])
    if ddp.main:
        (run_dir / "config.json").write_text(
            json.dumps(
                {
                    **asdict(cfg),
                    "iters": iters,
                    "seen_classes": seen,
                    "world_size": ddp.world,
                    "model_config": model.cfg.to_dict(),
                },
                indent=2,
                default=str,
            )
        )
    net = model
    if ddp.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    per_rank = cfg.batch_size // ddp.world
    samples = TrainSamples(data, model.cfg.crop_size, seen, cfg.max_category_area)
    loader = DataLoader(
        samples,
        batch_size=per_rank,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        sampler=SeededStream(len(data), cfg.seed, start * cfg.batch_size, ddp.rank, ddp.world),
        persistent_workers=cfg.num_workers > 0,
    )
    log = (run_dir / "metrics.jsonl").open("a") if ddp.main else None
    import sys

    tty = sys.stderr.isatty()
    bar = tqdm(
        total=iters,
        initial=start,
        disable=quiet or not ddp.main,
        dynamic_ncols=True,
        unit="it",
        mininterval=0.5 if tty else 30,
    )
    t0, first_loss, last_loss = time.perf_counter(), float("nan"), float("nan")
    window_t, window_it = time.perf_counter(), start
    batches = iter(loader)
    try:
        for it in range(start, iters):
            images, masks = next(batches)
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
            with autocast(device, dtype):
                out = net(images, seen)
            terms = models.total_loss(out, masks, model.cfg.backproj_weight)
            loss = terms["loss"]
            finite = torch.tensor(float(torch.isfinite(loss)), device=device)
            if ddp.world > 1:
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() < 1:
                raise CLIError(
                    f"loss became {loss.item()} at iteration {it + 1}; stopped. The last good checkpoint is "
                    f"{ckpt_path if ckpt_path.exists() else 'not written yet'} (try a lower --lr or --precision fp32)"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            last_loss = float(loss.detach())
            if it == start:
                first_loss = last_loss
            done = it + 1
            if ddp.main:
                bar.update(1)
                bar.set_postfix(
                    {k: f"{float(v.detach()):.4f}" for k, v in terms.items()}
                    | {"lr": f"{scheduler.get_last_lr()[0]:.2e}"},
                    refresh=False,
                )
                if done % cfg.log_every == 0 or done == iters:
                    now = time.perf_counter()
                    rec = {
                        "iter": done,
                        **{k: float(v.detach()) for k, v in terms.items()},
                        "lr": scheduler.get_last_lr()[0],
                        "it_per_s": (done - window_it) / (now - window_t),
                    }
                    window_t, window_it = now, done
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
            if done % cfg.ckpt_every == 0 or done == iters:
                if ddp.main:
                    save_run(model, optimizer, scheduler, done, cfg, seen, run_dir)
                if ddp.world > 1:
                    dist.barrier()
            if cfg.val_every and val_data is not None and done % cfg.val_every == 0 and ddp.main:
                from aeroseg_cli.training.evaluation import evaluate_dataset

                model.eval()
                res = evaluate_dataset(model, val_data, device, dtype, limit=cfg.val_limit or None)
                model.train()
                log.write(json.dumps({"iter": done, "val": res.summary()}) + "\n")
                log.flush()
    finally:
        bar.close()
        if log is not None:
            log.close()
    return TrainResult(str(run_dir), iters, time.perf_counter() - t0, first_loss, last_loss, str(ckpt_path))


def save_run(model, optimizer, scheduler, iteration: int, cfg: TrainConfig, seen: list[str], run_dir: Path) -> None:
    """The AerOSeg checkpoint (lean: new layers, fine-tuned CLIP q/v rows and references to the official CLIP/SAM
    files; config; seen class names) and the full training state, both atomic."""
    with atomic_output(run_dir / "checkpoint.pt") as tmp:
        models.save_checkpoint(
            tmp,
            model,
            seen,
            meta={"iteration": iteration, "dataset": cfg.dataset, "preset": cfg.preset},
            dtype=torch.float16 if cfg.save_dtype == "float16" else None,
        )
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "iteration": iteration,
    }
    with atomic_output(run_dir / "train_state.pt") as tmp:
        torch.save(state, tmp)
