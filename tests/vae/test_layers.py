"""vaekit.vae.layers: each gated layer against two separate torch.nn layers (the linear half and the
gate half, weights copied from the halves of the one layer), shapes, and gradients to both halves."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from vaekit.vae.layers import GatedConv2d, GatedConvTranspose2d, GatedLinear

pytestmark = pytest.mark.usefixtures("one_thread")


def halves_of(layer: nn.Module, n: int, make: type[nn.Module], *args: object,
              **kw: object) -> tuple[nn.Module, nn.Module]:
    """Two torch layers `make(*args, **kw)` of n outputs each, holding the first and the second n
    output rows (channels) of `layer`'s weight and bias."""
    a, g = make(*args, **kw).double(), make(*args, **kw).double()
    # nn.Linear and nn.Conv2d keep the outputs on dim 0 of the weight, nn.ConvTranspose2d on dim 1
    out_dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
    with torch.no_grad():
        wa, wg = layer.weight.split(n, dim=out_dim)
        ba, bg = layer.bias.split(n)
        a.weight.copy_(wa)
        a.bias.copy_(ba)
        g.weight.copy_(wg)
        g.bias.copy_(bg)
    return a, g


def glu(a: nn.Module, g: nn.Module, x: Tensor) -> Tensor:
    return a(x) * torch.sigmoid(g(x))


def test_gated_linear_equals_two_linears() -> None:
    torch.manual_seed(0)
    layer = GatedLinear(7, 5).double()
    assert layer.linear.weight.shape == (10, 7)
    a, g = halves_of(layer.linear, 5, nn.Linear, 7, 5)
    for shape in [(4, 7), (3, 2, 7), (7,)]:
        x = torch.randn(*shape, dtype=torch.float64)
        out = layer(x)
        assert out.shape == (*shape[:-1], 5)
        torch.testing.assert_close(out, glu(a, g, x), rtol=1e-12, atol=1e-12)


def test_gated_linear_is_not_an_ungated_linear() -> None:
    """The gate matters: the output is not the first half alone (a test of the reference itself)."""
    torch.manual_seed(1)
    layer = GatedLinear(4, 3).double()
    a, _ = halves_of(layer.linear, 3, nn.Linear, 4, 3)
    x = torch.randn(6, 4, dtype=torch.float64)
    assert not torch.allclose(layer(x), a(x))


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (2, 0)])
def test_gated_conv2d_equals_two_convs(stride: int, padding: int) -> None:
    torch.manual_seed(2)
    layer = GatedConv2d(3, 4, 3, stride, padding).double()
    assert layer.conv.weight.shape == (8, 3, 3, 3)
    a, g = halves_of(layer.conv, 4, nn.Conv2d, 3, 4, 3, stride, padding)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    out = layer(x)
    ref = glu(a, g, x)
    h, w = ((n + 2 * padding - 3) // stride + 1 for n in (9, 8))
    assert out.shape == ref.shape == (2, 4, h, w)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("output_padding", [0, 1, (1, 0), (0, 1)])
def test_gated_conv_transpose_equals_two_transposed_convs(output_padding: int | tuple[int, int]) -> None:
    torch.manual_seed(3)
    k, s, p = 4, 2, 1
    layer = GatedConvTranspose2d(5, 3, k, s, p, output_padding=output_padding).double()
    assert layer.conv.weight.shape == (5, 6, k, k)  # (C_in, 2 C_out, k, k)
    a, g = halves_of(layer.conv, 3, nn.ConvTranspose2d, 5, 3, k, s, p, output_padding=output_padding)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    out = layer(x)
    op = (output_padding, output_padding) if isinstance(output_padding, int) else output_padding
    # H_out = (H_in - 1) s - 2p + (k - 1) + output_padding + 1, computed here by hand
    expected = (2, 3, (3 - 1) * s - 2 * p + k + op[0], (4 - 1) * s - 2 * p + k + op[1])
    assert out.shape == expected
    torch.testing.assert_close(out, glu(a, g, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, x_shape", [
    (lambda: GatedLinear(6, 4), (5, 6)),
    (lambda: GatedConv2d(2, 3, 3, 1, 1), (2, 2, 5, 5)),
    (lambda: GatedConvTranspose2d(2, 3, 3, 2, 1, output_padding=1), (2, 2, 3, 3)),
], ids=["linear", "conv", "conv-transpose"])
def test_gradients_reach_both_halves(make: object, x_shape: tuple[int, ...]) -> None:
    torch.manual_seed(4)
    layer = make().double()  # type: ignore[operator]
    inner = layer.linear if isinstance(layer, GatedLinear) else layer.conv
    x = torch.randn(*x_shape, dtype=torch.float64, requires_grad=True)
    layer(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    n = layer.n_out if isinstance(layer, GatedLinear) else layer.c_out
    out_dim = 1 if isinstance(inner, nn.ConvTranspose2d) else 0
    for grad in (inner.weight.grad, inner.bias.grad):
        assert grad is not None
        dim = out_dim if grad.dim() > 1 else 0
        first, second = grad.split(n, dim=dim)
        assert first.abs().sum() > 0 and second.abs().sum() > 0  # the linear half and the gate half
        assert torch.isfinite(grad).all()


def test_gradient_against_finite_differences() -> None:
    """torch.autograd.gradcheck on the gated linear layer (float64): the analytic gradient of
    a * sigmoid(g) matches central differences."""
    torch.manual_seed(5)
    layer = GatedLinear(3, 2).double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


TORCH_ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Softplus)


@pytest.mark.parametrize("model", [
    {"kind": "mlp"}, {"kind": "conv"}, {"kind": "mlp", "stochastic_layers": 2},
    {"kind": "conv", "stochastic_layers": 2}, {"kind": "mlp", "autoregressive": 8},
    {"kind": "mlp", "prior": "vamp", "pseudo_inputs": 4},
])
def test_a_gated_model_has_no_activation_for_the_setting_to_choose(model: dict[str, object]) -> None:
    """Gated layers have their sigmoid gate in place of the activation: no torch activation module
    is built, and the same seed gives the same outputs whatever model.activation says (which is why
    `config.check_used` refuses --activation with --gated)."""
    from vaekit.config import TrainConfig, apply
    from vaekit.vae.models import build_model

    outputs = []
    for activation in ("relu", "tanh", "elu"):
        c = apply(TrainConfig(), {"model": {**model, "gated": True, "activation": activation, "hidden": [16],
                                            "latent": 4, "channels": [4, 4], "image_shape": [1, 8, 8]}}, "t")
        torch.manual_seed(0)
        net = build_model(c)
        assert not any(isinstance(m, TORCH_ACTIVATIONS) for m in net.modules())
        outputs.append(net.encode(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))))
    for mu, logvar in outputs[1:]:
        assert torch.equal(mu, outputs[0][0]) and torch.equal(logvar, outputs[0][1])
