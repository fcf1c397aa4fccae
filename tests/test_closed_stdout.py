"""`vaekit ... | head -1`: a reader that leaves after the first line. The command stops as the Python
docs' "Note on SIGPIPE" recommends (status 1, no traceback), and what it had saved stays readable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vaekit import runs

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "4", "--batch-size", "128",
         "--threads", "1", "--no-progress"]


def test_a_reader_that_leaves_after_the_first_line_gets_no_traceback(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "vaekit", *TRAIN, "--epochs", "3", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = proc.stdout.readline()  # the run's first line, before any epoch is trained
        proc.stdout.close()  # as `head -1` does: every later write meets a closed pipe
        err = proc.stderr.read()
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert str(out) in first
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert status == 1, err
    # the epoch logged into the closed pipe was saved before its line: the run is whole and readable
    state = json.loads((out / runs.CHECKPOINT_JSON).read_text())
    rows = runs.read_metrics(out)
    assert [r["epoch"] for r in rows] == list(range(1, state["epoch"] + 1)) and rows
    assert runs.load_run(out, device="cpu").model is not None
