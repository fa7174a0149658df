"""Issue #23 item 4: the QGIS Processing provider, run by Debian's QGIS 3.22 headless.

The plugin is installed by ``aeroseg qgis-plugin install`` into a scratch profile, enabled with ``qgis_process.bin
plugins enable`` (Debian's ``qgis_process`` wrapper is broken in 3.22), and run on a copy of the real NAIP scene
with the bundled demo model (QGIS writes a ``.aux.xml`` beside every raster it opens, so the shared data is never
opened by QGIS). Its labels must equal the CLI's pixel for pixel. Cancelling is done both ways a user can: the
Cancel of a Processing dialog (``feedback.cancel()`` in a PyQGIS session, ``tests/qgis_session.py``) and a signal to
``qgis_process`` itself; either way nothing lands at the output, the child is gone and the partial resumes to the
same map. The PyQGIS session also renders docs/qgis.md's screenshot (written to ``sample_data/qgis_segment.png``
when ``AEROSEG_QGIS_SCREENSHOT=1``).

Skipped, with the reason, only where QGIS is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from aeroseg_cli.qgis_plugin.install import PLUGIN, SOURCE, default_profile_root
from aeroseg_cli.segment.resume import partial_paths
from tests.support.cli import run_cli
from tests.support.paths import ROOT

DEMO = ROOT / "sample_data" / "demo_model.pt"
QGIS_PROCESS = shutil.which("qgis_process.bin")
QGIS_PYTHON = os.environ.get("AEROSEG_QGIS_PYTHON", "/usr/bin/python3")
SESSION = ROOT / "tests" / "qgis_session.py"
SCREENSHOT = ROOT / "sample_data" / "qgis_segment.png"


def _qgis_missing() -> str | None:
    if QGIS_PROCESS is None:
        return "QGIS is not installed (no qgis_process.bin): apt-get install -y qgis python3-qgis qgis-providers"
    probe = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True)
    if probe.returncode:
        return f"{QGIS_PYTHON} cannot import qgis.core (python3-qgis missing): {probe.stderr.strip()[-200:]}"
    return None


MISSING = _qgis_missing()
if MISSING and os.environ.get("AEROSEG_REQUIRE_QGIS") == "1":  # CI (.ci/run) installs QGIS: a skip there hides a gap
    raise RuntimeError(f"AEROSEG_REQUIRE_QGIS=1 but {MISSING}")
needs_qgis = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


# -- the installer (no QGIS needed) ---------------------------------------------------------------------------------


def test_install_copies_the_plugin_and_records_this_aeroseg(tmp_path: Path) -> None:
    r = run_cli("qgis-plugin", "install", "--profile-root", tmp_path)
    assert r.code == 0, r.stderr
    folder = tmp_path / "profiles" / "default" / "python" / "plugins" / PLUGIN
    assert {p.name for p in folder.iterdir()} >= {"__init__.py", "metadata.txt", "provider.py", "aeroseg.json"}
    assert "hasProcessingProvider=yes" in (folder / "metadata.txt").read_text()
    config = json.loads((folder / "aeroseg.json").read_text())
    assert config["command"] == [os.path.abspath(sys.executable), "-m", "aeroseg_cli"]
    assert Path(config["pythonpath"]) == ROOT  # the very package that installed it, whatever else is on the path
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": config["pythonpath"]}
    probe = subprocess.run([*config["command"], "--version"], capture_output=True, text=True, env=env)
    assert probe.returncode == 0 and probe.stdout.startswith("aeroseg "), probe.stderr
    assert str(folder) in r.stderr and "plugins enable aeroseg_qgis" in r.stderr
    (folder / "stale.py").write_text("")  # an update replaces the whole folder
    assert run_cli("qgis-plugin", "install", "--profile-root", tmp_path, "-q").code == 0
    assert not (folder / "stale.py").exists() and (folder / "aeroseg.json").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == [PLUGIN]  # no staging folder left behind


def test_install_refuses_a_folder_it_did_not_make(tmp_path: Path, monkeypatch) -> None:
    foreign = tmp_path / "profiles" / "work" / "python" / "plugins" / PLUGIN
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("keep me")
    r = run_cli("qgis-plugin", "install", "--profile-root", tmp_path, "--profile", "work")
    assert r.code == 2 and r.stderr.count("\n") == 1 and "not installed by aeroseg" in r.stderr
    assert (foreign / "mine.txt").read_text() == "keep me"
    monkeypatch.setenv("QGIS_CUSTOM_CONFIG_PATH", str(tmp_path / "custom"))
    assert default_profile_root() == tmp_path / "custom"  # the folder QGIS itself reads that variable as


def test_plugin_never_imports_aeroseg_or_torch() -> None:
    """QGIS's Python must need nothing installed: the plugin imports QGIS, PyQt and the standard library only."""
    allowed = {"qgis", "__future__"} | set(sys.stdlib_module_names)
    for path in SOURCE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_the_plugin_says_what_to_do_when_its_aeroseg_is_gone(tmp_path: Path, monkeypatch) -> None:
    """A plugin whose environment was deleted or moved, or whose record is damaged, says to install it again; the
    child never inherits QGIS's Python, GDAL or PROJ variables (OSGeo4W sets them)."""
    from aeroseg_cli.qgis_plugin.aeroseg_qgis import runner

    config = tmp_path / "aeroseg.json"
    config.write_text(json.dumps({"command": [str(tmp_path / "gone" / "python"), "-m", "aeroseg_cli"]}))
    with pytest.raises(runner.RunFailed, match=r"no longer exists: run `aeroseg qgis-plugin install` from"):
        runner.load_config(config)
    config.write_text("{")
    with pytest.raises(runner.RunFailed, match=r"damaged: run `aeroseg qgis-plugin install` again"):
        runner.load_config(config)
    for name in ("PYTHONHOME", "GDAL_DATA", "PROJ_LIB", "PYTHONPATH"):
        monkeypatch.setenv(name, "/qgis/" + name)
    env = runner.child_env({"command": [sys.executable], "pythonpath": str(ROOT)})
    assert env["PYTHONPATH"] == str(ROOT) and not {"PYTHONHOME", "GDAL_DATA", "PROJ_LIB"} & set(env)


def test_wheel_carries_the_plugin(tmp_path: Path) -> None:
    """metadata.txt and the icon are package data: a pip install has a complete plugin to copy. Built from a copy
    of the sources (setuptools writes build/ and egg-info beside them)."""
    src = tmp_path / "src"
    for name in ("aeroseg_cli", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, src]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("aeroseg-*.whl"))).namelist()
    for name in ("__init__.py", "metadata.txt", "icon.svg", "algorithms.py", "runner.py"):
        assert f"aeroseg_cli/qgis_plugin/{PLUGIN}/{name}" in names


# -- QGIS headless ---------------------------------------------------------------------------------------------------


def qgis_env(profile_root: Path) -> dict:
    runtime = profile_root / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(profile_root),
            "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip


def qgis_process(profile_root: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    cmd = [QGIS_PROCESS, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=qgis_env(profile_root), timeout=900, **kwargs)


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """A scratch QGIS profile with the plugin installed by the real command and enabled by ``qgis_process``."""
    if MISSING:
        pytest.skip(MISSING)
    root = tmp_path_factory.mktemp("qgis-profile")
    r = subprocess.run([sys.executable, "-m", "aeroseg_cli", "qgis-plugin", "install", "--profile-root", root],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    enabled = qgis_process(root, "plugins", "enable", PLUGIN)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return root


@pytest.fixture(scope="module")
def scene(shared_geotiff: Path, tmp_path_factory) -> Path:
    """A copy of the real NAIP scene (QGIS writes beside what it opens): its top-left 448 x 640 pixels, 6 of the
    scene's 20 windows (every run here is a whole ``aeroseg segment``, four of them), written as the scene is
    (tiled, deflate, an overview); the whole scene when the README screenshot is being made."""
    path = tmp_path_factory.mktemp("scene") / "naip.tif"
    source = shared_geotiff / "naip_2020_rgbn_utm14n.tif"
    if os.environ.get("AEROSEG_QGIS_SCREENSHOT") == "1":
        shutil.copy(source, path)
        return path
    with rasterio.open(source) as src:
        window = Window(0, 0, 640, 448)
        profile = {**src.profile, "width": 640, "height": 448, "transform": src.window_transform(window)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.build_overviews([2])
    return path


@pytest.fixture(scope="module")
def reference(scene: Path, tmp_path_factory) -> Path:
    """The CLI's labels of the scene with the demo model, in a process of its own as the plugin's child is."""
    out = tmp_path_factory.mktemp("cli") / "labels.tif"
    r = subprocess.run([sys.executable, "-m", "aeroseg_cli", "segment", scene, "--model", DEMO, "-o", out, "-q"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def labels_of(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def assert_same_map(path: Path, reference: Path) -> None:
    with rasterio.open(path) as ds, rasterio.open(reference) as ref:
        assert (ds.crs, ds.transform, ds.shape) == (ref.crs, ref.transform, ref.shape)
        np.testing.assert_array_equal(ds.read(1), ref.read(1))


@pytest.mark.slow
@needs_qgis
def test_qgis_process_runs_segment_and_vectorize_like_the_cli(profile: Path, scene: Path, reference, tmp_path):
    listed = qgis_process(profile, "list")
    assert "aeroseg:segment" in listed.stdout and "aeroseg:vectorize" in listed.stdout, listed.stderr
    out, vector = tmp_path / "labels.tif", tmp_path / "polygons.gpkg"
    r = qgis_process(profile, "run", "aeroseg:segment", "--", f"INPUT={scene}", f"MODEL={DEMO}", f"OUTPUT={out}",
                     f"VECTOR={vector}")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_map(out, reference)
    assert "100 - done" in r.stdout and "segmenting naip.tif" in r.stdout  # the bar and the stage names reached QGIS
    polygons = tmp_path / "again.gpkg"
    v = qgis_process(profile, "run", "aeroseg:vectorize", "--", f"INPUT={out}", f"OUTPUT={polygons}")
    assert v.returncode == 0, v.stdout + v.stderr
    cli = run_cli("vectorize", reference, "-o", tmp_path / "cli.gpkg", "-q")
    assert cli.code == 0, cli.stderr
    import geopandas as gpd

    theirs = gpd.read_file(tmp_path / "cli.gpkg").dissolve("class_id")
    for made in (vector, polygons):
        ours = gpd.read_file(made)
        assert len(ours) == len(gpd.read_file(tmp_path / "cli.gpkg")) > 0 and ours.crs == theirs.crs
        ours = ours.dissolve("class_id")
        assert list(ours.index) == list(theirs.index) and list(ours["class_name"]) == list(theirs["class_name"])
        assert ours.geometry.symmetric_difference(theirs.geometry, align=True).area.max() < 1e-6


# Runs qgis_process as a child subreaper (Linux): the aeroseg it starts is re-parented here when qgis_process dies,
# so its exit status can be read. Prints {"qgis_process": status, "aeroseg": [statuses]}.
SUBREAPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
from pathlib import Path

ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
cmd, sidecar = json.loads(sys.argv[1]), Path(sys.argv[2])
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not sidecar.exists() and proc.poll() is None:  # aeroseg has begun writing: midway
    time.sleep(0.1)
tasks = Path(f"/proc/{proc.pid}/task")
children = [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()] if tasks.exists() else []
proc.send_signal(signal.SIGTERM)
status = proc.wait()
codes = [os.waitstatus_to_exitcode(os.waitpid(c, 0)[1]) for c in children]
print(json.dumps({"qgis_process": status, "aeroseg": codes}))
"""


@pytest.mark.slow
@needs_qgis
def test_sigterm_to_qgis_process_stops_aeroseg_too(profile: Path, scene: Path, tmp_path: Path) -> None:
    """``qgis_process`` has no cancel of its own and dies on SIGTERM; the aeroseg it started gets SIGTERM as its
    parent dies and stops as on Cancel (exit 143, not a crash on the broken pipe): nothing at the output, the partial
    kept (that it resumes is the next test's, where the same SIGTERM comes from Cancel)."""
    out = tmp_path / "labels.tif"
    cmd = [QGIS_PROCESS, "run", "aeroseg:segment", "--", f"INPUT={scene}", f"MODEL={DEMO}", f"OUTPUT={out}"]
    r = subprocess.run([sys.executable, "-c", SUBREAPER, json.dumps(cmd), partial_paths(out)[1]],
                       capture_output=True, text=True, env=qgis_env(profile), timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"qgis_process": -signal.SIGTERM, "aeroseg": [143]}
    assert not out.exists() and all(p.exists() for p in partial_paths(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in partial_paths(out))  # no lock left


@pytest.mark.slow
@needs_qgis
def test_cancel_in_qgis_then_resume_loads_styled_outputs(profile: Path, scene: Path, reference: Path, tmp_path):
    """A PyQGIS session: Cancel once the bar passes 10 % (the child gets SIGTERM and exits 143, nothing at the
    output); the same run with Resume, loaded as the dialog loads it, equals the CLI and carries the style beside
    the output; then the screenshot."""
    out, vector, shot = tmp_path / "labels.tif", tmp_path / "polygons.gpkg", tmp_path / "qgis.png"
    view = shutil.copy(scene, tmp_path / "view.tif")
    base = {"INPUT": str(scene), "MODEL": str(DEMO), "OUTPUT": str(out)}
    steps = [
        {"do": "cancel", "algorithm": "aeroseg:segment", "cancel_at": 10, "parameters": base},
        {"do": "style", "path": str(out.with_suffix(".qml")), "source": str(view)},
        {"do": "load", "algorithm": "aeroseg:segment", "outputs": ["OUTPUT", "VECTOR"],
         "parameters": {**base, "VECTOR": str(vector), "RESUME": True}},
        {"do": "screenshot", "labels": str(out), "scene": str(view), "path": str(shot),
         "title": "aeroseg:segment in QGIS 3.22 (Debian 12), demo model, NAIP 2020 scene"},
    ]  # fmt: skip
    cancelled, _styled, loaded, screenshot = run_session(profile, steps, tmp_path)
    assert cancelled["cancelled"] and cancelled["raised"].startswith("cancelled (aeroseg exit 143)")
    assert any(5 < p < 100 for p in cancelled["progress"]) and max(cancelled["progress"]) < 100  # really midway
    assert any("stopped by SIGTERM" in e for e in cancelled["errors"])
    assert loaded["errors"] == [] and max(loaded["progress"]) == 100
    assert_same_map(out, reference)
    assert not partial_paths(out)[0].exists()  # the resumed run consumed the partial
    by_source = {Path(layer["source"].split("|")[0]): layer for layer in loaded["layers"]}
    style = by_source[out]["qml"]  # the style beside the output when it was loaded, whoever wrote it
    assert (
        by_source[out]["renderer"] == style["renderer"] and len(by_source[out].get("classes", [])) == style["entries"]
    )
    assert vector in by_source
    assert screenshot["status"] == 0 and shot.stat().st_size > 10_000
    if os.environ.get("AEROSEG_QGIS_SCREENSHOT") == "1":  # 128 colours: a docs image of about 120 KB
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(colors=128).save(SCREENSHOT, optimize=True)


def run_session(profile: Path, steps: list[dict], tmp_path: Path) -> list[dict]:
    job, result = tmp_path / "job.json", tmp_path / "result.json"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    job.write_text(json.dumps({"plugins": str(plugins), "result": str(result), "steps": steps}))
    r = subprocess.run([QGIS_PYTHON, SESSION, job], capture_output=True, text=True, env=qgis_env(profile),
                       timeout=1800)  # fmt: skip
    assert result.exists(), r.stdout[-2000:] + r.stderr[-4000:]
    results = json.loads(result.read_text())
    assert "exception" not in results[-1], results[-1].get("exception")
    return results
