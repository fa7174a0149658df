"""``--progress json``: the machine-readable progress that the QGIS provider (and any program) follows.

One option, defined once (``aeroseg_cli.commands.options.PROGRESS``), on every command that shows progress; one JSON
object per line per update with stage, done, total and fraction, model loading included; ``json:FD`` sends them to
another file descriptor so that stderr keeps only messages.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from aeroseg_cli.app import _register, app
from aeroseg_cli.commands.options import PROGRESS
from aeroseg_cli.segment.writer import partial_paths
from tests.support.cli import run_cli
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene

SEG = ["-c", "a,b", "--model", "tiny", "--tile", "128"]
COMMANDS = ["segment", "vectorize", "check", "evaluate", "train", "datasets prepare isaid", "datasets prepare dlrsd",
            "datasets prepare openearthmap"]  # fmt: skip


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_segment_reports_every_stage_as_json_lines(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(300, 340))
    out = tmp_path / "o.tif"
    r = run_cli("segment", scene, *SEG, "-o", out, "--vector", tmp_path / "o.gpkg", "--progress", "json")
    assert r.code == 0, r.stderr
    got = records(r.stderr)
    assert all(x["aeroseg"] == "progress" for x in got)
    stages = [(x["stage"], x["state"]) for x in got if x["state"] != "update"]
    assert stages == [("model", "start"), ("model", "end"), ("segment", "start"), ("segment", "end"),
                      ("vectorize", "start"), ("vectorize", "end")]  # fmt: skip
    assert got[0]["fraction"] is None and got[0]["label"] == "loading model tiny ..."
    windows = [x for x in got if x["stage"] == "segment" and x["state"] == "update"]
    fractions = [x["fraction"] for x in windows]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and windows[-1]["done"] == windows[-1]["total"]
    assert windows[0]["unit"] == "windows" and {"skipped", "rate"} <= set(windows[0]["fields"])
    plain = [line for line in r.stderr.splitlines() if not line.startswith("{")]
    assert plain and not any(re.search(r"\(\d+ %\)", line) for line in plain)  # the summary only: no "(NN %)" lines


def test_json_to_another_descriptor_leaves_stderr_to_messages(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(200, 200))
    read, write = os.pipe()
    try:
        r = run_cli("segment", scene, *SEG, "-o", tmp_path / "o.tif", "--progress", f"json:{write}")
    finally:
        os.close(write)
    with os.fdopen(read) as pipe:
        got = records(pipe.read())
    assert r.code == 0, r.stderr
    assert [x["stage"] for x in got][:2] == ["model", "model"] and got[-1]["state"] == "end"
    assert records(r.stderr) == [] and r.stderr.startswith("s.tif: ")


def test_quiet_stays_quiet_and_bad_modes_are_usage_errors(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(200, 200))
    r = run_cli("segment", scene, *SEG, "-o", tmp_path / "o.tif", "--progress", "json", "-q")
    assert r.code == 0 and r.stderr == ""
    for mode, said in (("jsn", "auto, json or json:FD"), ("json:x", "auto, json or json:FD"),
                       ("json:987", "file descriptor 987 is not open")):  # fmt: skip
        r = run_cli("segment", scene, *SEG, "-o", tmp_path / "p.tif", "--progress", mode)
        assert r.code == 2 and r.stderr.count("\n") == 1 and said in r.stderr, r.stderr
    assert not (tmp_path / "p.tif").exists()


def test_vectorize_and_check_report_their_own_stage(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(200, 200))
    assert run_cli("segment", scene, *SEG, "-o", tmp_path / "o.tif", "-q").code == 0
    r = run_cli("vectorize", tmp_path / "o.tif", "-o", tmp_path / "o.gpkg", "--progress", "json")
    assert r.code == 0 and {x["stage"] for x in records(r.stderr)} == {"vectorize"}
    r = run_cli("check", scene, "--progress", "json")
    got = records(r.stderr)
    assert r.code == 0 and {x["stage"] for x in got} == {"check"} and got[-1]["fraction"] == 1.0


def test_one_option_on_every_command_that_shows_progress() -> None:
    _register()
    group = typer.main.get_command(app)
    for path in COMMANDS:
        command = group
        for name in path.split():
            command = command.commands[name]
        (option,) = [p for p in command.params if "--progress" in getattr(p, "opts", [])]
        assert option.help == PROGRESS.help and option.default == "auto", path
    r = run_cli("segment", "--help")
    assert "--progress" in r.stdout and "json:FD" in r.stdout


@pytest.mark.slow
def test_sigterm_after_the_reader_is_gone_still_exits_143(tmp_path: Path) -> None:
    """The program reading ``--progress json`` died (its end of the pipe closed), then SIGTERM: aeroseg cannot say
    so on stderr, but still stops as asked (143, nothing at the output) instead of crashing on the broken pipe
    (exit 1) or failing Python's flush at exit (120)."""
    scene = write_scene(tmp_path / "s.tif", smooth_scene(1200, 600))
    out = tmp_path / "o.tif"
    cmd = [sys.executable, "-m", "aeroseg_cli", "segment", scene, *SEG, "-o", out, "--progress", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while '"state":"update"' not in proc.stderr.readline():  # windows are being segmented
            assert proc.poll() is None
        proc.stderr.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 143
    finally:
        proc.kill()
    assert not out.exists() and partial_paths(out)[1].exists()
