"""vaekit.arch.spec (the layer language) and vaekit.arch.stack (whole stacks), against torch and torchinfo."""

from __future__ import annotations

import contextlib
import math
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torchinfo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torch_reference import build, trains_nothing
from vaekit.arch.spec import SIGNATURES, LayerSpec, parse_layer, parse_stack, render
from vaekit.arch.stack import analyze, parse_input_shape, totals
from vaekit.errors import SpecError, VaekitError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def one_sentence(message: str) -> bool:
    """One line, ending with a period, no second sentence starting after a period."""
    return "\n" not in message and message.endswith(".") and not re.search(r"\.\s+[A-Z]",
                                                                           message)


# ----------------------------------------------------------------------------- parsing


def test_positional_and_keyword_arguments_follow_torch_order() -> None:
    spec = parse_layer("Conv2d(20, 3, 2, 1, 1, 1, False, 'zeros')")
    assert spec.kind == "Conv2d"
    assert (spec["out_channels"], spec["kernel_size"], spec["stride"], spec["padding"]) == (
        20, (3, 3), (2, 2), (1, 1))
    assert spec["bias"] is False
    spec = parse_layer("ConvTranspose2d(16, 4, 2, 1, 1, 1, True, 2)")  # ..., groups, bias, dilation
    assert (spec["output_padding"], spec["groups"], spec["dilation"]) == ((1, 1), 1, (2, 2))
    assert parse_layer("Linear(2000, bias=False)")["bias"] is False
    assert parse_layer("MaxPool2d(2)")["stride"] is None  # torch: stride defaults to kernel_size
    assert parse_layer("Conv2d(8, (3, 5), padding=(0, 2))")["kernel_size"] == (3, 5)


def test_layer_without_parentheses_and_nn_prefix() -> None:
    assert parse_layer("ReLU").kind == "ReLU"
    assert parse_layer("nn.Flatten()").kind == "Flatten"
    assert parse_layer("torch.nn.Conv2d(4, 3)")["out_channels"] == 4


@pytest.mark.parametrize("text", [
    "Conv2d(20, kernel_size=3, stride=2)", "Linear(2000, bias=False)",
    "ConvTranspose2d(16, 4, stride=2, padding=1)", "MaxPool2d(2)", "Flatten()", "ReLU()",
    "Conv2d(8, (3, 5), padding='same', dilation=(1, 2))", "Upsample(scale_factor=1.5)",
    "AdaptiveAvgPool2d((None, 7))", "LeakyReLU(-0.2)", "BatchNorm2d(momentum=None)",
])
def test_render_gives_back_the_text(text: str) -> None:
    spec = parse_layer(text)
    assert render(spec) == text == spec.text
    assert parse_layer(render(spec)) == spec


LITERAL = st.recursive(
    st.one_of(st.integers(-5, 50), st.booleans(), st.none(), st.sampled_from(["same", "valid"]),
              st.floats(-2, 5, allow_nan=False)),
    lambda inner: st.tuples(inner, inner), max_leaves=3)


@SETTINGS
@given(st.sampled_from(sorted(SIGNATURES)), st.lists(LITERAL, max_size=3),
       st.dictionaries(st.sampled_from(["stride", "padding", "bias", "p", "output_size", "size",
                                        "kernel_size", "affine", "inplace", "beta"]), LITERAL,
                       max_size=2))
def test_any_call_either_parses_and_round_trips_or_raises_one_sentence(
        kind: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    text = f"{kind}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
    try:
        spec = parse_layer(text)
    except SpecError as err:
        assert one_sentence(str(err)) and kind in str(err), str(err)
        return
    assert parse_layer(render(spec)) == spec
    assert spec.params == parse_layer(render(spec)).params


# ----------------------------------------------------------------------------- errors
# Each error a user can make, as one sentence naming the layer and the argument, and torch
# refusing the same layer.


def refused_by_torch(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                     in_shape: tuple[int, ...]) -> bool:
    try:
        module = build(kind, args, kwargs, in_shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module(torch.rand(2, *in_shape))
    except (RuntimeError, ValueError, TypeError, AttributeError):
        return True
    return False


@pytest.mark.parametrize(("text", "torch_call", "in_shape", "words"), [
    ("Conv2D(20, 3)", ("Conv2D", (20, 3), {}), (3, 10, 10), ["unknown layer", "Conv2D"]),
    ("Conv2d(20, 3, strides=2)", ("Conv2d", (20, 3), {"strides": 2}), (3, 10, 10),
     ["unknown argument", "strides"]),
    ("Conv2d(20, kernel_size=13)", ("Conv2d", (20, 13), {}), (3, 10, 10),
     ["kernel_size", "larger than the padded input", "10"]),
    ("Conv2d(20, (3, 13), padding=1)", ("Conv2d", (20, (3, 13)), {"padding": 1}), (3, 10, 10),
     ["kernel_size", "larger than the padded input 12 along W"]),
    ("MaxPool2d(4)", ("MaxPool2d", (4,), {}), (3, 3, 3), ["kernel_size", "output size 0 < 1"]),
    ("ConvTranspose2d(4, 1, padding=3)", ("ConvTranspose2d", (4, 1), {"padding": 3}),
     (3, 4, 4), ["padding", "output size -2 < 1"]),
    ("Conv2d(20, 3, groups=2)", ("Conv2d", (20, 3), {"groups": 2}), (3, 10, 10),
     ["groups", "does not divide in_channels = 3"]),
    ("Conv2d(5, 3, groups=3)", ("Conv2d", (5, 3), {"groups": 3}), (3, 10, 10),
     ["groups", "out_channels = 5"]),
    ("Linear(10)", ("Linear", (10,), {}), (3, 10, 10), ["Linear", "Flatten()"]),
    ("Conv2d(20.5, 3)", ("Conv2d", (20.5, 3), {}), (3, 10, 10),
     ["out_channels", "must be an integer", "20.5"]),
    ("Conv2d(20, kernel_size=3.0)", ("Conv2d", (20,), {"kernel_size": 3.0}), (3, 10, 10),
     ["kernel_size", "must be an integer"]),
    ("Conv2d(20, 3, stride=0)", ("Conv2d", (20, 3), {"stride": 0}), (3, 10, 10),
     ["stride", "positive"]),
    ("Conv2d(20, 3, stride=2, padding='same')", ("Conv2d", (20, 3),
                                                 {"stride": 2, "padding": "same"}),
     (3, 10, 10), ["padding", "'same'", "strided"]),
    ("Conv2d(20, 3)", ("Conv2d", (20, 3), {}), (300,), ["Conv2d", "flat vector"]),
    ("Dropout(1.5)", ("Dropout", (1.5,), {}), (3, 10, 10), ["p", "between"]),
    ("ConvTranspose2d(4, 3, stride=2, output_padding=2)",
     ("ConvTranspose2d", (4, 3), {"stride": 2, "output_padding": 2}), (3, 5, 5),
     ["output_padding", "smaller than stride"]),
    ("MaxPool2d(2, padding=2)", ("MaxPool2d", (2,), {"padding": 2}), (3, 10, 10),
     ["padding", "half the kernel"]),
    ("Upsample(size=4, scale_factor=2)", ("Upsample", (), {"size": 4, "scale_factor": 2}),
     (3, 10, 10), ["exactly one of size and scale_factor"]),
])
def test_bad_spec_is_one_sentence_and_torch_refuses_too(
        text: str, torch_call: tuple[str, tuple[Any, ...], dict[str, Any]],
        in_shape: tuple[int, ...], words: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        analyze(parse_stack(["ReLU()", text]), in_shape)
    message = str(info.value)
    assert one_sentence(message), message
    assert message.startswith("layer 2 "), message
    for word in words:
        assert word in message, message
    assert refused_by_torch(*torch_call, in_shape)


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo owned')", "Conv2d(20, kernel_size=eval('3'))",
    "Conv2d(20, kernel_size=1+2)", "Conv2d(n, 3)", "Conv2d(*[20, 3])", "Conv2d(**{'a': 1})",
    "Conv2d(20, 3)(x)", "Conv2d(20, 3); import os", "lambda: 0", "", "Conv2d(20, 3j)",
    "Conv2d(20, 3, 1, 0, 1, 1, True, 'zeros', 9)", "Conv2d(20)", "Conv2d(20, 3, kernel_size=3)",
    "Conv2d(20, 3, bias=1)", "Conv2d(20, (3, 3, 3))", "Conv2d(20, 3, padding='full')",
    "Flatten(0)", "MaxPool2d(2, return_indices=True)", "Linear(in_features=3, out_features=2)",
])
def test_malformed_text_is_refused_without_evaluating(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_layer(text)
    assert one_sentence(str(info.value)), str(info.value)
    assert isinstance(info.value, VaekitError)


@pytest.mark.parametrize(("text", "said"), [
    ("Flatten(0)", "Flatten: start_dim must be 1 (the batch is kept; no other is supported), got 0."),
    ("Flatten(1, 2)", "end_dim must be -1 (flatten to a vector; no other is supported), got 2."),
])
def test_a_fixed_argument_says_what_it_must_be(text: str, said: str) -> None:
    """`Flatten(0)` was told "start_dim only start_dim=1 (keep the batch) is supported"."""
    with pytest.raises(SpecError) as info:
        parse_layer(text)
    assert str(info.value).endswith(said), str(info.value)


def test_inferred_argument_gets_a_hint() -> None:
    with pytest.raises(SpecError, match="inferred from the previous layer"):
        parse_layer("Linear(in_features=3, out_features=2)")


@pytest.mark.parametrize(("kind", "kwargs", "words"), [
    ("Dropout", {"p": 1.0}, ["p", "[0, 1)", "zeros"]),
    ("Dropout", {"p": 1}, ["p", "[0, 1)"]),
    ("Softplus", {"beta": 0}, ["beta", "positive", "NaN"]),
    ("Softplus", {"beta": 0.0, "threshold": 5}, ["beta", "positive"]),
    ("Softplus", {"beta": 1e-30}, ["beta", "1.2e-07", "constant"]),
    ("Softplus", {"beta": 1e-9}, ["beta", "2**-23"]),
    ("BatchNorm2d", {"momentum": -1.0}, ["momentum", "between 0 and 1", "NaN"]),
    ("BatchNorm2d", {"momentum": 3}, ["momentum", "between 0 and 1"]),
])
def test_a_layer_that_trains_nothing_is_refused_though_torch_runs_it(
        kind: str, kwargs: dict[str, Any], words: list[str]) -> None:
    """torch builds and runs these, but every output is 0 or NaN: a classifier ending in Dropout(p=1)
    has no gradient, Softplus(beta=0) makes the loss NaN at the first step."""
    assert trains_nothing(kind, (), kwargs, (3, 4, 4))
    text = f"{kind}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    with pytest.raises(SpecError) as info:
        parse_stack(["ReLU()", text])
    message = str(info.value)
    assert one_sentence(message) and message.startswith(f"layer 2 {kind}: "), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("text", ["Softplus(beta=-1)", "Softplus(-0.5)"])
def test_softplus_takes_only_a_positive_beta(text: str) -> None:
    with pytest.raises(SpecError, match="Softplus: beta must be positive"):
        parse_layer(text)


@pytest.mark.parametrize("text", ["Dropout(0)", "Dropout(0.999)", "Softplus(beta=1e-3)",
                                  f"Softplus(beta={2.0**-23!r})",
                                  "BatchNorm2d(momentum=0)", "BatchNorm2d(momentum=1)",
                                  "BatchNorm2d(momentum=None)"])
def test_the_bounds_of_degenerate_values_are_accepted(text: str) -> None:
    parse_layer(text)


@pytest.mark.parametrize(("text", "shape"), [("3,10,10", (3, 10, 10)), ("3x10x10", (3, 10, 10)),
                                             ("784", (784,)), ("1, 28 ,28", (1, 28, 28)),
                                             ("3X32X32", (3, 32, 32))])
def test_input_shape(text: str, shape: tuple[int, ...]) -> None:
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["3,10", "a", "0,10,10", "3,10,-1", "", "3.0,10,10"])
def test_bad_input_shape(text: str) -> None:
    with pytest.raises(SpecError, match="--input"):
        parse_input_shape(text)


@pytest.mark.parametrize("text", [" 1x8x8", "1x8x8 ", "\t784", "1,\u00a08,8", "1x8\nx8", "+3,8,8", "1_0",
                                  "3,1_0,10"])
def test_input_shape_is_refused_where_every_size_flag_refuses_it(text: str,
                                                                   one_sentence: Callable[..., None]) -> None:
    """Whitespace around the shape, whitespace other than ASCII spaces in it, '+3' and '1_0' were read
    (the parts were stripped) while --image-size and the integer flags refuse them; the sentence
    quotes the text as theirs do."""
    from vaekit.config import spell

    with pytest.raises(SpecError) as info:
        parse_input_shape(text)
    one_sentence(str(info.value), "--input must be C,H,W", f"got {spell(text)}")


# ----------------------------------------------------------------------------- whole stacks

STACK_LAYERS = [
    st.builds("Conv2d({}, {}, stride={}, padding={})".format, st.integers(1, 8),
              st.integers(1, 3), st.integers(1, 2), st.integers(0, 1)),
    st.builds("Conv2d({}, ({}, {}), groups={}, bias={})".format, st.sampled_from([2, 4]),
              st.integers(1, 3), st.integers(1, 3), st.just(1), st.booleans()),
    st.builds("ConvTranspose2d({}, {}, stride={}, padding={}, output_padding={})".format,
              st.integers(1, 6), st.integers(2, 4), st.just(2), st.integers(0, 1),
              st.integers(0, 1)),
    st.builds("MaxPool2d({}, ceil_mode={})".format, st.integers(2, 3), st.booleans()),
    st.builds("AvgPool2d({}, stride=1)".format, st.integers(1, 2)),
    st.builds("BatchNorm2d(affine={})".format, st.booleans()),
    st.builds("Upsample(scale_factor={})".format, st.sampled_from([2, (1, 2)])),
    st.sampled_from(["ReLU()", "LeakyReLU(0.2)", "ELU()", "GELU()", "SiLU()", "Softplus()",
                     "Sigmoid()", "Tanh()", "Dropout(0.1)", "AdaptiveAvgPool2d((4, None))"]),
]
HEADS = [st.just([]), st.builds(lambda n: ["Flatten()", f"Linear({n})"], st.integers(1, 30)),
         st.builds(lambda n, m: ["Flatten()", f"Linear({n}, bias=False)", "ReLU()",
                                 f"Linear({m})"], st.integers(1, 30), st.integers(1, 10))]


@settings(SETTINGS, max_examples=60)
@given(st.lists(st.one_of(*STACK_LAYERS), min_size=1, max_size=5), st.one_of(*HEADS),
       st.tuples(st.integers(1, 4), st.integers(6, 20), st.integers(6, 20)))
def test_stack_totals_match_torchinfo_and_flop_counter(
        body: list[str], head: list[str], in_shape: tuple[int, int, int]) -> None:
    texts = body + head
    try:
        rows = analyze(parse_stack(texts), in_shape)
    except SpecError:
        assume(False)
        raise
    specs: list[LayerSpec] = [r.spec for r in rows]
    model = nn.Sequential(*[build(s.kind, s.positional, dict(s.keywords), r.input_shape)
                            for s, r in zip(specs, rows, strict=True)]).eval()
    shapes: list[tuple[int, ...]] = []
    for layer in model:
        layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, *in_shape))
    assert shapes == [r.output_shape for r in rows]
    sums = totals(rows)
    assert sums["total_macs"] == counter.get_total_flops() // 2
    assert sums["total_output_bytes"] == 4 * sum(math.prod(s) for s in shapes)
    summary = torchinfo.summary(model, input_size=(2, *in_shape), verbose=0, mode="eval")
    assert sums["total_params"] == summary.trainable_params == summary.total_params


def test_conv_vae_encoder_on_fashion_mnist() -> None:
    """A typical encoder, 1x28x28 -> 40 (mu and log-variance of 20 latents), numbers by hand:
    conv1 32*1*4*4 + 32 = 544; conv2 64*32*4*4 + 64 = 32,832; linear 3136*40 + 40 = 125,480."""
    rows = analyze(parse_stack(["Conv2d(32, 4, stride=2, padding=1)", "ReLU()",
                                "Conv2d(64, 4, stride=2, padding=1)", "ReLU()", "Flatten()",
                                "Linear(40)"]), (1, 28, 28))
    assert [r.output_shape for r in rows] == [(32, 14, 14), (32, 14, 14), (64, 7, 7), (64, 7, 7),
                                              (3136,), (40,)]
    assert [r.params for r in rows] == [544, 0, 32_832, 0, 0, 125_480]
    assert rows[2].receptive_field == (10, 10) and rows[2].jump == (4, 4)
    assert rows[-1].receptive_field == (28, 28) and rows[-1].jump is None
    assert rows[0].macs == 32 * 14 * 14 * 16


def test_a_number_given_to_batchnorm_is_refused_not_read_as_eps() -> None:
    """torch's BatchNorm2d(64) is num_features = 64, which the stack infers; read positionally it
    would have been eps = 64."""
    with pytest.raises(SpecError, match="num_features from the previous layer"):
        parse_layer("BatchNorm2d(64)")
    assert parse_layer("BatchNorm2d(eps=0.001)")["eps"] == 0.001


@pytest.mark.parametrize("text", ["Linear(７８４)", "Linear(10, bias=True) ", "Conv2d(٣, 3)",
                                  "Upsample(scale_factor=２)"])
def test_a_layer_is_written_in_ascii_digits(text: str, one_sentence: Callable[..., None]) -> None:
    """Other scripts' digits: a sentence that says which character, not 'is not a layer call'."""
    digits = [ch for ch in text if ch.isdigit() and not ch.isascii()]
    if not digits:
        assert parse_layer(text).kind == "Linear"
        return
    with pytest.raises(SpecError) as info:
        parse_layer(text)
    one_sentence(str(info.value), "ASCII digits", repr(digits[0]), text.strip())


@pytest.mark.parametrize(("text", "written", "odd"), [
    ("Conv2d(4, kernel_size=1_0)", "1_0", "underscore"), ("Conv2d(+3, 1)", "+3", "leading +"),
    ("Conv2d(-1_0, 1)", "1_0", "underscore"), ("Dropout(p=0.1_0)", "0.1_0", "underscore"),
    ("Upsample(scale_factor=(2, +2))", "+2", "leading +"), ("LeakyReLU(+0.1)", "+0.1", "leading +"),
    ("Conv2d(0x4, 3)", "0x4", "base prefix"), ("Conv2d(4, kernel_size=0b11)", "0b11", "base prefix"),
    ("Conv2d(4, 3, stride=-0o1)", "0o1", "base prefix"), ("Conv2d(4, 0X3)", "0X3", "base prefix")])
def test_a_layer_number_is_written_as_a_number_flag_takes_it(text: str, written: str, odd: str,
                                                             one_sentence: Callable[..., None]) -> None:
    """'1_0' was read as 10, '+3' as 3 and '0x4' as 4 in a layer, while the integer and number flags
    refuse them."""
    with pytest.raises(SpecError) as info:
        parse_layer(text)
    one_sentence(str(info.value), odd, f"`{written}`")
    assert parse_layer("Conv2d(4, kernel_size=10)")["kernel_size"] == (10, 10)  # as written without them


@pytest.mark.parametrize("text", ["LeakyReLU(1e-320)", "Dropout(5e-324)", "LeakyReLU(-1e-310)", "ELU(1e-400)",
                                  "Upsample(scale_factor=(2, 1e-310))", "BatchNorm2d(eps=4e-320)"])
def test_a_subnormal_number_is_refused_naming_the_layer(text: str, one_sentence: Callable[..., None]) -> None:
    """Below float's smallest normal, a number is 0 to a CPU that flushes denormals (as `vaekit`
    commands run, `vaekit.device.flush_denormals`), where even its parse gives 0.0: not the slope
    or p written. Refused with or without the flush; 0 and the smallest normal are numbers."""
    from vaekit.device import flush_denormals

    for flushed in (False, True):
        with flush_denormals() if flushed else contextlib.nullcontext():
            with pytest.raises(SpecError) as info:
                parse_layer(text)
        one_sentence(str(info.value), text, "subnormal")
    assert parse_layer("LeakyReLU(0.0)")["negative_slope"] == 0.0
    assert parse_layer(f"LeakyReLU({sys.float_info.min!r})")["negative_slope"] == sys.float_info.min


@pytest.mark.parametrize("text", ["Linear(\n3))", "Foo(\t\n)", "Linear(3 # x\n)", "Conv2d(\r20)\x00"])
def test_a_layer_written_over_lines_is_quoted_on_one_line(text: str) -> None:
    """Whatever is wrong with it, the sentence quoting the layer is one line, its control characters
    written as Python writes them in a string literal."""
    with pytest.raises(SpecError) as info:
        parse_layer(text, where="layer 1 ")
    said = str(info.value)
    assert said.isprintable() and "\n" not in said, said
    assert repr(text)[1:-1] in said, said


@pytest.mark.parametrize(("text", "comment"), [
    ("Linear(3)#junk", "#junk"), ("Linear(3)  # out", "# out"), ("nn.ReLU # relu", "# relu"),
])
def test_a_comment_is_refused_not_dropped(text: str, comment: str,
                                          one_sentence: Callable[..., None]) -> None:
    """Python's parser drops a comment; a layer is its call alone, so a comment is named and
    refused. A '#' inside a string is no comment (and gets the argument's own rule)."""
    with pytest.raises(SpecError) as info:
        parse_layer(text, where="layer 1 ")
    one_sentence(str(info.value), "layer 1", f"has the comment `{comment}`")
    with pytest.raises(SpecError, match="approximate must be one of 'none', 'tanh', got '#tanh'"):
        parse_layer("GELU(approximate='#tanh')")
    assert parse_layer("GELU(approximate='tanh')")["approximate"] == "tanh"


@pytest.mark.parametrize(("text", "rule"), [
    ("Linear(1e-400)", "out_features must be an integer, got 0.0 (1e-400 as written)"),
    ("Conv2d(8, 3, stride=(1, 5e-324))", "stride must be an integer"),
    ("MaxPool2d(-1e-310)", "kernel_size must be an integer"),
    ("Dropout(-1e-400)", "p must be in [0, 1)"),
])
def test_a_tiny_number_where_none_of_its_size_is_taken_gets_the_arguments_rule(
        text: str, rule: str, one_sentence: Callable[..., None]) -> None:
    """An integer size, or a p below 0, is refused at any size: the argument's own rule (as
    `Linear(3.0)` and `Linear(0)` get), not the sentence on floats below the smallest normal,
    which would say that 0 or 2.5 is taken."""
    from vaekit.device import flush_denormals

    for flushed in (False, True):
        with flush_denormals() if flushed else contextlib.nullcontext():
            with pytest.raises(SpecError) as info:
                parse_layer(text)
        one_sentence(str(info.value), rule)
        assert "subnormal" not in str(info.value)
    with pytest.raises(SpecError, match="out_features must be an integer, got 3.0"):
        parse_layer("Linear(3.0)")
