"""The device check of tests/device_check.py against code written here to pass or fail it: it must
catch a stray tensor even where nothing but its shape is read, and let through tensors made like
their inputs and the CPU draws that name their device."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from device_check import StrayTensor, assert_on, same_with_strays_failing, strays_fail


def follows_its_input(x: Tensor) -> Tensor:
    acc = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    acc += x.sum(dim=1) + torch.ones_like(x[:, 0])
    return torch.cat([acc[:, None], x.new_full((x.shape[0], 1), 2.0)], dim=1)


def draws_on_the_cpu_then_copies(x: Tensor, seed: int) -> Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    eps = torch.randn(x.shape, generator=g, dtype=x.dtype, device=g.device)
    return x + eps.to(x.device)


def stray_added(x: Tensor) -> Tensor:
    return x + torch.zeros(x.shape[1])  # no device: the default one


def stray_shape_only(model: nn.Module, d: int) -> int:
    """The bug of an activation count: a probe made without a device whose output's size alone is
    read (torch's meta kernel of linear takes the CPU weights without a word)."""
    with torch.inference_mode():
        return int(model(torch.zeros(1, d)).numel())


def stray_filled_in_place(x: Tensor) -> Tensor:
    out = torch.empty(x.shape)  # copying CPU values into a meta tensor raises nothing
    out[:] = x
    return out


x = torch.arange(12.0).reshape(3, 4)


def test_code_that_follows_its_inputs_passes_with_the_same_numbers() -> None:
    out = same_with_strays_failing(follows_its_input, x)
    assert_on(out, "cpu")
    torch.testing.assert_close(out[:, 0], x.sum(dim=1) + 1)  # the sums 7, 23, 39 written out
    assert out[:, 0].tolist() == [7.0, 23.0, 39.0] and out[:, 1].tolist() == [2.0] * 3


def test_cpu_draws_that_name_their_device_pass() -> None:
    out = same_with_strays_failing(draws_on_the_cpu_then_copies, x, 3)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("fn,args", [
    (stray_added, (x,)),
    (stray_shape_only, (nn.Linear(4, 5), 4)),
    (stray_filled_in_place, (x,)),
])
def test_a_stray_fails_at_its_call(fn: object, args: tuple) -> None:
    assert callable(fn)
    fn(*args)  # outside the check the bug is silent
    with strays_fail(), pytest.raises(StrayTensor, match=r"torch\.(zeros|empty) made or used"):
        fn(*args)


def test_the_check_ends_with_its_block() -> None:
    with strays_fail():
        pass
    assert torch.zeros(2).device.type == "cpu"
    with pytest.raises(StrayTensor), strays_fail():
        torch.full((2,), 1.0)
    assert torch.full((2,), 1.0).device.type == "cpu"


def test_assert_on_names_a_tensor_elsewhere() -> None:
    with pytest.raises(AssertionError, match="meta"):
        assert_on({"a": [x, torch.zeros(2, device="meta")]}, "cpu")
