"""Size of the paper model as ONNX (``aeroseg export --onnx``), against protobuf's 2 GiB limit, without the real
weights: the paper preset's architecture with random weights (same tensors, same bytes) is traced and saved the way
the export saves it, and the files are measured. The check against torch is skipped (SAM ViT-L at 1024 px on CPU).

    python benchmarks/onnx_size.py [PRESET] [TILE]   # aeroseg-vitb16-samvitl 384: ~8 GB RAM, minutes on CPU
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aeroseg_cli.onnx_export import SINGLE_FILE_LIMIT, FixedClasses, trace, weight_bytes
from models.factory import construct
from models.presets import preset_config


def main() -> None:
    preset = sys.argv[1] if len(sys.argv) > 1 else "aeroseg-vitb16-samvitl"
    torch.manual_seed(0)
    net = construct(preset_config(preset)).eval()
    tile = int(sys.argv[2]) if len(sys.argv) > 2 else net.cfg.crop_size
    params = sum(p.numel() for p in net.parameters())
    text = sum(p.numel() for n, p in net.named_parameters() if n.startswith("clip.") and ".visual." not in n)
    t0 = time.perf_counter()
    program = trace(FixedClasses(net, ["building", "road", "water", "vegetation", "land"]), tile)
    traced = time.perf_counter() - t0
    weights = weight_bytes(program)
    external = weights > SINGLE_FILE_LIMIT
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        program.save(path, external_data=external)
        sizes = {p.name: p.stat().st_size for p in Path(tmp).iterdir()}
    print("| preset | tile | parameters | of which text tower (not exported) | weights in the graph | files | "
          "trace s |\n|---|---|---|---|---|---|---|")  # fmt: skip
    files = ", ".join(f"{name} {size / 1e9:.3f} GB" for name, size in sorted(sizes.items()))
    print(f"| {preset} | {tile} | {params / 1e6:.1f} M | {text / 1e6:.1f} M | {weights / 1e9:.3f} GB "
          f"({'external data' if external else 'one file'}: limit {SINGLE_FILE_LIMIT / 1e9:.3f} GB) | {files} | "
          f"{traced:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
