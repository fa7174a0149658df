"""``aeroseg export``: rewrite a checkpoint lean (references to the official weights) or self-contained (one file)."""

from __future__ import annotations

from pathlib import Path

import typer

from aeroseg_cli.files.errors import CLIError, UsageError


def export(
    checkpoint: Path = typer.Argument(..., help="AerOSeg checkpoint to rewrite."),
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint file to write."),
    self_contained: bool = typer.Option(
        False,
        "--self-contained",
        help="Store every tensor, the frozen CLIP and SAM weights included (no weights cache needed to load it). "
        "Default: lean, only what differs from the official files, which loading then needs.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages."),
) -> None:
    """Rewrite a checkpoint, lean or self-contained; it loads to the same weights either way (checked)."""
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
