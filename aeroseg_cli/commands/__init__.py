"""The command table: every ``aeroseg`` command, in the order ``aeroseg --help`` lists them (as pip's command table).
``app`` registers exactly these, and the tests that cover "every command" walk the app built from them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str  # what users type: ``aeroseg NAME``
    module: str  # ``aeroseg_cli.commands.MODULE``
    attr: str  # the command function, or the ``typer.Typer`` of a group of subcommands


COMMANDS: tuple[Command, ...] = (
    Command("segment", "segment", "segment"),
    Command("check", "check", "check"),
    Command("vectorize", "vectorize", "vectorize"),
    Command("train", "train", "train"),
    Command("evaluate", "evaluate", "evaluate"),
    Command("preview", "preview", "preview"),
    Command("export", "export", "export"),
    Command("weights", "weights", "weights_app"),
    Command("datasets", "datasets", "datasets_app"),
    Command("qgis-plugin", "qgis_plugin", "qgis_app"),
)
