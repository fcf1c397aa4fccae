"""The benchmarks of bench/ (not a package) loaded by path for their tests, once per name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """bench/NAME.py as the module NAME (the one already loaded, if any)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def usage_error(bench: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run bench.main(argv), expect argparse's exit 2, and return the last line of stderr, which
    must be one "error:" sentence naming the flag (argv[0]) or its value (argv[1])."""
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert ": error: " in err[-1] and (argv[0] in err[-1] or argv[1] in err[-1]), err
    return err[-1]
