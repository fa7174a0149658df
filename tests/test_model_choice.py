"""Which model runs without --model: the user's default (`aeroseg weights default`), else a converted released
model, else a training-free preset whose files are cached, else one message with every choice; the summary and the
output's tags name the model used."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from unittest import mock

import pytest
import rasterio
from safetensors.torch import save_file

import models
from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.runtime.modelchoice import choose_model, read_default
from aeroseg_cli.segment.fingerprint import model_identity
from aeroseg_cli.segment.resume import partial_paths
from aeroseg_cli.segment.writer import LabelWriter
from models import hub, presets
from tests.support.cli import run_cli
from tests.support.layouts import open_clip_hub_state, openai_clip_state, save_torchscript
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene

DEMO = ROOT / "sample_data" / "demo_model.pt"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny_water_land.pt"
    models.save_checkpoint(path, models.build("tiny"), ["water", "land"], self_contained=True)
    return path


def _place(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_without_any_model_one_message_lists_every_choice(home: Path, tmp_path: Path) -> None:
    """Every choice this aeroseg can use, with what its download really costs (OpenAI's CLIP host is gone: open_clip's
    fp32 copy is larger); a released model is offered only where its converter exists (review 1, findings 4, 11)."""
    with pytest.raises(CLIError) as err:
        choose_model(None)
    message = str(err.value)
    assert "\n" not in message
    for name in ("catseg-vitb16", "catseg-vitl14"):
        assert (f"`aeroseg weights download {name}`" in message) == hub.offered(hub.REGISTRY[name]), name
    assert "`aeroseg weights download clip-vit-b-16`" in message
    assert "zeroshot-vitb16; 335 MB from OpenAI's file, 571 MB from open_clip's safetensors copy)" in message
    assert "aeroseg weights default NAME|CKPT" in message
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    r = run_cli("segment", scene, "-c", "a,b", "-o", tmp_path / "o.tif")  # the card's command, nothing on the machine
    assert r.code == 1 and r.stderr.count("\n") == 1 and "aeroseg weights download clip-vit-b-16" in r.stderr
    assert not (tmp_path / "o.tif").exists()


def test_training_free_presets_come_from_preset_status() -> None:
    """The choice order names only presets that exist (it once listed segearth-ov-vitb16 before it existed), every
    training-free one, the plain CLIP baseline last; released models are the registry's convert entries."""
    from aeroseg_cli.runtime.modelcheck import released_models, training_free
    from models.presets import PRESET_STATUS, PRESETS

    names = training_free()
    assert set(names) == {n for n in PRESETS if PRESET_STATUS[n] == "training-free"} and names[-1] == "zeroshot-vitb16"
    assert released_models() == [n for n, s in hub.REGISTRY.items() if s.convert]


def test_best_available_order(home: Path, tiny_checkpoint: Path) -> None:
    """training-free zeroshot-vitb16 once CLIP is cached; a converted released model over it; CAT-Seg B over L; the
    user's default over all; --model over the default."""
    _place(hub.cached_path(hub.REGISTRY["clip-vit-b-16"]))
    assert choose_model(None).spec == "zeroshot-vitb16"
    _place(hub.converted_path(hub.REGISTRY["catseg-vitl14"]))
    assert choose_model(None).spec == "catseg-vitl14"
    _place(hub.converted_path(hub.REGISTRY["catseg-vitb16"]))
    choice = choose_model(None)
    assert choice.spec == "catseg-vitb16" and "CAT-Seg (B)" in choice.why
    assert run_cli("weights", "default", str(tiny_checkpoint)).code == 0
    assert choose_model(None).spec == str(tiny_checkpoint.resolve()) and "default" in choose_model(None).why
    assert choose_model("tiny").spec == "tiny"


def test_default_is_set_shown_used_and_cleared(home: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    r = run_cli("weights", "default", str(tiny_checkpoint))
    assert r.code == 0 and read_default() == str(tiny_checkpoint.resolve())
    shown = run_cli("weights", "default").stdout
    assert str(tiny_checkpoint.resolve()) in shown and "your default" in shown
    scene = write_scene(tmp_path / "s.tif", smooth_scene(200, 200))
    r = run_cli("segment", scene, "--tile", "128", "-o", tmp_path / "o.tif", "--json", "-q")
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["model"] == "tiny_water_land.pt (aeroseg)" and "weights default" in summary["model_choice"]
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.tags()["AEROSEG_MODEL"] == "tiny_water_land.pt (aeroseg)"
        assert json.loads(ds.tags()["CLASS_NAMES"]) == ["water", "land"]  # the checkpoint's own classes
    r = run_cli("segment", scene, "--tile", "128", "-o", tmp_path / "o2.tif")
    assert "model: tiny_water_land.pt (aeroseg) (your default, set with `aeroseg weights default`)" in r.stderr
    r = run_cli("segment", scene, "--model", "probe", "-c", "a,b", "--tile", "128", "-o", tmp_path / "o3.tif")
    assert r.code == 0 and "model: probe (--model)" in r.stderr  # --model always wins
    assert run_cli("weights", "default", "--clear").code == 0 and read_default() is None


def test_default_refuses_what_cannot_run_and_a_vanished_default_is_an_error(
    home: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    for value, words in (
        ("aeroseg-vitb16-samvitl", "untrained"),
        ("nonsense", "neither a checkpoint file nor a preset"),
        ("clip-vit-b-16", "neither a checkpoint file nor a preset"),
        ("zeroshot-vitb16", "aeroseg weights download clip-vit-b-16"),
        ("tiny", "is a test preset (random weights"),  # review 1, finding 11: it was accepted
        ("probe", "is a test preset (random weights"),
    ):
        r = run_cli("weights", "default", value)
        assert r.code == 2 and words in r.stderr and r.stderr.count("\n") == 1, (value, r.stderr)
        assert not r.stderr.startswith(("aeroseg: error: --model", "aeroseg: error: '--model")), r.stderr
    r = run_cli("weights", "default", "catseg-vitb16")
    assert r.stderr.startswith("aeroseg: error: catseg-vitb16 (CAT-Seg (B)"), r.stderr  # not "--model catseg-vitb16"
    if hub.offered(hub.REGISTRY["catseg-vitb16"]):
        assert r.code == 1 and "aeroseg weights download catseg-vitb16" in r.stderr
    else:
        assert r.code == 2 and "cannot be used by this aeroseg yet" in r.stderr
    bad = tmp_path / "not_a_checkpoint.pt"
    bad.write_bytes(b"no")
    assert run_cli("weights", "default", str(bad)).code == 2
    assert read_default() is None
    moved = tmp_path / "moved.pt"
    moved.write_bytes(tiny_checkpoint.read_bytes())
    assert run_cli("weights", "default", str(moved)).code == 0
    moved.unlink()
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    r = run_cli("segment", scene, "-c", "a,b", "-o", tmp_path / "o.tif")
    assert r.code == 1 and "your default model" in r.stderr and "--clear" in r.stderr


def test_converted_released_model_by_name(home: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    """`--model catseg-vitb16` reads the converted checkpoint in the cache, named so in the tags; missing, it says
    the one command that gets it."""
    scene = write_scene(tmp_path / "s.tif", smooth_scene(200, 200))
    r = run_cli("segment", scene, "--model", "catseg-vitb16", "-o", tmp_path / "o.tif")
    assert r.stderr.count("\n") == 1, r.stderr
    if hub.offered(hub.REGISTRY["catseg-vitb16"]):
        assert r.code == 1 and "`aeroseg weights download catseg-vitb16`" in r.stderr
    else:  # no converter: not offered, but a model converted elsewhere still runs
        assert r.code == 2 and "cannot be used by this aeroseg yet" in r.stderr
    _place(hub.converted_path(hub.REGISTRY["catseg-vitb16"]), tiny_checkpoint.read_bytes())
    r = run_cli("segment", scene, "--model", "catseg-vitb16", "--tile", "128", "-o", tmp_path / "o.tif")
    assert r.code == 0, r.stderr
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.tags()["AEROSEG_MODEL"].startswith("catseg-vitb16 (CAT-Seg (B)")
    # --resume knows the model by the converted checkpoint's SHA-256, not by its name
    assert model_identity("catseg-vitb16") == f"catseg-vitb16 checkpoint sha256 {hub.sha256_file(tiny_checkpoint)}"


def test_evaluate_uses_the_default_model(home: Path, tmp_path: Path, shared_dubai: Path) -> None:
    r = run_cli("weights", "default", str(DEMO))
    assert r.code == 0, r.stderr
    out = tmp_path / "m.json"
    r = run_cli("evaluate", "--dataset", "dubai", "--data-root", shared_dubai, "--limit", "1", "--json", out, "-q")
    assert r.code == 0, r.stderr
    summary = json.loads(out.read_text())
    assert summary["model"] == "demo_model.pt (aeroseg)" and "weights default" in summary["model_choice"]


@pytest.fixture
def small_zeroshot(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """zeroshot-vitb16 at the tiny preset's CLIP size (the real one needs a 335 MB file), its CLIP read from the
    registry entry "clip-custom" as the real preset reads clip-vit-b-16: OpenAI's TorchScript file (its SHA-256
    registered as published) imported; another CLIP (another seed) in open_clip's safetensors layout beside it."""
    clip = presets.preset_config("tiny").clip
    real = presets.get_preset("zeroshot-vitb16")
    small = dataclasses.replace(real, make=lambda: dataclasses.replace(real.make(), clip=clip))
    monkeypatch.setitem(presets._REGISTRY, "zeroshot-vitb16", small)
    official = save_torchscript(openai_clip_state(clip, 224, seed=5), tmp_path / "ViT-custom.pt")
    other = tmp_path / "open_clip_model.safetensors"
    save_file(open_clip_hub_state(openai_clip_state(clip, 224, seed=6)), str(other))
    digest = hub.sha256_file(official)
    spec = hub.WeightSpec("clip-custom", "https://example.invalid/ViT-custom.pt", digest, "ViT-custom.pt", 1, "tiny")
    monkeypatch.setitem(hub.REGISTRY, "clip-custom", spec)
    assert run_cli("weights", "import", "clip-custom", official).code == 0
    return {"official": digest, "other": hub.sha256_file(other), "other_file": other}


def test_resume_refuses_a_preset_whose_weights_changed(small_zeroshot: dict, tmp_path: Path) -> None:
    """A preset's run is identified by the SHA-256 and trust of each registry file it was built from (from the
    cache's records): after another CLIP is imported, --resume refuses the partial made with the official one
    instead of finishing one map with two CLIPs; the tags say which file made a map (review 1, finding 5)."""
    scene = write_scene(tmp_path / "s.tif", smooth_scene(1536, 128, seed=3))
    out = tmp_path / "o.tif"
    args = ["segment", scene, "-c", "water,land", "--model", "zeroshot-vitb16", "--tile", "128", "-o", out, "-q"]
    flush = LabelWriter._flush

    def flush_then_interrupt(self, *a, **kw) -> None:  # a real SIGINT once the first rows are on disk
        flush(self, *a, **kw)
        if any(block.next_row > 0 for block in self.done.values()):
            signal.raise_signal(signal.SIGINT)

    with mock.patch.object(LabelWriter, "_flush", flush_then_interrupt):
        r = run_cli(*args, "--io-threads", "off")
    assert r.code == 130 and "rerun with --resume" in r.stderr, r.stderr
    partial = {p: p.read_bytes() for p in partial_paths(out)}
    official = f"clip-custom sha256 {small_zeroshot['official']} (published)"
    assert model_identity("zeroshot-vitb16").endswith(f"; {official}")
    assert run_cli("weights", "import", "clip-custom", small_zeroshot["other_file"], "--accept-checksum").code == 0
    r = run_cli(*args, "--resume")
    assert r.code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--resume: the partial result for o.tif was made with other settings (model " in r.stderr
    assert official in r.stderr and f"clip-custom sha256 {small_zeroshot['other']} (accepted)" in r.stderr
    assert {p: p.read_bytes() for p in partial_paths(out)} == partial  # the partial is kept as it was
    r = run_cli(*args[:-3], "-o", tmp_path / "new.tif", "-q")
    assert r.code == 0, r.stderr
    with rasterio.open(tmp_path / "new.tif") as ds:
        used = json.loads(ds.tags()["AEROSEG_WEIGHTS"])
    assert used == [{"name": "clip-custom", "sha256": small_zeroshot["other"], "trust": "accepted"}]
