"""``aeroseg preview``: a PNG of a scene beside its label map, with the label map's legend (for reports and READMEs)."""

from __future__ import annotations

from pathlib import Path

import typer

from aeroseg_cli.commands.options import OVERWRITE

MAX_SIDE = 640
GAP = 8
ROW = 22


def preview(
    scene: Path = typer.Argument(..., help="The input scene."),
    labels: Path = typer.Argument(..., help="Its label raster from `aeroseg segment`."),
    output: Path = typer.Option(..., "--output", "-o", help="PNG to write."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Render the scene beside its label map (class colours, and a legend under the labels) as a PNG."""
    from aeroseg_cli.files.atomic import atomic_output
    from aeroseg_cli.files.errors import UsageError
    from aeroseg_cli.files.safety import Output, check_outputs, exclusive

    if output.suffix.lower() != ".png":
        raise UsageError(f"the preview is a PNG: name it *.png, not {output.name}")
    check_outputs([Output(output, "preview image")], [scene, labels], overwrite)
    check_same_area(scene, labels)
    coloured, legend = read_labels(labels)
    rgb = read_rgb(scene, coloured.shape[:2])
    with exclusive([output]), atomic_output(output, suffix=".png") as tmp:
        render(rgb, coloured, legend).save(tmp, format="PNG")
    typer.echo(f"wrote {output}", err=True)


def check_same_area(scene: Path, labels: Path) -> None:
    """The labels cover the scene: same CRS and bounds (a ``--target-gsd`` map may have another pixel size; without
    georeferencing, the same size in pixels), within half a pixel of the coarser of the two."""
    from aeroseg_cli.files.errors import UsageError
    from aeroseg_cli.segment.reader import open_dataset

    with open_dataset(str(scene)) as s, open_dataset(str(labels)) as lab:
        tolerance = max(abs(s.res[0]), abs(lab.res[0]), abs(s.res[1]), abs(lab.res[1])) / 2
        same = s.crs == lab.crs and all(abs(a - b) <= tolerance for a, b in zip(s.bounds, lab.bounds, strict=True))
        if not same:
            raise UsageError(
                f"the labels {labels.name} are not on the area of the scene {scene.name} (labels {lab.width}x"
                f"{lab.height}, bounds {tuple(round(v, 3) for v in lab.bounds)}, {lab.crs or 'no CRS'}; scene "
                f"{s.width}x{s.height}, bounds {tuple(round(v, 3) for v in s.bounds)}, {s.crs or 'no CRS'}): give "
                "the scene the labels were made from"
            )


def read_labels(path: Path):
    """The label map, decimated to at most MAX_SIDE, in the colours of its classes (the same as in its GeoTIFF
    and its polygons: ``aeroseg_cli.styles``) -> (rgb, legend rows (id, name, colour))."""
    import numpy as np
    from rasterio.enums import Resampling

    from aeroseg_cli.files.gdalread import checked
    from aeroseg_cli.segment.reader import open_dataset
    from aeroseg_cli.styles.classes import raster_classes
    from aeroseg_cli.styles.palette import UNKNOWN

    with open_dataset(str(path)) as ds, checked(str(path)):
        scale = min(1.0, MAX_SIDE / max(ds.width, ds.height))
        size = (max(1, round(ds.height * scale)), max(1, round(ds.width * scale)))
        lab = ds.read(1, out_shape=size, resampling=Resampling.nearest)
        classes = raster_classes(ds)
    coloured = np.zeros((*size, 3), np.uint8)
    for value in np.unique(lab):
        if int(value) != UNKNOWN:  # unknown / nodata stays black
            coloured[lab == value] = classes.color_of(int(value))
    return coloured, classes.style_rows(classes.names)


def read_rgb(path: Path, size: tuple[int, int]):
    """The scene at ``size`` with the stretch ``segment`` uses, as (H, W, 3) uint8."""
    import numpy as np
    import torch
    from rasterio.enums import Resampling

    from aeroseg_cli.files.gdalread import checked
    from aeroseg_cli.segment.reader import inspect_scene, open_dataset

    info = inspect_scene(str(path), None, None, None, True)
    with open_dataset(str(path)) as ds, checked(str(path)):
        data = ds.read(info.bands, out_shape=(len(info.bands), *size), resampling=Resampling.bilinear)
    unit = info.radiometry.to_unit(torch.from_numpy(data)[None])[0].numpy()
    unit = np.repeat(unit, 3, axis=0) if unit.shape[0] == 1 else unit
    return (np.moveaxis(unit, 0, -1) * 255).astype(np.uint8)


def render(rgb, coloured, legend: list[tuple[int, str, tuple[int, int, int]]]):
    """Scene on the left, labels on the right, one legend (two columns) under the labels."""
    from PIL import Image, ImageDraw

    h, w = coloured.shape[:2]
    legend_h = ROW * max(1, (len(legend) + 1) // 2) + GAP
    canvas = Image.new("RGB", (2 * w + GAP, h + legend_h), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(coloured), (w + GAP, 0))
    draw = ImageDraw.Draw(canvas)
    col_w = w // 2
    for k, (_, name, color) in enumerate(legend):
        x, y = w + GAP + (k % 2) * col_w + 4, h + 6 + (k // 2) * ROW
        draw.rectangle([x, y, x + 14, y + 14], fill=tuple(color), outline="black")
        draw.text((x + 20, y + 1), name, fill="black")
    return canvas
