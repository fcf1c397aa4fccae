"""A resume whose write of the model fails (a full disk: RLIMIT_FSIZE in a second process) leaves
metrics.jsonl a row past the run's checkpoint and model; the readers say which epoch they use in
one note on stderr, a report draws the rows up to the model's epoch, and a resume redoes the rest.
The epochs are read here from checkpoint.json and metrics.jsonl as plain JSON."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_refusal import hold_run
from eval_runs import make_classifier_run, make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.report.html import write_report
from vaekit.train.fit import fit

LIMIT = 4096  # bytes a file may grow to: a metrics row fits, the model file does not


def _small_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def _epochs(run: Path) -> tuple[int, int]:
    """(checkpoint.json's epoch, the last row's epoch of metrics.jsonl)."""
    rows = [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]
    return json.loads((run / runs.CHECKPOINT_JSON).read_text())["epoch"], rows[-1]["epoch"]


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch run resumed to 3 epochs by a process whose files may not pass LIMIT bytes."""
    run = make_run(tmp_path_factory.mktemp("runs") / "run", epochs=1, hidden=32)
    assert (run / runs.MODEL).stat().st_size > LIMIT
    src = str(Path(__file__).resolve().parents[2] / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    argv = ["train", "--resume", "--data", "digits", "--epochs", "3", "--out", str(run), "--no-progress",
            "--threads", "1"]
    done = subprocess.run([sys.executable, "-m", "vaekit", *argv], preexec_fn=_small_files,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "File too large" in done.stderr, done.stderr
    assert _epochs(run) == (1, 2)  # the row of epoch 2 was written, the model and checkpoint were not
    return run


@pytest.fixture
def run(cut: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cut, tmp_path / "run"))


def _notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("note: ")]


def test_eval_says_which_epoch_it_evaluates(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_epoch, last = _epochs(run)
    assert main(["eval", str(run), "--k", "5", "--limit", "20", "--no-probe", "--no-progress"]) == 0
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 1, notes
    assert f"rows up to epoch {last}" in notes[0] and f"stop at epoch {model_epoch}" in notes[0]
    assert f"`vaekit train --resume --out {run}` redoes epoch {last}" in notes[0]


def test_a_run_being_trained_is_said_to_be_so_not_cut_off(run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Rows past the checkpoint while another process holds the run are a training between its row
    and its checkpoint: the note says the run is being trained, and advises no resume."""
    model_epoch, last = _epochs(run)
    holder = hold_run(run)
    try:
        assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "grid.png")]) == 0
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 1 and "is being trained by another process" in notes[0], notes
    assert f"rows up to epoch {last}" in notes[0] and f"through epoch {model_epoch}" in notes[0]
    assert "--resume" not in notes[0] and "cut off" not in notes[0]


def test_report_draws_the_rows_up_to_the_model(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_epoch, _ = _epochs(run)
    page = write_report(run, k=5, limit=20, log=lambda _m: None).read_text()  # evaluates first: 2 loads
    assert f"{model_epoch} epochs" in page and f"{model_epoch + 1} epochs" not in page
    assert len(_notes(capsys.readouterr().err)) == 1
    assert [r["epoch"] for r in runs.load_run(run).metrics] == list(range(1, model_epoch + 1))


def test_a_resume_redoes_the_rows_and_the_note_goes(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = runs.read_config(run, "vae")
    assert isinstance(config, TrainConfig)
    fit(config, run, resume=True, show_bar=False, log=lambda _m: None)
    assert _epochs(run) == (3, 3)
    runs.load_run(run)
    assert _notes(capsys.readouterr().err) == []


def test_a_classifier_row_past_its_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = make_classifier_run(tmp_path / "clf", epochs=1)
    capsys.readouterr()
    config = runs.read_config(out, "classify")
    config.train.epochs = 2
    runs.write_config(out, config)  # as a resume writes it, before the rows of its epochs
    row = json.loads((out / runs.METRICS).read_text().splitlines()[-1])
    runs.append_metrics(out, {**row, "epoch": 2})  # a row appended as training appends it
    assert main(["classify", "eval", str(out)]) == 0
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 1 and "`vaekit classify --resume" in notes[0] and "redoes epoch 2" in notes[0]
