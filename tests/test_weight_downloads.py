"""Downloads from a list of sources per file, files whose SHA-256 is not published, mirrors, and released models
converted into the cache, all served by an HTTP server on 127.0.0.1 (no test touches the network)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import random
import subprocess
import sys
import threading
import types
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import rasterio
from safetensors.torch import save, save_file

import models
from models import hub
from models.clip_backbone import build_open_clip
from models.config import CLIP_VARIANTS
from models.presets import preset_config
from tests.support.cli import run_cli
from tests.support.layouts import open_clip_hub_state, openai_clip_state, save_torchscript
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene

SHORT: dict[str, tuple[int, bytes]] = {}  # URL path -> (Content-Length announced, the bytes actually sent)


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves the folder; a path in ``SHORT`` announces more bytes than it sends, then closes the connection (a
    download cut short, as a flaky proxy or a dropped connection leaves it)."""

    def do_GET(self) -> None:
        if self.path not in SHORT:
            return super().do_GET()
        announced, body = SHORT[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args) -> None:  # no request lines in the test output
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """(folder served, base URL) of a real HTTP server on 127.0.0.1: missing files answer 404."""
    root = tmp_path_factory.mktemp("served")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AEROSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.delenv("AEROSEG_WEIGHTS_MIRROR", raising=False)
    return tmp_path / "home"


@pytest.fixture
def tiny_clip(server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """A registry entry "clip-custom" laid out as clip-vit-b-16 is, at the tiny preset's CLIP size: OpenAI's
    TorchScript file first (its SHA-256 published), then open_clip's safetensors copy (none published); "custom" is
    registered as a CLIP variant so that its layout is checked as ViT-B/16's is. Returns the files' bytes."""
    root, base = server
    clip = preset_config("tiny").clip
    monkeypatch.setitem(CLIP_VARIANTS, "custom", clip)
    state = openai_clip_state(clip, 224, seed=5)
    openai = save_torchscript(state, tmp_path / "ViT-custom.pt").read_bytes()
    save_file(open_clip_hub_state(state), str(tmp_path / "copy.safetensors"))
    copy = (tmp_path / "copy.safetensors").read_bytes()
    alternate = hub.Source(
        f"{base}/hf/open_clip_model.safetensors",
        None,
        "hf/open_clip_model.safetensors",
        2,
        what="open_clip's safetensors copy",
    )
    digest = hashlib.sha256(openai).hexdigest()
    spec = hub.WeightSpec("clip-custom", f"{base}/openai/ViT-custom.pt", digest, "ViT-custom.pt", 1, "tiny CLIP",
                          alternates=(alternate,), what="OpenAI's file")  # fmt: skip
    monkeypatch.setitem(hub.REGISTRY, "clip-custom", spec)
    for relative in ("openai/ViT-custom.pt", "hf/open_clip_model.safetensors"):
        (root / relative).unlink(missing_ok=True)
    return {"openai": openai, "copy": copy, "spec": spec}


def test_a_refused_primary_source_is_said_and_the_copy_used_named(server, home: Path, tiny_clip: dict) -> None:
    """OpenAI's file served altered (its published SHA-256 does not match) and open_clip's copy served intact: the
    copy is saved, recorded, and the message says that OpenAI's file was refused (possible tampering) and that the
    copy's hash is not published, not that none is published for the entry (review 1, finding 2)."""
    root, _ = server
    _serve(root, "openai/ViT-custom.pt", tiny_clip["openai"][:-1] + b"!")
    _serve(root, "hf/open_clip_model.safetensors", tiny_clip["copy"])
    r = run_cli("weights", "download", "clip-custom", "-q")
    assert r.code == 0, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("clip-custom: OpenAI's file not used (checksum mismatch: got ")
    assert "a damaged or altered file, refused); used open_clip's safetensors copy (" in line
    assert "whose SHA-256 is not published: its tensors checked" in line and "no SHA-256 is published" not in line
    record = hub.read_record(tiny_clip["spec"])
    assert record.trust == "recorded" and record.sha256 == hashlib.sha256(tiny_clip["copy"]).hexdigest()
    assert hub.cached_path(tiny_clip["spec"]).read_bytes() == tiny_clip["copy"]


def test_short_or_garbage_downloads_are_refused(server, home: Path, tiny_clip: dict, monkeypatch) -> None:
    """A body shorter than its Content-Length, or bytes that are no CLIP weights, from a source whose SHA-256 is not
    published: refused, nothing placed, nothing to verify (review 1, finding 1: both were recorded as trusted)."""
    root, _ = server
    spec = tiny_clip["spec"]
    with monkeypatch.context() as short:  # both sources cut short for this download only
        short.setitem(SHORT, "/openai/ViT-custom.pt", (10_000_000, b"x" * 5000))
        short.setitem(SHORT, "/hf/open_clip_model.safetensors", (10_000_000, b"x" * 5000))
        r = run_cli("weights", "download", "clip-custom", "-q")
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.count("incomplete: the connection ended after 5,000 of the 10,000,000 bytes announced") == 2
    assert not hub.cached_path(spec).exists() and not hub.record_path(spec).exists()
    _serve(root, "hf/open_clip_model.safetensors", random.Random(0).randbytes(1 << 20))
    r = run_cli("weights", "download", "clip-custom", "-q")
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "OpenAI's file" in r.stderr and "HTTP 404" in r.stderr
    assert "open_clip's safetensors copy is not clip-custom: cannot read the file" in r.stderr
    assert not hub.cached_path(spec).exists() and not hub.record_path(spec).exists()
    _serve(root, "hf/open_clip_model.safetensors", tiny_clip["copy"][: len(tiny_clip["copy"]) // 2])  # cut, no length
    assert run_cli("weights", "download", "clip-custom", "-q").code == 1
    other = preset_clip_state_bytes("demo")  # whole, readable, but another model's CLIP
    _serve(root, "hf/open_clip_model.safetensors", other)
    r = run_cli("weights", "download", "clip-custom", "-q")
    assert r.code == 1 and "open_clip's safetensors copy is not clip-custom" in r.stderr and "shape" in r.stderr
    assert "no weights in" in run_cli("weights", "verify").stdout


def preset_clip_state_bytes(preset: str) -> bytes:
    """A preset's random CLIP in open_clip's safetensors layout, as bytes."""
    return save({k: v.contiguous() for k, v in build_open_clip(preset_config(preset).clip, 224).state_dict().items()})


def test_a_recorded_file_that_cannot_be_read_names_force(home: Path, tmp_path: Path) -> None:
    """A cache left by an older aeroseg, which recorded a download without reading it: the run names the command
    that replaces it, and `weights download` says --force does (review 1, finding 1)."""
    spec = hub.REGISTRY["clip-vit-b-16"]
    hub.cached_path(spec).parent.mkdir(parents=True)
    hub.cached_path(spec).write_bytes(b"x" * 5000)
    hub.write_record(spec, hub.Record(hub.sha256_file(hub.cached_path(spec)), "recorded", "https://example.invalid"))
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    r = run_cli("segment", scene, "-c", "a,b", "--model", "zeroshot-vitb16", "-o", tmp_path / "o.tif")
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "clip-vit-b-16: the cached file cannot be read" in r.stderr
    assert "`aeroseg weights download clip-vit-b-16 --force`" in r.stderr
    r = run_cli("weights", "download", "clip-vit-b-16")
    assert r.code == 0 and "already present and verified" in r.stderr and "--force downloads it again" in r.stderr


def _serve(root: Path, relative: str, data: bytes) -> str:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_sources_are_tried_in_order(server, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retired host (404) and a host serving other bytes (refused) are passed over; the next source's file,
    whose hash is the published one, is saved as official; with every source failing, one line names each."""
    root, base = server
    digest = _serve(root, "hf/w.bin", b"the published weights" * 100)
    _serve(root, "wrong/w.bin", b"something else")
    alternates = (
        hub.Source(f"{base}/wrong/w.bin", digest, "wrong/w.bin"),
        hub.Source(f"{base}/hf/w.bin", None, "hf/w"),
    )
    spec = hub.WeightSpec("test-weights", f"{base}/retired/w.pt", digest, "w.pt", 1, "test", alternates=alternates)
    monkeypatch.setitem(hub.REGISTRY, "test-weights", spec)
    r = run_cli("weights", "download", "test-weights", "-q")
    assert r.code == 0, r.stderr
    assert hub.cached_path(spec).read_bytes() == b"the published weights" * 100
    record = hub.read_record(spec)
    assert record.trust == "published" and record.source == f"{base}/hf/w.bin" and record.sha256 == digest
    assert hub.verify(spec).sha256 == digest
    gone = replace(spec, alternates=spec.alternates[:1])
    monkeypatch.setitem(hub.REGISTRY, "test-weights", gone)
    r = run_cli("weights", "download", "test-weights", "--force", "-q")
    assert r.code == 1 and r.stderr.count("\n") == 1
    assert "retired/w.pt (HTTP 404" in r.stderr and "wrong/w.bin (checksum mismatch" in r.stderr
    assert "aeroseg weights import test-weights" in r.stderr
    assert hub.cached_path(spec).read_bytes() == b"the published weights" * 100  # the verified file is kept


def test_unpublished_sha256_is_recorded_and_then_verified(server, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = server
    digest = _serve(root, "release/model.pth", b"released model" * 500)
    spec = hub.WeightSpec("test-release", f"{base}/release/model.pth", None, "model.pth", None, "a released model")
    monkeypatch.setitem(hub.REGISTRY, "test-release", spec)
    r = run_cli("weights", "download", "test-release", "-q")
    assert r.code == 0 and "no SHA-256 is published" in r.stderr and digest in r.stderr
    listed = json.loads(run_cli("weights", "list", "--json").stdout)
    row = next(x for x in listed if x["name"] == "test-release")
    assert row["status"] == "recorded" and not row["sha256_published"] and row["recorded_sha256"] == digest
    table = run_cli("weights", "list").stdout
    note = next(line for line in table.splitlines() if line.startswith("No published SHA-256 for"))
    assert "test-release" in note and "recorded at download" in note
    r = run_cli("weights", "verify", "test-release")
    assert r.code == 0 and "recorded at download" in r.stdout
    hub.cached_path(spec).write_bytes(b"released model" * 499)
    r = run_cli("weights", "verify", "test-release")
    assert r.code == 1 and "does not match the SHA-256 recorded" in r.stdout
    r = run_cli("weights", "import", "test-release", str(root / "release/model.pth"))
    assert r.code == 1 and "no published SHA-256" in r.stderr and "--accept-checksum" in r.stderr
    assert run_cli("weights", "download", "test-release", "-q").code == 0  # a file that fails is fetched again
    assert hub.verify(spec, full=True).sha256 == digest


def test_mirror_replaces_the_published_hosts(server, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = server
    digest = _serve(root, "mirror/w.pt", b"mirrored" * 100)
    spec = hub.WeightSpec("test-weights", f"{base}/nowhere/w.pt", digest, "w.pt", 1, "test weights")
    monkeypatch.setitem(hub.REGISTRY, "test-weights", spec)
    monkeypatch.setenv("AEROSEG_WEIGHTS_MIRROR", f"{base}/mirror")
    r = run_cli("weights", "download", "test-weights")
    assert r.code == 0 and f"{base}/mirror/w.pt" in r.stderr
    assert hub.read_record(spec).source == f"{base}/mirror/w.pt"


def _stand_in_converter(src: Path, out: Path, *, self_contained: bool = False) -> dict:
    """Writes an ordinary aeroseg checkpoint (the tiny preset), as the real converters do for CAT-Seg's files."""
    assert src.read_bytes().startswith(b"released")
    models.save_checkpoint(out, models.build("tiny"), ["water", "land"], meta={"from": src.name}, self_contained=True)
    return {"source": str(src), "ignored": []}


@pytest.fixture
def converters(monkeypatch: pytest.MonkeyPatch) -> dict:
    """``models.convert.CONVERTERS`` (h22-catseg's module; a stand-in module where it is not merged yet) with the
    stand-in converter registered under "stand-in"."""
    try:
        from models.convert import CONVERTERS
    except ImportError:
        CONVERTERS = {}
        monkeypatch.setitem(sys.modules, "models.convert", types.SimpleNamespace(CONVERTERS=CONVERTERS))
    monkeypatch.setitem(CONVERTERS, "stand-in", _stand_in_converter)
    return CONVERTERS


def test_released_model_is_downloaded_converted_and_used(
    server, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, converters: dict
) -> None:
    """`weights download catseg-vitb16` (here a stand-in release served locally): the file's hash is recorded, the
    file converted into the cache, and `segment` without --model then uses it and names it in its tags and summary."""
    root, base = server
    _serve(root, "catseg/model_base.pth", b"released CAT-Seg" * 100)
    spec = replace(hub.REGISTRY["catseg-vitb16"], url=f"{base}/catseg/model_base.pth", convert="stand-in")
    monkeypatch.setitem(hub.REGISTRY, "catseg-vitb16", spec)
    r = run_cli("weights", "download", "catseg-vitb16", "-q")
    assert r.code == 0, r.stderr
    assert hub.converted_model("catseg-vitb16") == hub.converted_path(spec)
    assert hub.read_record(spec).converted_from == hub.read_record(spec).sha256
    report = json.loads(hub.converted_path(spec).with_suffix(".report.json").read_text())
    assert report["ignored"] == [] and report["output"] == str(hub.converted_path(spec))
    assert models.load_checkpoint(hub.converted_path(spec))[1]["meta"] == {"from": "model_base.pth"}  # not a temp name
    listed = json.loads(run_cli("weights", "list", "--json").stdout)
    assert next(x for x in listed if x["name"] == "catseg-vitb16")["converted"] == str(hub.converted_path(spec))
    r = run_cli("weights", "download", "catseg-vitb16", "-q")  # present, verified, converted: nothing to do
    assert r.code == 0
    scene = write_scene(tmp_path / "scene.tif", smooth_scene(200, 200))
    r = run_cli("segment", scene, "-c", "water,land", "--tile", "128", "-o", tmp_path / "out.tif")
    assert r.code == 0, r.stderr
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.tags()["AEROSEG_MODEL"] == f"catseg-vitb16 ({spec.description})"
    assert f"model: catseg-vitb16 ({spec.description}) (the best model on this machine: CAT-Seg (B))" in r.stderr


def test_released_model_without_its_converter_is_not_offered(
    server, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, converters: dict
) -> None:
    """A released model whose converter this aeroseg lacks is not listed, not suggested and not fetched: download
    and import refuse it before anything is read or placed (review 1, finding 4)."""
    root, base = server
    _serve(root, "catseg/model_large.pth", b"released CAT-Seg large" * 100)
    spec = replace(hub.REGISTRY["catseg-vitl14"], url=f"{base}/catseg/model_large.pth", convert="not-written-yet")
    monkeypatch.setitem(hub.REGISTRY, "catseg-vitl14", spec)
    for args in (("download", "catseg-vitl14"), ("import", "catseg-vitl14", root / "catseg/model_large.pth")):
        r = run_cli("weights", *args, "--accept-checksum" if args[0] == "import" else "-q")
        assert r.code == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "no 'not-written-yet' converter" in r.stderr and "nothing was downloaded or placed" in r.stderr
    assert not home.exists() or not any(home.rglob("*"))  # nothing fetched, nothing placed, no lock left
    assert "catseg-vitl14" not in [x["name"] for x in json.loads(run_cli("weights", "list", "--json").stdout)]
    assert "catseg-vitl14" not in run_cli("weights", "list").stdout
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    r = run_cli("segment", scene, "-c", "a,b", "-o", tmp_path / "o.tif")
    assert r.code == 1 and "catseg-vitl14" not in r.stderr and "no model is on this machine" in r.stderr
    r = run_cli("segment", scene, "-c", "a,b", "--model", "catseg-vitl14", "-o", tmp_path / "o.tif")
    assert r.code == 2 and r.stderr.startswith("aeroseg: error: --model catseg-vitl14 (CAT-Seg (L)")
    assert "cannot be used by this aeroseg yet" in r.stderr
    r = run_cli("segment", scene, "-c", "a,b", "--model", "aeroseg-vitb16-samvitl", "-o", tmp_path / "o.tif")
    assert r.code == 2 and "is untrained" in r.stderr and "catseg-vitl14" not in r.stderr


def _failing_converter(src: Path, out: Path, *, self_contained: bool = False) -> dict:
    """Refuses every file as CAT-Seg's converter refuses a file of another layout (one line naming what lacks)."""
    raise hub.WeightsError(f"{src.name} holds no 'sem_seg_head.predictor.transformer.*' tensors: not a CAT-Seg file")


def test_released_model_is_placed_only_once_converted(
    server, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, converters: dict
) -> None:
    """A download or import that does not convert leaves nothing in the cache (not the 600 MB file, not a record);
    one that converts is placed with its model, and an import says "imported" (review 1, finding 4)."""
    root, base = server
    _serve(root, "catseg/model_base.pth", b"released CAT-Seg" * 100)
    monkeypatch.setitem(converters, "refusing", _failing_converter)
    spec = replace(hub.REGISTRY["catseg-vitb16"], url=f"{base}/catseg/model_base.pth", convert="refusing")
    monkeypatch.setitem(hub.REGISTRY, "catseg-vitb16", spec)
    other = tmp_path / "open_clip_model.safetensors"  # a CLIP file, not CAT-Seg's
    other.write_bytes(b"not CAT-Seg" * 100)
    for args in (("download", "catseg-vitb16", "-q"), ("import", "catseg-vitb16", other, "--accept-checksum")):
        r = run_cli("weights", *args)
        assert r.code == 1 and r.stderr.splitlines()[-1].startswith("aeroseg: error: catseg-vitb16: the file"), r
        assert "does not convert into a model" in r.stderr and "nothing was placed in the cache" in r.stderr
        assert "downloaded and verified" not in r.stderr
        assert sorted(p.name for p in home.rglob("*") if p.is_file()) == [], args
    monkeypatch.setitem(hub.REGISTRY, "catseg-vitb16", replace(spec, convert="stand-in"))
    imported = tmp_path / "model_base.pth"
    imported.write_bytes(b"released CAT-Seg" * 100)
    r = run_cli("weights", "import", "catseg-vitb16", imported, "--accept-checksum")
    assert r.code == 0, r.stderr
    assert (
        r.stdout.startswith(f"catseg-vitb16: imported {imported} as it is (accepted") and "downloaded" not in r.stdout
    )
    assert f"converted into {hub.converted_path(spec)}" in r.stdout
    record = hub.read_record(spec)
    assert record.trust == "accepted" and record.converted_from == record.sha256 == hub.sha256_file(imported)
    assert hub.cached_path(spec).read_bytes() == imported.read_bytes()


def test_a_busy_cache_file_says_what_to_do(server, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another aeroseg placing the same file: the message says to wait and run the command again (there is no
    output to choose for `weights download`)."""
    from aeroseg_cli.files.safety import exclusive

    root, base = server
    digest = _serve(root, "w/w.pt", b"weights" * 100)
    spec = hub.WeightSpec("test-weights", f"{base}/w/w.pt", digest, "w.pt", 1, "test weights")
    monkeypatch.setitem(hub.REGISTRY, "test-weights", spec)
    hub.cached_path(spec).parent.mkdir(parents=True)
    with exclusive([hub.cached_path(spec)]):
        r = run_cli("weights", "download", "test-weights", "-q")
    assert r.code == 1 and "is being written by another aeroseg run" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("wait for it to finish, then run this command again")
    assert "choose another output" not in r.stderr


def test_integration_catseg_converter_contract() -> None:
    """INTEGRATION (for the lead, runs once h22-catseg's models/convert is merged; skipped before): the converter
    the registry names for CAT-Seg's releases exists with the interface the download calls."""
    convert = pytest.importorskip("models.convert")
    for name in ("catseg-vitb16", "catseg-vitl14"):
        fn = convert.CONVERTERS[hub.REGISTRY[name].convert]
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["src", "out"] and params["self_contained"].kind is inspect.Parameter.KEYWORD_ONLY


def test_weights_list_imports_no_torch(home: Path) -> None:
    """`weights list` decides which released models it offers without importing models.convert (torch and the
    whole network: seconds), in a fresh process."""
    code = (
        "import sys; from aeroseg_cli.app import main\n"
        "try: main(['weights', 'list', '--json'])\n"
        "except SystemExit: pass\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stderr.strip().endswith("no torch"), r.stderr
    offered = {row["name"] for row in json.loads(r.stdout)}
    assert {n for n, s in hub.REGISTRY.items() if hub.offered(s)} == offered
