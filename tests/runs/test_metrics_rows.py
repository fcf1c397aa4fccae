"""metrics.jsonl read on its own: which last line is a cut one (dropped) and which an edit
(refused)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError

ROW = '{"epoch": 1, "val_neg_elbo": 3.5}\n'


@pytest.mark.parametrize("tail", ['{"epoch": 2, "val_ne', "\x00" * 40, "\x00" * 40 + "\n", " \x00\x00 \n\n"],
                         ids=["cut", "nul", "nul-newline", "nul-spaces"])
def test_a_cut_last_line_or_nul_bytes_are_dropped(tmp_path: Path, tail: str) -> None:
    """A row cut by a kill has no newline (rows are appended whole with theirs); a power loss can
    leave NUL bytes where the file grew: neither is a row, and both go when a resume rewrites."""
    (tmp_path / runs.METRICS).write_text(ROW + tail)
    assert runs.read_metrics(tmp_path) == [json.loads(ROW)]
    runs.truncate_metrics(tmp_path, 1)
    assert (tmp_path / runs.METRICS).read_text() == ROW


@pytest.mark.parametrize("tail", ["not json\n", '{"epoch": 2, "val_ne\n', "{oops\r\n", "\x00{\n"])
def test_a_last_line_that_ends_with_its_newline_and_is_not_json_is_refused(tmp_path: Path, tail: str) -> None:
    """A last line that is whole (its newline written after it) and not JSON was edited: refused,
    naming the file and the line, as any other line is, by the readers and by a resume's rewrite."""
    path = tmp_path / runs.METRICS
    path.write_bytes((ROW + tail).encode())
    for read in (runs.read_metrics, lambda run: runs.truncate_metrics(run, 1)):
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: line 2 is not JSON"):
            read(tmp_path)
    assert path.read_bytes() == (ROW + tail).encode()


def test_a_cut_row_of_a_real_run_is_dropped_by_every_reader(tmp_path: Path) -> None:
    """A kill mid-append of epoch 3's row (of `--resume --epochs 3`): report and the explorer read
    the run, and a resume redoes epoch 3 over it, its rows whole again."""
    from vaekit.serve.explorer import Explorer

    run = make_run(tmp_path / "run")
    whole = (run / runs.METRICS).read_text()
    cut = whole.splitlines()[-1].replace('"epoch": 2', '"epoch": 3')[:40]
    (run / runs.METRICS).write_text(whole + cut)
    assert runs.read_metrics(run) == [json.loads(line) for line in whole.splitlines()]
    assert main(["report", str(run), "--k", "2", "--limit", "20"]) == 0
    assert len(Explorer.load(run).run.metrics) == 2
    assert main(["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
                 "--threads", "1", "--no-progress", "--epochs", "3", "--out", str(run), "--resume"]) == 0
    text = (run / runs.METRICS).read_text()
    assert text.startswith(whole) and text.endswith("\n") and cut not in text
    assert [r["epoch"] for r in runs.read_metrics(run)] == [1, 2, 3]
