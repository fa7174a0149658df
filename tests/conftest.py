"""Shared test helpers: real data location, synthetic scenes, toy models, an in-process CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch import nn

from aeroseg_cli.app import main

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
GEOTIFF = SHARED_DATA / "geotiff"
DUBAI = SHARED_DATA / "dubai-aerial-cc0"


@pytest.fixture(scope="session")
def shared_geotiff() -> Path:
    assert GEOTIFF.is_dir(), f"the shared real data is expected at {GEOTIFF}"
    return GEOTIFF


def write_scene(
    path: Path,
    data: np.ndarray,
    crs: str | None = "EPSG:32633",
    transform=None,
    nodata: float | None = None,
    **profile,
) -> Path:
    """Write a (bands, H, W) array as a GeoTIFF."""
    count, height, width = data.shape
    meta = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform if transform is not None else from_origin(500000, 4000000, 2.0, 2.0),
        "nodata": nodata,
        **profile,
    }
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)
    return path


def smooth_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB scene with structure at several scales (sums of random sinusoids)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.zeros((3, height, width), np.float32)
    for b in range(3):
        for _ in range(4):
            fy, fx, ph = rng.uniform(0.003, 0.05), rng.uniform(0.003, 0.05), rng.uniform(0, 6.3)
            out[b] += np.sin(yy * fy + xx * fx + ph)
    out = (out - out.min()) / (out.max() - out.min())
    return (out * 255).astype(np.uint8)


class PixelModel(nn.Module):
    """A per-pixel toy model (1x1 convolution): exactly translation-equivariant, so tiling must not change it."""

    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.conv.weight.data *= 6
        self.seen: list[torch.Tensor] = []

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def forward(self, images: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        assert images.shape[1] == 3 and len(class_names) == self.conv.out_channels
        self.seen.append(images.detach().clone())
        return self.conv(images)


class ConvModel(PixelModel):
    """A 3x3 (reflect-padded) convolution: equivariant except within one pixel of a window border."""

    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__(num_classes, seed)
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1, padding_mode="reflect")
        self.conv.weight.data *= 4


def single_process(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``aeroseg ARGS`` in one process with the environment torchrun workers get (one thread: same float order)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "aeroseg_cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def torchrun(*args: str, port: int, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 -m aeroseg_cli ARGS`` on CPU (gloo), one thread per process; torchrun's own
    temporary folders (``torchelastic_*``) go into a folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aeroseg-torchrun-") as tmp:
        return _torchrun(args, port, timeout, tmp)


def _torchrun(args, port: int, timeout: int, tmp: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TMPDIR": tmp}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(port),
        "-m",
        "aeroseg_cli",
        *map(str, args),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@dataclass
class CLIResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CLIResult:
    """Run ``aeroseg ARGS`` in-process (fast: no interpreter start-up) and capture its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return CLIResult(code, out.getvalue(), err.getvalue())
