"""Predictor: the model step of the pipeline. Windows in, per-class probabilities out, both on the model's device.

Every call has the same batch shape: a short batch is padded with copies of its last window. Kernels choose their
algorithms by shape, so a window's probabilities then depend only on its pixels, never on which windows share its
batch; that is what lets superblocks, rank bands and resume points regroup windows without changing a pixel. For the
same reason the shape never changes once a window's result is kept: it is settled before the run (``settle``), and
a CUDA out-of-memory error later ends the run, resumable, instead of continuing with smaller calls (which would
make one map of two kinds of windows, and a resumed run differ from an uninterrupted one).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.runtime.modelio import autocast

log = logging.getLogger("aeroseg")


class DeviceOutOfMemory(CLIError):
    """The GPU ran out of memory during the run, after windows were kept: the partial stays resumable."""


class Predictor:
    """``predictor(images, batch_size)``: images (n, 3, T, T) float32 in [0, 1] on the device, n <= batch_size ->
    probabilities (n, K, T, T) float32 on the device. Text embeddings are computed once (the model caches them).
    Out of GPU memory: ``settle`` lowers the batch before the run; during the run it raises ``DeviceOutOfMemory``."""

    def __init__(
        self, model: nn.Module, class_names: list[str], device: torch.device, dtype: torch.dtype | None = None
    ) -> None:
        self.model = model.to(device).eval()
        self.class_names = list(class_names)
        self.device, self.dtype = device, dtype

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def auto_batch_size(self, tile: int, limit: int = 256, headroom: float = 0.85) -> int:
        """The largest power-of-two batch whose forward fits in ``headroom`` of the device memory (CUDA); 4 on CPU,
        where larger batches do not run faster."""
        if self.device.type != "cuda":
            return 4
        total = torch.cuda.get_device_properties(self.device).total_memory
        best, size = 1, 1
        while size <= limit:
            torch.cuda.reset_peak_memory_stats(self.device)
            if not self.fits(tile, size) or torch.cuda.max_memory_allocated(self.device) > headroom * total:
                break
            best, size = size, size * 2
        log.info("--batch-size auto: %d", best)
        return best

    def settle(self, tile: int, batch_size: int, probe: bool | None = None) -> int:
        """The batch every model call of the run will have: ``batch_size``, halved while one call of it does not fit
        the GPU. Probed (one forward of random windows) before any window's result is kept, by default on CUDA only:
        a CPU has no recoverable out-of-memory error."""
        if not (self.device.type == "cuda" if probe is None else probe):
            return batch_size
        size = batch_size
        while not self.fits(tile, size):
            if size == 1:
                raise DeviceOutOfMemory(f"the model does not fit the GPU's free memory even for one {tile} px window")
            size //= 2
            log.warning("CUDA out of memory with %d windows per model call: using %d", size * 2, size)
        return size

    def fits(self, tile: int, size: int) -> bool:
        """Whether one model call of ``size`` windows of ``tile`` px runs without running out of GPU memory."""
        try:
            self._run(torch.rand(size, 3, tile, tile, device=self.device))
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @torch.inference_mode()
    def _run(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            logits = self.model(images, self.class_names)
        return self.model.probabilities(logits).float()

    def _padded(self, images: torch.Tensor, size: int) -> torch.Tensor:
        n = len(images)
        if n == size:
            return self._run(images)
        pad = images[-1:].expand(size - n, *images.shape[1:])
        return self._run(torch.cat([images, pad]))[:n]

    def __call__(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        try:
            parts = [self._padded(images[i : i + batch_size], batch_size) for i in range(0, len(images), batch_size)]
        except torch.cuda.OutOfMemoryError:
            raise DeviceOutOfMemory(
                f"CUDA out of memory during a model call of {batch_size} windows (the run started with it fitting: "
                "other work on the GPU, or fragmentation); rerun with --resume to continue with the same batch size"
            ) from None
        return parts[0] if len(parts) == 1 else torch.cat(parts)
