"""The two walks of the house (design.md, "Layout"): a config through `vaekit.train.fit.fit` and a
run directory through `vaekit.evaluate.run.evaluate_run`, each at most 3 climbs back.

Measured two ways:
- by the imports (`static_climbs`): an import A -> B from the modules the walk's module reaches
  climbs back where B's package can reach A's (a chain of imports that left B's package comes
  back to it);
- by the calls (`climbs`, traced with `sys.setprofile`): a call that enters a vaekit package already
  on the stack below a different package (it had left it: evaluate -> runs -> evaluate), or a
  package a rung above its caller's (a lower layer calling up through a callback: runs -> classify).
Each distinct (caller module, callee module) pair is one climb; the sets name them, so a failure
says which calls or imports.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from test_layout import MODULES, RUNG, all_imports, part

LIMIT = 3


def static_climbs(start: str, modules: dict[str, Path] = MODULES) -> set[tuple[str, str]]:
    """The import edges A -> B, among the modules `start` reaches, whose B's package reaches A's."""
    graph = {name: {target for _line, target in all_imports(path) if target in modules}
             for name, path in modules.items()}
    reached, todo = set(), [start]
    while todo:
        if (name := todo.pop()) not in reached:
            reached.add(name)
            todo += graph[name]
    packages: dict[str, set[str]] = {}
    for name in reached:
        packages.setdefault(part(name), set()).update(part(t) for t in graph[name])

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            if (p := todo.pop()) == b:
                return True
            if p not in seen:
                seen.add(p)
                todo += packages.get(p, ())
        return False

    return {(a, b) for a in reached for b in graph[a] if part(a) != part(b) and reaches(part(b), part(a))}


def _vaekit_module(frame: FrameType | None) -> str | None:
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return name if name == "vaekit" or name.startswith("vaekit.") else None


def climbs(walk: Callable[[], Any]) -> set[tuple[str, str]]:
    """The distinct (caller, callee) vaekit module pairs of `walk()` that climb back (see above)."""
    found: set[tuple[str, str]] = set()

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event != "call" or (callee := _vaekit_module(frame)) is None:
            return
        stack, back = [], frame.f_back
        while back is not None:  # the vaekit modules below this call, nearest first
            if (module := _vaekit_module(back)) is not None:
                stack.append(module)
            back = back.f_back
        if not stack:
            return
        caller, here = stack[0], part(callee)
        left = [part(m) for m in stack]
        reentered = here != left[0] and here in left[1:]
        upward = RUNG.get(here, -1) > RUNG.get(left[0], -1)
        if reentered or upward:
            found.add((caller, callee))

    sys.setprofile(profile)
    try:
        walk()
    finally:
        sys.setprofile(None)
    return found


def _tiny_config() -> Any:
    from vaekit.config import TrainConfig

    config = TrainConfig()
    config.data.name = "digits"
    config.model.hidden = [16]
    config.model.latent = 2
    config.train.epochs = 1
    config.train.batch_size = 64
    config.train.threads = 1
    return config


def test_the_walks_climb_back_by_no_import() -> None:
    for start in ("vaekit.train.fit", "vaekit.evaluate.run"):
        found = static_climbs(start)
        assert len(found) <= LIMIT, (start, sorted(found))


def test_the_import_walk_sees_a_circle(tmp_path: Path) -> None:
    """runs -> classify -> runs: the import back into runs is a climb (so is the one into classify)."""
    files = {"vaekit.train.fit": "import vaekit.runs\n", "vaekit.runs": "import vaekit.classify.models\n",
             "vaekit.classify.models": "import vaekit.runs\nimport vaekit.vae.prob\n", "vaekit.vae.prob": ""}
    modules = {}
    for name, text in files.items():
        (path := tmp_path / f"{name}.py").write_text(text)
        modules[name] = path
    assert static_climbs("vaekit.train.fit", modules) == {("vaekit.classify.models", "vaekit.runs"),
                                                          ("vaekit.runs", "vaekit.classify.models")}


def test_a_config_through_fit_climbs_back_at_most_3_times(tmp_path: Path) -> None:
    from vaekit.train.fit import fit

    config = _tiny_config()
    found = climbs(lambda: fit(config, tmp_path / "run", show_bar=False, log=lambda _m: None))
    assert len(found) <= LIMIT, sorted(found)


def test_a_run_directory_through_evaluate_run_climbs_back_at_most_3_times(tmp_path: Path) -> None:
    from vaekit.evaluate.run import evaluate_run
    from vaekit.train.fit import fit

    fit(_tiny_config(), tmp_path / "run", show_bar=False, log=lambda _m: None)
    found = climbs(lambda: evaluate_run(tmp_path / "run", k=2, limit=50, progress=False, threads=1))
    assert len(found) <= LIMIT, sorted(found)


def _callback() -> None:
    target()  # noqa: F821 (a global of the copy made in test_the_tracer_sees_a_climb)


def test_the_tracer_sees_a_climb() -> None:
    """A call from a module of a lower rung (here a function whose globals say it is
    `vaekit.device`'s) into a higher one (`vaekit.report.page`) is one climb; a call down is none."""
    from vaekit.report import page

    low = types.FunctionType(_callback.__code__, {"__name__": "vaekit.device",
                                                    "target": lambda: page.esc("x")})
    assert climbs(low) == {("vaekit.device", "vaekit.report.page")}
    down = types.FunctionType(_callback.__code__, {"__name__": "vaekit.report.html",
                                                     "target": lambda: page.esc("x")})
    assert climbs(down) == set()
