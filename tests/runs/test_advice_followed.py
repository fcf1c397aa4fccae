"""The advice of a reader's refusal, followed: each sentence below names a fix, and the test applies
it and runs the command again. A fix that leads to another refusal (train into a directory that
holds a run's files; a patience the finished run then refuses) or that names a run of the other
kind is a sentence that misleads."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cli_refusal import cli_bad, snapshot
from vaekit import runs
from vaekit.cli import main
from vaekit.config import TrainConfig

EVAL = ["--k", "2", "--limit", "20", "--no-probe"]  # `run` and `trained`: the fixtures of conftest.py


def test_a_run_without_its_config_is_told_to_put_it_back(run: Path, capsys: pytest.CaptureFixture[str],
                                                         one_sentence: Callable[..., None]) -> None:
    """Training into the directory, the old advice, is refused there (it holds a run's files)."""
    config = (run / runs.CONFIG).read_bytes()
    (run / runs.CONFIG).unlink()
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, ["eval", str(run), *EVAL], str(run), "put back the run's config.json",
                  "a new directory")
    assert f"--out {run}`" not in err, err
    cli_bad(capsys, one_sentence, ["train", "--data", "digits", "--epochs", "1", "--out", str(run)], str(run))
    assert snapshot(run) == before
    err = cli_bad(capsys, one_sentence, ["classify", "eval", str(run)], "put back the run's config.json")
    assert "`vaekit train --out DIR`" in err, err  # the kind of run its weights are, not the command's
    (run / runs.CONFIG).write_bytes(config)  # the advice: put it back
    assert main(["eval", str(run), *EVAL]) == 0


def test_a_run_without_its_model_file_is_told_to_train_elsewhere(
        run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    (run / runs.MODEL).unlink()
    err = cli_bad(capsys, one_sentence, ["sample", str(run), "-n", "2"], "deleted or moved")
    assert "train the run again into another --out" in err, err
    cli_bad(capsys, one_sentence, ["train", "--data", "digits", "--epochs", "1", "--out", str(run)], str(run))


def test_a_folder_of_runs_names_one_of_the_command_s_kind(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    assert main(["classify", "--data", "digits", "--epochs", "1", "--out", str(folder / "a-classifier"),
                 "--no-progress", "--json"]) == 0
    shutil.copytree(trained, folder / "b-vae")
    capsys.readouterr()
    err = cli_bad(capsys, one_sentence, ["eval", str(folder), *EVAL], "name one, such as")
    named = err.split("such as ")[1].rstrip(".")
    assert named == str(folder / "b-vae"), err  # not the classifier, listed first
    assert main(["eval", named, *EVAL]) == 0
    err = cli_bad(capsys, one_sentence, ["classify", "eval", str(folder)], "name one, such as")
    assert err.split("such as ")[1].rstrip(".") == str(folder / "a-classifier"), err
    only = tmp_path / "classifiers"  # as `classify --compare` leaves them: report reads either kind
    only.mkdir()
    shutil.copytree(folder / "a-classifier", only / "a-classifier")
    cli_bad(capsys, one_sentence, ["eval", str(only), *EVAL], "none of them of the kind `vaekit train`")
    err = cli_bad(capsys, one_sentence, ["report", str(only)], "name one, such as")
    named = err.split("such as ")[1].rstrip(".")
    assert named == str(only / "a-classifier"), err
    assert main(["report", named]) == 0


def test_a_folder_of_a_user_s_files_is_not_offered_for_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    err = cli_bad(capsys, one_sentence, ["eval", str(folder)], "no config.json", "a new or empty directory")
    assert f"--out {folder}`" not in err, err
    empty = tmp_path / "empty"
    empty.mkdir()
    cli_bad(capsys, one_sentence, ["eval", str(empty)], f"`vaekit train --out {empty}`")


def test_the_run_s_own_data_is_known_however_its_path_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Changed since training, an array named as trained (`u.npz`) was refused, but `./u.npz` and its
    absolute path were taken as other data and evaluated: the same file is the run's own data."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 8, 8), dtype=np.uint8)
    np.savez("u.npz", images=images, labels=np.arange(300) % 3)
    assert main(["train", "--data", "u.npz", "--epochs", "1", "--hidden", "8", "--latent", "2",
                 "--threads", "1", "--no-progress", "--out", "r"]) == 0
    np.savez("u.npz", images=255 - images, labels=np.arange(300) % 3)  # the data changed since
    capsys.readouterr()
    for name in ("u.npz", "./u.npz", str(tmp_path / "u.npz")):
        cli_bad(capsys, one_sentence, ["eval", "r", *EVAL, "--dataset", name], "is not the data")
    assert not (tmp_path / "r" / runs.EVAL).exists()
    from vaekit.data.load import same_source

    assert same_source("u.npz", os.path.join(".", "u.npz")) and not same_source("digits", "u.npz")
    assert not same_source("u.npz", "missing.npz") and same_source("digits", "digits")


def test_a_finished_run_resumed_with_a_patience_is_told_it_would_do_nothing(
        run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """Its patience rule said "give a patience below 2", which the finished run then refused."""
    before = snapshot(run)
    for patience in ("2", "1"):
        cli_bad(capsys, one_sentence, ["train", "--resume", "--out", str(run), "--patience", patience],
                "(--patience)", "would do nothing", "more --epochs")
    assert snapshot(run) == before
    assert main(["train", "--resume", "--out", str(run), "--patience", "2", "--epochs", "4",
                 "--no-progress"]) == 0


@pytest.mark.parametrize("text", ["{}", '{"run": {}}'])
def test_an_emptied_config_of_a_classifier_run_is_not_called_a_vae_s(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        text: str) -> None:
    """A config.json without "task" reads as a VAE's; emptied, it was named "the config of a VAE run
    ... copied from another run". It is an emptied or edited file; put back, the run evaluates."""
    out = tmp_path / "clf"
    assert main(["classify", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--json"]) == 0
    config = (out / runs.CONFIG).read_bytes()
    (out / runs.CONFIG).write_text(text)
    for argv in (["classify", "eval", str(out)], ["report", str(out)]):
        err = cli_bad(capsys, one_sentence, argv, "emptied or edited", "put back the config.json")
        assert "VAE" not in err and "copied" not in err, err
    (out / runs.CONFIG).write_bytes(config)
    assert main(["classify", "eval", str(out), "--json"]) == 0


def _without(path: Path, *names: str) -> None:
    """config.json at `path` with each 'section.key' or 'section' of `names` removed."""
    config = json.loads(path.read_text())
    for name in names:
        section, _, key = name.partition(".")
        config[section].pop(key) if key else config.pop(section)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("removed", [("train.epochs",), ("optim",), ("model.activation", "data.binarize")])
def test_a_key_removed_from_a_run_s_config_is_named_not_read_as_its_default(
        run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        removed: tuple[str, ...]) -> None:
    """Without train.epochs, a plain --resume of a 2-epoch run trained on to the default 10."""
    config = (run / runs.CONFIG).read_bytes()
    _without(run / runs.CONFIG, *removed)
    before = snapshot(run)
    for argv in (["eval", str(run), *EVAL], ["sample", str(run), "-n", "2"], ["report", str(run)],
                 ["train", "--resume", "--out", str(run), "--no-progress"]):
        err = cli_bad(capsys, one_sentence, argv, str(run / runs.CONFIG), *removed,
                      "put back the config.json the run wrote")
        assert "expected" not in err, err
    assert snapshot(run) == before
    (run / runs.CONFIG).write_bytes(config)  # the advice: put it back
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert runs.load_checkpoint(run)[2]["epoch"] == json.loads(config)["train"]["epochs"]


def test_a_key_removed_from_a_classifier_run_s_config_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    out = tmp_path / "clf"
    assert main(["classify", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--json"]) == 0
    _without(out / runs.CONFIG, "train.label_smoothing")
    for argv in (["classify", "eval", str(out)], ["classify", "--resume", "--out", str(out)]):
        cli_bad(capsys, one_sentence, argv, "train.label_smoothing", "put back the config.json")


def test_a_run_of_an_earlier_vaekit_is_read_without_the_keys_it_never_had(run: Path) -> None:
    """No run id: a config.json of a vaekit before one, whose keys may be fewer; the defaults fill them."""
    config = json.loads((run / runs.CONFIG).read_text())
    config.pop(runs.RUN_SECTION)
    config["model"].pop("autoregressive_window")
    (run / runs.CONFIG).write_text(json.dumps(config))
    assert runs.read_config(run).model.autoregressive_window == TrainConfig().model.autoregressive_window


def test_a_resume_that_changes_a_setting_names_its_flag_values_and_the_way_out(
        run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    """It named only 'optim.lr differ', and the keys a resume may change, not their flags."""
    lr = TrainConfig().optim.lr
    changed = ["--lr", str(lr * 10), "--epochs", "3", "--no-progress"]
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, ["train", "--resume", "--out", str(run), *changed],
                  f"--lr (optim.lr) is {lr * 10} here, {lr} in the run", "--epochs", "another --out")
    assert "differ" not in err and "train.epochs" not in err, err
    assert snapshot(run) == before
    config = json.loads((run / runs.CONFIG).read_text())  # the advice: the same run, another --out
    flags = ["--data", config["data"]["name"], "--hidden", ",".join(map(str, config["model"]["hidden"])),
             "--latent", str(config["model"]["latent"]), "--batch-size", str(config["train"]["batch_size"])]
    assert main(["train", *flags, *changed, "--out", str(tmp_path / "new")]) == 0


@pytest.mark.parametrize("section", [5, None, {"id": "xyz"}])
def test_a_damaged_run_id_is_told_to_put_back_the_config_not_to_remove_the_id(
        run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        section: object) -> None:
    """"or remove it" was offered, and a config.json without its id is then refused (the weights
    carry it)."""
    config = json.loads((run / runs.CONFIG).read_text())
    (run / runs.CONFIG).write_text(json.dumps({**config, runs.RUN_SECTION: section}))
    err = cli_bad(capsys, one_sentence, ["eval", str(run), *EVAL], "put back the config.json the run wrote")
    assert "remove" not in err, err
    (run / runs.CONFIG).write_text(json.dumps(config))
    assert main(["eval", str(run), *EVAL]) == 0


def test_a_classifier_config_without_its_task_is_named_edited_not_a_vae_s(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    """It was called the config of a VAE run copied from another run."""
    out = tmp_path / "clf"
    assert main(["classify", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--json"]) == 0
    config = (out / runs.CONFIG).read_bytes()
    _without(out / runs.CONFIG, "task")
    for argv in (["classify", "eval", str(out)], ["report", str(out)], ["eval", str(out)],
                 ["classify", "--resume", "--out", str(out)]):
        err = cli_bad(capsys, one_sentence, argv, 'lacks "task": "classify"', "put back the config.json")
        assert "VAE" not in err and "copied" not in err, err
    (out / runs.CONFIG).write_bytes(config)
    assert main(["classify", "eval", str(out), "--json"]) == 0


@pytest.mark.parametrize("flags", [["--k", "2"], ["--k", "2", "--limit", "20"], ["--limit", "20"]])
def test_report_s_advice_on_an_evaluated_run_evaluates_then_reports(
        run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        flags: list[str]) -> None:
    """"run `vaekit eval RUN` with it first" was followed and `report --k` then refused again."""
    assert main(["eval", str(run), *EVAL]) == 0
    err = cli_bad(capsys, one_sentence, ["report", str(run), *flags], f"leave {flags[0]}")
    commands = err.split("`")[1::2]
    assert commands == [f"vaekit eval {run} {' '.join(flags)}", f"vaekit report {run}"], err
    for command in commands:
        assert main(command.split()[1:] + (["--no-probe"] if " eval " in command else [])) == 0
