"""`vaekit train --resume` of a run that has ended (stopped early, trained to its epochs, or to the
epochs its time budget planned): alone it says so and changes nothing; with more epochs than a
run trained to its epochs it trains on, as an uninterrupted run of as many; with a setting that
acts only while training and would do nothing there (--epochs not past the epochs trained or
beside an early stop that stays, --patience that does not lift it, --tensorboard, --threads, ...)
one sentence naming it and what would train the run on, exit 2, every file of the run unchanged."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_refusal import cli_bad, snapshot
from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.train import fit as fit_mod

RESUME = ["train", "--resume", "--no-progress", "--out"]


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained to its 2 epochs."""
    return make_run(tmp_path_factory.mktemp("trained") / "run")


@pytest.fixture(scope="module")
def stopped_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 40 epochs and patience 2 stopped early after epoch 3: its validation score (made
    up) only grows after epoch 1."""
    scores = iter([5.0, 6.0, 7.0])

    def rising(model: Any, x: Any, **_: Any) -> dict[str, float]:
        value = next(scores)
        return {"neg_elbo": value, "recon": value - 1, "kl": 1.0}

    config = TrainConfig()
    config.data.name, config.model.hidden, config.model.latent = "digits", [16], 2
    config.train.batch_size, config.train.threads, config.train.epochs, config.train.patience = 64, 1, 40, 2
    out = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fit_mod, "validate", rising)
        summary = fit_mod.fit(config, out, show_bar=False, log=lambda _: None)
    assert summary["epochs"] == 3 and "early stopping" in summary["stopped"]
    return out


@pytest.fixture
def trained(trained_once: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_once, tmp_path / "trained"))


@pytest.fixture
def stopped(stopped_once: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(stopped_once, tmp_path / "stopped"))


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[Path]:
    """A run trained to the epochs its time budget planned: 1 epoch, then resumed under a budget of
    half a second more than that epoch took."""
    out = make_run(tmp_path / "budgeted", epochs=1)
    spent = runs.load_checkpoint(out)[2]["progress"]["train_seconds"]
    config = runs.read_config(out)
    config.train.time_budget = spent + 0.5
    summary = fit_mod.fit(config, out, resume=True, show_bar=False, log=lambda _: None)
    assert summary["stopped"] is None and runs.read_config(out).train.epochs == summary["epochs"]
    yield out


def resumed(capsys: pytest.CaptureFixture[str], run: Path, *flags: str) -> str:
    """`train --resume --out RUN FLAGS` exits 0; what it printed."""
    capsys.readouterr()
    assert main([*RESUME, str(run), *flags]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", ["trained", "stopped", "budgeted"])
def test_resume_alone_leaves_an_ended_run_as_it_is(request: pytest.FixtureRequest,
                                                   capsys: pytest.CaptureFixture[str], kind: str) -> None:
    run = request.getfixturevalue(kind)
    before = snapshot(run)
    for _ in range(2):  # the same each time
        said = resumed(capsys, run)
        assert (f"{run}: the run already ended at epoch 3 (early stopping" if kind == "stopped"
                else "nothing to do") in said, said
        assert snapshot(run) == before


def test_more_epochs_train_a_run_trained_to_its_epochs_on(trained: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    resumed(capsys, trained, "--epochs", "4")
    assert [r["epoch"] for r in runs.read_metrics(trained)] == [1, 2, 3, 4]
    whole = make_run(tmp_path / "whole", epochs=4)  # the same run, never interrupted
    (a, _), (b, _) = (runs.read_tensors(r / runs.CHECKPOINT, "t") for r in (trained, whole))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_more_epochs_beside_an_early_stop_are_refused(stopped: Path, capsys: pytest.CaptureFixture[str],
                                                      one_sentence: Callable[..., None]) -> None:
    before = snapshot(stopped)
    err = cli_bad(capsys, one_sentence, [*RESUME, str(stopped), "--epochs", "60"], "--epochs", str(stopped))
    assert "stopped early at epoch 3 (patience 2)" in err, err
    assert "--patience of 3 or more (0 for none)" in err, err  # what lifts the stop (0: off)
    assert snapshot(stopped) == before
    # and the advice holds: --patience 0 lifts the stop, and the run trains on to --epochs
    assert main([*RESUME, str(stopped), "--epochs", "5", "--patience", "0"]) == 0
    assert [r["epoch"] for r in runs.read_metrics(stopped)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kind", ["trained", "stopped"])
def test_epochs_not_past_those_trained_are_refused(request: pytest.FixtureRequest,
                                                   capsys: pytest.CaptureFixture[str],
                                                   one_sentence: Callable[..., None], kind: str) -> None:
    run = request.getfixturevalue(kind)
    trained = runs.load_checkpoint(run)[2]["progress"]["epoch"]
    epochs = trained - 1 if kind == "trained" else trained  # 2 beside patience 2 is refused as such
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, [*RESUME, str(run), "--epochs", str(epochs)], "--epochs")
    assert f"is {epochs}, which does not go past the {trained} epochs the run has trained" in err, err
    assert snapshot(run) == before
    own = runs.read_config(run).train.epochs  # the run's own epochs: as if not given
    said = resumed(capsys, run, "--epochs", str(own))
    assert ("already ended" if kind == "stopped" else "nothing to do") in said, said
    assert snapshot(run) == before


@pytest.mark.parametrize(("kind", "flags", "fix"), [
    ("trained", ["--tensorboard"], "more --epochs"),
    ("trained", ["--checkpoint-every", "epoch"], "more --epochs"),
    ("trained", ["--threads", "2"], "more --epochs"),
    ("trained", ["--patience", "1"], "more --epochs"),
    ("stopped", ["--tensorboard"], "--patience of 3 or more"),
    ("stopped", ["--patience", "1"], "--patience of 3 or more"),  # a patience that does not lift the stop
    ("stopped", ["--time-budget", "1h"], "--patience of 3 or more"),
    ("budgeted", ["--threads", "2"], "a longer --time-budget"),
])
def test_a_training_setting_on_an_ended_run_is_refused(request: pytest.FixtureRequest,
                                                       capsys: pytest.CaptureFixture[str],
                                                       one_sentence: Callable[..., None], kind: str,
                                                       flags: list[str], fix: str) -> None:
    run = request.getfixturevalue(kind)
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, [*RESUME, str(run), *flags], f"({flags[0]})", fix)
    assert snapshot(run) == before, err


@pytest.mark.parametrize("damage", ["emptied", "cut", "edited"])
@pytest.mark.parametrize("kind", ["trained", "stopped"])
def test_an_ended_run_with_damaged_rows_is_refused_not_said_done(request: pytest.FixtureRequest,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 one_sentence: Callable[..., None],
                                                                 kind: str, damage: str) -> None:
    """A resume with nothing to train still holds metrics.jsonl against the checkpoint's record:
    'nothing to do', exit 0, would pass a run whose rows are gone or changed as whole."""
    run = request.getfixturevalue(kind)
    metrics = run / runs.METRICS
    text = metrics.read_text()
    metrics.write_text({"emptied": "", "cut": text.splitlines(keepends=True)[0],
                        "edited": text.replace('"epoch": 1,', '"epoch": 1, "note": 1,', 1)}[damage])
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, [*RESUME, str(run)], str(metrics))
    assert "nothing to do" not in err and "already ended" not in err, err
    assert snapshot(run) == before
