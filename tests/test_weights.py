"""Weights and checkpoints: official layouts load, AerOSeg checkpoints round-trip, bad files are refused."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

import models
from aeroseg_cli.runtime import weights as placement
from models import hub
from models.checkpoint import read_checkpoint
from models.clip_backbone import build_open_clip
from models.sam_guidance import build_sam_encoder


def official_layout_sam(tmp_path: Path) -> Path:
    """A full segment_anything ``Sam`` (tiny encoder) saved as the official checkpoints are: a plain state dict."""
    cfg = models.preset_config("tiny").sam
    torch.manual_seed(1)
    sam = Sam(
        image_encoder=build_sam_encoder(cfg),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.out_chans, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=cfg.out_chans, mlp_dim=64, num_heads=2),
            transformer_dim=cfg.out_chans,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
        ),
    )
    for p in sam.parameters():
        p.data.normal_()
    path = tmp_path / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return path


def test_official_sam_layout_loads_into_guidance_encoder(tmp_path: Path) -> None:
    path = official_layout_sam(tmp_path)
    model = models.build("tiny", sam_weights=str(path))
    saved = torch.load(path, weights_only=True)
    for k, v in model.sam.encoder.state_dict().items():
        assert torch.equal(v, saved[f"image_encoder.{k}"]), k


def test_open_clip_state_dict_loads_with_position_embedding_resized(tmp_path: Path) -> None:
    cfg = models.preset_config("tiny").clip
    torch.manual_seed(2)
    source = build_open_clip(cfg, 224)  # as published: 224 px, 14x14 grid
    path = tmp_path / "clip.pt"
    torch.save(source.state_dict(), path)
    model = models.build("tiny", clip_weights=str(path))  # crop 384: 24x24 grid
    own = model.clip.model.state_dict()
    assert own["visual.positional_embedding"].shape == (1 + 24 * 24, 64)
    assert torch.equal(own["visual.positional_embedding"][0], source.state_dict()["visual.positional_embedding"][0])
    for k, v in source.state_dict().items():
        if k != "visual.positional_embedding":
            assert torch.equal(own[k], v), k


def test_safetensors_clip_weights_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = build_open_clip(models.preset_config("tiny").clip, 384)
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = models.build("tiny", clip_weights=str(path))
    assert torch.equal(model.clip.model.visual.proj, source.visual.proj)


def test_torchscript_archive_only_read_when_trusted(tmp_path: Path) -> None:
    """The official OpenAI files are TorchScript archives: read after their SHA-256 is verified, refused otherwise."""
    source = build_open_clip(models.preset_config("tiny").clip, 224)
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.script(source).save(str(path))
    with pytest.raises(hub.WeightsError, match="TorchScript"):
        hub.read_state_dict(path)
    state = hub.read_state_dict(path, trusted_torchscript=True)
    assert torch.equal(state["visual.proj"], source.visual.proj)


def test_wrong_variant_weights_are_refused(tmp_path: Path) -> None:
    path = official_layout_sam(tmp_path)
    with pytest.raises(hub.WeightsError, match="SAM weights"):
        models.build("demo", sam_weights=str(path))


def test_aeroseg_checkpoint_round_trips_bit_exactly(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = models.build("tiny", backproj_classes=3)
    for p in model.parameters():
        p.data.normal_()
    path = tmp_path / "model.pt"
    models.save_checkpoint(path, model, ["ship", "harbor", "water"], meta={"iter": 7})
    loaded, ckpt = models.load_checkpoint(path)
    assert ckpt["class_names"] == ["ship", "harbor", "water"] and ckpt["meta"] == {"iter": 7}
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(model.eval()(x, ["ship"]), loaded(x, ["ship"]))


def test_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    model = models.build("tiny")
    path = tmp_path / "model.pt"
    models.save_checkpoint(path, model, ["a"])
    ckpt = torch.load(path, weights_only=True)
    key = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + 1e-3
    torch.save(ckpt, path)
    with pytest.raises(hub.WeightsError, match="modified"):
        models.load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickled_object_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "aeroseg-checkpoint", "payload": Payload()}, path)
    with pytest.raises(hub.WeightsError, match="not a safe AerOSeg checkpoint") as refused:
        read_checkpoint(path)
    assert "weights_only" not in str(refused.value) and "pickled Python objects" in str(refused.value)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(hub.WeightsError):
        hub.read_state_dict(raw)


def _spec_for(file: Path) -> hub.WeightSpec:
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return hub.WeightSpec("test-weights", "https://example.invalid/x", digest, file.name, 1, "test weights")


def test_download_verifies_checksum_and_is_atomic(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "w.pth").write_bytes(b"weights" * 1000)
    spec = _spec_for(mirror / "w.pth")
    dest = tmp_path / "cache" / "w.pth"
    assert placement.download(spec, dest=dest, mirror=mirror.as_uri()) == dest
    assert dest.read_bytes() == b"weights" * 1000
    (mirror / "w.pth").write_bytes(b"tampered")
    dest2 = tmp_path / "cache2" / "w.pth"
    with pytest.raises(hub.WeightsError, match="checksum mismatch"):
        placement.download(spec, dest=dest2, mirror=mirror.as_uri())
    assert not dest2.exists() and list(dest2.parent.iterdir()) == []  # nothing left behind


def test_missing_official_weights_name_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path))
    with pytest.raises(hub.WeightsError, match="aeroseg weights download clip-vit-b-16"):
        models.build("aeroseg-vitb16-samvitl")
    hub.cached_path(hub.REGISTRY["sam-vit-l"]).parent.mkdir(parents=True)
    hub.cached_path(hub.REGISTRY["sam-vit-l"]).write_bytes(b"not sam")
    with pytest.raises(hub.WeightsError, match="does not match the published SHA-256"):
        hub.resolve("sam-vit-l")


def run_cli(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = {"AEROSEG_HOME": str(env_home), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "aeroseg_cli", *args], capture_output=True, text=True, env=env)


def test_weights_cli_offline_mismatch_and_unknown(tmp_path: Path) -> None:
    r = run_cli("weights", "download", "sam-vit-b", "--mirror", (tmp_path / "nowhere").as_uri(), env_home=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "aeroseg weights import sam-vit-b" in r.stderr
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "sam_vit_b_01ec64.pth").write_bytes(b"not the official file")
    r = run_cli("weights", "download", "sam-vit-b", "-q", "--mirror", mirror.as_uri(), env_home=tmp_path)
    assert r.returncode == 1 and "checksum mismatch" in r.stderr
    assert not (tmp_path / "weights" / "sam_vit_b_01ec64.pth").exists()
    r = run_cli("weights", "import", "sam-vit-b", str(mirror / "sam_vit_b_01ec64.pth"), env_home=tmp_path)
    assert r.returncode == 1 and "refused" in r.stderr
    r = run_cli("weights", "download", "sam-vit-x", env_home=tmp_path)
    assert r.returncode == 2 and "unknown weights" in r.stderr
    r = run_cli("weights", "list", "--json", env_home=tmp_path)
    assert r.returncode == 0 and '"present": false' in r.stdout
    (tmp_path / "weights" / "sam_vit_l_0b3195.pth").write_bytes(b"corrupt")
    r = run_cli("weights", "verify", env_home=tmp_path)
    assert r.returncode == 1 and "sam-vit-l: FAILED" in r.stdout
