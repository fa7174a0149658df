"""``aeroseg export``: rewrite a checkpoint lean (references to the official weights) or self-contained (one file),
or (``--onnx``) write one fixed-class ONNX model with Deepness's metadata."""

from __future__ import annotations

from pathlib import Path

import typer

from aeroseg_cli.commands.options import OVERWRITE, QUIET
from aeroseg_cli.files.errors import CLIError, UsageError


def export(
    checkpoint: Path = typer.Argument(..., help="AerOSeg checkpoint to rewrite (with --onnx: or a preset name)."),
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint (or, with --onnx, .onnx) file to write."),
    self_contained: bool = typer.Option(
        False,
        "--self-contained",
        help="Store every tensor, the frozen CLIP and SAM weights included (no weights cache needed to load it). "
        "Default: lean, only what differs from the official files, which loading then needs.",
    ),
    onnx: bool = typer.Option(False, "--onnx", help="Write an ONNX model for Deepness (QGIS), classes fixed."),
    classes: str = typer.Option(None, "--classes", "-c", help="With --onnx: comma-separated classes [its own]."),
    tile: int = typer.Option(None, "--tile", help="With --onnx: the tile in pixels [the model's crop]."),
    overlap: float = typer.Option(None, "--overlap", help="With --onnx: the tile overlap for Deepness [0.25]."),
    resolution: float = typer.Option(
        None, "--resolution", help="With --onnx: cm per pixel of the imagery the model is for (Deepness resamples)."
    ),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Rewrite a checkpoint, lean or self-contained; it loads to the same weights either way (checked). With --onnx:
    an ONNX model of it for Deepness, checked against torch with onnxruntime."""
    if onnx and self_contained:
        raise UsageError("--self-contained is for checkpoints; an ONNX model always holds every weight it needs")
    if onnx:
        return _onnx(str(checkpoint), output, classes, tile, 0.25 if overlap is None else overlap, resolution,
                     overwrite, quiet)  # fmt: skip
    if any(v is not None for v in (classes, tile, overlap, resolution)):
        raise UsageError("--classes, --tile, --overlap and --resolution go with --onnx")
    import models
    from aeroseg_cli.files.atomic import atomic_output
    from aeroseg_cli.files.safety import check_output

    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {checkpoint} does not exist")
    if output.resolve() == checkpoint.resolve():
        raise UsageError("--output must not be the input checkpoint")
    check_output(output, overwrite)
    try:
        with atomic_output(output) as tmp:
            ckpt = models.export_checkpoint(checkpoint, tmp, self_contained=self_contained)
            models.load_checkpoint(tmp)  # the written file rebuilds the same model (its full digest is checked)
    except models.WeightsError as exc:
        raise CLIError(str(exc)) from None
    if not quiet:
        form = "self-contained" if self_contained else "lean"
        size = output.stat().st_size / 2**20
        typer.echo(f"wrote {output} ({form}, {size:.1f} MiB, {len(ckpt['class_names'])} classes)", err=True)


def _onnx(model: str, output: Path, classes, tile, overlap: float, resolution, overwrite: bool, quiet: bool) -> None:
    """The cheap checks, then the model, then the export (checked with onnxruntime before it lands)."""
    from aeroseg_cli.files.safety import check_output
    from aeroseg_cli.onnx_export import require_onnx

    if resolution is None or resolution <= 0:
        raise UsageError("--onnx needs --resolution CM: the pixel size (cm) of the imagery the model is for")
    if not 0 <= overlap < 1:
        raise UsageError(f"--overlap is a fraction of the tile in [0, 1), got {overlap}")
    check_output(output, overwrite, also=[output.with_name(output.name + ".data")])
    require_onnx()
    from aeroseg_cli.commands.options import parse_classes
    from aeroseg_cli.onnx_export import FixedClasses, deepness_metadata, export_onnx
    from aeroseg_cli.runtime.modelcheck import check_vocabulary
    from aeroseg_cli.runtime.modelio import load_model
    from aeroseg_cli.segment.plan import check_class_names

    given, _colours = parse_classes(classes, None)  # colours do not travel: Deepness picks its own
    loaded = load_model(model)
    if not given and not loaded.classes:
        raise UsageError(f'{model} knows no classes of its own: name them with --classes "a,b"')
    names = check_class_names(given or list(loaded.classes))
    check_vocabulary(loaded, names)
    net = loaded.model
    tile = tile or net.cfg.crop_size
    if tile <= 0 or tile % net.cfg.input_multiple:
        raise UsageError(f"--tile must be a positive multiple of {net.cfg.input_multiple} for this model, got {tile}")
    metadata = deepness_metadata(names, tile, overlap, resolution, loaded.label)
    done = export_onnx(FixedClasses(net, names), tile, output, metadata)
    if not quiet:
        data = f" + {done.data.name}" if done.data else ""
        typer.echo(f"wrote {output}{data} ({done.bytes / 2**20:.1f} MiB, {len(names)} classes, tile {tile}, "
                   f"onnxruntime within {done.max_difference:.1g} of torch)", err=True)  # fmt: skip
