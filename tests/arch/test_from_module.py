"""vaekit.arch.from_module: a torch module's layer text, run through spec -> stack -> arith, gives
each layer the output shape torch computes on a zeros tensor, torch's parameter count and torch's
FLOPs / 2; layers it cannot write fail clearly, and the VAE parameter table falls back to the
named parameters whenever its rows do not add up to the model's own count."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vaekit.arch import spec
from vaekit.arch.from_module import ParamRow, analyze_module, layer_text, parameter_table
from vaekit.errors import SpecError


def torch_rows(stack: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, int, int]]:
    """(output shape "CxHxW", params, MACs) per layer, from torch: each layer run on the previous
    one's output, starting from zeros of shape (1, *input_shape); MACs = FLOPs / 2."""
    layers = list(stack) if isinstance(stack, nn.Sequential) else [stack]
    x = torch.zeros(1, *input_shape)
    rows = []
    with torch.no_grad():
        for layer in layers:
            with FlopCounterMode(display=False) as counter:
                x = layer(x)
            rows.append(("x".join(map(str, x.shape[1:])), sum(p.numel() for p in layer.parameters()),
                         counter.get_total_flops() // 2))
    return rows


def vaekit_rows(rows: list[ParamRow]) -> list[tuple[str, int, int | None]]:
    return [(r.output_shape, r.params, r.macs) for r in rows]


def conv_encoder() -> nn.Sequential:
    """Strides, padding, dilation and groups per axis; the Linear sized by torch itself."""
    convs = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, (3, 5), stride=(1, 2), padding=(2, 1), dilation=2, groups=4), nn.ELU(),
        nn.Conv2d(16, 4, 1, bias=False), nn.GELU(), nn.Flatten())
    flat = convs(torch.zeros(1, 3, 17, 15)).shape[1]
    return nn.Sequential(*convs, nn.Linear(flat, 7))


def deconv_decoder() -> nn.Sequential:
    """Unflatten, then transposed convolutions with output_padding, dilation and groups."""
    return nn.Sequential(
        nn.Linear(6, 32 * 4 * 4), nn.SiLU(), nn.Unflatten(1, (32, 4, 4)),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 3, stride=3, padding=2, output_padding=1, dilation=2, groups=4),
        nn.Tanh(),
        nn.ConvTranspose2d(8, 1, (2, 3), stride=(2, 1), padding=(0, 1), output_padding=(1, 0),
                           bias=False),
        nn.Sigmoid())


def round_trip() -> nn.Sequential:
    """Image -> vector -> image -> vector: two Unflattens, each starting a new stack."""
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3 * 5 * 5),
        nn.Unflatten(1, (3, 5, 5)), nn.Conv2d(3, 3, 3, padding=1, groups=3), nn.ReLU(),
        nn.Flatten(), nn.Linear(75, 12), nn.Unflatten(1, (3, 2, 2)),
        nn.ConvTranspose2d(3, 2, 2, stride=2))


STACKS: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "mlp": (nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 20, bias=False), nn.Tanh(),
                          nn.Linear(20, 10), nn.Sigmoid()), (784,)),
    "conv-encoder": (conv_encoder(), (3, 17, 15)),
    "deconv-decoder": (deconv_decoder(), (6,)),
    "unflatten-twice": (round_trip(), (1, 8, 8)),
    "single-conv": (nn.Conv2d(3, 20, 3, stride=2), (3, 10, 10)),
}


@pytest.mark.parametrize("name", list(STACKS))
def test_each_layer_has_torchs_shape_params_and_macs(name: str) -> None:
    module, shape = STACKS[name]
    rows, out = analyze_module("part", module, shape)
    expected = torch_rows(module, shape)
    assert vaekit_rows(rows) == expected
    assert "x".join(map(str, out)) == expected[-1][0]
    assert {r.part for r in rows} == {"part"}
    assert sum(r.params for r in rows) == sum(p.numel() for p in module.parameters())


def test_unflatten_row_names_its_shape() -> None:
    rows, _ = analyze_module("p_dec", deconv_decoder(), (6,))
    assert rows[2].layer == "Unflatten(1, (32, 4, 4))"


conv_kinds = st.sampled_from(["Conv2d", "ConvTranspose2d"])


@settings(max_examples=80, deadline=None)
@given(kind=conv_kinds, groups=st.integers(1, 3), c_in=st.integers(1, 2), c_out=st.integers(1, 2),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       output_padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       bias=st.booleans(), hw=st.tuples(st.integers(1, 9), st.integers(1, 9)))
def test_any_conv_module_matches_torch_or_both_refuse(
        kind: str, groups: int, c_in: int, c_out: int, kernel: tuple[int, int],
        stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
        output_padding: tuple[int, int], bias: bool, hw: tuple[int, int]) -> None:
    kwargs: dict[str, Any] = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                                  bias=bias)
    if kind == "ConvTranspose2d":  # torch: output_padding < max(stride, dilation) per axis
        kwargs["output_padding"] = tuple(min(o, max(s, d) - 1)
                                         for o, s, d in zip(output_padding, stride, dilation, strict=True))
    module = getattr(nn, kind)(c_in * groups, c_out * groups, kernel, **kwargs)
    shape = (c_in * groups, *hw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected: list[tuple[str, int, int]] | None = torch_rows(module, shape)
    except RuntimeError:  # torch refuses: the kernel does not fit the padded input
        expected = None
    # as in test_arith: vaekit accepts iff torch runs the layer with a non-empty output
    if expected is None or "0" in expected[0][0].split("x"):
        event(f"{kind} refused")
        with pytest.raises(SpecError):
            analyze_module("part", module, shape)
        return
    event(f"{kind} accepted")
    rows, _ = analyze_module("part", module, shape)
    assert vaekit_rows(rows) == expected


@pytest.mark.parametrize("module", [
    nn.Linear(3, 4), nn.Linear(3, 4, bias=False), nn.Conv2d(2, 4, 3, padding=(1, 0), groups=2),
    nn.ConvTranspose2d(2, 3, (2, 4), stride=2, output_padding=(1, 0)), nn.LeakyReLU(0.3),
    nn.Flatten(), nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.ELU(), nn.GELU(), nn.SiLU(),
], ids=lambda m: type(m).__name__)
def test_layer_text_parses_as_the_same_kind(module: nn.Module) -> None:
    text = layer_text(module)
    assert text is not None
    assert spec.parse_layer(text).kind == type(module).__name__


@pytest.mark.parametrize("module", [nn.MaxPool2d(2), nn.BatchNorm2d(3), nn.Dropout(), nn.Softmax(dim=1),
                                    nn.Sequential(nn.ReLU()), nn.Unflatten(1, (2, 2))],
                         ids=lambda m: type(m).__name__)
def test_layer_text_is_none_for_a_layer_it_cannot_write(module: nn.Module) -> None:
    assert layer_text(module) is None


def test_an_unknown_layer_raises_value_error_naming_it() -> None:
    stack = nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=1))
    with pytest.raises(ValueError, match="no layer text for Softmax"):
        analyze_module("q_enc", stack, (4,))


# ----------------------------------------------------------------------------- the VAE table


class TinyVAE(nn.Module):
    """The attributes parameter_table reads, nothing else: image_shape, latent_dim and the sheet's
    q_enc, q_mu, q_logvar, p_dec; optionally a learned p_logvar and an extra layer in q_enc."""

    def __init__(self, p_logvar: bool = False, extra: nn.Module | None = None) -> None:
        super().__init__()
        self.image_shape, self.latent_dim = (1, 6, 6), 3
        self.q_enc = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                   *([extra] if extra is not None else []))
        self.q_mu, self.q_logvar = nn.Linear(36, 3), nn.Linear(36, 3)
        self.p_dec = nn.Sequential(nn.Linear(3, 36), nn.Unflatten(1, (1, 6, 6)), nn.Sigmoid())
        if p_logvar:
            self.p_logvar = nn.Parameter(torch.zeros(1, 6, 6))


@pytest.mark.parametrize("p_logvar", [False, True])
def test_parameter_table_rows_are_torchs_per_part(p_logvar: bool) -> None:
    model = TinyVAE(p_logvar)
    rows, source = parameter_table(model)
    assert source.startswith("vaekit.arch.arith")
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    parts = {name: [r for r in rows if r.part == name] for name in ("q_enc", "q_mu", "q_logvar", "p_dec")}
    assert vaekit_rows(parts["q_enc"]) == torch_rows(model.q_enc, model.image_shape)
    assert vaekit_rows(parts["q_mu"]) == torch_rows(model.q_mu, (36,))
    assert vaekit_rows(parts["q_logvar"]) == torch_rows(model.q_logvar, (36,))
    assert vaekit_rows(parts["p_dec"]) == torch_rows(model.p_dec, (3,))
    learned = [r for r in rows if r.part == "p_logvar"]
    assert [r.params for r in learned] == ([36] if p_logvar else [])


@pytest.mark.parametrize("model", [
    TinyVAE(extra=nn.Dropout()),  # a layer without layer text
    nn.Sequential(nn.Linear(2, 2)),  # no image_shape, no q_enc
], ids=["unknown-layer", "not-a-vae"])
def test_parameter_table_falls_back_to_named_parameters(model: nn.Module) -> None:
    rows, source = parameter_table(model)
    assert source == "the model's named parameters"
    assert [(r.layer, r.params, r.macs) for r in rows] == [(n, p.numel(), None)
                                                           for n, p in model.named_parameters()]


def test_parameter_table_falls_back_when_the_counts_disagree() -> None:
    """A parameter outside the four parts: the rows would miss it, so the table lists tensors."""
    model = TinyVAE()
    model.register_parameter("stray", nn.Parameter(torch.zeros(5)))
    rows, source = parameter_table(model)
    assert source == "the model's named parameters"
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert "stray" in {r.layer for r in rows}
