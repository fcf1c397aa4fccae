"""The independent reference for vaekit.arch.arith / spec / stack: real torch.nn modules.

A layer is given as (kind, positional args, keyword args) exactly as a user would write it; the
module is built by handing those arguments to torch.nn, so torch, not vaekit, decides what they
mean. Used by test_arith.py and test_spec.py; and torch's own StepLR for the schedule checks
(`lr_changes`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# The argument that vaekit infers from the previous layer, passed first to torch.
INFERRED = {"Linear": "in_features", "Conv2d": "in_channels", "ConvTranspose2d": "in_channels",
            "BatchNorm2d": "num_features"}


def call_text(kind: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> str:
    """`Conv2d(20, kernel_size=3)` from its parts, with Python's own repr of each value."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{kind}({', '.join(parts)})"


def build(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
          in_shape: tuple[int, ...]) -> nn.Module:
    """The torch module, its input size taken from `in_shape` (channels, or features)."""
    inferred = (in_shape[0],) if kind in INFERRED else ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(nn, kind)(*inferred, *args, **kwargs).eval()


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def counted(module: nn.Module, name: str) -> int:
    """numel of module.weight or module.bias if it is a trainable parameter, else 0."""
    p = getattr(module, name, None)
    return p.numel() if isinstance(p, nn.Parameter) and p.requires_grad else 0


@dataclass
class Reference:
    """What torch says about one layer on one input: run on a batch of 2 (batch norm in training
    statistics needs two values per channel); MACs per sample = FLOPs / 2 / batch."""

    output_shape: tuple[int, ...]
    params: int
    weight_params: int
    bias_params: int
    macs: int


def reference(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              in_shape: tuple[int, ...]) -> Reference | Exception:
    """Build and run the module; the exception torch raises if it refuses the configuration."""
    try:
        module = build(kind, args, kwargs, in_shape)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with FlopCounterMode(display=False) as counter:
                out = module(torch.rand(2, *in_shape))
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as err:
        return err
    return Reference(tuple(out.shape[1:]), trainable(module), counted(module, "weight"),
                     counted(module, "bias"), counter.get_total_flops() // (2 * 2))


def trains_nothing(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                   in_shape: tuple[int, ...], steps: int = 5) -> bool:
    """Whether torch runs the layer but its output says nothing of its input: all zeros, one
    constant or not all finite on a batch of 64 inputs of variance 9, in training mode or in
    evaluation after each of `steps` training batches (batch norm's running statistics). What
    vaekit refuses although torch runs it (Dropout p = 1, Softplus beta = 0 or 1e-30,
    BatchNorm2d momentum -1 or 3) says so."""
    module = build(kind, args, kwargs, in_shape)
    generator = torch.Generator().manual_seed(0)
    outs = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            for mode in (True, False):
                x = torch.randn(64, *in_shape, generator=generator) * 3 + 1
                outs.append(module.train(mode)(x))
    return any(bool((y == 0).all()) or not bool(y.isfinite().all()) or bool((y == y.flatten()[0]).all())
               for y in outs)


def lr_flushed(lr: float, step_size: int, gamma: float, epochs: int) -> bool:
    """Whether torch's own StepLR, within `epochs` epochs, gives a learning rate that a float32
    tensor holds below its smallest normal number (0, or a subnormal a flushing CPU reads as 0)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size, gamma)
    tiny = torch.finfo(torch.float32).tiny
    for _ in range(epochs):
        if torch.tensor(opt.param_groups[0]["lr"], dtype=torch.float32).abs() < tiny:
            return True
        opt.step()
        sched.step()
    return False


def lr_changes(step_size: int, gamma: float, epochs: int) -> bool:
    """Whether torch's own StepLR changes the learning rate within `epochs` epochs."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size, gamma)
    rates = set()
    for _ in range(epochs):
        rates.add(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return len(rates) > 1
