"""The ``aeroseg`` command: Typer app, global options and one-line error reporting."""

from __future__ import annotations

import os
import sys
import traceback

import typer

from aeroseg_cli import __version__
from aeroseg_cli.files.errors import CLIError

app = typer.Typer(
    name="aeroseg",
    help="Open-vocabulary segmentation of large remote-sensing scenes (AerOSeg).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aeroseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Open-vocabulary segmentation of large remote-sensing scenes (AerOSeg)."""


def _register() -> None:
    """Add every subcommand to the app (commands never import the app, so there is no import cycle)."""
    from aeroseg_cli.commands import datasets, evaluate, preview, segment, train, vectorize, weights

    if app.registered_commands:
        return
    for fn in (segment.segment, vectorize.vectorize, train.train, evaluate.evaluate, preview.preview):
        app.command()(fn)
    app.add_typer(weights.weights_app, name="weights")
    app.add_typer(datasets.datasets_app, name="datasets")


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"aeroseg: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns every failure into one line and an exit code (2 usage, 1 runtime)."""
    _register()
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("AEROSEG_DEBUG"))
    try:
        app(args=args, prog_name="aeroseg", standalone_mode=False)
    except KeyboardInterrupt:
        print("aeroseg: interrupted; nothing was written at the output path", file=sys.stderr)
        sys.exit(130)
    except CLIError as exc:
        _fail(str(exc), exc.exit_code, debug)
    except Exception as exc:
        kinds = {c.__name__ for c in type(exc).__mro__}  # typer vendors its own click: match by name
        if "Exit" in kinds:
            sys.exit(getattr(exc, "exit_code", 0))
        if "Abort" in kinds:
            print("aeroseg: interrupted", file=sys.stderr)
            sys.exit(130)
        if "NoArgsIsHelpError" in kinds:  # a bare group: show its help, as click does
            print(exc.format_message(), file=sys.stderr)
            sys.exit(2)
        if "ClickException" in kinds:
            _fail(exc.format_message(), 2 if "UsageError" in kinds else getattr(exc, "exit_code", 1), debug)
        first = str(exc).strip().split("\n")[0]
        _fail(f"{type(exc).__name__}: {first} (rerun with --debug for details)", 1, debug)
