"""Checks shared by the tests of refused run directories: `cli_bad`, one CLI call that must exit 2
with one error sentence; `snapshot`, a directory's entries to compare before and after it;
`filled`, an argv template with `{run}` filled in; and `hold_run`, a second process holding a run
for writing, as a training does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hang import deadline
from vaekit.cli import main


def snapshot(path: Path) -> dict[str, bytes]:
    """Each entry of `path` by name: a regular file's bytes, anything else (a directory, a FIFO, a
    symbolic link) a marker; {} where `path` is not a directory."""
    return {p.name: p.read_bytes() if p.is_file() and not p.is_symlink() else b"<not a file>"
            for p in sorted(path.iterdir())} if path.is_dir() else {}


def filled(template: list[str], run: Path) -> list[str]:
    """`template` with `{run}` replaced by `run` in each argument."""
    return [a.format(run=run) for a in template]


def cli_bad(capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None], argv: list[str],
            *names: str, seconds: float = 30) -> str:
    """main(argv) exits 2 within `seconds` with one line on stderr: `vaekit CMD: error: <one sentence
    naming NAMES>`; that line is returned."""
    capsys.readouterr()
    with deadline(seconds):
        status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    prefix = f"vaekit {argv[0]}: error: "
    assert err.startswith(prefix), err
    one_sentence(err.removeprefix(prefix), *names)
    return err


def hold_run(run: Path) -> subprocess.Popen[str]:
    """A second process holding `run` for writing (`runs.locked`), as a training does, until its
    stdin is closed (close it, then wait for the process)."""
    code = ("import sys; from pathlib import Path; from vaekit import runs\n"
            f"with runs.locked(Path({str(run)!r})):\n    print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc
