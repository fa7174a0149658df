"""``aeroseg export --onnx``: one model with its classes fixed, as an ONNX file Deepness (the QGIS plugin) runs.

The graph takes images ``(B, 3, T, T)`` float32 in [0, 1] and returns the per-class sigmoid probabilities
``(B, K, T, T)``; the class embeddings are computed once here and stored in the file as a constant, so neither the
text tower nor a tokenizer is needed (one file per class list). The batch stays dynamic; the tile is fixed.

Compatibility with what Deepness users have: Deepness installs ``onnxruntime<=1.17.0``, which reads ONNX IR version
9 at most (torch writes 10) and opset 18 is the lowest the dynamo exporter supports (the older TorchScript exporter
fails on ``aten::rot90``). Above protobuf's 2 GiB limit the weights go to ``NAME.onnx.data`` beside the model
(ONNX external data, which onnxruntime finds next to the file): both files must travel together.

Deepness's own preprocessing (its ``ModelBase.preprocessing``): the first C bands of a uint8 raster, ``/255``, then
``(x - standardization_mean) / standardization_std``. AerOSeg normalises its input itself, so the standardization
is the identity and the model sees exactly what ``aeroseg segment`` feeds it for a uint8 scene. Its segmentation
output: values below ``seg_thresh`` are set to 0, then argmax. AerOSeg's sigmoids are independent and do not sum to
1 (the best class is often below 0.5), so any threshold above 0 can move a pixel to class 0: ``seg_thresh`` is 0 and
Deepness's argmax is aeroseg's (``seg_small_segment`` 0: no median filter, as aeroseg applies none).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.version import __version__

OPSET = 18
IR_VERSION = 9
SINGLE_FILE_LIMIT = (2**31 - 1) - (64 << 20)  # protobuf's limit, less room for the graph and the metadata
TOLERANCE = 1e-4  # largest |onnxruntime - torch| accepted when the written file is checked


def require_onnx() -> None:
    """One line naming the extra when a package of it is missing (torch's exporter needs onnx and onnxscript)."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ModuleNotFoundError:
            raise CLIError(
                f"aeroseg export --onnx needs the onnx extra ({name} is not installed): pip install 'aeroseg[onnx]'"
            ) from None


class FixedClasses(nn.Module):
    """images (B, 3, T, T) float32 in [0, 1] -> probabilities (B, K, T, T): ``net`` with the embeddings of ``names``
    computed once and kept as a buffer (the copy of the network given here answers only these classes)."""

    def __init__(self, net: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.net, self.names = net.eval(), list(names)
        with torch.no_grad():
            self.register_buffer("text", net.clip.text_features(self.names).detach().clone())
        net.clip.text_features = self._fixed_text  # the graph then holds the embeddings, not the text tower
        self.train(False)

    def _fixed_text(self, names: list[str]) -> torch.Tensor:
        return self.text

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.probabilities(self.net(images, self.names))


def deepness_metadata(names: list[str], tile: int, overlap: float, resolution_cm: float, model: str) -> dict:
    """The metadata keys Deepness's ``ModelBase`` reads (each value JSON, as its ``json.loads`` expects)."""
    values = {
        "model_type": "Segmentor",
        "class_names": {str(i): name for i, name in enumerate(names)},
        "resolution": float(resolution_cm),
        "tile_size": int(tile),  # what Deepness's code reads
        "tiles_size": int(tile),  # what its documentation names
        "tiles_overlap": round(overlap * 100),  # percent of the tile
        "standardization_mean": [0.0, 0.0, 0.0],
        "standardization_std": [1.0, 1.0, 1.0],
        "seg_thresh": 0.0,
        "seg_small_segment": 0,
        "aeroseg_model": model,
        "aeroseg_version": __version__,
    }
    return {key: json.dumps(value) for key, value in values.items()}


@dataclass
class Exported:
    path: Path
    data: Path | None  # the external weights file, when the model is over the single-file limit
    bytes: int
    max_difference: float


def trace(wrapper: FixedClasses, tile: int):
    """torch's dynamo exporter at opset 18, the batch dynamic -> ``torch.onnx.ONNXProgram`` with IR version 9."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.rand(2, 3, tile, tile, generator=torch.Generator().manual_seed(0))
    with contextlib.redirect_stdout(io.StringIO()), _quiet("onnxscript"):  # it prints its steps, logs its folding
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, opset_version=OPSET, input_names=["image"],
            output_names=["probabilities"], dynamic_shapes={"images": {0: batch}}, verbose=False,
        )  # fmt: skip
    program.model.ir_version = IR_VERSION
    return program


def weight_bytes(program) -> int:
    """Bytes of the tensors stored in the graph (what counts against protobuf's 2 GiB)."""
    return sum(v.const_value.nbytes for v in program.model.graph.initializers.values() if v.const_value is not None)


def export_onnx(wrapper: FixedClasses, tile: int, output: Path, metadata: dict, limit: int = SINGLE_FILE_LIMIT):
    """Export with ``metadata``, write it (the weights as external data above ``limit`` bytes), check the written
    file with onnxruntime against torch, and move it into place; nothing at ``output`` on any failure."""
    program = trace(wrapper, tile)
    program.model.metadata_props.update(metadata)
    external = weight_bytes(program) > limit
    stage = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        written = stage / output.name
        program.save(written, external_data=external)
        data = written.with_name(written.name + ".data")
        difference = check_file(written, wrapper, tile)
        size = sum(p.stat().st_size for p in (written, data) if p.exists())
        if data.exists():
            os.replace(data, output.with_name(data.name))  # the weights first: the model names them
        os.replace(written, output)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    data_path = output.with_name(output.name + ".data") if external else None
    return Exported(output, data_path, size, difference)


@contextlib.contextmanager
def _quiet(logger: str):
    """The exporter's optimiser logs a warning per op it does not fold: nothing the user can act on."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def check_file(path: Path, wrapper: FixedClasses, tile: int) -> float:
    """onnxruntime on the written file against torch, on a seeded batch of 3 (not the export's 2): the largest
    difference, or CLIError past ``TOLERANCE``."""
    import onnxruntime

    images = torch.rand(3, 3, tile, tile, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"image": images.numpy()})[0]
    with torch.no_grad():
        theirs = wrapper(images).numpy()
    difference = float(abs(ours - theirs).max())
    if not difference <= TOLERANCE:
        raise CLIError(f"the ONNX model differs from the torch model by {difference:.2g} (> {TOLERANCE}); not written")
    return difference
