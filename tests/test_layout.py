"""The house (design.md, "Layout"): the package's tree, its import graph and its commands, checked
from the source files themselves (ast), so that a change that breaks a rule of the layout fails here.

- the subpackages are the parts of the sheet and of a run, and tests/ mirrors them;
- the layers run one way, bottom to top (RUNGS): no import of a vaekit module, at module level,
  inside a function or for annotations only (`if TYPE_CHECKING:`), goes up a rung, and nothing
  imports `vaekit` itself (the public API) or `vaekit.__main__`;
- imports between vaekit modules form no circle, nor do those between the packages of one rung;
- a vaekit module imported inside a function says why on that line (a heavy optional dependency
  such as matplotlib or scikit-learn, imported only by the code that needs it);
- each command is thin: it parses, calls the library, prints.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "vaekit"
TESTS = Path(__file__).resolve().parent
PACKAGES = {"config", "arch", "data", "vae", "runs", "train", "evaluate", "report", "checks", "classify",
            "serve", "sheet", "commands"}
# The layers, bottom to top: a package or loose module imports only from its own rung (without a
# circle) and those below. `vaekit/__init__.py` (the public API) and `__main__` are above them all.
RUNGS = (
    ("errors", "regular", "version", "config", "device", "distributed"),
    ("arch",),
    ("data", "vae"),
    ("runs",),
    ("train", "evaluate"),
    ("classify", "checks", "report"),
    ("serve", "sheet"),
    ("commands",),
    ("cli",),
)
TOP = ("__init__", "__main__")
RUNG = {part: i for i, parts in enumerate(RUNGS) for part in parts} | {top: len(RUNGS) for top in TOP}
COMMAND_LINES = 100  # a command parses, calls the library and prints: at most 100 lines a file


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The vaekit modules an import statement loads (a `from P import name` of a submodule name
    counts as that submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "vaekit"]
    if node.module is None or node.level or node.module.split(".")[0] != "vaekit":
        return []
    out = []
    for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        out.append(sub if sub in MODULES else node.module)
    return out


def all_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every vaekit import of a file: at module level, inside a function or a
    class, and under `if TYPE_CHECKING:`."""
    return [(node.lineno, name) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom) for name in imported(node)]


def part(module: str) -> str:
    """The rung's name of a vaekit module: its package or loose module ('vaekit.vae.prob' -> 'vae',
    'vaekit.runs' -> 'runs'), '__init__' for `vaekit` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """'file:line: A imports B' for every import that goes up a rung (or names a part no rung holds),
    and every relative import (which the graph would not see)."""
    out = []
    for name, path in sorted(modules.items()):
        out += [f"{path.name}:{node.lineno}: {name} imports relatively" for node in ast.walk(ast.parse(
            path.read_text())) if isinstance(node, ast.ImportFrom) and node.level]
        here = RUNG.get(part(name), -1)
        for line, target in all_imports(path):
            there = RUNG.get(part(target))
            if part(name) == "__init__":
                continue  # the public API may import anything
            if there is None or here < 0 or there > here:
                out.append(f"{path.name}:{line}: {name} (rung {here}) imports {target} (rung {there})")
    return out


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of `graph` (node -> the nodes it imports) as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name, [name])):
            return found
    return None


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every vaekit import inside a function body."""
    text = path.read_text()
    lines = text.splitlines()
    out = []
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom) and imported(node):
                    out.append((node.lineno, lines[node.lineno - 1]))
    return out


def test_the_packages_are_the_parts_of_the_sheet() -> None:
    found = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert found == PACKAGES
    loose = {p.stem for p in SRC.glob("*.py")}
    assert loose == {"__init__", "__main__", "cli", "device", "distributed", "errors", "regular", "version"}


def test_tests_mirror_the_packages() -> None:
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders <= PACKAGES, folders - PACKAGES
    for folder in folders:
        assert list((TESTS / folder).glob("test_*.py")), folder


def test_no_import_circle() -> None:
    """Over every import, function-level and TYPE_CHECKING ones included (`vaekit` itself, which
    imports the public API, left out: nothing below imports it, see test_no_import_goes_up_a_rung)."""
    graph = {name: {m for _, m in all_imports(path)} & set(MODULES) - {name, "vaekit"}
             for name, path in MODULES.items()}
    circle = find_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_no_import_goes_up_a_rung() -> None:
    assert set(RUNG) - set(TOP) == {part(name) for name in MODULES} - set(TOP), "a part without a rung"
    offenders = upward_imports(MODULES)
    assert not offenders, "\n".join(offenders)


def test_no_circle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph.setdefault(part(name), set()).update(part(m) for _, m in all_imports(path))
    graph = {p: targets - {p} - set(TOP) for p, targets in graph.items() if p not in TOP}
    circle = find_circle(graph)
    assert circle is None, "package circle: " + " -> ".join(circle or [])


def test_the_checker_finds_a_circle(tmp_path: Path) -> None:
    """The graph above sees both kinds of import (so a circle could not hide in either)."""
    a = ast.parse("from vaekit.vae import prob\nimport vaekit.runs\nfrom vaekit.data.load import Dataset\n")
    found = [m for node in a.body for m in imported(node)]  # type: ignore[arg-type]
    assert found == ["vaekit.vae.prob", "vaekit.runs", "vaekit.data.load"]


def test_function_level_imports_say_why() -> None:
    offenders = [f"{path.relative_to(SRC)}:{line}: {text.strip()}" for path in MODULES.values()
                 for line, text in function_level_imports(path) if "#" not in text]
    assert not offenders, "\n".join(offenders)


def test_the_checker_finds_an_upward_import(tmp_path: Path) -> None:
    """Upward imports of every kind are found (so the check can fail), and a circle is."""
    package = tmp_path / "vaekit" / "vae"
    package.mkdir(parents=True)
    (package / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from vaekit.vae import prob\n"  # same rung: fine
        "from vaekit.errors import ConfigError\n"  # below: fine
        "from vaekit import runs\n"
        "if TYPE_CHECKING:\n"
        "    from vaekit.report.html import write_report\n"
        "def f():\n"
        "    import vaekit.cli  # a reason\n"
        "    from vaekit import __version__\n"
        "    from . import prob\n"
    )
    found = upward_imports({"vaekit.vae.bad": package / "bad.py"})
    assert [line.split(" imports ")[1].split(" ")[0] for line in found] == [
        "relatively", "vaekit.runs", "vaekit.report.html", "vaekit.cli", "vaekit"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("path", sorted((SRC / "commands").glob("[a-z]*.py")), ids=lambda p: p.stem)
def test_commands_are_thin(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= COMMAND_LINES
    # a command builds no model and draws nothing itself: it calls the library
    source = path.read_text()
    for banned in ("matplotlib.pyplot", "nn.Module", "torch.randn", "plt."):
        assert banned not in source, banned


def test_design_md_names_every_module() -> None:
    """docs/design.md's tree is the code's tree: every module of src/vaekit/ is named there, in
    its package's line (or, at the top level, on a line of its own)."""
    text = (SRC.parents[1] / "docs" / "design.md").read_text()
    missing = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.name != "__init__.py"
               and p.name not in text]
    assert not missing, f"docs/design.md does not name {missing}"


MODULE_LINES, FUNCTION_LINES = 450, 80


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_are_small(path: Path) -> None:
    """No module over MODULE_LINES lines, no function (or method) over FUNCTION_LINES."""
    text = path.read_text()
    assert len(text.splitlines()) <= MODULE_LINES
    long = [f"{fn.name}: {fn.end_lineno - fn.lineno + 1} lines" for fn in ast.walk(ast.parse(text))
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            and (fn.end_lineno or fn.lineno) - fn.lineno + 1 > FUNCTION_LINES]
    assert not long, long
