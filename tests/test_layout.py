"""The house (design.md, "Layout"): the package's tree, its import graph and its commands, checked
from the source files themselves (ast), so that a change that breaks a rule of the layout fails here.

- the subpackages are the parts of the sheet and of a run, and tests/ mirrors them;
- module-level imports between vaekit modules form no circle;
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
PACKAGES = {"arch", "data", "vae", "train", "evaluate", "report", "checks", "classify", "serve", "commands"}
COMMAND_LINES = 140  # "under about 100 lines": `vaekit train` is 139 with its 50-line flag table (data)


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


def module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks import nothing at run time
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.update(imported(node))
    return out


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
    assert loose == {"__init__", "__main__", "cli", "config", "device", "errors", "runs"}


def test_tests_mirror_the_packages() -> None:
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders <= PACKAGES, folders - PACKAGES
    for folder in folders:
        assert list((TESTS / folder).glob("test_*.py")), folder


def test_no_import_circle() -> None:
    graph = {name: module_level_imports(path) & set(MODULES) - {name} for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_checker_finds_a_circle(tmp_path: Path) -> None:
    """The graph above sees both kinds of import (so a circle could not hide in either)."""
    a = ast.parse("from vaekit.vae import prob\nimport vaekit.runs\nfrom vaekit.data.load import Dataset\n")
    found = [m for node in a.body for m in imported(node)]  # type: ignore[arg-type]
    assert found == ["vaekit.vae.prob", "vaekit.runs", "vaekit.data.load"]


def test_function_level_imports_say_why() -> None:
    offenders = [f"{path.relative_to(SRC)}:{line}: {text.strip()}" for path in MODULES.values()
                 for line, text in function_level_imports(path) if "#" not in text]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("path", sorted((SRC / "commands").glob("[a-z]*.py")), ids=lambda p: p.stem)
def test_commands_are_thin(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= COMMAND_LINES
    # a command builds no model and draws nothing itself: it calls the library
    source = path.read_text()
    for banned in ("matplotlib.pyplot", "nn.Module", "torch.randn", "plt."):
        assert banned not in source, banned
