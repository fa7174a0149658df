"""``aeroseg qgis-plugin install``: the QGIS Processing provider that runs this aeroseg."""

from __future__ import annotations

from pathlib import Path

import typer

from aeroseg_cli.commands.options import QUIET

qgis_app = typer.Typer(
    help="The QGIS plugin: a Processing provider (aeroseg:segment, aeroseg:vectorize) that runs this aeroseg.",
    no_args_is_help=True,
)


@qgis_app.command("install")
def install(
    profile_root: Path = typer.Option(
        None,
        "--profile-root",
        help="QGIS settings folder holding profiles/ [QGIS_CUSTOM_CONFIG_PATH, else QGIS 3's per-user folder].",
    ),
    profile: str = typer.Option("default", "--profile", help="QGIS user profile."),
    quiet: bool = QUIET,
) -> None:
    """Install (or update) the plugin into a QGIS profile; it runs the aeroseg of this environment, so QGIS's own
    Python never needs torch or aeroseg."""
    from aeroseg_cli.qgis_plugin.install import PLUGIN, default_profile_root, install, launcher

    folder = install(profile_root or default_profile_root(), profile)
    if not quiet:
        typer.echo(f"installed the QGIS plugin into {folder} (it runs {' '.join(launcher()['command'])})", err=True)
        typer.echo(
            f"enable it in QGIS: Plugins > Manage and Install Plugins > Installed > aeroseg (or `qgis_process "
            f"plugins enable {PLUGIN}`); then Processing Toolbox > aeroseg",
            err=True,
        )
