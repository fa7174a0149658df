"""Checkpoint format 2: lean files that reference the official weights, format-1 compatibility, vocabulary, export,
and every missing weights file reported at once. The "official" files are small stand-ins the tests create, put in
a test-only registry (``hub.REGISTRY`` patched) under a temporary ``AEROSEG_HOME``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import models
from models import hub
from models.clip_backbone import build_open_clip
from models.config import LEGACY_V1
from tests.support.cli import run_cli
from tests.support.layouts import official_layout_sam
from tests.support.paths import ROOT

DEMO = ROOT / "sample_data" / "demo_model.pt"
CLASSES = ["ship", "harbor", "water"]


def _register(monkeypatch: pytest.MonkeyPatch, name: str, file: Path) -> None:
    """Put ``file`` in the cache as registry weights ``name`` (its SHA-256 the "published" one)."""
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    spec = hub.WeightSpec(name, f"https://example.invalid/{file.name}", digest, file.name, 1, f"stand-in {name}")
    monkeypatch.setitem(hub.REGISTRY, name, spec)
    dest = hub.cached_path(spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest != file:
        dest.write_bytes(file.read_bytes())


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in official CLIP (open_clip layout at 224 px) and SAM (full segment_anything layout) for ``tiny``."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    torch.manual_seed(11)
    clip = tmp_path / "clip_tiny.pt"
    torch.save(build_open_clip(models.preset_config("tiny").clip, 224).state_dict(), clip)
    _register(monkeypatch, "clip-custom", clip)
    _register(monkeypatch, "sam-custom", official_layout_sam(tmp_path))
    return tmp_path


def _trained_tiny() -> models.AerOSeg:
    """``tiny`` built from the stand-in official files, then "trained": new layers and CLIP q/v rows changed."""
    torch.manual_seed(3)
    model = models.build("tiny", clip_weights="openai", sam_weights="official", backproj_classes=3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("clip.model.") and name.endswith("attn.in_proj_weight"):
                d = p.shape[1]
                p[:d].add_(0.01)  # q rows
                p[2 * d :].add_(-0.01)  # v rows; k rows stay official
            elif not name.startswith(("clip.", "sam.")):
                p.normal_()
    return model


def test_lean_checkpoint_round_trips_bit_exactly(official: Path) -> None:
    model = _trained_tiny()
    lean, full = official / "lean.pt", official / "full.pt"
    models.save_checkpoint(lean, model, CLASSES, meta={"iteration": 9})
    models.save_checkpoint(full, model, CLASSES, self_contained=True)
    stored = torch.load(lean, weights_only=True)
    assert [r["name"] for r in stored["references"]] == ["clip-custom", "sam-custom"]
    assert not any(k.startswith("sam.encoder.") for k in stored["state_dict"])  # frozen SAM: a reference only
    key = "clip.model.transformer.resblocks.0.attn.in_proj_weight"
    d = model.state_dict()[key].shape[1]
    assert stored["state_dict"][key].shape[0] == 2 * d  # only the q and v rows
    assert stored["rows"][key].tolist() == [*range(d), *range(2 * d, 3 * d)]
    assert lean.stat().st_size < 0.5 * full.stat().st_size
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        expected = model.eval()(x, CLASSES)
    for path in (lean, full):
        loaded, ckpt = models.load_checkpoint(path)
        a, b = model.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        with torch.no_grad():
            assert torch.equal(loaded(x, CLASSES), expected)
        assert ckpt["vocabulary"] == models.Vocabulary(True, tuple(CLASSES))  # pretrained CLIP: open vocabulary
    assert models.load_checkpoint(lean)[1]["meta"] == {"iteration": 9}


def test_lean_checkpoint_refuses_missing_or_changed_official_files(official: Path, monkeypatch) -> None:
    lean = official / "lean.pt"
    models.save_checkpoint(lean, _trained_tiny(), CLASSES)
    clip_file = hub.cached_path(hub.REGISTRY["clip-custom"])
    sam_file = hub.cached_path(hub.REGISTRY["sam-custom"])
    clip_bytes, sam_bytes = clip_file.read_bytes(), sam_file.read_bytes()
    clip_file.unlink()
    sam_file.write_bytes(b"not sam")
    with pytest.raises(hub.WeightsError) as err:
        models.load_checkpoint(lean)
    message = str(err.value)
    assert "\n" not in message and "clip-custom" in message and "sam-custom" in message
    assert "aeroseg weights download clip-custom sam-custom" in message and "aeroseg weights import" in message
    # the registry now names another file (a new digest) than the one the checkpoint was made against: refused
    clip_file.write_bytes(clip_bytes)
    sam_file.write_bytes(sam_bytes)
    changed = official / "other_clip.pt"
    torch.save({"visual.proj": torch.zeros(1)}, changed)
    _register(monkeypatch, "clip-custom", changed)
    with pytest.raises(hub.WeightsError, match="made against clip-custom with SHA-256"):
        models.load_checkpoint(lean)


def test_export_self_contained_loads_without_the_official_files(official: Path) -> None:
    model = _trained_tiny()
    lean, out = official / "lean.pt", official / "one_file.pt"
    models.save_checkpoint(lean, model, CLASSES, dtype=torch.float16)
    r = run_cli("export", str(lean), "-o", str(out), "--self-contained", "-q")
    assert r.code == 0, r.stderr
    for spec in (hub.REGISTRY["clip-custom"], hub.REGISTRY["sam-custom"]):
        hub.cached_path(spec).unlink()
    loaded, ckpt = models.load_checkpoint(out)
    assert ckpt["references"] == [] and ckpt["dtype"] == "float16"
    assert torch.equal(loaded.sam.encoder.pos_embed, model.sam.encoder.pos_embed)  # frozen: exact, not rounded
    assert not torch.equal(loaded.decoder.head.weight, model.decoder.head.weight)  # trained: stored in fp16
    torch.testing.assert_close(loaded.decoder.head.weight, model.decoder.head.weight, rtol=1e-3, atol=1e-3)
    r = run_cli("export", str(out), "-o", str(out))
    assert r.code == 2 and "must not be the input" in r.stderr
    r = run_cli("export", str(lean), "-o", str(out))
    assert r.code == 2 and "exists" in r.stderr
    r = run_cli("export", str(lean), "-o", str(official / "again.pt"))  # lean needs the official files
    assert r.code == 1 and "aeroseg weights download" in r.stderr and r.stderr.count("\n") == 1
    assert not (official / "again.pt").exists()


def test_format_1_demo_checkpoint_loads_with_legacy_values() -> None:
    model, ckpt = models.load_checkpoint(DEMO)
    assert ckpt["format_version"] == 1
    for key, value in LEGACY_V1.items():
        assert getattr(model.cfg, key) == value, key
        assert ckpt["config"][key] == value
    assert ckpt["vocabulary"] == models.Vocabulary(False, ("building", "land", "road", "vegetation", "water"))
    assert ckpt["references"] == [] and ckpt["dtype"] == "float16"


def test_format_1_checkpoint_rewritten_as_format_2_gives_the_same_logits(tmp_path: Path) -> None:
    model, ckpt = models.load_checkpoint(DEMO)
    out = tmp_path / "demo_v2.pt"
    models.export_checkpoint(DEMO, out, self_contained=False)  # no official files referenced: every tensor kept
    again, ckpt2 = models.load_checkpoint(out)
    assert ckpt2["format_version"] == models.FORMAT_VERSION and ckpt2["vocabulary"] == ckpt["vocabulary"]
    assert out.stat().st_size < DEMO.stat().st_size * 1.1  # fp16 storage kept
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(again(x, ckpt["class_names"]), model(x, ckpt["class_names"]))


def test_every_missing_weights_file_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path))
    cfg = models.preset_config("aeroseg-vitb16-samvitl")
    assert models.required_weights(cfg) == ["clip-vit-b-16", "sam-vit-l"]
    assert models.required_weights(models.preset_config("baseline-vitb16")) == ["clip-vit-b-16"]
    assert models.required_weights(models.preset_config("tiny")) == []
    with pytest.raises(hub.WeightsError) as err:
        models.build("aeroseg-vitb16-samvitl")
    message = str(err.value)
    assert "clip-vit-b-16 (335 MB from OpenAI's file, 571 MB from open_clip's safetensors copy)" in message
    assert "sam-vit-l (1192 MB)" in message
    assert "`aeroseg weights download clip-vit-b-16 sam-vit-l`" in message and "\n" not in message
    with pytest.raises(hub.WeightsError, match=r"nowhere\.pt not found.*download clip-vit-b-16`"):
        models.build("aeroseg-vitb16-samvitl", sam_weights=str(tmp_path / "nowhere.pt"))
