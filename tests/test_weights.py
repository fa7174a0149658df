"""Weights and checkpoints: official layouts load, AerOSeg checkpoints round-trip, bad files are refused."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from aeroseg_cli.runtime import weights as placement
from models import hub
from models.checkpoint import read_checkpoint
from models.clip_backbone import build_open_clip
from models.config import CLIP_VARIANTS, SAM_VARIANTS
from models.factory import check_layout
from models.sam_guidance import build_sam_encoder
from models.weightfiles import read_state_dict
from tests.support.cli import run_cli as run_cli_in_process
from tests.support.layouts import (
    layout_of,
    official_layout_sam,
    open_clip_hub_state,
    openai_clip_state,
    published_layouts,
    save_torchscript,
)


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
        read_state_dict(raw)


def _spec_for(file: Path) -> hub.WeightSpec:
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return hub.WeightSpec("test-weights", "https://example.invalid/x", digest, file.name, 1, "test weights")


def test_download_verifies_checksum_and_is_atomic(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "w.pth").write_bytes(b"weights" * 1000)
    spec = _spec_for(mirror / "w.pth")
    dest = tmp_path / "cache" / "w.pth"
    assert placement.download(spec, dest=dest, mirror=mirror.as_uri()).path == dest
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
    with pytest.raises(hub.WeightsError, match="does not match the published SHA-256") as err:
        hub.resolve("sam-vit-l")
    assert str(err.value).count("aeroseg weights download sam-vit-l") == 1  # the fix said once (review 1, 11)


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


# -- weights as they are published (issue #21 §4) ----------------------------------------------------------------------
def _meta_state(rows: list) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta") for k, shape, dtype in rows}


def test_builders_match_the_published_layouts() -> None:
    """The test files below are made in exactly the published layouts: every key, shape and dtype equals the
    fixture's, which was made by the reference code itself (tests/fixtures/published_weight_layouts.json, written by
    /work/scratch/h-weights/ref/gen_layouts.py: openai/CLIP @ d05afc4 clip/model.py CLIP + convert_weights, the
    archive's three integer buffers; open_clip 3.3.0 build_model_from_openai_state_dict(...).float() for its
    Hugging Face copies; segment_anything 1.0 sam_model_registry["vit_l"]; all on the meta device)."""
    layouts = published_layouts()
    for name in ("ViT-B-16", "ViT-L-14", "ViT-L-14-336"):
        variant = CLIP_VARIANTS["ViT-L-14" if name == "ViT-L-14-336" else name]
        with torch.device("meta"):
            openai = openai_clip_state(variant, 336 if name.endswith("336") else 224)
        expected = {k: (s, d) for k, s, d in layouts[f"openai-torchscript/{name}"]}
        assert {k: (s, d) for k, s, d in layout_of(openai)} == expected, name
        expected = {k: (s, d) for k, s, d in layouts[f"open_clip-hf/{name}"]}
        assert {k: (s, d) for k, s, d in layout_of(open_clip_hub_state(openai))} == expected, name
    with torch.device("meta"):
        encoder = build_sam_encoder(SAM_VARIANTS["vit_l"])
    sam = {k: (s, d) for k, s, d in layouts["sam/vit_l"]}
    assert {k: v for k, v in sam.items() if k.startswith("image_encoder.")} == {
        f"image_encoder.{k}": (s, d) for k, s, d in layout_of(encoder.state_dict())
    }
    assert any(k.startswith("prompt_encoder.") for k in sam) and any(k.startswith("mask_decoder.") for k in sam)


def test_published_layouts_fit_the_backbones_and_others_are_named() -> None:
    """Every published layout (real sizes, from the fixture) maps onto this project's CLIP and SAM modules; files of
    other layouts are refused with the file to use instead."""
    layouts = published_layouts()
    for layout, name in (
        ("openai-torchscript/ViT-B-16", "clip-vit-b-16"),
        ("open_clip-hf/ViT-B-16", "clip-vit-b-16"),
        ("openai-torchscript/ViT-L-14", "clip-vit-l-14"),
        ("open_clip-hf/ViT-L-14-336", "clip-vit-l-14-336"),
        ("sam/vit_l", "sam-vit-l"),
    ):
        check_layout(name, _meta_state(layouts[layout]))
    with pytest.raises(hub.WeightsError, match="wrong model variant"):
        check_layout("clip-vit-l-14", _meta_state(layouts["openai-torchscript/ViT-B-16"]))
    with pytest.raises(hub.WeightsError, match="SAM weights lack"):
        check_layout("sam-vit-l", _meta_state(layouts["open_clip-hf/ViT-B-16"]))
    timm = {"patch_embed.proj.weight": torch.empty(768, 3, 16, 16, device="meta")}
    with pytest.raises(hub.WeightsError, match=r"open_clip_model\.safetensors"):
        check_layout("clip-vit-b-16", timm)
    transformers = {"vision_model.embeddings.patch_embedding.weight": torch.empty(768, 3, 16, 16, device="meta")}
    with pytest.raises(hub.WeightsError, match="transformers"):
        check_layout("clip-vit-b-16", transformers)


@pytest.fixture
def clip_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The same random tiny CLIP in each published format: OpenAI's TorchScript archive (fp16 where OpenAI's are,
    integer buffers), open_clip's Hugging Face state dict (.bin) and safetensors (fp32); the registry's "clip-custom"
    (the tiny preset's CLIP) publishes the TorchScript file's SHA-256."""
    from safetensors.torch import save_file

    openai = openai_clip_state(models.preset_config("tiny").clip, 224, seed=5)
    files = {"torchscript": save_torchscript(openai, tmp_path / "ViT-custom.pt")}
    files["bin"] = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(open_clip_hub_state(openai), files["bin"])
    files["safetensors"] = tmp_path / "open_clip_model.safetensors"
    save_file(open_clip_hub_state(openai), str(files["safetensors"]))
    digest = hub.sha256_file(files["torchscript"])
    spec = hub.WeightSpec("clip-custom", "https://example.invalid/ViT-custom.pt", digest, "ViT-custom.pt", 1, "test")
    monkeypatch.setitem(hub.REGISTRY, "clip-custom", spec)
    return files


def test_every_published_format_maps_to_the_same_tensors(
    clip_formats: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI's TorchScript file imports as the official one; open_clip's copies (another SHA-256) are refused
    unless accepted, and then give the same model bit for bit; no run reads TorchScript (no warning at all)."""
    states = {}
    for kind, file in clip_formats.items():
        monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / f"home-{kind}"))
        if kind != "torchscript":
            r = run_cli_in_process("weights", "import", "clip-custom", str(file))
            assert r.code == 1 and "--accept-checksum" in r.stderr and r.stderr.count("\n") == 1
        flag = [] if kind == "torchscript" else ["--accept-checksum"]
        r = run_cli_in_process("weights", "import", "clip-custom", str(file), *flag)
        assert r.code == 0, r.stderr
        assert ("accepted" in r.stdout) == (kind != "torchscript")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch.jit.load warns (deprecated): a run must never call it
            states[kind] = models.build("tiny", clip_weights="openai").clip.model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test's own reading of the archive, with torch's reader
        reference = open_clip_hub_state(torch.jit.load(str(clip_formats["torchscript"])).state_dict())
    for kind, state in states.items():
        assert state.keys() <= reference.keys() | {"attn_mask"}, kind
        for k, v in state.items():
            if k != "visual.positional_embedding" and k in reference:
                assert torch.equal(v, reference[k]), (kind, k)
        assert torch.equal(state["visual.positional_embedding"], states["torchscript"]["visual.positional_embedding"])


def test_torchscript_is_read_once_into_a_safetensors_copy(
    clip_formats: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing the archive writes its tensors as safetensors beside it; runs read and verify only that copy; a
    damaged or missing copy is rebuilt from the verified archive, a changed archive is verified again."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    spec = hub.REGISTRY["clip-custom"]
    assert run_cli_in_process("weights", "import", "clip-custom", str(clip_formats["torchscript"])).code == 0
    copy = hub.tensors_path(spec)
    record = hub.read_record(spec)
    assert copy.is_file() and record.trust == "published" and record.tensors_sha256 == hub.sha256_file(copy)
    cached = hub.resolve_all(["clip-custom"])["clip-custom"]
    assert cached.path == copy and cached.sha256 == spec.sha256
    copy.write_bytes(copy.read_bytes()[:-10])  # damaged copy: rebuilt from the verified archive
    assert hub.resolve_all(["clip-custom"])["clip-custom"].path == copy
    assert hub.sha256_file(copy) == hub.read_record(spec).tensors_sha256
    copy.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.build("tiny", clip_weights="openai")
    assert copy.is_file()
    archive = hub.cached_path(spec)
    archive.write_bytes(archive.read_bytes()[:-100])  # the archive itself changed: the copy is not trusted
    with pytest.raises(hub.WeightsError, match="does not match the published SHA-256"):
        models.build("tiny", clip_weights="openai")


def test_user_torchscript_file_path_points_to_import(clip_formats: dict[str, Path]) -> None:
    with pytest.raises(hub.WeightsError, match="aeroseg weights import"):
        models.build("tiny", clip_weights=str(clip_formats["torchscript"]))


def test_accepted_copy_is_recorded_listed_and_referenced_by_lean_checkpoints(
    clip_formats: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An accepted copy is verified against its own SHA-256, listed as accepted, referenced by that hash in lean
    checkpoints; the official file of the same weights rebuilds such a checkpoint (its digest confirms it), other
    weights are refused."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    spec = hub.REGISTRY["clip-custom"]
    own = hub.sha256_file(clip_formats["safetensors"])
    assert (
        run_cli_in_process(
            "weights", "import", "clip-custom", str(clip_formats["safetensors"]), "--accept-checksum"
        ).code
        == 0
    )
    rows = json.loads(run_cli_in_process("weights", "list", "--json").stdout)
    row = next(r for r in rows if r["name"] == "clip-custom")
    assert row["status"] == "accepted" and row["recorded_sha256"] == own and row["sha256"] == spec.sha256
    assert "accepted" in run_cli_in_process("weights", "verify", "clip-custom").stdout
    torch.manual_seed(0)
    model = models.build("tiny", clip_weights="openai", sam_weights=None)
    with torch.no_grad():
        model.decoder.head.weight.add_(1.0)
    lean = tmp_path / "lean.pt"
    models.save_checkpoint(lean, model, ["a", "b"])
    assert torch.load(lean, weights_only=True)["references"] == [{"role": "clip", "name": "clip-custom", "sha256": own}]
    assert run_cli_in_process("weights", "import", "clip-custom", str(clip_formats["torchscript"])).code == 0
    loaded, _ = models.load_checkpoint(lean)  # the official TorchScript file: the same tensors, the same model
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    other = openai_clip_state(models.preset_config("tiny").clip, 224, seed=6)
    save_torchscript(other, tmp_path / "other.pt")
    assert (
        run_cli_in_process("weights", "import", "clip-custom", str(tmp_path / "other.pt"), "--accept-checksum").code
        == 0
    )
    with pytest.raises(hub.WeightsError, match=f"made against clip-custom with SHA-256 {own[:16]}"):
        models.load_checkpoint(lean)


def test_accept_checksum_still_checks_the_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--accept-checksum waives the hash, not the layout: a file that is not that backbone is refused."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    sam = official_layout_sam(tmp_path)  # a tiny SAM is not SAM ViT-L
    r = run_cli_in_process("weights", "import", "sam-vit-l", str(sam), "--accept-checksum")
    assert r.code == 1 and "cannot be sam-vit-l" in r.stderr and r.stderr.count("\n") == 1
    assert not hub.cached_path(hub.REGISTRY["sam-vit-l"]).exists()


def test_verify_keeps_an_intact_copy_and_import_reads_the_archive_once(
    clip_formats: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`weights verify` hashes the archive and its copy and rewrites the copy only when it is damaged (it re-read
    the archive and rewrote an intact copy on every call); `import --accept-checksum` reads an archive once for the
    layout check and the copy together (it read it twice) (review 1, finding 7)."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(CLIP_VARIANTS, "custom", models.preset_config("tiny").clip)  # its layout checked on import
    spec = hub.REGISTRY["clip-custom"]
    loads = []
    real_load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **kw: loads.append(a[0]) or real_load(*a, **kw))
    assert run_cli_in_process("weights", "import", "clip-custom", str(clip_formats["torchscript"])).code == 0
    assert len(loads) == 1
    copy = hub.tensors_path(spec)
    before = (copy.stat().st_ino, copy.stat().st_mtime_ns)
    r = run_cli_in_process("weights", "verify", "clip-custom")
    assert r.code == 0 and "official (published SHA-256)" in r.stdout
    assert (copy.stat().st_ino, copy.stat().st_mtime_ns) == before and len(loads) == 1
    copy.write_bytes(copy.read_bytes()[:-10])
    assert run_cli_in_process("weights", "verify", "clip-custom").code == 0  # a damaged copy is rewritten
    assert hub.sha256_file(copy) == hub.read_record(spec).tensors_sha256 and len(loads) == 2
    other = save_torchscript(openai_clip_state(models.preset_config("tiny").clip, 224, seed=6), tmp_path / "o.pt")
    r = run_cli_in_process("weights", "import", "clip-custom", str(other), "--accept-checksum")
    assert r.code == 0 and "accepted" in r.stdout and len(loads) == 3


def test_list_and_verify_say_a_state_in_the_same_words(
    clip_formats: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")  # the table's cells on one line each
    file = str(clip_formats["safetensors"])
    assert run_cli_in_process("weights", "import", "clip-custom", file, "--accept-checksum").code == 0
    words = hub.STATUS_WORDS["accepted"]
    assert f"clip-custom: OK ({words})" in run_cli_in_process("weights", "verify", "clip-custom").stdout
    table = run_cli_in_process("weights", "list").stdout
    row = next(line for line in table.splitlines() if "clip-custom" in line)
    assert words in row


def test_weight_files_get_the_umask_of_the_moment(tmp_path: Path) -> None:
    """Records and safetensors copies are created with the process's umask as it is when they are written (the
    module used to read it once at import, by setting it to 0 for a moment)."""
    import os

    from models.weightfiles import write_json, write_safetensors

    old = os.umask(0o077)
    try:
        write_json({"a": 1}, tmp_path / "r.json")
        write_safetensors({"t": torch.zeros(2)}, tmp_path / "t.safetensors", {})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "t.safetensors").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_demo_model_comes_from_the_installed_copy_and_runs_by_name(tmp_path: Path, monkeypatch) -> None:
    """No release URL is published for the demo model, so the wheel ships it (package data of ``models``) and the
    registry entry ``demo`` names that copy: ``weights download demo`` places it like any download (its SHA-256
    checked; another file under its name refused) and ``--model demo`` then runs it. Being closed-vocabulary, it is
    never chosen as the default model."""
    from aeroseg_cli.files.errors import CLIError
    from aeroseg_cli.runtime.modelchoice import choose_model
    from aeroseg_cli.runtime.modelio import load_model
    from aeroseg_cli.training.config import toml_module
    from tests.support.paths import ROOT
    from tests.support.scenes import write_scene

    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    spec, packaged = hub.REGISTRY["demo"], hub.PACKAGED / "demo_model.pt"
    assert spec.url == packaged.as_uri() and hub.sha256_file(packaged) == spec.sha256
    sample = ROOT / "sample_data" / "demo_model.pt"  # a plain file (a symlink is lost by `cp -r sample_data`)
    assert not sample.is_symlink() and sample.read_bytes() == packaged.read_bytes()  # one model, in git one blob
    package_data = toml_module().loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "packaged/demo_model.pt" in package_data["models"]  # in the wheel (checked with a real build: report)
    scene = write_scene(tmp_path / "s.tif", np.random.default_rng(0).integers(0, 255, (3, 300, 300), dtype=np.uint8))
    r = run_cli_in_process("segment", scene, "-c", "building,road", "--model", "demo", "-o", tmp_path / "a.tif")
    assert r.code == 1 and "`aeroseg weights download demo`" in r.stderr
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = packaged.read_bytes()
    (mirror / spec.filename).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit off: not the published file
    r = run_cli_in_process("weights", "download", "demo", "--mirror", mirror.as_uri())
    assert r.code == 1 and "checksum mismatch" in r.stderr and not hub.cached_path(spec).exists()
    r = run_cli_in_process("weights", "download", "demo")
    assert r.code == 0, r.stderr
    assert hub.status(spec) == "published" and hub.converted_model("demo") is not None
    assert load_model("demo").classes == read_checkpoint(packaged)["class_names"]
    r = run_cli_in_process("segment", scene, "-c", "building,road", "--model", "demo", "-o", tmp_path / "a.tif", "-q")
    assert r.code == 0, r.stderr
    with pytest.raises(CLIError, match="no --model given and no model is on this machine"):
        choose_model(None)
