"""Run the recorded ``aeroseg`` as a child process and feed a QGIS feedback object from its ``--progress json`` lines.

Pure standard library (no QGIS import) so that the process handling is the same in QGIS, ``qgis_process`` and tests.
Cancel (``feedback.isCanceled()``) sends SIGTERM: aeroseg then stops within a batch, keeps its resumable partial,
writes nothing at the output and exits 143. On Linux the child also gets SIGTERM when the thread that started it
dies (QGIS killed or crashed), so no orphaned run goes on writing files nobody waits for.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

CONFIG = Path(__file__).with_name("aeroseg.json")
POLL_S = 0.1  # how often a cancel is noticed while the child is quiet
# variables QGIS sets for its own Python, GDAL and PROJ; the child uses those of its own environment
FOREIGN_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB", "PROJ_DATA")


class RunFailed(Exception):
    """The child failed or was cancelled; the message is what to show the user."""


def load_config(path: Path = CONFIG) -> dict:
    """The aeroseg recorded at install time: {"command": [...], "pythonpath": str or null, "version": str}."""
    try:
        config = json.loads(path.read_text())
        command = [str(c) for c in config["command"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise RunFailed(f"{path} is missing or damaged: run `aeroseg qgis-plugin install` again") from None
    if not Path(command[0]).exists():
        raise RunFailed(
            f"the aeroseg this plugin was installed from ({command[0]}) no longer exists: run "
            "`aeroseg qgis-plugin install` from the environment aeroseg is now installed in"
        )
    return {**config, "command": command}


def child_env(config: dict) -> dict:
    """The environment of the child: this one, without QGIS's Python/GDAL/PROJ variables, with the recorded path."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    if config.get("pythonpath"):
        env["PYTHONPATH"] = str(config["pythonpath"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _prctl():
    """libc's prctl, looked up before any fork (the child must not load libraries between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the thread that started it ends (QGIS killed or crashed)."""
    _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _pump(stream, name: str, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put((name, line.rstrip("\n")))
    lines.put((name, None))


class Stages:
    """Maps each stage's fraction onto one 0-100 bar: ``{"model": (0, 5), "segment": (5, 100)}``."""

    def __init__(self, spans: dict[str, tuple[float, float]]) -> None:
        self.spans = spans

    def percent(self, stage: str, fraction: float | None) -> float | None:
        if stage not in self.spans:
            return None
        start, end = self.spans[stage]
        return start + (end - start) * (fraction if fraction is not None else 0.0)


def handle_line(name: str, line: str, feedback, stages: Stages, state: dict) -> None:
    """One line of the child: a progress record moves the bar; anything else becomes a message."""
    if name == "stderr" and line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("aeroseg") == "progress":
            if record.get("state") == "start":
                feedback.setProgressText(str(record.get("label", "")))
            percent = stages.percent(str(record.get("stage")), record.get("fraction"))
            if percent is not None:
                feedback.setProgress(percent)
            return
    if not line.strip():
        return
    if line.startswith("aeroseg: warning: "):
        feedback.pushWarning(line)
    elif line.startswith("aeroseg: "):  # an error, or the line of an interrupted run
        state["last_error"] = line[len("aeroseg: ") :].removeprefix("error: ")
        feedback.reportError(line, False)
    else:
        feedback.pushInfo(line)


def run(args: list[str], feedback, stages: Stages, config: dict | None = None) -> None:
    """``aeroseg ARGS --progress json``; returns when it succeeded, raises ``RunFailed`` otherwise (cancel too)."""
    config = load_config() if config is None else config
    argv = [*config["command"], *args, "--progress", "json"]
    feedback.pushCommandInfo(" ".join(argv))
    popen = {"preexec_fn": _die_with_parent} if _PRCTL is not None else {}
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        encoding="utf-8", errors="replace", env=child_env(config), **popen,
    ) as proc:  # fmt: skip
        lines: queue.Queue = queue.Queue()
        pumps = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
                 for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]  # fmt: skip
        for pump in pumps:
            pump.start()
        state = {"last_error": None, "cancelled": False, "open": len(pumps)}
        try:
            _follow(proc, lines, feedback, stages, state)
        finally:
            if proc.poll() is None:  # an exception in QGIS's feedback: never leave the child running
                proc.terminate()
            proc.wait()
            for pump in pumps:  # the pipes are at their end once the child has exited
                pump.join(timeout=5)
    _outcome(proc.returncode, state)


def _follow(proc: subprocess.Popen, lines: queue.Queue, feedback, stages: Stages, state: dict) -> None:
    """Relay the child's lines until both pipes close; the first cancel sends SIGTERM."""
    while state["open"]:
        if feedback.isCanceled() and not state["cancelled"]:
            state["cancelled"] = True
            feedback.pushInfo("cancelling: SIGTERM sent to aeroseg")
            proc.terminate()  # SIGTERM on POSIX
        try:
            name, line = lines.get(timeout=POLL_S)
        except queue.Empty:
            continue
        if line is None:
            state["open"] -= 1
        else:
            handle_line(name, line, feedback, stages, state)


def _outcome(code: int, state: dict) -> None:
    if code == 0 and not state["cancelled"]:
        return
    if state["cancelled"]:
        raise RunFailed(
            f"cancelled (aeroseg exit {code}): nothing was written at the output; the finished part is kept, so "
            "running again with the same settings and Resume ticked continues from it"
        )
    raise RunFailed(f"aeroseg failed (exit {code}): {state['last_error'] or 'see the log above'}")
