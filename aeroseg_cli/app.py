"""The ``aeroseg`` command: Typer app, global options and one-line error reporting."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import warnings

import typer
import typer.core

from aeroseg_cli import progress
from aeroseg_cli.files import signals
from aeroseg_cli.files.errors import CLIError, Interrupted, UsageError
from aeroseg_cli.runtime.host import configure_process, quiet_libtiff
from aeroseg_cli.version import __version__

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
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks on errors (also AEROSEG_DEBUG=1). Goes before the command."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Open-vocabulary segmentation of large remote-sensing scenes (AerOSeg)."""


def _register() -> None:
    """Add every command of the command table to the app (commands never import the app: no import cycle)."""
    import importlib

    from aeroseg_cli.commands import COMMANDS

    if app.registered_commands or app.registered_groups:
        return
    for c in COMMANDS:
        target = getattr(importlib.import_module(f"aeroseg_cli.commands.{c.module}"), c.attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=c.name)
        else:
            app.command(c.name)(target)


def cli() -> typer.core.TyperGroup:
    """The whole ``aeroseg`` command tree (click objects), as ``main`` runs it and the tests walk it."""
    _register()
    command = typer.main.get_command(app)
    _plain_arguments(command)
    return command


GLOBAL_FLAGS = ("--debug", "--version")
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
        message = exc.format_message()
        if "NoSuchOption" in kinds and getattr(exc, "option_name", None) in GLOBAL_FLAGS:
            message += f" (a global option: it goes before the command, e.g. aeroseg {exc.option_name} segment ...)"
        _fail(message, 2 if "UsageError" in kinds else getattr(exc, "exit_code", 1), debug)
    first = str(exc).strip().split("\n")[0]
    _fail(f"{type(exc).__name__}: {first} (rerun with --debug for details)", 1, debug)


def _gdal_logging(debug: bool) -> None:
    """GDAL's messages reach Python logging through rasterio; aeroseg puts what matters into its own one line, so
    they are shown only with --debug (otherwise Python's last-resort handler would print its warnings raw)."""
    logger = logging.getLogger("rasterio")
    if not any(getattr(h, "aeroseg", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr) if debug else logging.NullHandler()
        handler.setFormatter(logging.Formatter("aeroseg: gdal: %(message)s"))
        handler.setLevel(logging.INFO)
        handler.aeroseg = True
        logger.addHandler(handler)


def _check_environment() -> None:
    """Settings from the environment that no command could use, refused in one line (exit 2)."""
    home = os.environ.get("AEROSEG_HOME")
    if home and os.path.exists(home) and not os.path.isdir(home):
        raise UsageError(f"AEROSEG_HOME={home} is not a folder; it names the folder of the weights cache")


def _writing_stdout(exc: OSError) -> bool:
    """Whether ``exc`` came from a write to stdout (a frame of its traceback holds sys.stdout or its buffer)."""
    streams = [sys.stdout, getattr(sys.stdout, "buffer", None), sys.__stdout__]
    tb = exc.__traceback__
    while tb is not None:
        if any(v is s for v in tb.tb_frame.f_locals.values() for s in streams if s is not None):
            return True
        tb = tb.tb_next
    return False


def _stdout_failed(exc: OSError, debug: bool) -> None:
    """A write to stdout failed (a full device, a closed pipe): one line and exit 1."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # nothing more reaches it, not even at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    _fail(f"writing to standard output failed: {exc.strerror or exc}", 1, debug)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure becomes one line and an exit code (2 usage, 1 runtime, 130/143 on SIGINT/SIGTERM).
    Process-wide settings (signals, GDAL's cache, the allocator, libtiff's raw messages) are made here, never when
    the package is imported: a Python program using the library keeps its own."""
    args = sys.argv[1:] if argv is None else argv
    debug = bool(os.environ.get("AEROSEG_DEBUG"))
    signals.install()
    configure_process()
    progress.set_mode()  # each run starts in the default mode; a command's --progress changes it
    for message in NO_GEOREFERENCING:  # the CLI checks georeferencing itself (--allow-ungeoreferenced)
        warnings.filterwarnings("ignore", message=message)
    try:
        command = cli()
        with command.make_context("aeroseg", list(args)) as ctx:
            debug = debug or bool(ctx.params.get("debug"))
            if debug:
                os.environ["AEROSEG_DEBUG"] = "1"  # libraries' own diagnostics stay on
            else:
                quiet_libtiff()
            _gdal_logging(debug)
            _check_environment()  # after --help and --version, which need none of it
            command.invoke(ctx)
        try:
            sys.stdout.flush()
        except OSError as exc:
            _stdout_failed(exc, debug)
    except Interrupted as exc:
        if debug:
            traceback.print_exc()
        _last_line(f"aeroseg: {exc}")
        sys.exit(exc.exit_code)
    except CLIError as exc:
        _fail(str(exc), exc.exit_code, debug)
    except OSError as exc:
        if _writing_stdout(exc):
            _stdout_failed(exc, debug)
        _click_error(exc, debug)
    except Exception as exc:
        _click_error(exc, debug)
