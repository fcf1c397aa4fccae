"""Optimizers and schedules of a run: `make_optimizer`, the learning-rate schedule `lr_at` (set for
an epoch by `set_lr`) and the KL warm-up `beta_at`, each a function of the config and the epoch or
step alone (so resume is exact).

Adam and AdamW are `FusedAdam` / `FusedAdamW`: `torch.optim.Adam(fused=True)` whose `step()` calls
torch's fused kernel (`torch._fused_adam_` / `torch._fused_adamw_`, Kingma & Ba 2015, "Adam",
Algorithm 1; AdamW: Loshchilov & Hutter 2019, Algorithm 2) on the optimizer's own state tensors
directly. `torch.optim.Adam.step` reaches the same kernel after a Python loop over the parameters
(`_init_group`, checking each gradient and state) and a regrouping of the tensors by device: a
fixed cost per step that is a few percent of a small model's step on a CPU (docs/benchmarks.md).
The result is the same bit for bit (tests/train/test_optim.py compares every state tensor); the
first step (which creates the state), closures, step hooks and anything else the direct call does
not cover go through `torch.optim.Adam.step` (with its hooks and profiler scope). Every caller of
`step()` gets the fast path, and none can forget it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from vaekit.config import LoopConfig, OptimConfig
from vaekit.errors import ConfigError

_FUSED_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")


def _fast_groups(optimizer: torch.optim.Optimizer) -> bool:
    """Whether every group is a fused, non-differentiable, CPU-scalar Adam(W) group."""
    if not isinstance(optimizer, torch.optim.Adam):  # AdamW subclasses Adam in torch >= 2.6
        return False
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("differentiable") or group.get("capturable"):
            return False
        if isinstance(group["lr"], torch.Tensor) or any(k not in group for k in _FUSED_KEYS):
            return False
    return True


def graph_safe_optimizer(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `fused_step` with a device learning rate can be captured in a CUDA graph: fused
    Adam(W) groups on the direct path, no step hooks (a captured step would skip them)."""
    return _fast_groups(optimizer) and not _has_step_hooks(optimizer)


@torch.no_grad()
def fused_step(optimizer: torch.optim.Adam, lr: torch.Tensor | None = None) -> bool:
    """One Adam(W) update by the fused kernel, as `torch.optim.adam._fused_adam` makes it: for each
    group, step_t += 1, then m, v and theta updated in place. Parameters without a gradient are
    skipped, as in `step()`. Returns False, having changed nothing, where it does not apply.

    `lr`: a 0-dim tensor on the parameters' device read by the kernel instead of each group's
    float (what a CUDA graph needs: a float would be frozen into the captured launch); with fused
    Adam the step counts already live on the device, so nothing is read back by the host."""
    if not _fast_groups(optimizer):
        return False
    work = []
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        states = [optimizer.state.get(p) for p in params]
        if any(not s for s in states):  # the first step creates the state: let torch do it
            return False
        work.append((group, params, states))
    for group, params, states in work:
        if not params:
            continue
        steps = [s["step"] for s in states]  # type: ignore[index]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        fn = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        fn(params, [p.grad for p in params], [s["exp_avg"] for s in states],  # type: ignore[index]
           [s["exp_avg_sq"] for s in states],  # type: ignore[index]
           [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],  # type: ignore[index]
           steps, amsgrad=group["amsgrad"], lr=group["lr"] if lr is None else lr, beta1=float(beta1),
           beta2=float(beta2),
           weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
           grad_scale=None, found_inf=None)
    return True


def _has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    return bool(_global_optimizer_pre_hooks or _global_optimizer_post_hooks
                or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks)


def _with_hooks(step: Callable[..., Any]) -> Callable[..., Any]:
    """torch's `step()` with its hooks and profiler scope, as `Optimizer.__init__` wraps it."""
    return step if getattr(step, "hooked", False) else torch.optim.Optimizer.profile_hook_step(step)


def _direct_step(optimizer: torch.optim.Adam, closure: Callable[[], float] | None,
                 torch_step: Callable[..., Any]) -> float | None:
    """The fused kernel when nothing else is asked of `step()` (no closure, no step hooks), else
    torch's own step with its hooks. torch's wrapper of `step()` (hooks, profiler scope) costs about
    a tenth of the fused kernel on this model, so it is entered only when a hook is registered."""
    if closure is None and not _has_step_hooks(optimizer) and fused_step(optimizer):
        return None
    return _with_hooks(torch_step)(optimizer, closure)


class FusedAdam(torch.optim.Adam):
    """`torch.optim.Adam(fused=True)` whose `step()` goes straight to the fused kernel."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **{"fused": True, **kwargs})

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        return _direct_step(self, closure, torch.optim.Adam.step)

    step.hooked = True  # type: ignore[attr-defined]  # Optimizer.__init__ must not wrap it: see _direct_step


class FusedAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW(fused=True)` whose `step()` goes straight to the fused kernel."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **{"fused": True, **kwargs})

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        return _direct_step(self, closure, torch.optim.AdamW.step)

    step.hooked = True  # type: ignore[attr-defined]


def make_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """adam | adamw (fused, see above) | sgd (with momentum) | rmsprop (the multi-tensor `foreach`
    path)."""
    if cfg.name == "adam":
        return FusedAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return FusedAdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=True)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, foreach=True)
    raise ConfigError(f"unknown optimizer {cfg.name!r}; valid values are adam, adamw, sgd, rmsprop.")


def lr_at(epoch: int, cfg: OptimConfig, epochs: int) -> float:
    """Learning rate of epoch `epoch` (0-based), a function of the epoch alone (so resume is exact):

    none:   lr
    cosine: lr * (1 + cos(pi * epoch / epochs)) / 2   (Loshchilov & Hutter, SGDR, eq. 5, no restart)
    step:   lr * gamma ** floor(epoch / step_size)
    """
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (epoch // cfg.step_size)
    return cfg.lr


def resumed_schedule_note(cfg: OptimConfig, done: int, planned: int, epochs: int) -> str | None:
    """The note a resume after `done` epochs prints when it moves the end of a cosine schedule
    planned over `planned` epochs to `epochs`: `lr_at` is the cosine over the epochs of the run as
    it is now, so the learning rate of epoch `done + 1` is not the one the plan went on to (fewer
    epochs: a drop towards 0 at once), and the note names it, the last epoch's and the factor.
    None for another schedule, the same epochs, or no epoch left."""
    if cfg.schedule != "cosine" or epochs == planned or not 0 < done < epochs:
        return None
    before, after = lr_at(done - 1, cfg, planned), lr_at(done, cfg, epochs)
    low, high = sorted((before, after))  # each more than 0: the cosine's 0 is the epoch after its last
    factor, way = high / low, "lower" if after < before else "higher"
    change = "" if factor < 2 else f", {factor:,.{0 if factor >= 10 else 1}f} times {way}"
    return (f"note: the cosine schedule now ends at epoch {epochs} instead of the {planned} it was "
            f"planned over, so the learning rate goes from {before:.2e} (epoch {done}) to {after:.2e} "
            f"(epoch {done + 1}){change}.")


def set_lr(optimizer: torch.optim.Optimizer, epoch: int, cfg: OptimConfig, epochs: int) -> float:
    """Give every parameter group the learning rate of epoch `epoch` (0-based) of `epochs`
    (`lr_at`), before the epoch trains; returns it."""
    lr = lr_at(epoch, cfg, epochs)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def beta_at(step: int, steps_per_epoch: int, loop: LoopConfig) -> float:
    """KL weight at optimizer step `step` (0-based): a linear warm-up from 0 to beta over `warmup`
    epochs (Bowman et al. 2016, "Generating sentences from a continuous space", KL annealing;
    Sonderby et al. 2016), then beta."""
    if loop.warmup <= 0:
        return loop.beta
    return loop.beta * min(1.0, (step + 1) / (loop.warmup * steps_per_epoch))
