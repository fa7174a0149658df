"""Packaging facts that a wheel built from this tree must keep: every third-party import is a declared dependency,
every declared dependency is used, the version is written once, the licence ships, and the tested torch pair is a
constraints file rather than a pin that would fight a user's own CUDA build of torch."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import aeroseg_cli
from tests.support.docs import pages

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aeroseg_cli", "models")
# Declared but never imported by name: each is needed through another library, and why.
USED_INDIRECTLY = {
    "torchvision": "open_clip and segment_anything import it; it must match torch (constraints.txt)",
    "pyarrow": "geopandas writes GeoParquet through it",
    "tomli": "tomllib's backport, imported under Python 3.10 only",
    "onnx": "torch.onnx.export(dynamo=True) builds the model with it (export --onnx checks it is there)",
    "onnxscript": "torch's dynamo exporter translates the graph with it (export --onnx checks it is there)",
}

QGIS_PLUGIN = ROOT / "aeroseg_cli" / "qgis_plugin" / "aeroseg_qgis"
# extras whose imports are only made by one feature, which ends in one line naming the extra when it is missing
OPTIONAL_EXTRAS = {"onnx": "aeroseg export --onnx (aeroseg_cli/onnx_export.py)"}

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def declared() -> dict[str, str]:
    """Normalised distribution name -> requirement string, for [project.dependencies] and the optional extras of
    features that say so when their extra is missing (OPTIONAL_EXTRAS)."""
    out = {}
    extras = pyproject()["project"]["optional-dependencies"]
    for req in pyproject()["project"]["dependencies"] + [r for e in OPTIONAL_EXTRAS for r in extras[e]]:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
        out[re.sub(r"[-_.]+", "-", name).lower()] = req
    return out


def imported_top_levels() -> set[str]:
    """Top-level module names imported anywhere in the packages (absolute imports, at any depth of the code), but
    the QGIS plugin's: it runs in QGIS's own Python, never in aeroseg's environment."""
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if QGIS_PLUGIN in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(PACKAGES) - set(sys.stdlib_module_names) - {"tomli", "tomllib"}


@functools.cache
def module_owners() -> dict[str, set[str]]:
    """Top-level module -> the installed distributions that provide it, from each distribution's files (what
    ``importlib.metadata.packages_distributions`` does on Python 3.11+; on 3.10 it reads ``top_level.txt`` only,
    which many wheels lack)."""
    owners: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        tops = set((dist.read_text("top_level.txt") or "").split())
        for f in dist.files or []:
            top = f.parts[0]
            if top.endswith(".py"):
                tops.add(top[:-3])
            elif "." not in top and top != "__pycache__":
                tops.add(top)
        for top in tops:
            owners.setdefault(top, set()).add(name)
    return owners


def distributions_of(module: str) -> set[str]:
    return module_owners().get(module, set())


def test_every_third_party_import_is_a_declared_dependency() -> None:
    deps = declared()
    missing = {m: sorted(distributions_of(m)) for m in imported_top_levels() if not distributions_of(m) & set(deps)}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_declared_dependency_is_used() -> None:
    used = set().union(*(distributions_of(m) for m in imported_top_levels()))
    unused = sorted(set(declared()) - used - set(USED_INDIRECTLY))
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"


def test_torch_is_a_range_and_the_tested_pair_a_constraints_file() -> None:
    deps = declared()
    for name in ("torch", "torchvision"):
        assert "==" not in deps[name], f"{deps[name]}: an exact pin in a library fights a user's own torch build"
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    assert set(pins) == {"torch", "torchvision"}
    lines = [line for page in pages() for line in page.read_text(encoding="utf-8").splitlines()]
    installs = [line for line in lines if "pip install" in line and "-e ." in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs


def test_version_is_written_once_and_the_licence_ships() -> None:
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aeroseg_cli.version.__version__"}
    assert importlib.metadata.version("aeroseg") == aeroseg_cli.__version__
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")[:200]
    assert project["license"] == {"text": "Apache-2.0"}


def test_the_toml_reader_works_on_the_running_python() -> None:
    """``train --config x.toml`` on Python 3.10 once said "malformed YAML (No module named 'tomllib')"."""
    from aeroseg_cli.training.config import toml_module

    assert toml_module().loads('a = 1\n[b]\nc = "d"\n') == {"a": 1, "b": {"c": "d"}}
