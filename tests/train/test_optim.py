"""vaekit.train.optim: the direct fused Adam(W) step against torch's own `optimizer.step()`, bit for
bit: two copies of the same parameters get the same random gradients, one is stepped by torch, the
other by `fused_step` (falling back to `step()` where it does not apply, as `FusedAdam.step` does),
and every parameter and state tensor must be equal after every step. Then `FusedAdam`/`FusedAdamW`
against torch's classes through `step()` itself, and the schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from vaekit.train import optim
from vaekit.train.optim import FusedAdam, FusedAdamW, fused_step

STEPS = 6
SHAPES = [(7, 5), (5,), (3, 4, 2), (1,)]

Params = list[list[Tensor]]  # parameters by group
Factory = Callable[[Params], torch.optim.Optimizer]


def fused_adam_step(optimizer: torch.optim.Optimizer) -> None:
    """What `FusedAdam.step()` does: the direct fused kernel, else torch's own step()."""
    if not fused_step(optimizer):  # type: ignore[arg-type]
        optimizer.step()


def make_params(seed: int, groups: int = 1, dtype: torch.dtype = torch.float32) -> Params:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in SHAPES]
            for _ in range(groups)]


def clone_params(params: Params) -> Params:
    return [[p.detach().clone().requires_grad_() for p in group] for group in params]


def state_tensors(optimizer: torch.optim.Optimizer, params: Params) -> list[tuple[str, Tensor]]:
    out = []
    for gi, group in enumerate(params):
        for pi, p in enumerate(group):
            for key, value in sorted(optimizer.state.get(p, {}).items()):
                out.append((f"group {gi} param {pi} {key}", torch.as_tensor(value)))
    return out


def assert_same(a_params: Params, a_opt: torch.optim.Optimizer, b_params: Params,
                b_opt: torch.optim.Optimizer, where: str) -> None:
    for gi, (ga, gb) in enumerate(zip(a_params, b_params, strict=True)):
        for pi, (pa, pb) in enumerate(zip(ga, gb, strict=True)):
            assert torch.equal(pa, pb), f"{where}: group {gi} param {pi} differs"
    sa, sb = state_tensors(a_opt, a_params), state_tensors(b_opt, b_params)
    assert [k for k, _ in sa] == [k for k, _ in sb], where
    for (key, ta), (_, tb) in zip(sa, sb, strict=True):
        assert ta.dtype == tb.dtype and torch.equal(ta, tb), f"{where}: {key} differs"


def run_both(factory: Factory, groups: int = 1, dtype: torch.dtype = torch.float32,
             no_grad: Callable[[int, int, int], bool] = lambda step, gi, pi: False,
             on_step: Callable[[int, torch.optim.Optimizer], None] | None = None,
             seed: int = 0) -> tuple[int, list[str]]:
    """STEPS steps of torch's step() (reference) and of fused_adam_step (tested) on equal copies,
    with equal random gradients (None where `no_grad(step, group, param)`). Returns how many times
    fused_adam_step fell back to optimizer.step(), and the state keys it ended with."""
    ref_params = make_params(seed, groups, dtype)
    new_params = clone_params(ref_params)
    ref_opt, new_opt = factory(ref_params), factory(new_params)
    fallbacks = []
    real_step = new_opt.step

    def counting_step(*args: Any, **kwargs: Any) -> Any:
        fallbacks.append(1)
        return real_step(*args, **kwargs)

    new_opt.step = counting_step  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(STEPS):
        if on_step is not None:
            on_step(step, ref_opt)
            on_step(step, new_opt)
        for gi, (ref_group, new_group) in enumerate(zip(ref_params, new_params, strict=True)):
            for pi, (pr, pn) in enumerate(zip(ref_group, new_group, strict=True)):
                grad = torch.randn(pr.shape, generator=g, dtype=dtype) * 10.0 ** (gi - pi)
                if no_grad(step, gi, pi):
                    pr.grad, pn.grad = None, None
                else:
                    pr.grad, pn.grad = grad.clone(), grad.clone()
        before = [p.detach().clone() for group in new_params for p in group]
        ref_opt.step()
        fused_adam_step(new_opt)
        assert_same(ref_params, ref_opt, new_params, new_opt, f"step {step + 1}")
        after = [p.detach() for group in new_params for p in group]
        assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)), "nothing moved"
    keys = sorted({k for p in new_opt.state for k in new_opt.state[p]})
    return len(fallbacks), keys


def groups_of(params: Params, **per_group: list[Any]) -> list[dict[str, Any]]:
    out = []
    for gi, group in enumerate(params):
        d: dict[str, Any] = {"params": group}
        for key, values in per_group.items():
            d[key] = values[gi]
        out.append(d)
    return out


FUSED: dict[str, Factory] = {
    "adam": lambda ps: torch.optim.Adam(ps[0], lr=1e-2, fused=True),
    "adam-weight-decay": lambda ps: torch.optim.Adam(ps[0], lr=1e-2, weight_decay=0.1, fused=True),
    "adamw": lambda ps: torch.optim.AdamW(ps[0], lr=1e-2, weight_decay=0.05, fused=True),
    "adam-amsgrad": lambda ps: torch.optim.Adam(ps[0], lr=1e-2, amsgrad=True, fused=True),
    "adamw-amsgrad": lambda ps: torch.optim.AdamW(ps[0], lr=1e-2, amsgrad=True, fused=True),
    "adam-maximize": lambda ps: torch.optim.Adam(ps[0], lr=1e-2, maximize=True, fused=True),
    "adam-betas-eps": lambda ps: torch.optim.Adam(ps[0], lr=3e-2, betas=(0.5, 0.9), eps=1e-3,
                                                  fused=True),
}


@pytest.mark.parametrize("name", list(FUSED))
def test_fused_equals_step(name: str) -> None:
    fallbacks, keys = run_both(FUSED[name])
    assert fallbacks == 1  # only the first step, which creates the state: the fast path ran 5 times
    assert ("max_exp_avg_sq" in keys) == ("amsgrad" in name)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_two_groups_with_their_own_hyperparameters(cls: type[torch.optim.Adam]) -> None:
    def factory(ps: Params) -> torch.optim.Optimizer:
        return cls(groups_of(ps, lr=[1e-2, 3e-3], betas=[(0.9, 0.999), (0.8, 0.99)],
                             weight_decay=[0.0, 0.2], eps=[1e-8, 1e-6]), lr=5e-2, fused=True)

    fallbacks, _ = run_both(factory, groups=2)
    assert fallbacks == 1


def test_lr_changed_mid_way() -> None:
    def change(step: int, opt: torch.optim.Optimizer) -> None:
        if step == 3:
            for i, group in enumerate(opt.param_groups):
                group["lr"] = 1e-3 * (i + 1)

    fallbacks, _ = run_both(lambda ps: torch.optim.AdamW(groups_of(ps, lr=[1e-2, 2e-2]), fused=True),
                            groups=2, on_step=change)
    assert fallbacks == 1


def test_grad_none_on_some_steps() -> None:
    """A parameter without a gradient is skipped (its weights and state stay as they are); one that
    has no gradient on the first step gets its state later."""
    def none(step: int, gi: int, pi: int) -> bool:
        return (pi == 1 and step in (2, 3)) or (gi == 1 and pi == 2 and step < 3) or (gi == 0 and pi == 0
                                                                                     and step == 5)

    _, keys = run_both(lambda ps: torch.optim.Adam(groups_of(ps, lr=[1e-2, 2e-2]), fused=True),
                       groups=2, no_grad=none)
    assert keys == ["exp_avg", "exp_avg_sq", "step"]


def test_float64_parameters() -> None:
    fallbacks, _ = run_both(lambda ps: torch.optim.Adam(ps[0], lr=1e-2, fused=True), dtype=torch.float64)
    assert fallbacks == 1


def test_mixed_dtypes_in_one_group() -> None:
    """torch groups a fused step by device and dtype; the parameters of one group may mix them."""
    def factory(ps: Params) -> torch.optim.Optimizer:
        return torch.optim.Adam([*ps[0], *ps[1]], lr=1e-2, fused=True)

    ref = make_params(0, 2)
    ref[1] = [p.detach().double().requires_grad_() for p in ref[1]]
    new = clone_params(ref)
    ref_opt, new_opt = factory(ref), factory(new)
    g = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        for pr, pn in zip([*ref[0], *ref[1]], [*new[0], *new[1]], strict=True):
            grad = torch.randn(pr.shape, generator=g, dtype=pr.dtype)
            pr.grad, pn.grad = grad.clone(), grad.clone()
        ref_opt.step()
        fused_adam_step(new_opt)
        assert_same(ref, ref_opt, new, new_opt, f"step {step + 1}")


# ----------------------------------------------------------------------------- fallbacks


FALLBACK: dict[str, Factory] = {
    "adam-foreach": lambda ps: torch.optim.Adam(ps[0], lr=1e-2, foreach=True),
    "adam-single-tensor": lambda ps: torch.optim.Adam(ps[0], lr=1e-2, foreach=False),
    "adamw-foreach": lambda ps: torch.optim.AdamW(ps[0], lr=1e-2, weight_decay=0.1, foreach=True),
    "sgd-momentum": lambda ps: torch.optim.SGD(ps[0], lr=1e-2, momentum=0.9, foreach=True),
    "sgd-plain": lambda ps: torch.optim.SGD(ps[0], lr=1e-2),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps[0], lr=1e-3, momentum=0.5, foreach=True),
    "adam-fused-tensor-lr": lambda ps: torch.optim.Adam(ps[0], lr=torch.tensor(1e-2), fused=True),
}


@pytest.mark.parametrize("name", list(FALLBACK))
def test_other_optimizers_fall_back_to_step(name: str) -> None:
    fallbacks, _ = run_both(FALLBACK[name])
    assert fallbacks == STEPS  # every step was torch's own


# ----------------------------------------------------------------------------- the classes


def step_both_by_step(ref_params: Params, ref_opt: torch.optim.Optimizer, new_params: Params,
                      new_opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    """`steps` calls of each optimizer's own step() on equal random gradients, compared each time."""
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for pr, pn in zip(ref_params[0], new_params[0], strict=True):
            grad = torch.randn(pr.shape, generator=g)
            pr.grad, pn.grad = grad.clone(), grad.clone()
        ref_opt.step()
        new_opt.step()
        assert_same(ref_params, ref_opt, new_params, new_opt, f"step {step + 1}")


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (FusedAdam, torch.optim.Adam, {"lr": 1e-2}),
    (FusedAdam, torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    (FusedAdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.05}),
])
def test_fused_classes_step_equals_torch(ours: type, theirs: type, kwargs: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`step()` of FusedAdam(W) is torch's fused Adam(W) step, bit for bit, and takes the direct
    path on every step after the first: nobody has to remember to call anything else."""
    direct = []
    real = optim.fused_step

    def counting(opt: torch.optim.Adam) -> bool:
        done = real(opt)
        direct.append(done)
        return done

    monkeypatch.setattr(optim, "fused_step", counting)
    ref_params = make_params(3)
    new_params = clone_params(ref_params)
    ref_opt, new_opt = theirs(ref_params[0], fused=True, **kwargs), ours(new_params[0], **kwargs)
    assert isinstance(new_opt, theirs) and all(g["fused"] for g in new_opt.param_groups)
    step_both_by_step(ref_params, ref_opt, new_params, new_opt, STEPS, seed=4)
    assert direct == [False] + [True] * (STEPS - 1)
    # a state dict saved from one loads into the other (checkpoints do not depend on the class)
    again = theirs(clone_params(new_params)[0], fused=True, **kwargs)
    again.load_state_dict(new_opt.state_dict())
    assert again.state_dict()["param_groups"] == new_opt.state_dict()["param_groups"]


def test_step_with_a_closure_is_torchs() -> None:
    params = make_params(5)[0]
    opt = FusedAdam(params, lr=1e-2)
    calls = []

    def closure() -> float:
        calls.append(1)
        for p in params:
            p.grad = torch.ones_like(p)
        return 1.0

    assert opt.step(closure) == 1.0 and opt.step(closure) == 1.0
    assert calls == [1, 1]


@pytest.mark.parametrize("where", ["optimizer", "global"])
def test_step_hooks_still_run(where: str) -> None:
    """A registered pre/post step hook is called on every step (the direct path steps aside while
    one is registered), and the result is still torch's."""
    ref_params, new_params = make_params(6), make_params(6)
    ref_opt, new_opt = torch.optim.Adam(ref_params[0], lr=1e-2, fused=True), FusedAdam(new_params[0], lr=1e-2)
    seen: list[str] = []
    if where == "optimizer":
        handles = [new_opt.register_step_pre_hook(lambda *a: seen.append("pre")),
                   new_opt.register_step_post_hook(lambda *a: seen.append("post"))]
    else:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        def note(what: str) -> Any:
            return lambda o, *a: seen.append(what) if o is new_opt else None

        handles = [register_optimizer_step_pre_hook(note("pre")),
                   register_optimizer_step_post_hook(note("post"))]
    try:
        step_both_by_step(ref_params, ref_opt, new_params, new_opt, 3, seed=7)
    finally:
        for h in handles:
            h.remove()
    assert seen == ["pre", "post"] * 3
