"""The model side of a planned ``segment`` run: device, precision, model, classes, tile and batch, each checked
against the device's memory before any scene is read, and each scene's fingerprint computed once (a ``--resume``
onto a partial made with other settings is refused here, before any work)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.progress import status
from aeroseg_cli.segment.fingerprint import Fingerprint, fingerprints, model_identity
from aeroseg_cli.segment.limits import windows_per_call
from aeroseg_cli.segment.plan import Plan, check_class_names
from aeroseg_cli.segment.resume import check_resumable


@dataclass
class Loaded:
    """The model side of a run: predictor, classes, tile, batch size, what identifies them for ``--resume`` and each
    scene's fingerprint (in the plan's order)."""

    predictor: object
    names: list[str]
    tile: int
    batch_size: int
    label: str
    ddp: object
    runtime: dict
    fingerprints: list[Fingerprint]
    warnings: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        return self.runtime["precision"]


def load(plan: Plan) -> Loaded:
    """Device, precision and model (a status line while it loads); the classes and tile checked against it."""
    from aeroseg_cli.runtime.ddp import init_distributed
    from aeroseg_cli.runtime.modelcheck import check_vocabulary
    from aeroseg_cli.runtime.modelio import load_model, precision_warning, resolve_precision
    from aeroseg_cli.segment.predictor import Predictor
    from aeroseg_cli.segment.tiler import Grid

    req = plan.request
    ddp, device = init_distributed(req.device)
    dtype = resolve_precision(req.precision, device)
    t0 = time.perf_counter()
    with status(f"loading model {req.model} ...", req.quiet or not ddp.main):
        loaded_model = load_model(req.model)
    plan.timings["model_load"] = time.perf_counter() - t0
    net, label = loaded_model.model, loaded_model.label
    if plan.names is None and not loaded_model.classes:
        raise UsageError('name the classes to find: --classes "ship,harbor" or --classes-file FILE')
    names = plan.names or check_class_names(list(loaded_model.classes))
    check_vocabulary(loaded_model, names)
    tile = req.tile or net.cfg.crop_size
    if tile % net.cfg.input_multiple:
        raise UsageError(f"--tile must be a multiple of {net.cfg.input_multiple} for this model, got {tile}")
    grids = [Grid.from_overlap(info.height, info.width, tile, req.overlap) for info in plan.infos]
    predictor = Predictor(net, names, device, dtype)
    batch = predictor.auto_batch_size(tile) if req.batch_size is None else req.batch_size
    # before the GPU is probed: on CUDA one window must fit (settled_batch lowers the batch), on CPU the batch asked
    warnings = check_sizes(plan, grids, len(names), batch if device.type != "cuda" else 1, device)
    warnings += [w for w in [precision_warning(req.precision, device)] if w]
    batch = settled_batch(predictor, tile, batch)
    precision = str(dtype or "fp32").replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16")
    runtime = {"model": model_identity(req.model), "precision": precision, "device": device.type}
    prints = fingerprints(plan, names, tile, batch, label, runtime)
    if req.resume:
        for out, fingerprint in zip(plan.outputs, prints, strict=True):
            check_resumable(out, fingerprint.settings)
    return Loaded(predictor, names, tile, batch, label, ddp, runtime, prints, warnings)


def check_sizes(plan: Plan, grids: list, num_classes: int, batch: int, device) -> list[str]:
    """The model's tile, classes and batch against the device's memory and ``--max-memory`` (exit 2 before any
    scene is read); warnings for a default budget too small for the narrowest superblock and for an overlap that
    only repeats work."""
    import numpy as np
    import torch

    from aeroseg_cli.segment.limits import available_memory, check_batch, overlap_warning
    from aeroseg_cli.segment.memory import check_budget, default_budget_warning, memory_budget

    grid = grids[0]
    probabilities = plan.request.probabilities is not None
    bands = max(len(i.bands) for i in plan.infos)
    itemsize = max(np.dtype(i.dtype).itemsize for i in plan.infos)
    if device.type == "cuda":
        memory, where = torch.cuda.get_device_properties(device).total_memory, f"memory on {device}"
    else:
        memory, where = available_memory(), "memory available"
    check_batch(grid.tile, batch, num_classes, bands, itemsize, memory, where)
    check_budget(grid, num_classes, probabilities, plan.max_memory)
    budget = None if plan.max_memory is not None else memory_budget(None, device)
    warnings = [
        default_budget_warning(grid, num_classes, probabilities, budget) if budget is not None else None,
        overlap_warning(plan.request.overlap, grid.tile, grid.stride, sum(len(g) for g in grids)),
    ]
    return [w for w in warnings if w]


def settled_batch(predictor, tile: int, batch: int) -> int:
    """``batch``, or less if one model call of it does not fit the GPU: decided before any window runs (the least
    over all ranks under torchrun), so every call of the run has one shape and the resume fingerprint records the
    batch that was used."""
    from aeroseg_cli.runtime.ddp import gather

    calls = windows_per_call(batch, predictor.num_classes, tile)
    fitting = min(gather(predictor.settle(tile, calls)))
    return batch if fitting == calls else fitting
