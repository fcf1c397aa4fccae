"""A run trained on a user's file or folder records where it lies, not the path as typed relative
to the working directory: eval, report and resume find it from any directory, a resume that names
it another way keeps the run's name, and every reader of the run's own data (the explorer too)
refuses the data changed since training, with advice the reader can follow."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cli_refusal import cli_bad
from vaekit import runs
from vaekit.cli import main

TRAIN = ["--epochs", "1", "--hidden", "16", "--latent", "2", "--threads", "1", "--no-progress"]
EVAL = ["--k", "2", "--no-probe"]


def _array(path: Path, seed: int) -> Path:
    images = np.random.default_rng(seed).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    np.savez(path, images=images)
    return path


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run trained on `d.npz`, typed relative to the working directory `tmp_path/work`."""
    work = tmp_path / "work"
    work.mkdir()
    _array(work / "d.npz", 0)
    monkeypatch.chdir(work)
    assert main(["train", "--data", "d.npz", "--out", "run", *TRAIN]) == 0
    return work / "run"


def test_the_run_records_where_its_data_lies(trained: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """It recorded "d.npz", read later from the working directory: from another, the data was
    missing, or another d.npz there was called the run's changed."""
    name = json.loads((trained / runs.CONFIG).read_text())["data"]["name"]
    assert name == str(trained.parent / "d.npz") and os.path.isabs(name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _array(elsewhere / "d.npz", 1)  # another file of that name, where the command now runs
    monkeypatch.chdir(elsewhere)
    assert main(["eval", str(trained), *EVAL]) == 0
    assert main(["train", "--resume", "--out", str(trained), "--epochs", "2", "--no-progress"]) == 0


@pytest.mark.parametrize("written", ["d.npz", "./d.npz", "../work/d.npz"])
def test_a_resume_naming_the_data_another_way_keeps_the_run_s_name(trained: Path, written: str) -> None:
    before = json.loads((trained / runs.CONFIG).read_text())["data"]["name"]
    assert main(["train", "--resume", "--out", "run", "--data", written, "--epochs", "2",
                 "--no-progress"]) == 0
    assert json.loads((trained / runs.CONFIG).read_text())["data"]["name"] == before
    assert main(["eval", "run", *EVAL]) == 0  # the model file records that name too: they agree


def test_the_explorer_refuses_the_run_s_data_changed_since_training(
        trained: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """eval refused it; the explorer showed other images than the run's test split without a word."""
    from vaekit.serve.explorer import Explorer

    kept = (trained.parent / "d.npz").read_bytes()
    _array(trained.parent / "d.npz", 2)
    for argv in (["eval", str(trained), *EVAL], ["serve", str(trained), "--port", "0"]):
        err = cli_bad(capsys, one_sentence, argv, "is not the data", "put back that data")
        assert "--dataset`" not in err or argv[0] == "eval", err  # advice the command can follow
    (trained.parent / "d.npz").write_bytes(kept)  # the advice: put it back
    assert Explorer.load(trained).images.shape[1:] == (1, 8, 8)


def test_a_report_of_a_run_whose_data_moved_names_it_gone_not_other_data(
        trained: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """It said eval.json "was computed on D, which is no longer there, not on D that the run was
    trained on", one path twice, and its advice (`vaekit eval RUN`) was refused for the missing D."""
    assert main(["eval", str(trained), *EVAL]) == 0
    data = trained.parent / "d.npz"
    data.rename(trained.parent / "moved.npz")
    for argv in (["report", str(trained)], ["eval", str(trained), *EVAL]):
        err = cli_bad(capsys, one_sentence, argv, f"{data}: no such file")
        assert "no longer there" not in err, err
    (trained.parent / "moved.npz").rename(data)  # put back where the run recorded it
    assert main(["report", str(trained)]) == 0


def test_every_reader_of_a_run_whose_data_moved_says_where_the_run_records_it(
        trained: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """They said only "D: no such file or folder; expected a dataset name, a folder of images, or a
    .npy/.npz array file", the path read from config.json without saying so, and no way out."""
    data = trained.parent / "d.npz"
    data.rename(trained.parent / "moved.npz")
    for argv in (["eval", str(trained), *EVAL], ["report", str(trained)],
                 ["serve", str(trained), "--port", "0"],
                 ["train", "--resume", "--out", str(trained), "--epochs", "2", "--no-progress"]):
        cli_bad(capsys, one_sentence, argv, f"{data}: no such file", "config.json of", "put it back there")
    (trained.parent / "moved.npz").rename(data)  # the advice
    assert main(["train", "--resume", "--out", str(trained), "--epochs", "2", "--no-progress"]) == 0


def test_the_run_s_own_changed_data_named_by_dataset_is_not_sent_back_to_dataset(
        trained: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """`eval RUN --dataset D`, D the run's own data changed since, was told to "evaluate other data
    with `vaekit eval RUN --dataset DATA`", the command it was; a copy of D elsewhere is other data."""
    data = trained.parent / "d.npz"
    _array(data, 3)
    for argv in (["eval", str(trained), "--dataset", str(data), *EVAL],
                 ["report", str(trained), "--dataset", "d.npz", "--k", "2"]):
        err = cli_bad(capsys, one_sentence, argv, "is not the data", "a copy of it at another path")
        assert "--dataset DATA`" not in err, err
    copy = trained.parent / "copy.npz"
    copy.write_bytes(data.read_bytes())  # the advice
    assert main(["eval", str(trained), "--dataset", str(copy), *EVAL]) == 0
