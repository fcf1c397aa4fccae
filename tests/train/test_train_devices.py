"""Every tensor of a training epoch, its validation and the time-budget probe is made on its
inputs' device: each run under `device_check.strays_fail` (a tensor made without a device lands on
"meta" and the first torch call that touches it fails), on CPU inputs, ending with the same
weights, sums and optimizer state as outside it. Both engines, the models with their own draws
(the autoregressive decoder with dropout, the VampPrior, two stochastic layers) and the classifier."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from device_check import assert_same, strays_fail
from vaekit.config import TrainConfig
from vaekit.train import budget
from vaekit.train.engines import make_engine
from vaekit.train.loop import Pixels, kl_weight, train_epoch, validate
from vaekit.train.optim import make_optimizer
from vaekit.train.step import make_step
from vaekit.vae.models import build_model

VARIANTS: dict[str, dict[str, Any]] = {
    "hand-derived": {},
    "hand-derived, 2 samples, warm-up, clip": {"train.samples": 2, "train.warmup": 1.0, "optim.clip": 1.0},
    "autograd, iwae": {"train.engine": "autograd", "train.objective": "iwae", "train.samples": 3},
    "bf16 products": {"train.precision": "bf16"},
    "conv, autocast bf16": {"model.kind": "conv", "model.channels": [4], "model.hidden": [],
                            "train.precision": "bf16"},
    "autoregressive, window, dropout": {"model.autoregressive": 24, "model.autoregressive_window": 10,
                                        "model.autoregressive_dropout": 0.1},
    "vamp prior": {"model.prior": "vamp", "model.pseudo_inputs": 5},
    "two stochastic layers": {"model.stochastic_layers": 2},
    "score estimator": {"train.estimator": "score", "train.engine": "autograd"},
}


def config(changes: dict[str, Any]) -> TrainConfig:
    c = TrainConfig()
    c.model.hidden, c.model.latent, c.model.image_shape = [16], 3, [1, 8, 8]
    c.train.batch_size = 16
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(c, section), name, value)
    return c


def inputs(c: TrainConfig) -> tuple[Any, ...]:
    """What a run hands the loop, made on the CPU: the model, its optimizer, engine and images."""
    torch.manual_seed(0)
    model = build_model(c)
    optimizer = make_optimizer(model.parameters(), c.optim)
    engine = make_engine(model, c.train)
    images = (torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    return c, model, optimizer, engine, images


def epoch_and_validation(c: TrainConfig, model: Any, optimizer: Any, engine: Any,
                         images: Any) -> tuple[Any, ...]:
    torch.manual_seed(3)  # the dropout masks
    stats, _ = train_epoch(model, optimizer, engine, Pixels(images, "dynamic"), c.train.batch_size, 2,
                           c.optim, torch.Generator().manual_seed(2), 0, 1, kl_weight(c.train),
                           show_bar=False, stepper=make_step(engine, model, optimizer, c.optim.clip))
    val = validate(model, (images[:10] > 127).float())  # type: ignore[arg-type]
    state = [s for group in optimizer.state.values() for s in group.values()]
    return list(stats.values()) + list(val.values()), (dict(model.state_dict()), state)


@pytest.mark.parametrize("name", VARIANTS)
def test_an_epoch_makes_every_tensor_on_its_inputs_device(name: str) -> None:
    c = config(VARIANTS[name])
    outside = epoch_and_validation(*inputs(c))
    made = inputs(c)
    with strays_fail():
        inside = epoch_and_validation(*made)
    assert outside[0] == inside[0]  # the epoch's and the validation's means
    assert_same(outside[1], inside[1])  # weights and optimizer state, bit for bit


def test_the_probe_makes_every_tensor_on_its_inputs_device() -> None:
    c = config({})
    torch.manual_seed(0)
    model = build_model(c)
    engine = make_engine(model, c.train)
    images = (torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    val_x = (images[:10] > 127).float()
    with strays_fail():
        p = budget.probe(model, c.optim, engine, Pixels(images, "dynamic"), 16, None,
                         lambda m: validate(m, val_x), capture=True)  # type: ignore[arg-type]
    assert p.step_seconds > 0 and p.epoch_seconds > p.validation_seconds >= 0


def test_the_check_sees_a_stray_in_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail here: a loop that keeps its sums without the data's device (as
    `torch.zeros(4, dtype=torch.float64)` would) is caught."""
    import vaekit.train.loop as loop_mod

    real = torch.zeros

    def zeros_without_device(*args: Any, **kwargs: Any) -> torch.Tensor:
        kwargs.pop("device", None)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_mod.torch, "zeros", zeros_without_device)
    made = inputs(config({}))
    with strays_fail(), pytest.raises(AssertionError, match="without its inputs' device"):
        epoch_and_validation(*made)
