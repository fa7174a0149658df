"""The README stays true: its main command runs as written on the sample scene; every command has help, and the
options docs/commands.md describes are the commands' own."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from tests.support.cli import run_cli
from tests.support.docs import DOCS, README, pages


def readme_command(marker: str) -> str:
    text = README.read_text()
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert block, f"README has no {marker} block"
    return block.group(1).strip()


@pytest.mark.slow
def test_readme_main_command_runs_as_written(tmp_path: Path) -> None:
    """Everything after the install steps runs verbatim, with this interpreter's aeroseg, in a scratch folder."""
    steps = [s.strip() for s in readme_command("main-command").split("&&")]
    run = [s for s in steps if not s.startswith("python3 -m venv") and "pip install" not in s]
    assert any(s.startswith(".venv/bin/aeroseg segment") for s in run)
    (tmp_path / "sample_data").symlink_to(README.parent / "sample_data")
    script = " && ".join(s.replace(".venv/bin/aeroseg", f"{shlex.quote(sys.executable)} -m aeroseg_cli") for s in run)
    env = {"PYTHONPATH": str(README.parent), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    seg = next(s for s in run if " segment " in s).split()
    scene = tmp_path / seg[seg.index("segment") + 1]
    labels = tmp_path / seg[seg.index("-o") + 1]
    polygons = tmp_path / seg[seg.index("--vector") + 1]
    with rasterio.open(scene) as src, rasterio.open(labels) as out:
        assert out.crs == src.crs and out.transform == src.transform and out.shape == src.shape
        classes = set(np.unique(out.read(1))) - {255}
    assert len(classes) > 1, classes
    g = gpd.read_file(polygons)
    assert g.crs == src.crs and len(g) > 1 and g["class_name"].nunique() > 1


def every_command() -> list[list[str]]:
    """The path of every command and subcommand, walked from the app built from the command table (typer vendors
    its own click, so groups are told by their ``commands``)."""
    from aeroseg_cli.app import cli

    paths, stack = [], [([], cli())]
    while stack:
        path, command = stack.pop()
        paths.append(path)
        if hasattr(command, "commands"):
            stack += [([*path, name], sub) for name, sub in command.commands.items()]
    return sorted(paths)


def test_help_of_every_command_and_version() -> None:
    from aeroseg_cli.commands import COMMANDS

    r = run_cli("--version")
    assert r.code == 0 and r.stdout.startswith("aeroseg ")
    paths = every_command()
    assert {p[0] for p in paths if p} == {c.name for c in COMMANDS}
    assert ["weights", "download"] in paths and ["datasets", "prepare", "isaid"] in paths
    for path in paths:
        r = run_cli(*path, "--help")
        assert r.code == 0 and "Usage:" in r.stdout, (path, r.stderr)
        assert "--debug" not in r.stdout or not path, f"{path}: --debug is a global option, on the root only"
    text = (DOCS / "commands.md").read_text()
    for option in (
        "--classes-file",
        "--target-gsd",
        "--unknown-threshold",
        "--probabilities",
        "--cog",
        "--resume",
        "--on-error",
        "--min-area",
        "--simplify",
        "--dst-crs",
    ):
        assert option in text, option


def test_every_option_of_every_command_is_documented() -> None:
    """An option ``--help`` lists is described in the README or docs/ (where a user looks up what it does)."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages())
    undocumented = []
    for path in every_command():
        r = run_cli(*path, "--help")
        assert r.code == 0, r.stderr
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", r.stdout)) - {"--help"}
        undocumented += [f"aeroseg {' '.join(path)} {o}" for o in sorted(options) if o not in text]
    assert not undocumented, undocumented
