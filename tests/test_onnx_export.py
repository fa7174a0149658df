"""Issue #23 item 5: ``aeroseg export --onnx`` writes a fixed-class ONNX model that Deepness (the QGIS plugin) runs.

The oracle is Deepness itself, ``tests/fixtures/deepness_naip.npz``: made by running PUTvision/qgis-plugin-deepness
at commit f450c6342d82a200af32022b2d977231d4f71d3c, under QGIS 3.22's Python with onnxruntime 1.17.0 (the newest its
installer allows), on the model ``aeroseg export sample_data/demo_model.pt --onnx --resolution 50`` wrote: its
``Segmentor(path)`` read the metadata through its own getters (``get_metadata_tile_size`` ..., recorded as
``getters``) and ``MapProcessorSegmentation._process_tile`` turned two real 256 x 256 windows of
``naip_2020_rgbn_utm14n.tif`` (offsets row, col (0, 0) and (467, 678), all four bands, uint8 NHWC as Deepness reads
them) into class ids (``labels``, its +1 removed). Generator: /work/scratch/h23-qgis/deepness_fixture/ (windows.py,
run_deepness.py, make_fixture.py); remade with the same scripts when the demo model was retrained (issue 21): a
model's fixture must be remade whenever ``sample_data/demo_model.pt`` changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from aeroseg_cli.onnx_export import IR_VERSION, OPSET, FixedClasses, export_onnx
from aeroseg_cli.runtime.modelio import load_model
from aeroseg_cli.segment.predictor import Predictor
from tests.support.cli import run_cli
from tests.support.paths import ROOT

DEMO = ROOT / "sample_data" / "demo_model.pt"
FIXTURE = ROOT / "tests" / "fixtures" / "deepness_naip.npz"
TILE = 256


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "demo.onnx"
    r = run_cli("export", DEMO, "--onnx", "--resolution", "50", "-o", out)
    assert r.code == 0, r.stderr
    assert r.stdout == "" and r.stderr.startswith(f"wrote {out} (") and r.stderr.count("\n") == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo.onnx"]  # one file: far below 2 GB
    return out


@pytest.fixture(scope="module")
def deepness() -> dict:
    data = np.load(FIXTURE)
    return {"labels": data["labels"], "offsets": data["offsets"], "getters": json.loads(str(data["getters"]))}


@pytest.fixture(scope="module")
def windows(shared_geotiff: Path, deepness: dict) -> np.ndarray:
    """The fixture's real windows, uint8 (N, bands, T, T)."""
    with rasterio.open(shared_geotiff / "naip_2020_rgbn_utm14n.tif") as ds:
        return np.stack([ds.read(window=Window(c, r, TILE, TILE)) for r, c in deepness["offsets"]])


@pytest.fixture(scope="module")
def torch_probabilities(windows: np.ndarray) -> np.ndarray:
    """What ``aeroseg segment`` computes for these windows of a uint8 scene: bands 1-3 / 255 through the predictor
    (computed once; the tests only read it)."""
    loaded = load_model(str(DEMO))
    images = torch.from_numpy(windows[:, :3].astype(np.float32) / 255)
    probabilities = Predictor(loaded.model, list(loaded.classes), torch.device("cpu"))(images, len(images)).numpy()
    probabilities.setflags(write=False)  # shared by the tests: read-only
    return probabilities


@pytest.mark.slow
def test_onnxruntime_equals_torch_on_real_windows(
    exported: Path, windows: np.ndarray, torch_probabilities: np.ndarray
) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    ours = torch_probabilities
    x = windows[:, :3].astype(np.float32) / 255
    for batch in (x, x[:1], np.concatenate([x, x[:1]])):  # the batch is dynamic
        got = session.run(None, {"image": batch})[0]
        np.testing.assert_allclose(got, np.concatenate([ours, ours[:1]])[: len(batch)], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_deepness_reads_the_metadata_it_needs(exported: Path, deepness: dict) -> None:
    """The keys Deepness's getters read (``tile_size``, not the ``tiles_size`` of its docs), as JSON, give what its
    getters returned; the file loads in onnxruntime 1.17 (IR <= 9, opset 18)."""
    import onnx

    model = onnx.load(str(exported))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    want = deepness["getters"]
    assert str(meta["model_type"]).capitalize() == want["model_type"] == "Segmentor"
    names = [meta["class_names"][k] for k in sorted(meta["class_names"], key=int)]
    assert [names] == want["class_names"] == [["building", "land", "road", "vegetation", "water"]]
    for key in ("resolution", "tile_size", "tiles_overlap", "seg_thresh", "seg_small_segment"):
        assert meta[key] == want[key], key
    assert (meta["resolution"], meta["tile_size"], meta["tiles_overlap"], meta["seg_thresh"]) == (50.0, 256, 25, 0.0)
    assert meta["standardization_mean"] == want["standardization_mean"] == [0.0, 0.0, 0.0]
    assert meta["standardization_std"] == want["standardization_std"] == [1.0, 1.0, 1.0]
    assert model.ir_version == IR_VERSION <= 9 and [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    (image,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == want["input_shape"] == ["batch", 3, TILE, TILE] and want["batch_size"] is None


@pytest.mark.slow
def test_deepness_argmax_is_aeroseg_argmax(deepness: dict, torch_probabilities: np.ndarray) -> None:
    """Deepness zeroes what is below ``seg_thresh`` and takes the argmax: with 0 it labels every pixel as aeroseg
    does. At its usual 0.5 a pixel whose best sigmoid is lower would go to class 0 (they do not sum to 1)."""
    probabilities = torch_probabilities
    np.testing.assert_array_equal(deepness["labels"], probabilities.argmax(1))
    best_below_half = probabilities.max(1) < 0.5
    assert 0.01 < best_below_half.mean() < 0.99  # so a threshold of 0.5 would change these pixels' class
    thresholded = np.where(probabilities < 0.5, 0, probabilities).argmax(1)
    assert (thresholded[best_below_half] == 0).all() and (probabilities.argmax(1)[best_below_half] != 0).any()


@pytest.mark.slow
def test_weights_over_the_limit_go_to_external_data(tmp_path: Path) -> None:
    """The 2 GB mechanism on a small model: a limit of 0 bytes puts every weight in NAME.onnx.data beside the
    model, which onnxruntime finds there; the result is the same."""
    import onnxruntime

    torch.manual_seed(0)
    net = load_model("tiny").model
    wrapper = FixedClasses(net, ["water", "field"])
    out = tmp_path / "tiny.onnx"
    done = export_onnx(wrapper, 64, out, {"model_type": json.dumps("Segmentor")}, limit=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx", "tiny.onnx.data"] and done.data == out.with_name(
        "tiny.onnx.data"
    )
    import onnx

    graph = onnx.load(str(out), load_external_data=False)  # the model file: the graph, small tensors inline
    inline = [t.name for t in graph.graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    assert all(len(t.raw_data) <= 1024 for t in graph.graph.initializer if t.name in inline)
    assert len(inline) < len(graph.graph.initializer) and json.loads(graph.metadata_props[0].value) == "Segmentor"
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    got = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got[0], wrapper(x).numpy(), atol=1e-4, rtol=0)


def test_usage_errors_come_before_the_export(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    cases = [
        (["--onnx"], "--resolution"),
        (["--onnx", "--resolution", "50", "--overlap", "1.5"], "--overlap"),
        (["--onnx", "--resolution", "50", "-c", "ship,harbor"], "knows only the classes"),
        (["--onnx", "--resolution", "50", "--tile", "100"], "multiple of 16"),
        (["--classes", "water"], "go with --onnx"),
        (["--overlap", "0.5"], "go with --onnx"),
        (["--onnx", "--resolution", "50", "--self-contained"], "--self-contained is for checkpoints"),
    ]
    for extra, said in cases:
        r = run_cli("export", DEMO, "-o", out, *extra)
        assert r.code == 2 and r.stderr.count("\n") == 1 and said in r.stderr, (extra, r.stderr)
    r = run_cli("export", "tiny", "-o", out, "--onnx", "--resolution", "50")
    assert r.code == 2 and "tiny knows no classes of its own" in r.stderr, r.stderr
    out.write_text("mine")
    r = run_cli("export", DEMO, "-o", out, "--onnx", "--resolution", "50")
    assert r.code == 2 and "--overwrite" in r.stderr and out.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_missing_extra_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # an import of it now fails, as in an environment without
    r = run_cli("export", DEMO, "-o", tmp_path / "m.onnx", "--onnx", "--resolution", "50")
    assert r.code == 1 and r.stderr.count("\n") == 1
    assert "needs the onnx extra (onnxscript is not installed): pip install 'aeroseg[onnx]'" in r.stderr
    assert list(tmp_path.iterdir()) == []
