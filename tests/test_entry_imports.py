"""The `vaekit` program's start: the package's API loaded on first use, and a Ctrl-C that comes
while numpy and torch load, each checked in a second Python process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import vaekit

SRC = str(Path(vaekit.__file__).resolve().parents[1])


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_the_cli_module_loads_without_numpy_or_torch() -> None:
    done = python("import sys, vaekit.cli; print(sorted({'numpy', 'torch'} & set(sys.modules)))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_api_names_are_the_modules_own() -> None:
    from vaekit.runs import load_run
    from vaekit.train.fit import fit
    assert vaekit.load_run is load_run and vaekit.fit is fit
    assert set(vaekit.__all__) <= set(dir(vaekit))
    try:
        vaekit.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown name of the package was found")


def test_a_ctrl_c_while_torch_loads_is_one_line_and_status_130() -> None:
    """The SIGINT is sent from inside the import step, so it lands there on every machine."""
    done = python("import os, signal, vaekit.cli as cli\n"
                  "def cut():\n"
                  "    os.kill(os.getpid(), signal.SIGINT)\n"
                  "    cli._import_numpy_and_torch()\n"
                  "cli.HEAVY_IMPORTS = cut\n"
                  "cli.entry()", "arch", "--input", "1,8,8", "Flatten()", "Linear(4)")
    assert done.returncode == 130, done.stderr
    assert done.stderr == "vaekit: interrupted\n" and done.stdout == ""


def test_without_a_ctrl_c_the_command_runs() -> None:
    done = python("import vaekit.cli as cli; cli.entry()",
                  "arch", "--input", "1,8,8", "Flatten()", "Linear(4)")
    assert done.returncode == 0 and "Linear" in done.stdout, done.stderr
