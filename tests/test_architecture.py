"""The house stays in order: no import cycles among the project's modules, no function over the length limits.

Both checks read the source with ``ast`` (nothing is imported), so they are fast and see every module, including
ones no test imports.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.paths import ROOT

PACKAGES = ("aeroseg_cli", "models")
MAX_FUNCTION_LINES = 80
MAX_COMMAND_LINES = 60


def modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import nodes under ``if TYPE_CHECKING:``: read by type checkers, never run, so in no runtime cycle."""
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            nodes |= {n for stmt in node.body for n in ast.walk(stmt)}
    return nodes


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its source (function-level imports included; imports for
    type checkers only are left out)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    skip = type_checking_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import sub` needs only the submodule; `from pkg import name` needs pkg's __init__
            targets = [t for t in subs if t in known] + ([base] if any(t not in known for t in subs) else [])
        for target in targets:
            while target and target not in known:  # `import a.b.c` depends on the deepest project module named
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS with colours)."""
    state: dict[str, int] = {}
    for root in graph:
        if state.get(root):
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def test_import_edges_distinguish_submodules_from_package_attributes(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def build(): ...\n")
    (pkg / "a.py").write_text("from . import b\nfrom pkg import build\n")
    (pkg / "b.py").write_text("")
    known = {"pkg", "pkg.a", "pkg.b"}
    assert imported("pkg.a", pkg / "a.py", known) == {"pkg.b", "pkg"}
    (pkg / "a.py").write_text("from . import b\n")
    assert imported("pkg.a", pkg / "a.py", known) == {"pkg.b"}


def test_find_cycle_detects_a_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_among_project_modules() -> None:
    graph = import_graph()
    assert len(graph) > 30  # really reading the project
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_models_never_import_the_cli() -> None:
    offenders = {
        m: sorted(d)
        for m, d in import_graph().items()
        if m.startswith("models") and any(x.startswith("aeroseg_cli") for x in d)
    }
    assert offenders == {}


def test_commands_never_import_the_app() -> None:
    graph = import_graph()
    offenders = [m for m in graph if m.startswith("aeroseg_cli.commands") and "aeroseg_cli.app" in graph[m]]
    assert offenders == []


def long_functions(limit: int, only: str = "", body_only: bool = False) -> list[str]:
    """Functions longer than ``limit`` lines (``body_only``: counted from the first statement after the signature)."""
    out = []
    for name, path in modules().items():
        if not name.startswith(only):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = node.body[0].lineno if body_only else node.lineno
                length = node.end_lineno - start + 1
                if length > limit:
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_over_80_lines() -> None:
    assert long_functions(MAX_FUNCTION_LINES) == []


def test_command_functions_under_60_lines() -> None:
    """Commands stay thin: their bodies (options to a typed request, one call, the result printed) under 60 lines.
    The signature is the command's option table, one line per option, and counts toward the 80 of every function."""
    assert long_functions(MAX_COMMAND_LINES, "aeroseg_cli.commands", body_only=True) == []


def test_no_nested_functions_doing_io_in_the_segment_pipeline() -> None:
    """The pipeline's stages are classes or module functions, not closures inside the engine."""
    nested = []
    for name, path in modules().items():
        if not name.startswith("aeroseg_cli.segment"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                inner = [n.name for n in ast.walk(node) if isinstance(n, ast.FunctionDef) and n is not node]
                nested += [f"{name}.{node.name}.{i}" for i in inner]
    assert nested == []


def test_tests_reach_the_shared_data_only_through_the_skipping_fixtures() -> None:
    """A checkout without ``../shared`` runs the suite with those tests skipped (with a reason), not erroring: every
    test that reads the real data takes the ``shared_geotiff`` / ``shared_dubai`` fixture of ``conftest.py``."""
    direct = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name == "test_architecture.py":
            continue
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if names & {"SHARED_DATA", "GEOTIFF", "DUBAI"} or any("../shared" in s for s in literals):
            direct.append(path.name)
    assert direct == []


def test_tests_import_helpers_from_support_only() -> None:
    """Helpers live in ``tests/support/``: no test file (nor a helper, nor code a test runs in a subprocess) imports
    ``conftest`` or another module at the top of ``tests/``, which are test files and the scripts QGIS's Python runs."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text = path.read_text()
        imported = [m for m in re.findall(r"(?:from|import)\s+((?:tests\.)?\w+)", text) if m.startswith("tests.")]
        imported += [f"tests.{m}" for m in re.findall(r"(?:from|import)\s+(conftest|test_\w+)\b", text)]
        imported += [f"tests.{m}" for m in re.findall(r"from\s+tests\s+import\s+(\w+)", text)]
        wrong += [f"{path.relative_to(ROOT)}: {m}" for m in imported if m != "tests.support"]
    assert wrong == []


def declared_flags(path: Path) -> list[str]:
    """The flags of every ``typer.Option(...)`` / ``typer.Argument(...)`` written in a module's source."""
    flags = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("Option", "Argument"):
            flags += [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")]
    return flags


def test_shared_options_are_declared_once() -> None:
    """``--quiet``, ``--overwrite``, ``--device``, ``--progress`` and the ``--json`` summary flag mean one thing
    everywhere: declared in commands/options.py only (evaluate's ``--json FILE``, a file to write, is its own)."""
    shared = {"--quiet", "-q", "--json", "--overwrite", "--device", "--progress", "--classes-file"}
    own = {"evaluate.py": {"--json"}}
    commands = ROOT / "aeroseg_cli" / "commands"
    found = {
        p.name: sorted(set(declared_flags(p)) & shared - own.get(p.name, set()))
        for p in sorted(commands.glob("*.py"))
        if p.name != "options.py"
    }
    assert {name: flags for name, flags in found.items() if flags} == {}
    assert shared - {"-q", "--classes-file"} <= set(declared_flags(commands / "options.py"))


def test_no_private_rasterio_modules_are_imported() -> None:
    """rasterio's underscore modules change without notice; GDAL's raw errors are caught through
    ``files.gdalread.public_errors`` instead of ``rasterio._err.CPLE_BaseError``."""
    private = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            private += [f"{name}: {n}" for n in names if n.startswith("rasterio._")]
    assert private == []
