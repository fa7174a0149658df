"""Old checkpoints keep their logits bit for bit across every fidelity fix (issue 21).

The fixtures were written by the old code itself, not by this tree: ``tests/fixtures/legacy_v1_tiny.pt.gz`` by the
``models/`` of commit 813b28b (checkpoint format 1) and ``legacy_v2_tiny.pt.gz`` by that of commit 0be3f04 (format 2,
before issue 21), each with the same tiny custom config (CLIP patch 8, 2 layers 16 wide; SAM patch 8, 3 blocks 16
wide at 128 px; hidden 16, Swin window 4), seeded random weights (torch seed 1234, new layers perturbed by N(0, 0.05)
with generator seed 1235; token-embedding rows no prompt uses zeroed so the file gzips small), saved in fp16 by that
code's ``save_checkpoint``. ``legacy_v*_logits.npz`` holds uint8 inputs (numpy ``default_rng(7)``, 48 px: grid 6
padded to 8; 64 px: grid 8, 2 x 2 shifted windows) and the logits that code's ``load_checkpoint`` gave in eval mode.
Generator: ``/work/scratch/h21-network/gen_legacy_fixtures.py`` (outside the repository).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from models.config import LEGACY

FIXTURES = Path(__file__).parent / "fixtures"
CLASSES = ["building", "water", "road"]


@pytest.fixture(scope="module", autouse=True)
def fixture_threads():
    """The stored logits were computed with two torch threads (the generator's default on this 2-core machine); the
    suite runs on one (conftest.py), and a float sum's order, so its last bits, can follow the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=[1, 2])
def legacy(request, tmp_path_factory) -> tuple[int, Path]:
    version = request.param
    path = tmp_path_factory.mktemp(f"v{version}") / f"legacy_v{version}_tiny.pt"
    path.write_bytes(gzip.decompress((FIXTURES / f"legacy_v{version}_tiny.pt.gz").read_bytes()))
    return version, path


def test_old_checkpoint_gives_its_own_logits_bit_for_bit(legacy) -> None:
    version, path = legacy
    model, ckpt = models.load_checkpoint(path)
    assert ckpt["format_version"] == version
    stored = np.load(FIXTURES / f"legacy_v{version}_logits.npz")
    for size in (48, 64):
        x = torch.from_numpy(stored[f"image_{size}"]).float() / 255
        with torch.inference_mode():
            logits = model(x, CLASSES)
        expected = torch.from_numpy(stored[f"logits_{size}"])
        assert logits.shape == expected.shape
        assert torch.equal(logits, expected), f"{size} px: max |diff| {(logits - expected).abs().max():.3g}"


def test_old_checkpoint_reads_every_later_field_with_its_legacy_value(legacy) -> None:
    version, path = legacy
    model, ckpt = models.load_checkpoint(path)
    later = {k: v for fmt, table in LEGACY.items() if fmt >= version for k, v in table.items()}
    assert later, "no legacy table for this format"
    for key, value in later.items():
        assert getattr(model.cfg, key) == value, key
        assert ckpt["config"][key] == value, key


def test_rewritten_old_checkpoint_keeps_its_legacy_values_and_logits(legacy, tmp_path: Path) -> None:
    version, path = legacy
    out = tmp_path / "rewritten.pt"
    models.export_checkpoint(path, out, self_contained=True)
    again, ckpt = models.load_checkpoint(out)
    assert ckpt["format_version"] == models.FORMAT_VERSION
    stored = np.load(FIXTURES / f"legacy_v{version}_logits.npz")
    x = torch.from_numpy(stored["image_64"]).float() / 255
    with torch.inference_mode():
        assert torch.equal(again(x, CLASSES), torch.from_numpy(stored["logits_64"]))
