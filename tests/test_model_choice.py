"""Which model runs without --model: the user's default (`aeroseg weights default`), else a converted released
model, else a training-free preset whose files are cached, else one message with every choice; the summary and the
output's tags name the model used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

import models
from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.runtime.modelchoice import choose_model, read_default
from aeroseg_cli.segment.job import model_identity
from models import hub
from tests.support.cli import run_cli
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
    with pytest.raises(CLIError) as err:
        choose_model(None)
    message = str(err.value)
    assert "\n" not in message
    for command in (
        "weights download catseg-vitb16",
        "weights download catseg-vitl14",
        "weights download clip-vit-b-16",
    ):
        assert f"`aeroseg {command}`" in message, command
    assert "zeroshot-vitb16; 335 MB" in message and "size not published" in message
    assert "aeroseg weights default NAME|CKPT" in message
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    r = run_cli("segment", scene, "-c", "a,b", "-o", tmp_path / "o.tif")  # the card's command, nothing on the machine
    assert r.code == 1 and r.stderr.count("\n") == 1 and "aeroseg weights download catseg-vitb16" in r.stderr
    assert not (tmp_path / "o.tif").exists()


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
    ):
        r = run_cli("weights", "default", value)
        assert r.code == 2 and words in r.stderr and r.stderr.count("\n") == 1, (value, r.stderr)
    r = run_cli("weights", "default", "catseg-vitb16")
    assert r.code == 1 and "aeroseg weights download catseg-vitb16" in r.stderr
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
    assert r.code == 1 and "`aeroseg weights download catseg-vitb16`" in r.stderr and r.stderr.count("\n") == 1
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
