"""``aeroseg preview``: a PNG of a scene beside its label map, with a legend (for reports and READMEs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from PIL import Image, ImageDraw

from aeroseg_cli.files.errors import UsageError

MAX_SIDE = 640


def _read_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    from rasterio.enums import Resampling

    from aeroseg_cli.segment.reader import inspect_scene, open_dataset

    info = inspect_scene(path, None, None, None, True)
    with open_dataset(path) as ds:
        data = ds.read(info.bands, out_shape=(len(info.bands), *size), resampling=Resampling.bilinear)
    rgb = info.radiometry.apply(data)
    rgb = np.repeat(rgb, 3, axis=0) if rgb.shape[0] == 1 else rgb
    return (np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)


def preview(
    scene: Path = typer.Argument(..., help="The input scene."),
    labels: Path = typer.Argument(..., help="Its label raster from `aeroseg segment`."),
    output: Path = typer.Option(..., "--output", "-o", help="PNG to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Render the scene beside its label map (class colours, legend) as a PNG."""
    from rasterio.enums import Resampling

    from aeroseg_cli.segment.reader import open_dataset

    if output.exists() and not overwrite:
        raise UsageError(f"output {output} exists (use --overwrite to replace it)")
    with open_dataset(labels) as ds:
        scale = min(1.0, MAX_SIDE / max(ds.width, ds.height))
        size = (max(1, round(ds.height * scale)), max(1, round(ds.width * scale)))
        lab = ds.read(1, out_shape=size, resampling=Resampling.nearest)
        try:
            cmap = ds.colormap(1)
        except ValueError:
            cmap = {}
        names = json.loads(ds.tags().get("CLASS_NAMES", "[]"))
    rgb = _read_rgb(scene, size)
    colored = np.zeros((*size, 3), np.uint8)
    for value in np.unique(lab):
        colored[lab == value] = cmap.get(int(value), (0, 0, 0, 0))[:3]
    gap, legend_h = 8, 22 * max(1, (len(names) + 3) // 4) + 8
    canvas = Image.new("RGB", (2 * size[1] + gap, size[0] + legend_h), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(colored), (size[1] + gap, 0))
    draw = ImageDraw.Draw(canvas)
    col_w = canvas.width // 4
    for i, name in enumerate(names):
        x, y = (i % 4) * col_w + 8, size[0] + 6 + (i // 4) * 22
        draw.rectangle([x, y, x + 14, y + 14], fill=tuple(cmap.get(i, (0, 0, 0, 0))[:3]), outline="black")
        draw.text((x + 20, y + 1), name, fill="black")
    canvas.save(output)
    typer.echo(f"wrote {output}", err=True)
