"""The model step of the pipeline: a batch of windows in, per-class probabilities out."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from aeroseg_cli.runtime.modelio import autocast

log = logging.getLogger("aeroseg")


class Predictor:
    """Runs ``model(images, class_names)`` on batches of (N, 3, T, T) windows in [0, 1] -> (N, K, T, T) probabilities.

    Text embeddings are computed once (the model caches them at inference). On CUDA out-of-memory the batch is
    halved and retried instead of ending a long run.
    """

    def __init__(
        self, model: nn.Module, class_names: list[str], device: torch.device, dtype: torch.dtype | None = None
    ) -> None:
        self.model = model.to(device).eval()
        self.class_names = list(class_names)
        self.device, self.dtype = device, dtype
        self.max_batch: int | None = None
        self.model_seconds = 0.0

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
                self._run(np.random.rand(size, 3, tile, tile).astype(np.float32))
                if torch.cuda.max_memory_allocated(self.device) > headroom * total:
                    break
                best, size = size, size * 2
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                torch.cuda.empty_cache()
        log.info("--batch-size auto: %d", best)
        return best

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.inference_mode()
    def _run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        with autocast(self.device, self.dtype):
            logits = self.model(x, self.class_names)
        return self.model.probabilities(logits).float().cpu().numpy()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        size = len(batch) if self.max_batch is None else min(len(batch), self.max_batch)
        while True:
            try:
                return np.concatenate([self._run(batch[i : i + size]) for i in range(0, len(batch), size)])
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                torch.cuda.empty_cache()
                size = max(1, size // 2)
                self.max_batch = size
                log.warning("CUDA out of memory: batch size lowered to %d", size)
