"""When a run writes its checkpoint (`vaekit.train.checkpoints`): the policy against a clock given
by hand, and runs whose checkpoints are spaced out held against runs that write one every epoch
(the same weights, the same best model, exact resume from the last one), and the run's clock
counting the writes."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_train import assert_same_run, quiet, small

from vaekit import runs
from vaekit.config import checkpoint_interval
from vaekit.data.load import Dataset
from vaekit.errors import ConfigError
from vaekit.train import fit as train_mod
from vaekit.train.checkpoints import CHECKPOINT_SHARE, BestWeights, CheckpointPolicy
from vaekit.train.fit import fit

# ----------------------------------------------------------------------------- the policy


def test_first_and_last_epochs_always_write() -> None:
    policy = CheckpointPolicy(3600.0)
    policy.last, policy.cost = 100.0, 0.5
    assert policy.due(first=True, last=False, now=100.1)
    assert policy.due(first=False, last=True, now=100.1)
    assert not policy.due(first=False, last=False, now=100.1)


def test_a_fixed_interval_waits_that_long_after_the_last_write() -> None:
    policy = CheckpointPolicy(10.0)
    policy.last, policy.cost = 50.0, 0.001
    assert not policy.due(False, False, now=59.9)
    assert policy.due(False, False, now=60.0)


def test_every_epoch_is_an_interval_of_zero() -> None:
    policy = CheckpointPolicy(checkpoint_interval("epoch"))
    policy.last, policy.cost = 50.0, 10.0  # however long a write takes
    assert policy.due(False, False, now=50.0)


def test_auto_keeps_the_writes_under_their_share_of_the_time() -> None:
    """auto: the next write once cost / CHECKPOINT_SHARE has passed, so writes take at most the
    share: over a long run, cost / (cost + interval) <= CHECKPOINT_SHARE."""
    policy = CheckpointPolicy(checkpoint_interval("auto"))
    policy.last, policy.cost = 10.0, 0.2
    interval = 0.2 / CHECKPOINT_SHARE
    assert not policy.due(False, False, now=10.0 + interval * 0.99)
    assert policy.due(False, False, now=10.0 + interval)
    assert policy.cost / (policy.cost + interval) <= CHECKPOINT_SHARE


def test_write_measures_its_cost() -> None:
    policy = CheckpointPolicy()
    policy.write(time.sleep, 0.05)
    assert policy.cost >= 0.05 and policy.reserve == policy.cost
    assert policy.last is not None and policy.last <= time.perf_counter()


@pytest.mark.parametrize(("text", "seconds"), [("auto", None), ("epoch", 0.0), ("30s", 30.0), ("5m", 300.0),
                                               ("90", 90.0), ("1h30m", 5400.0), ("Epoch", 0.0),
                                               ("AUTO", None), ("1e3", 1000.0), ("30S", 30.0)])
def test_checkpoint_every_values(text: str, seconds: float | None) -> None:
    """The words in any case, as a duration's units are; seconds as a number flag writes them."""
    assert checkpoint_interval(text) == seconds


@pytest.mark.parametrize("text", ["-5", "soon", "1h1h"])
def test_the_checkpoint_every_flag_is_named_as_a_flag(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    from vaekit.cli import main

    assert main(["train", "--data", "digits", "--checkpoint-every", text]) == 2
    err = capsys.readouterr().err
    assert "error: --checkpoint-every " in err and "train.checkpoint_every" not in err, err


@pytest.mark.parametrize("text", ["", "soon", "-5s", "nan", "10 parsecs", "Epochs"])
def test_checkpoint_every_refuses_anything_else(text: str) -> None:
    with pytest.raises(ConfigError, match="train.checkpoint_every must be auto, epoch or a duration"):
        checkpoint_interval(text)


@pytest.mark.parametrize("text", ["2000000000s", "9" * 400, "40000000h"])
def test_checkpoint_every_past_the_longest_duration_names_the_bound(text: str) -> None:
    """A duration it is, too long: the sentence says so (and shortens a long value), not that it
    is no duration."""
    with pytest.raises(ConfigError) as info:
        checkpoint_interval(text)
    assert "at most 1e+09 seconds" in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(("written", "words"), [
    ("-3", ["must be auto, epoch or a duration", "got -3."]), ("nan", ["must be auto, epoch", "got nan."]),
    ("1e300", ["must be a duration of at most 1e+09 seconds", "got 1e+300."]),
    ("inf", ["must be a duration of at most 1e+09 seconds", "got inf."])])
def test_checkpoint_every_as_a_toml_number_is_quoted_as_written(tmp_path: Path, written: str,
                                                                 words: list[str]) -> None:
    """`checkpoint_every = -3` was quoted as the text "-3", and 1e300 (a duration, too long) was told
    it is none; the number is quoted as the file has it, a long one given the bound's sentence."""
    from vaekit.config import load_toml

    path = tmp_path / "c.toml"
    path.write_text(f"[train]\ncheckpoint_every = {written}\n")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: train.checkpoint_every ") and '"' not in message, message
    assert all(word in message for word in words), message


@pytest.mark.parametrize(("written", "text"), [("30", "30"), ("2.5", "2.5"), ("1e-5", "0.00001")])
def test_checkpoint_every_as_a_toml_number_is_its_seconds(tmp_path: Path, written: str, text: str) -> None:
    """A number of seconds is kept as a duration's text: 1e-5 was "1e-05", which no duration reads."""
    from vaekit.config import load_toml

    path = tmp_path / "c.toml"
    path.write_text(f"[train]\ncheckpoint_every = {written}\n")
    assert load_toml(path).train.checkpoint_every == text
    assert checkpoint_interval(text) == float(written)


def test_checkpoint_every_with_a_unit_twice_names_the_order() -> None:
    with pytest.raises(ConfigError, match=r"train.checkpoint_every gives each unit at most once"):
        checkpoint_interval("5m5m")


def test_best_weights_are_a_copy_until_taken() -> None:
    model = torch.nn.Linear(3, 2)
    best = BestWeights()
    assert best.take(model, improved=False) is None  # nothing better since the last write
    best.keep(model)
    with torch.no_grad():
        model.weight.add_(1.0)  # the run trains on
    kept = best.take(model, improved=False)
    assert kept is not None and not torch.equal(kept["weight"], model.weight)
    assert best.take(model, improved=False) is None  # written once
    assert torch.equal(best.take(model, improved=True)["weight"], model.weight)  # type: ignore[index]


# ----------------------------------------------------------------------------- runs


def _count_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    epochs: list[int] = []
    real = runs.save_checkpoint

    def counted(out: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        epochs.append(state["epoch"])
        real(out, model, optimizer, state)

    monkeypatch.setattr(runs, "save_checkpoint", counted)
    return epochs


def test_spaced_checkpoints_end_as_every_epoch_does(tmp_path: Path, digits: Dataset,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An hour between checkpoints: written after epochs 1 and 5 only, and the run ends with the
    same weights, optimizer, metrics and best model (held in memory between writes) as a run that
    writes every epoch."""
    fit(small(train__epochs=5, train__checkpoint_every="epoch"), tmp_path / "every", log=quiet,
        dataset=digits)
    written = _count_checkpoints(monkeypatch)
    fit(small(train__epochs=5, train__checkpoint_every="1h"), tmp_path / "spaced", log=quiet, dataset=digits)
    assert written == [1, 5]
    assert_same_run(tmp_path / "every", tmp_path / "spaced")
    best = runs.load_checkpoint(tmp_path / "spaced")[2]["progress"]["best_epoch"]
    assert 1 < best  # the best model written at the end came from the copy or the last epoch


def test_a_kill_resumes_exactly_from_the_last_spaced_checkpoint(tmp_path: Path, digits: Dataset,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed in epoch 4 of a run whose only checkpoint is epoch 1's: the resumed run redoes epochs
    2-4 (their metrics rows rewritten) and ends as the uninterrupted one."""
    changes = dict(train__epochs=5, train__checkpoint_every="1h", optim__schedule="cosine")
    fit(small(**changes), tmp_path / "full", log=quiet, dataset=digits)
    real = train_mod.train_epoch

    def killed(*args: Any, **kwargs: Any) -> Any:
        if args[9] == 4:  # the epoch argument
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(small(**changes), tmp_path / "part", log=quiet, dataset=digits)
    monkeypatch.setattr(train_mod, "train_epoch", real)
    assert runs.load_checkpoint(tmp_path / "part")[2]["epoch"] == 1
    assert len(runs.read_metrics(tmp_path / "part")) == 3  # rows past the checkpoint, to be redone
    fit(small(**changes), tmp_path / "part", resume=True, log=quiet, dataset=digits)
    assert_same_run(tmp_path / "full", tmp_path / "part")


def test_a_divergence_names_the_checkpoint_that_is_kept(tmp_path: Path, digits: Dataset,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.errors import DivergenceError
    from vaekit.train import engines

    real = engines.BackpropEngine.loss_and_grads
    calls = {"n": 0}

    def nan_in_epoch_3(self: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        sums = real(self, *args, **kwargs)
        return sums * math.nan if calls["n"] > 2 * 23 else sums

    monkeypatch.setattr(engines.BackpropEngine, "loss_and_grads", nan_in_epoch_3)
    with pytest.raises(DivergenceError, match=r"the last good checkpoint \(epoch 1\) is kept"):
        fit(small(train__epochs=5, train__checkpoint_every="1h"), tmp_path / "r", log=quiet, dataset=digits)
    assert runs.load_checkpoint(tmp_path / "r")[2]["epoch"] == 1


def test_the_run_clock_counts_checkpoint_writes(tmp_path: Path, digits: Dataset,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write made 0.2 s slower: the run's seconds hold the writes before the last one (whose
    own seconds it records), beyond the epochs and their validation."""
    real = runs.save_checkpoint

    def slow(*args: Any) -> None:
        time.sleep(0.2)
        real(*args)

    monkeypatch.setattr(runs, "save_checkpoint", slow)
    summary = fit(small(train__epochs=3, train__checkpoint_every="epoch"), tmp_path / "r", log=quiet,
                  dataset=digits)
    epochs = sum(r["epoch_seconds"] for r in runs.read_metrics(tmp_path / "r"))
    assert summary["train_seconds"] >= epochs + 2 * 0.2


def test_checkpoint_every_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              one_sentence: Any) -> None:
    from vaekit.cli import main

    args = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "r")]
    assert main([*args, "--checkpoint-every", "soon"]) == 2
    err = capsys.readouterr().err
    one_sentence(err)
    assert "--checkpoint-every must be auto, epoch or a duration" in err and '"soon"' in err
    assert not (tmp_path / "r").exists()
    assert main([*args, "--checkpoint-every", "30s"]) == 0
    assert runs.read_config(tmp_path / "r").train.checkpoint_every == "30s"


def test_checkpoint_every_in_a_toml_file(tmp_path: Path) -> None:
    """Seconds as a TOML number are a duration; anything else is one sentence naming the file."""
    from vaekit.config import load_toml

    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[train]\ncheckpoint_every = 30\n")
    assert load_toml(good).train.checkpoint_every == "30"
    assert checkpoint_interval(load_toml(good).train.checkpoint_every) == 30.0
    for value in ("-5", "nan", '"soon"', "true"):
        bad.write_text(f"[train]\ncheckpoint_every = {value}\n")
        with pytest.raises(ConfigError, match="bad.toml"):
            load_toml(bad)
