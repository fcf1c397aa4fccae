"""The training step (`vaekit.train.step`) and what a captured step relies on, held on a CPU: eps
given from outside (`noise`, the graph's static input) are the very draws the engines make from the
generator; the fused Adam update with a tensor learning rate is the float one; the eager step
checks before it updates. The capture itself needs CUDA: tests/train/test_cuda_graph.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vaekit.config import TrainConfig
from vaekit.train.engines import AutogradEngine, BackpropEngine, make_engine
from vaekit.train.optim import FusedAdam, fused_step, graph_safe_optimizer, make_optimizer
from vaekit.train.step import EagerStep, graph_applies, make_step
from vaekit.vae.models import build_model


def config(engine: str, samples: int = 1, kind: str = "mlp") -> TrainConfig:
    c = TrainConfig()
    c.model.kind, c.model.hidden, c.model.latent, c.model.image_shape = kind, [16], 3, [1, 6, 6]
    if kind == "conv":
        c.model.channels, c.model.hidden, c.model.image_shape = [4], [], [1, 8, 8]
    c.train.engine, c.train.samples = engine, samples
    return c


def step_once(c: TrainConfig, noise: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(c)
    engine = make_engine(model, c.train)
    x = (torch.rand(5, *c.model.image_shape, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    g = torch.Generator().manual_seed(2)
    if noise:  # what GraphStep does: the draws made outside, from the same generator, in its shape
        engine.noise = torch.randn(engine.noise_shape(model, x.shape[0]), generator=g)  # type: ignore[attr-defined]
        g = torch.Generator().manual_seed(99)  # any other generator: it must not be drawn from
    sums = engine.loss_and_grads(model, x, 1.0, g)
    return sums, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("engine", "samples", "kind", "cls"), [
    ("auto", 1, "mlp", BackpropEngine), ("auto", 3, "mlp", BackpropEngine),
    ("autograd", 1, "mlp", AutogradEngine), ("autograd", 2, "conv", AutogradEngine)])
def test_noise_from_outside_is_the_engines_own_draw(engine: str, samples: int, kind: str, cls: type) -> None:
    c = config(engine, samples, kind)
    assert isinstance(make_engine(build_model(c), c.train), cls)
    sums, grads = step_once(c, noise=False)
    sums_n, grads_n = step_once(c, noise=True)
    assert torch.equal(sums, sums_n)
    assert grads.keys() == grads_n.keys() and all(torch.equal(grads[k], grads_n[k]) for k in grads)


def test_the_score_estimator_and_a_distributed_share_are_not_capturable() -> None:
    c = config("autograd")
    model = build_model(c)
    assert make_engine(model, c.train).capturable  # type: ignore[attr-defined]
    c.train.estimator = "score"
    assert not make_engine(model, c.train).capturable  # type: ignore[attr-defined]
    shared = make_engine(model, config("auto").train)
    shared.share = (0, 2, 4)  # type: ignore[attr-defined]
    assert not shared.capturable  # type: ignore[attr-defined]


def test_fused_step_with_a_tensor_learning_rate_is_the_float_one() -> None:
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(7, 3)) for _ in range(2)]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    oa, ob = FusedAdam(a, lr=3e-2, weight_decay=0.1), FusedAdam(b, lr=3e-2, weight_decay=0.1)
    for i in range(4):
        grads = [torch.randn(7, 3) for _ in a]
        for p, q, g in zip(a, b, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        oa.step()
        if i == 0:
            ob.step()  # the first step creates the state
        else:
            assert fused_step(ob, lr=torch.tensor(3e-2))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert all(torch.equal(oa.state[p]["exp_avg_sq"], ob.state[q]["exp_avg_sq"])
               for p, q in zip(a, b, strict=True))


def test_graph_safe_optimizers() -> None:
    c = TrainConfig()
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name, safe in (("adam", True), ("adamw", True), ("sgd", False), ("rmsprop", False)):
        c.optim.name = name
        assert graph_safe_optimizer(make_optimizer(params, c.optim)) is safe, name
    hooked = make_optimizer(params, TrainConfig().optim)
    handle = hooked.register_step_post_hook(lambda *_: None)
    assert not graph_safe_optimizer(hooked)  # a captured step would skip the hook
    handle.remove()
    assert graph_safe_optimizer(hooked)


def test_off_cuda_the_step_is_eager() -> None:
    c = config("auto")
    model = build_model(c)
    engine = make_engine(model, c.train)
    optimizer = make_optimizer(model.parameters(), c.optim)
    assert not graph_applies(engine, model, optimizer)
    assert isinstance(make_step(engine, model, optimizer, 0.0, capture=True), EagerStep)


def test_the_eager_step_checks_before_it_updates() -> None:
    c = config("auto")
    torch.manual_seed(0)
    model = build_model(c)
    engine = make_engine(model, c.train)
    optimizer = make_optimizer(model.parameters(), c.optim)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step = EagerStep(engine, model, optimizer, clip=1.0)
    x = torch.ones(4, 1, 6, 6)

    def refuse(_sums: torch.Tensor) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        step(x, None, 1.0, torch.Generator().manual_seed(0), refuse)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    seen: list[Any] = []
    step(x, None, 1.0, torch.Generator().manual_seed(0), seen.append)
    assert len(seen) == 1 and not all(torch.equal(p, before[n]) for n, p in model.named_parameters())
