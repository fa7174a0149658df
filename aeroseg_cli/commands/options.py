"""Options shared by several commands, defined once so that they read and behave the same everywhere."""

from __future__ import annotations

import typer

from aeroseg_cli.files.errors import UsageError


def _progress_mode(ctx: typer.Context, value: str) -> str:
    """Set the process-wide progress mode as soon as the option is parsed (the command's code needs no change)."""
    from aeroseg_cli.progress import set_mode

    try:
        set_mode(value, stage=" ".join(ctx.command_path.split()[1:]))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return value


PROGRESS = typer.Option(
    "auto",
    "--progress",
    metavar="auto|json|json:FD",
    callback=_progress_mode,
    help="auto: a bar on a terminal, plain lines in logs. json: one JSON object per line on stderr (json:FD: on that "
    "file descriptor) with stage, done, total and fraction, for programs that run aeroseg (the QGIS plugin).",
)
