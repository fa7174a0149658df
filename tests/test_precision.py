"""Every precision the CLI accepts runs on every device it accepts, or is refused up front (issue 21, section 4).

On a CPU the CLI accepts auto (fp32), fp32 and bf16; fp16 needs CUDA and is refused with one line. The SAM maps are
shrunk with an antialiasing filter, which CPUs have no bf16/fp16 kernel for ("compute_index_ranges_weights" not
implemented for 'BFloat16'), as the paper preset fed 1024 px (still a choice) does: its 64 x 64 maps are shrunk to the
24 x 24 grid and, for the block taps that bf16 autocast leaves in bf16, to the first decoder stage's 48 x 48. These
tests take that path at the tiny widths and a 128 px crop with SAM fed 384 px: 24 x 24 maps shrunk to 8 x 8 and
16 x 16 (the tiny preset's own 256 px SAM input only enlarges).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import models
from aeroseg_cli.runtime.modelio import BF16_CPU_WARNING, autocast, cpu_bf16_matrix_units, resolve_precision
from tests.support.cli import run_cli
from tests.support.scenes import smooth_scene, write_scene

CPU = torch.device("cpu")
CLASSES = ["water", "land", "road"]
CPU_PRECISIONS = ["auto", "fp32", "bf16"]


def shrinking_tiny(**overrides) -> models.AerOSeg:
    torch.manual_seed(0)
    return models.build("tiny", crop_size=128, sam_input_size=384, **overrides)  # SAM 24 -> 8 and 16: shrinking


@pytest.mark.parametrize("precision", CPU_PRECISIONS)
def test_inference_runs_under_every_cpu_precision(precision: str) -> None:
    model = shrinking_tiny().eval()
    dtype = resolve_precision(precision, CPU)
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad(), autocast(CPU, dtype):
        logits = model(x, CLASSES)
    assert logits.shape == (2, 3, 128, 128) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    if dtype is not None:  # bf16 stays close to fp32 (the cost volume and logits are fp32)
        with torch.no_grad():
            ref = model(x, CLASSES)
        assert float((logits - ref).norm() / ref.norm()) < 0.05


@pytest.mark.parametrize("precision", CPU_PRECISIONS)
def test_training_step_runs_under_every_cpu_precision(precision: str) -> None:
    """Training also shrinks the back-projection target (SAM's neck, 24 x 24 -> 8 x 8)."""
    model = shrinking_tiny(backproj_classes=3).train()
    dtype = resolve_precision(precision, CPU)
    with autocast(CPU, dtype):
        out = model(torch.rand(2, 3, 128, 128), CLASSES)
        loss = models.total_loss(out, torch.randint(0, 3, (2, 128, 128)))["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_shrinking_resize_in_bf16_equals_the_fp32_filter_rounded() -> None:
    from models.guidance import resize

    x = torch.randn(1, 8, 64, 64).to(torch.bfloat16)
    got = resize(x, (24, 24), antialias=True)
    expected = torch.nn.functional.interpolate(x.float(), size=(24, 24), mode="bilinear", antialias=True)
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected.to(torch.bfloat16))


@pytest.fixture(scope="module")
def checkpoint_and_scene(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("precision")
    ckpt = root / "tiny128_sam384.pt"
    models.save_checkpoint(ckpt, shrinking_tiny(), CLASSES)
    scene = write_scene(root / "scene.tif", smooth_scene(200, 200))
    return ckpt, scene


@pytest.mark.parametrize("precision", CPU_PRECISIONS)
def test_segment_cli_runs_under_every_cpu_precision(checkpoint_and_scene, tmp_path: Path, precision: str) -> None:
    ckpt, scene = checkpoint_and_scene
    out = tmp_path / "labels.tif"
    r = run_cli("segment", scene, "--model", ckpt, "-o", out, "--precision", precision, "--device", "cpu")
    assert r.code == 0, r.stderr
    assert out.is_file() and "Traceback" not in r.stderr
    warned = BF16_CPU_WARNING in r.stderr
    assert warned == (precision == "bf16" and not cpu_bf16_matrix_units())
    assert not warned or r.stderr.count(BF16_CPU_WARNING) == 1


def test_fp16_on_cpu_is_refused_up_front_in_one_line(checkpoint_and_scene, tmp_path: Path) -> None:
    ckpt, scene = checkpoint_and_scene
    out = tmp_path / "labels.tif"
    r = run_cli("segment", scene, "--model", ckpt, "-o", out, "--precision", "fp16", "--device", "cpu")
    assert r.code == 2 and "fp16 needs a CUDA device" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and not out.exists()


def test_bf16_matrix_units_are_read_from_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else []
    assert cpu_bf16_matrix_units() == ("amx_bf16" in flags)
    assert np.isscalar(cpu_bf16_matrix_units())
