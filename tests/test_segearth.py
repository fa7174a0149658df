"""The ``segearth-ov-vitb16`` preset against SegEarth-OV's own code, and its SimFeatUp weights in the hub.

Fixture ``tests/fixtures/segearth_ov_reference.npz``: outputs of likyoo/SegEarth-OV at commit 3e22a96 (CVPR 2025),
made by ``/work/scratch/h22-segearth/make_fixture.py`` (harness ``reference_harness.py`` beside it). The reference
ran on CPU in fp32: ``SegEarthSegmentation.__init__`` (its 80-template text features, its SimFeatUp loading) as
``configs/base_config.py`` configures it (ViT-B/16, ``model_type='SegEarth'``, ``ignore_residual``, ``jbu_one``,
``cls_token_lambda=-0.3``), then ``forward_feature`` on one 224-pixel window, ``forward_slide`` (crop 160, stride 80:
windows that need the position-embedding resize) on a 160x240 image, and ``postprocess_result`` (softmax at 50,
synonym maximum, ``prob_thd`` to the background class 0). Only mmseg's wrapper was stubbed; its fp16 casts became
fp32, and SimFeatUp's CUDA ``AdaptiveConv`` the reference's own ``adaptive_conv_py_simple`` (checked there against
SimFeatUp's C++ kernel). Inputs, all regenerated here from seeds (``tests/support/seeded_layouts.py``): a random
ViT-B/16 in the layout of OpenAI's TorchScript file (seed 0; fp16 where OpenAI casts, fp32 elsewhere), random
SimFeatUp weights in its published Lightning layout (seed 1), images ``window_image(3, 224, 224)`` and
``window_image(5, 160, 240)``, classes ``background / forest,field / river``. Stored: the text features, query
logits and class scores at every 4th pixel (``[:, 1::4, 2::4]``), the full label maps, the threshold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import models
from models import hub
from models.segearth import SegEarthOV
from tests.support.cli import run_cli
from tests.support.layouts import save_torchscript
from tests.support.paths import ROOT
from tests.support.scenes import write_scene
from tests.support.seeded_layouts import openai_clip_state, simfeatup_checkpoint, window_image

FIXTURE = ROOT / "tests" / "fixtures" / "segearth_ov_reference.npz"
NAMES = ["background", "forest|field", "river"]
QUERIES = ["background", "forest", "field", "river"]
SUB = (slice(None), slice(1, None, 4), slice(2, None, 4))
TOL = 1e-4  # logits and text features (measured here: 1e-7)
SCORE_TOL = 1e-5  # class scores (measured: 1.2e-6); resizing the position embedding to a size instead: 2e-4


@pytest.fixture(scope="module")
def reference() -> dict:
    with np.load(FIXTURE) as z:
        out = {k: z[k] for k in z.files}
    out["recipe"] = json.loads(str(out["recipe"]))
    return out


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The random ViT-B/16 (OpenAI layout) and SimFeatUp (Lightning layout) files the fixture was made with."""
    folder = tmp_path_factory.mktemp("segearth")
    clip, upsampler = folder / "clip_seed0.pt", folder / "simfeatup_seed1.ckpt"
    torch.save(openai_clip_state(0), clip)
    torch.save(simfeatup_checkpoint(1), upsampler)
    return clip, upsampler


@pytest.fixture(scope="module")
def model(weight_files: tuple[Path, Path]) -> SegEarthOV:
    clip, upsampler = weight_files
    return models.build("segearth-ov-vitb16", clip_weights=str(clip), segearth={"upsampler_weights": str(upsampler)})


def labels_with_threshold(probs: torch.Tensor, threshold: float, background: int) -> torch.Tensor:
    """SegEarth-OV's prediction: the argmax, the background class where the best score is under the threshold."""
    best, idx = probs.max(dim=0)
    return torch.where(best < threshold, background, idx)


def assert_same_labels(probs: torch.Tensor, ref: np.ndarray, threshold: float) -> None:
    """Labels equal, except where a float difference may decide (top two or best and threshold within 1e-5)."""
    ours = labels_with_threshold(probs, threshold, 0).numpy()
    top = probs.topk(2, dim=0).values
    close = ((top[0] - top[1]) < 1e-5) | ((top[0] - threshold).abs() < 1e-5)
    differ = ours != ref
    assert not (differ & ~close.numpy()).any(), f"{differ.sum()} labels differ"
    assert 0 < (ours == 0).mean() < 1 and len(np.unique(ours)) == 3  # the background rule and every class matter


def test_text_features_equal_reference(model: SegEarthOV, reference: dict) -> None:
    ours = model.clip.query_features(QUERIES)
    torch.testing.assert_close(ours, torch.from_numpy(reference["text"]), atol=TOL, rtol=0)


def test_one_window_equals_reference(model: SegEarthOV, reference: dict) -> None:
    x = window_image(3, 224, 224)
    with torch.no_grad():
        logits = model.query_logits(x, QUERIES)[0]
        probs = model.probabilities(model(x, NAMES))[0]
    ref_logits = torch.from_numpy(reference["window_logits"])
    assert ref_logits.std() > 0.01  # the random CLIP's logits vary across the window: 1e-4 is a real bound
    torch.testing.assert_close(logits[SUB], ref_logits, atol=TOL, rtol=0)
    torch.testing.assert_close(probs[SUB], torch.from_numpy(reference["window_probs"]), atol=SCORE_TOL, rtol=0)
    assert_same_labels(probs, reference["window_labels"], reference["recipe"]["threshold"])


def test_sliding_window_equals_reference(model: SegEarthOV, reference: dict) -> None:
    """SegEarth-OV's evaluation protocol (``forward_slide``), at windows of 160: the 14x14 position embedding is
    resized as the reference does (bicubic by scale factor (10 + 0.1) / 14)."""
    slide = reference["recipe"]["slide"]
    cfg = dataclasses.replace(model.cfg, crop_size=slide["crop"])
    cfg.segearth = dataclasses.replace(cfg.segearth, slide_stride=slide["stride"], eval_resize=0)
    small = SegEarthOV(cfg).eval()
    small.load_state_dict(model.state_dict())
    x = window_image(slide["seed"], slide["height"], slide["width"])
    probs = small.slide_probabilities(x, NAMES)
    torch.testing.assert_close(probs[SUB], torch.from_numpy(reference["slide_probs"]), atol=SCORE_TOL, rtol=0)
    assert_same_labels(probs, reference["slide_labels"], reference["recipe"]["threshold"])


def test_preset_is_training_free_and_names_its_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert models.preset_status("segearth-ov-vitb16") == "training-free"
    cfg = models.preset_config("segearth-ov-vitb16")
    assert (cfg.arch, cfg.crop_size, cfg.rotations, cfg.prompts) == ("segearth", 224, False, "openai_imagenet")
    assert len(cfg.templates) == 80 and cfg.templates[0] == "a bad photo of a {}."
    assert hub.required_weights(cfg) == ["clip-vit-b-16", "simfeatup-vit-b-16"]
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path))
    with pytest.raises(hub.WeightsError, match="aeroseg weights download clip-vit-b-16 simfeatup-vit-b-16"):
        models.build("segearth-ov-vitb16")
    assert SegEarthOV.background_index(["water", "clutter|Background"]) == 1
    assert SegEarthOV.background_index(["water", "building"]) is None


def test_registry_entry_is_segearth_ov_file() -> None:
    spec = hub.REGISTRY["simfeatup-vit-b-16"]
    assert spec.url == (
        "https://raw.githubusercontent.com/likyoo/SegEarth-OV/3e22a969b32c6d751bdbba64a88a0b670e630f55/"
        "simfeatup_dev/weights/xclip_jbu_one_million_aid.ckpt"
    )
    assert spec.sha256 is None and spec.size_mb is None  # the repository publishes neither
    assert spec.sources[0].git_blob == "d40f00838331331faa04a926ea5991f5203f91a8"  # its tree at that commit


def test_git_blob_id_is_gits(tmp_path: Path) -> None:
    file = tmp_path / "w.ckpt"
    torch.save(simfeatup_checkpoint(1), file)
    out = subprocess.run(["git", "hash-object", str(file)], capture_output=True, text=True, check=True)
    assert hub.git_blob_id(file.read_bytes()) == out.stdout.strip()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path):
    """A folder served over HTTP on 127.0.0.1 (a stand-in for raw.githubusercontent.com)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = lambda *a, **k: _Files(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_simfeatup_download_verifies_git_blob_and_loads(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aeroseg weights download simfeatup-vit-b-16`` checks the git blob id; the verified file loads into the
    preset's upsampler through the same cache path as every registry file; another file is refused."""
    root, url = served
    file = root / hub.REGISTRY["simfeatup-vit-b-16"].filename
    torch.save(simfeatup_checkpoint(1), file)
    spec = dataclasses.replace(hub.REGISTRY["simfeatup-vit-b-16"], git_blob=hub.git_blob_id(file.read_bytes()))
    monkeypatch.setitem(hub.REGISTRY, spec.name, spec)
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    r = run_cli("weights", "download", spec.name, "-q", "--mirror", url)
    assert r.code == 0, r.stderr
    assert run_cli("weights", "list").code == 0
    row = next(r for r in json.loads(run_cli("weights", "list", "--json").stdout) if r["name"] == spec.name)
    assert row["status"] == "git-blob" and row["git_blob"] == spec.git_blob
    model = models.build("segearth-ov-vitb16", clip_weights=None)
    expected = simfeatup_checkpoint(1)["state_dict"]
    assert all(torch.equal(v, expected[f"upsampler.{k}"]) for k, v in model.upsampler.state_dict().items())
    cached = hub.cached_path(spec)
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(hub.WeightsError, match="does not match the SHA-256 recorded when it matched its git blob id"):
        models.build("segearth-ov-vitb16", clip_weights=None)
    torch.save(simfeatup_checkpoint(2), file)
    r = run_cli("weights", "download", spec.name, "-q", "--force", "--mirror", url)
    assert r.code == 1 and "checksum mismatch" in r.stderr and "git blob id" in r.stderr
    r = run_cli("weights", "import", spec.name, file)
    assert r.code == 1 and "git blob id is not the published one" in r.stderr


def test_help_says_which_preset_is_which() -> None:
    for command in ("segment", "evaluate"):
        text = re.sub(r"-\s+", "-", " ".join(run_cli(command, "--help").stdout.split()))  # rich breaks at hyphens
        assert "zeroshot-vitb16 is the plain baseline" in text and "segearth-ov-vitb16 is SegEarth-OV" in text


def _tiny_segearth(tmp_path: Path) -> Path:
    """A small random SegEarth-OV (2-layer CLIP, 32-d) saved as an aeroseg checkpoint, for the pipeline's rules."""
    torch.manual_seed(0)
    clip = models.preset_config("tiny").clip
    net = models.build("segearth-ov-vitb16", clip=clip, clip_weights=None, segearth={"upsampler_weights": None})
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.5)
    path = tmp_path / "segearth_tiny.pt"
    models.save_checkpoint(path, net, NAMES, self_contained=True)
    return path


def test_segment_puts_low_scores_in_the_background_class(tmp_path: Path) -> None:
    """``--unknown-threshold`` with a class named background: those pixels get that class (SegEarth-OV's
    ``prob_thd``), not nodata; the rest is the argmax of the model's probabilities."""
    ckpt = _tiny_segearth(tmp_path)
    net, _ = models.load_checkpoint(ckpt)
    x = window_image(9, 112, 112)  # one window of 112 (the position embedding resized from 14x14 to 7x7)
    scene = write_scene(tmp_path / "scene.tif", (x[0].numpy() * 255).round().astype(np.uint8))
    with torch.no_grad():
        probs = net.probabilities(net(x, NAMES))[0]
    threshold = float(probs.max(0).values.quantile(0.3))
    out = tmp_path / "labels.tif"
    r = run_cli("segment", scene, "-m", ckpt, "-c", ",".join(NAMES), "--scale", "0,255", "-o", out, "-q",
                "--unknown-threshold", str(threshold), "-b", "1", "--tile", "112")  # fmt: skip
    assert r.code == 0, r.stderr
    with rasterio.open(out) as src:
        labels = src.read(1)
    expected = labels_with_threshold(probs, threshold, 0).numpy()
    assert (labels != 255).all() and (labels == 0).mean() > 0.25
    assert (labels == expected).mean() > 0.999  # float ties at the threshold aside


@pytest.mark.slow
def test_card_command_on_one_window_equals_reference(
    weight_files: tuple[Path, Path], reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aeroseg segment SCENE --model segearth-ov-vitb16`` with the random CLIP as a TorchScript archive (as OpenAI
    publishes it) and the random SimFeatUp file as the registry's: on a one-window scene its labels are SegEarth-OV's
    prediction (threshold to background included)."""
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    archive = save_torchscript(openai_clip_state(0), tmp_path / "ViT-B-16.pt")
    for name, file in zip(("clip-vit-b-16", "simfeatup-vit-b-16"), (archive, weight_files[1]), strict=True):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        spec = dataclasses.replace(hub.REGISTRY[name], sha256=digest, filename=file.name, alternates=())
        monkeypatch.setitem(hub.REGISTRY, name, spec)
        hub.cached_path(spec).parent.mkdir(parents=True, exist_ok=True)
        hub.cached_path(spec).symlink_to(file)
    x = window_image(3, 224, 224)
    scene = write_scene(tmp_path / "scene.tif", (x[0].numpy() * 255).round().astype(np.uint8))
    out = tmp_path / "labels.tif"
    threshold = reference["recipe"]["threshold"]
    r = run_cli("segment", scene, "-m", "segearth-ov-vitb16", "-c", ",".join(NAMES), "--scale", "0,255",
                "--unknown-threshold", str(threshold), "-o", out, "-q", "-b", "1")  # fmt: skip
    assert r.code == 0, r.stderr
    with rasterio.open(out) as src:
        labels = src.read(1)
    assert (labels == reference["window_labels"]).mean() > 0.9995
