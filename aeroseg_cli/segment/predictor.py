"""Predictor: the model step of the pipeline. Windows in, per-class probabilities out, both on the model's device.

Every call has the same batch shape: a short batch is padded with copies of its last window. Kernels choose their
algorithms by shape, so a window's probabilities then depend only on its pixels, never on which windows share its
batch; that is what lets superblocks, rank bands and resume points regroup windows without changing a pixel.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from aeroseg_cli.runtime.modelio import autocast

log = logging.getLogger("aeroseg")


class Predictor:
    """``predictor(images, batch_size)``: images (n, 3, T, T) float32 in [0, 1] on the device, n <= batch_size ->
    probabilities (n, K, T, T) float32 on the device. Text embeddings are computed once (the model caches them).
    On CUDA out-of-memory the batch is halved for the rest of the run instead of ending it."""

    def __init__(
        self, model: nn.Module, class_names: list[str], device: torch.device, dtype: torch.dtype | None = None
    ) -> None:
        self.model = model.to(device).eval()
        self.class_names = list(class_names)
        self.device, self.dtype = device, dtype
        self.max_batch: int | None = None

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
            try:
                torch.cuda.reset_peak_memory_stats(self.device)
                self._run(torch.rand(size, 3, tile, tile, device=self.device))
                if torch.cuda.max_memory_allocated(self.device) > headroom * total:
                    break
                best, size = size, size * 2
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                torch.cuda.empty_cache()
        log.info("--batch-size auto: %d", best)
        return best

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
        size = batch_size if self.max_batch is None else min(batch_size, self.max_batch)
        while True:
            try:
                parts = [self._padded(images[i : i + size], size) for i in range(0, len(images), size)]
                return parts[0] if len(parts) == 1 else torch.cat(parts)
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                torch.cuda.empty_cache()
                size = self.max_batch = max(1, size // 2)
                log.warning("CUDA out of memory: batch size lowered to %d", size)
