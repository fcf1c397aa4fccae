"""A check, on a machine without a GPU, that code makes every tensor on its inputs' device.

    with strays_fail():
        out = fn(model, x)       # StrayTensor at the first torch call that makes or uses a tensor
                                 # made without device= (or without following an input)

How: inside `strays_fail`, torch's default device is "meta" (`with torch.device("meta")`), so a
factory call that names no device (`torch.zeros(n)`, `torch.full(...)`, `torch.linspace(...)`,
`torch.tensor(values)`) makes a meta tensor, one of shapes without data; and a TorchFunctionMode
raises `StrayTensor` at the first torch function or tensor method whose arguments or result hold a
meta tensor, naming it. Code whose tensors all come from its inputs (`device=x.device`, `*_like`,
operations on x) never makes one and runs as outside, with the same numbers: the test compares
the two. Checking at the call matters: a meta tensor mixed into some operations does not raise
(torch's meta kernels of `linear` take CPU weights), and one whose shape alone is read
(`.numel()`) changes no number, so a stray could otherwise pass unseen.

What it does not see: a tensor made with a device named explicitly. That is how the deliberate
exceptions pass: `vaekit.evaluate.iwae.draw_eps_blocks` draws the eps on the CPU, where the CPU
generator is (`device=generator.device`), and copies them to the model's device; a CPU generator
cannot draw onto another device (torch refuses it), so those draws must name the CPU. It does not
see `device="cpu"` written where the input's device was meant either: a CUDA run (the tests marked
for CUDA) does. `torch.Generator()` is not a torch function and is not affected.

Used by tests/evaluate/test_devices.py; reusable for any code path (the training loop, the
engines): run the path under `strays_fail()` on CPU inputs and compare with a run outside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

META = torch.device("meta")


class StrayTensor(AssertionError):
    """A tensor was made without its inputs' device (it landed on the meta device)."""


def tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in obj: itself, or inside tuples, lists, dicts and dataclasses, recursively."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from tensors_in(getattr(obj, f.name))


def _name(func: Callable[..., Any]) -> str:
    """'torch.zeros', 'Tensor.add_', ...: the function as a reader would write it."""
    qualname = getattr(func, "__qualname__", None) or repr(func)
    owner, _, name = qualname.rpartition(".")
    if owner in ("", "_VariableFunctionsClass"):
        return f"torch.{name}"
    return f"Tensor.{name}" if owner in ("TensorBase", "Tensor") else qualname


class _NoMeta(TorchFunctionMode):
    """Raise StrayTensor at any torch call whose arguments or result hold a meta tensor."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if any(t.device == META for t in tensors_in((args, kwargs, out))):
            raise StrayTensor(f"{_name(func)} made or used a tensor without its inputs' device "
                              "(it landed on the default device, meta)")
        return out


@contextlib.contextmanager
def strays_fail() -> Iterator[None]:
    """Inside: a tensor made without a device lands on "meta", and the first torch call that makes
    or uses one raises StrayTensor."""
    with torch.device(META), _NoMeta():
        yield


def assert_on(obj: Any, device: torch.device | str) -> None:
    """Every tensor in obj (`tensors_in`) is on `device`."""
    want = torch.device(device)
    for t in tensors_in(obj):
        assert t.device.type == want.type, f"a tensor of shape {tuple(t.shape)} is on {t.device}, not {want}"


def assert_same(a: Any, b: Any) -> None:
    """The tensors of a and b, in order, are equal: same dtype, device, shape and bits."""
    ta, tb = list(tensors_in(a)), list(tensors_in(b))
    assert len(ta) == len(tb), (len(ta), len(tb))
    for x, y in zip(ta, tb, strict=True):
        assert x.dtype == y.dtype and x.device == y.device, (x.dtype, x.device, y.dtype, y.device)
        assert torch.equal(x, y), f"tensors of shape {tuple(x.shape)} differ"


def same_with_strays_failing(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) run outside and then inside `strays_fail`: the two results hold the same
    tensors (`assert_same`); returns the first. fn must be deterministic (seeded)."""
    outside = fn(*args, **kwargs)
    with strays_fail():
        inside = fn(*args, **kwargs)
    assert_same(outside, inside)
    return outside
