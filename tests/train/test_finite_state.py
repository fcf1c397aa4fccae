"""A run whose weights, optimizer state or validation scores stop being finite while its loss stays
finite (`vaekit.train.loop.check_finite_state`): it stops like a NaN loss, in one sentence naming
the epoch, and writes nothing of that epoch, so the checkpoint it keeps is one resume accepts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from test_train import quiet, small
from torch import nn

from vaekit import runs
from vaekit.cli import main
from vaekit.data.load import Dataset
from vaekit.errors import DivergenceError
from vaekit.train import fit as train_mod
from vaekit.train.fit import fit
from vaekit.train.loop import check_finite_state


def _stepped() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A real torch module and Adam after one step: weights and both moments present."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).square().sum().backward()
    optimizer.step()
    return model, optimizer


def test_finite_weights_state_and_scores_pass() -> None:
    model, optimizer = _stepped()
    check_finite_state(model, optimizer, {"val_neg_elbo": 1.5, "val_kl": 0.0}, 3, 2)


@pytest.mark.parametrize("spoil, named", [
    (lambda m, o: o.state[m[0].weight]["exp_avg_sq"].fill_(math.inf), "the optimizer's state"),
    (lambda m, o: m[0].bias.data.fill_(math.nan), "the model's weights"),
    (lambda m, o: m[1].running_var.fill_(math.inf), "the model's weights"),  # a buffer, not a parameter
])
def test_a_tensor_that_is_not_finite_stops_the_run(spoil: Any, named: str, one_sentence: Any) -> None:
    model, optimizer = _stepped()
    spoil(model, optimizer)
    with pytest.raises(DivergenceError) as caught:
        check_finite_state(model, optimizer, {"val_neg_elbo": 1.5}, 3, 2)
    message = str(caught.value)
    one_sentence(message, named, "epoch 3", "(epoch 2) is kept", "--lr")


def test_a_validation_score_that_is_not_finite_stops_the_run() -> None:
    model, optimizer = _stepped()
    with pytest.raises(DivergenceError, match=r"the validation val_loss \(inf\) became NaN or infinite "
                       r"in epoch 1; .*no checkpoint had been written"):
        check_finite_state(model, optimizer, {"val_loss": math.inf, "val_accuracy": 0.1}, 1, 0)


def test_a_run_whose_adam_moment_overflows_in_epoch_1_writes_no_model(tmp_path: Path, capsys: Any,
                                                                      one_sentence: Any) -> None:
    """--lr 2 on a tiny digits VAE: the loss stays finite (about 1e21 nats), but a squared gradient
    overflows float32 in Adam's second moment during epoch 1 (seed 0, one thread)."""
    out = tmp_path / "run"
    status = main(["train", "--data", "digits", "--hidden", "8", "--latent", "2", "--epochs", "1",
                   "--lr", "2", "--threads", "1", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and err.startswith("vaekit train: error: "), err
    one_sentence(err, "became NaN or infinite in epoch 1", "--lr")
    assert sorted(p.name for p in out.iterdir()) == [runs.CONFIG]  # a new run may take the directory


def _spoil_after(epoch: int, what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training's epochs as they are, but after `epoch` one tensor of `what` ('optimizer' or 'model')
    made infinite, as an overflow would."""
    real = train_mod.train_epoch

    def epoch_then_spoil(model: nn.Module, optimizer: torch.optim.Optimizer, *args: Any,
                         **kwargs: Any) -> Any:
        result = real(model, optimizer, *args, **kwargs)
        if args[7] == epoch:  # (engine, data, batch_size, epochs, optim, generator, step, epoch)
            state = next(iter(optimizer.state.values()))
            (state["exp_avg_sq"] if what == "optimizer" else next(model.parameters()).data).fill_(math.inf)
        return result

    monkeypatch.setattr(train_mod, "train_epoch", epoch_then_spoil)


def test_the_checkpoint_of_the_last_good_epoch_stays(tmp_path: Path, digits: Dataset,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    fit(small(train__epochs=1, train__checkpoint_every="epoch"), out, log=quiet, dataset=digits)
    model_before = load_file(out / runs.MODEL)
    _spoil_after(2, "optimizer", monkeypatch)
    with pytest.raises(DivergenceError, match=r"optimizer's state became NaN or infinite in epoch 2; .*"
                       r"the last good checkpoint \(epoch 1\) is kept"):
        fit(small(train__epochs=3, train__checkpoint_every="epoch"), out, resume=True, log=quiet,
            dataset=digits)
    assert runs.load_checkpoint(out)[2]["epoch"] == 1
    assert [row["epoch"] for row in runs.read_metrics(out)] == [1]
    after = load_file(out / runs.MODEL)
    assert all(torch.equal(model_before[k], after[k]) for k in model_before)
    monkeypatch.undo()
    fit(small(train__epochs=2, train__checkpoint_every="epoch"), out, resume=True, log=quiet, dataset=digits)
    assert runs.load_checkpoint(out)[2]["epoch"] == 2  # what was kept resumes


def test_a_classifier_run_stops_alike(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                      one_sentence: Any) -> None:
    _spoil_after(1, "model", monkeypatch)
    out = tmp_path / "run"
    status = main(["classify", "--data", "digits", "--threads", "1", "--no-progress", "--batch-size", "64",
                   "--epochs", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and err.startswith("vaekit classify: error: "), err
    one_sentence(err, "the model's weights", "in epoch 1", "--lr")
    assert sorted(p.name for p in out.iterdir()) == [runs.CONFIG]

