"""The ``aeroseg`` command: Typer app, global options and one-line error reporting."""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import typer
import typer.core

from aeroseg_cli import __version__, progress
from aeroseg_cli.files import signals
from aeroseg_cli.files.errors import CLIError, Interrupted

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
    from aeroseg_cli.commands import (
        check,
        datasets,
        evaluate,
        export,
        preview,
        qgis_plugin,
        segment,
        train,
        vectorize,
        weights,
    )

    if app.registered_commands:
        return
    commands = (segment.segment, vectorize.vectorize, train.train, evaluate.evaluate, preview.preview, check.check)
    for fn in (*commands, export.export):
        app.command()(fn)
    app.add_typer(weights.weights_app, name="weights")
    app.add_typer(datasets.datasets_app, name="datasets")
    app.add_typer(qgis_plugin.qgis_app, name="qgis-plugin")


NO_GEOREFERENCING = ("Dataset has no geotransform, gcps, or rpcs", "The given matrix is equal to Affine.identity")


class PlainArgument(typer.core.TyperArgument):
    """Arguments in help as users know them from other tools: ``SCENE...`` and ``[NAME]``, no ``{NAME}`` braces or
    ``<list[Path]>`` type tags."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw.removesuffix("...") + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    def display_type(self, ctx) -> str:
        return ""


def _plain_arguments(command) -> None:
    for param in getattr(command, "params", []):
        if isinstance(param, typer.core.TyperArgument):
            param.__class__ = PlainArgument
            if param.metavar is None:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
    for sub in getattr(command, "commands", {}).values():
        _plain_arguments(sub)


def _last_line(text: str) -> None:
    """The run's last line on stderr. When stderr is gone (the program that started aeroseg died: a broken pipe),
    there is no one to tell, and the exit code must stay the one that says what happened (not Python's 120 for a
    failed flush at exit)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    _last_line(f"aeroseg: error: {message}")
    sys.exit(code)


def _click_error(exc: Exception, debug: bool) -> None:
    """typer vendors its own click: match its exceptions by name."""
    kinds = {c.__name__ for c in type(exc).__mro__}
    if "Exit" in kinds:
        sys.exit(getattr(exc, "exit_code", 0))
    if "NoArgsIsHelpError" in kinds:  # a bare group: show its help, as click does
        print(exc.format_message(), file=sys.stderr)
        sys.exit(2)
    if "Abort" in kinds:
        _fail("aborted", 1, debug)
    if "ClickException" in kinds:
        _fail(exc.format_message(), 2 if "UsageError" in kinds else getattr(exc, "exit_code", 1), debug)
    first = str(exc).strip().split("\n")[0]
    _fail(f"{type(exc).__name__}: {first} (rerun with --debug for details)", 1, debug)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure becomes one line and an exit code (2 usage, 1 runtime, 130/143 on SIGINT/SIGTERM)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("AEROSEG_DEBUG"))
    if debug:
        os.environ["AEROSEG_DEBUG"] = "1"  # libraries' own diagnostics stay on
    signals.install()
    progress.set_mode()  # each run starts in the default mode; a command's --progress changes it
    for message in NO_GEOREFERENCING:  # the CLI checks georeferencing itself (--allow-ungeoreferenced)
        warnings.filterwarnings("ignore", message=message)
    try:
        _register()
        command = typer.main.get_command(app)
        _plain_arguments(command)
        with command.make_context("aeroseg", list(args)) as ctx:
            command.invoke(ctx)
    except Interrupted as exc:
        if debug:
            traceback.print_exc()
        _last_line(f"aeroseg: {exc}")
        sys.exit(exc.exit_code)
    except CLIError as exc:
        _fail(str(exc), exc.exit_code, debug)
    except Exception as exc:
        _click_error(exc, debug)
