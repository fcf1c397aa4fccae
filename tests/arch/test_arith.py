"""vaekit.arch.arith (through vaekit.arch.stack) held against real torch.nn modules, torch's flop counter and
brute-force gradients (the sheet's own answers: test_sheet.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, event, example, given, note, settings
from hypothesis import strategies as st
from torch import nn

from torch_reference import build, call_text, reference, trains_nothing
from vaekit.arch import arith
from vaekit.arch import field as rfield
from vaekit.arch.spec import KEYWORDS_ONLY, SIGNATURES, parse_stack
from vaekit.arch.stack import analyze, index_maps
from vaekit.errors import SpecError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


def pair(lo: int, hi: int) -> st.SearchStrategy[Any]:
    """An int or a (height, width) tuple: non-square half of the time."""
    return st.one_of(ints(lo, hi), st.tuples(ints(lo, hi), ints(lo, hi)))


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values 7 times in 8, invalid ones otherwise."""
    return st.one_of(*[good] * 7, bad)


@st.composite
def call(draw: st.DrawFn, kind: str, values: dict[str, st.SearchStrategy[Any]],
         required: tuple[str, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Some of the layer's arguments, the leading ones positional (in torch's order), the rest
    keyword: torch receives the same split, so a wrong argument order in vaekit shows up."""
    order = [name for name, _, _ in SIGNATURES[kind]]
    chosen = {n: draw(s) for n, s in values.items() if n in required or draw(st.booleans())}
    leading = 0
    while leading < len(order) and order[leading] in chosen:
        leading += 1
    n_pos = 0 if kind in KEYWORDS_ONLY else draw(ints(0, leading))  # BatchNorm2d: by name only
    args = tuple(chosen.pop(order[i]) for i in range(n_pos))
    return args, chosen


def image(lo: int = 1, hi: int = 14, channels: st.SearchStrategy[int] | None = None
          ) -> st.SearchStrategy[tuple[int, int, int]]:
    return st.tuples(channels or ints(1, 6), ints(lo, hi), ints(lo, hi))


CONV_VALUES = {
    "out_channels": ints(1, 6), "kernel_size": mostly(pair(1, 5), pair(0, 8)),
    "stride": mostly(pair(1, 3), pair(0, 1)),
    "padding": st.one_of(pair(0, 3), pair(0, 3), st.sampled_from(["valid", "same"]),
                         pair(-1, 0)),
    "dilation": mostly(pair(1, 3), pair(0, 1)), "groups": st.sampled_from([1, 1, 2, 3]),
    "bias": st.booleans(),
    "padding_mode": st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]),
}
CONV_T_VALUES = {
    "out_channels": ints(1, 6), "kernel_size": pair(1, 5), "stride": mostly(pair(1, 3), pair(0, 1)),
    "padding": mostly(pair(0, 3), pair(-1, 6)), "output_padding": pair(0, 2),
    "groups": ints(1, 3), "bias": st.booleans(), "dilation": pair(1, 3),
}
POOL_VALUES = {
    "kernel_size": pair(1, 5), "stride": st.one_of(st.none(), mostly(pair(1, 3), pair(0, 1))),
    "padding": mostly(pair(0, 2), pair(-1, 3)), "dilation": pair(1, 3), "ceil_mode": st.booleans(),
}
AVG_POOL_VALUES = {
    "kernel_size": pair(1, 5), "stride": st.one_of(st.none(), mostly(pair(1, 3), pair(0, 1))),
    "padding": mostly(pair(0, 2), pair(-1, 3)), "ceil_mode": st.booleans(),
    "count_include_pad": st.booleans(), "divisor_override": st.one_of(st.none(), ints(1, 3)),
}
ELEMENTWISE = {
    "ReLU": {"inplace": st.booleans()},
    "LeakyReLU": {"negative_slope": st.floats(-1, 1), "inplace": st.booleans()},
    "Sigmoid": {}, "Tanh": {}, "ELU": {"alpha": st.floats(0.1, 2)},
    "GELU": {"approximate": st.sampled_from(["none", "tanh"])}, "SiLU": {},
    "Softplus": {"beta": st.one_of(st.floats(0.5, 2), st.just(0.0), st.just(1e-30)),
                 "threshold": st.floats(1, 30)},
    "Dropout": {"p": st.sampled_from([0.0, 0.2, 0.5, 1.0, -0.1, 1.5])},
    "BatchNorm2d": {"eps": st.sampled_from([1e-5, 1e-3]),
                    "momentum": st.sampled_from([None, 0.1, 0.0, 1.0, -1.0, 3.0]),
                    "affine": st.booleans(), "track_running_stats": st.booleans()},
}


def check_layer(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                in_shape: tuple[int, ...]) -> None:
    """vaekit accepts the layer iff torch runs it with a non-empty output that depends on its input
    (`trains_nothing`: all zeros, one constant or NaN), and then agrees with torch on output shape, trainable
    weights and biases, and MACs (flop_counter / 2)."""
    text = call_text(kind, args, kwargs)
    note(f"{text} on input {in_shape}")
    ref = reference(kind, args, kwargs, in_shape)
    torch_ok = (not isinstance(ref, Exception) and min(ref.output_shape) >= 1
                and not trains_nothing(kind, args, kwargs, in_shape))
    try:
        row = analyze(parse_stack([text]), in_shape)[0]
    except SpecError as err:
        assert not torch_ok, f"vaekit refuses what torch runs: {err}"
        event("both refuse")
        message = str(err)
        assert kind in message and message.endswith(".") and "\n" not in message
        return
    assert torch_ok, f"torch refuses ({ref!r}) what vaekit accepts"
    event("both accept")
    assert not isinstance(ref, Exception)
    assert row.output_shape == ref.output_shape
    assert (row.weight_params, row.bias_params) == (ref.weight_params, ref.bias_params)
    assert row.params == ref.params
    assert row.macs == ref.macs
    assert row.output_bytes == 4 * math.prod(ref.output_shape)


# ----------------------------------------------------------------------------- each layer kind


@SETTINGS
@given(call("Conv2d", CONV_VALUES, ("out_channels", "kernel_size")), image(1, 12))
def test_conv2d_matches_torch(case: Any, in_shape: tuple[int, int, int]) -> None:
    args, kwargs = case
    padding = args[3] if len(args) > 3 else kwargs.get("padding", 0)
    # torch crops for a negative padding with padding_mode != 'zeros'; vaekit refuses it.
    assume(kwargs.get("padding_mode", "zeros") == "zeros" or "-1" not in str(padding))
    check_layer("Conv2d", args, kwargs, in_shape)


@SETTINGS
@given(call("ConvTranspose2d", CONV_T_VALUES, ("out_channels", "kernel_size")), image(1, 8))
@example(((2, 3), {"output_padding": 1, "dilation": 2}), (1, 4, 4))  # op < dilation, op = stride
@example(((2, 3), {"output_padding": (0, 2), "stride": 2}), (1, 4, 4))  # op = stride: refused
def test_conv_transpose2d_matches_torch(case: Any, in_shape: tuple[int, int, int]) -> None:
    check_layer("ConvTranspose2d", *case, in_shape)


@SETTINGS
@given(call("MaxPool2d", POOL_VALUES, ("kernel_size",)), image(1, 12))
def test_max_pool2d_matches_torch(case: Any, in_shape: tuple[int, int, int]) -> None:
    check_layer("MaxPool2d", *case, in_shape)


@SETTINGS
@given(call("AvgPool2d", AVG_POOL_VALUES, ("kernel_size",)), image(1, 12))
def test_avg_pool2d_matches_torch(case: Any, in_shape: tuple[int, int, int]) -> None:
    check_layer("AvgPool2d", *case, in_shape)


@settings(SETTINGS, max_examples=60)
@given(call("AdaptiveAvgPool2d",
            {"output_size": st.one_of(ints(1, 9), st.tuples(st.none() | ints(1, 9),
                                                            st.none() | ints(1, 9)))},
            ("output_size",)), image(1, 12))
def test_adaptive_avg_pool2d_matches_torch(case: Any, in_shape: tuple[int, int, int]) -> None:
    check_layer("AdaptiveAvgPool2d", *case, in_shape)


@settings(SETTINGS, max_examples=80)
@given(st.data(), image(1, 9))
def test_upsample_nearest_matches_torch(data: st.DataObject, in_shape: tuple[int, int, int]
                                        ) -> None:
    scale = st.sampled_from([1, 2, 3, 0.5, 1.5, 2.5, 0.3, 1.7])
    values = {"size": pair(1, 20), "scale_factor": st.one_of(scale, st.tuples(scale, scale)),
              "recompute_scale_factor": st.sampled_from([None, True, False])}
    how = data.draw(st.sampled_from([("size",), ("scale_factor",)] * 3 + [(), ("size",
                                     "scale_factor")]))  # the last two are refused
    case = data.draw(call("Upsample", values, how))
    if len(how) == 1:
        other = "scale_factor" if how == ("size",) else "size"
        case[1].pop(other, None)
        assume(other not in case[0] and (other != "size" or not case[0]))
    check_layer("Upsample", *case, in_shape)


@settings(SETTINGS, max_examples=60)
@given(st.sampled_from(sorted(ELEMENTWISE)), st.data(),
       st.one_of(image(1, 6), st.tuples(ints(1, 50))))
def test_elementwise_layers_match_torch(kind: str, data: st.DataObject,
                                        in_shape: tuple[int, ...]) -> None:
    case = data.draw(call(kind, ELEMENTWISE[kind], ()))
    check_layer(kind, *case, in_shape)


@settings(SETTINGS, max_examples=60)
@given(call("Linear", {"out_features": ints(1, 40), "bias": st.booleans()}, ("out_features",)),
       st.one_of(st.tuples(ints(1, 300)), image(1, 6)), st.booleans())
def test_linear_and_flatten_match_torch(case: Any, in_shape: tuple[int, ...], flat: bool) -> None:
    if flat:
        check_layer("Flatten", (), {}, in_shape)
        in_shape = (math.prod(in_shape),)
    if len(in_shape) == 1:
        check_layer("Linear", *case, in_shape)
    else:  # vaekit asks for Flatten; torch's Linear(C*H*W) refuses the image too
        assume(in_shape[0] * in_shape[1] > 1)  # else W == C*H*W and torch's Linear applies
        with pytest.raises(SpecError, match="Flatten"):
            analyze(parse_stack([call_text("Linear", *case)]), in_shape)
        with pytest.raises(RuntimeError):
            build("Linear", *case, (math.prod(in_shape),))(torch.rand(2, *in_shape))


# ----------------------------------------------------------------------------- index maps


@settings(SETTINGS, max_examples=60)
@given(ints(1, 20), st.one_of(st.tuples(st.sampled_from([0.5, 1.5, 2, 2.5, 3, 0.3, 1.7, 4])),
                              st.tuples(st.none(), ints(1, 40))))
def test_upsample_source_index_matches_torch(size: int, how: tuple[Any, ...]) -> None:
    """Which input pixel each output of nearest upsampling copies, read off an arange input."""
    x = torch.arange(size, dtype=torch.float64).reshape(1, 1, 1, size)
    if how[0] is not None:
        n = arith.upsample_nearest_output_size(size, how[0])
        assume(n >= 1)
        out = nn.functional.interpolate(x, scale_factor=(1, how[0]), mode="nearest")
    else:
        out = nn.functional.interpolate(x, size=(1, how[1]), mode="nearest")
        n = how[1]
    assert out.shape[-1] == n
    ours = [arith.upsample_nearest_source_index(o, size, n, how[0]) for o in range(n)]
    assert ours == out.flatten().long().tolist()


@settings(SETTINGS, max_examples=40)
@given(ints(1, 20), ints(1, 20))
def test_adaptive_pool_windows_match_torch(size: int, out_size: int) -> None:
    """Each output's window = the input pixels with non-zero gradient."""
    x = torch.rand(1, 1, 1, size, dtype=torch.float64, requires_grad=True)
    y = nn.functional.adaptive_avg_pool2d(x, (1, out_size))
    for o in range(out_size):
        (grad,) = torch.autograd.grad(y[0, 0, 0, o], x, retain_graph=True)
        support = grad.flatten().nonzero().flatten().tolist()
        start, end = arith.adaptive_pool_window(size, out_size, o)
        assert support == list(range(start, end))


# ----------------------------------------------------------------------------- receptive fields

RF_LAYERS = st.one_of(
    st.builds(lambda k, s, p, d: f"Conv2d(2, {k}, stride={s}, padding={p}, dilation={d})",
              pair(1, 4), pair(1, 2), pair(0, 2), pair(1, 2)),
    st.builds(lambda k, s, p, d: f"MaxPool2d({k}, stride={s}, padding={p}, dilation={d})",
              ints(2, 3), pair(1, 2), ints(0, 1), pair(1, 2)),
    st.builds(lambda k, s, c: f"AvgPool2d({k}, stride={s}, ceil_mode={c})",
              pair(1, 3), pair(1, 2), st.booleans()),
    st.builds(lambda k, s, p, d: f"ConvTranspose2d(2, {k}, stride={s}, padding={p}, dilation={d})",
              pair(1, 4), pair(1, 3), pair(0, 1), pair(1, 2)),
    st.builds(lambda f: f"Upsample(scale_factor={f})", st.sampled_from([2, 3, (2, 1), 1.5])),
    st.builds(lambda n: f"AdaptiveAvgPool2d({n})", ints(3, 9)),
    st.sampled_from(["ReLU()", "Tanh()", "GELU()", "BatchNorm2d()", "Dropout()"]),
)


def rf_module(text: str, in_channels: int) -> nn.Module:
    """The torch layer for a brute-force receptive field: positive constant weights (so that no
    gradient cancels or saturates), MaxPool2d as a depthwise conv with the same window (its
    gradient would reach only the argmax)."""
    spec = parse_stack([text])[0]
    if spec.kind == "MaxPool2d":
        p = spec.params
        stride = p["kernel_size"] if p["stride"] in (None, ()) else p["stride"]  # torch's default
        module: nn.Module = nn.Conv2d(in_channels, in_channels, p["kernel_size"], stride,
                                      p["padding"], p["dilation"], groups=in_channels, bias=False)
    else:
        module = build(spec.kind, spec.positional, dict(spec.keywords), (in_channels,))
    for name, param in module.named_parameters():
        value = 0.0 if name == "bias" else 1.0 / param[0].numel() if param.dim() > 1 else 1.0
        nn.init.constant_(param, value)
    return module.eval()


def touches_padding(maps: list[Any], sizes: list[int], o: int) -> bool:
    """Whether unit o of the top layer reads, at any depth, a unit outside its layer (padding)."""
    units = {o}
    for level in range(len(maps) - 1, -1, -1):
        units = {u for v in units for u in maps[level](v)}
        if any(not 0 <= u < sizes[level] for u in units):
            return True
    return False


@settings(SETTINGS, max_examples=100)
@given(st.lists(RF_LAYERS, min_size=1, max_size=4), ints(24, 40), ints(24, 40))
def test_receptive_field_by_brute_force(texts: list[str], height: int, width: int) -> None:
    """For central output units that read no padding, the input pixels with non-zero gradient
    span exactly the unit's field; the reported field is the largest such span."""
    try:
        rows = analyze(parse_stack(texts), (2, height, width))
    except SpecError:
        assume(False)
        raise
    model = nn.Sequential(*[rf_module(t, r.input_shape[0]) for t, r in zip(texts, rows,
                                                                           strict=True)])
    model = model.double()
    x = torch.rand(1, 2, height, width, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    y = model(x)
    assert tuple(y.shape[1:]) == rows[-1].output_shape
    fields, maps, sizes = [rfield.AxisField(), rfield.AxisField()], [[], []], [[], []]
    for row in rows:
        axis_maps = index_maps(row.spec, row.input_shape, row.output_shape) or []
        for a, axis_map in enumerate(axis_maps):
            fields[a].push(axis_map)
            maps[a].append(axis_map)
            sizes[a].append(row.input_shape[a + 1])
    out_h, out_w = rows[-1].output_shape[1:]
    checked = 0
    for t in range(-4, 5):
        o = (out_h // 2 + t, out_w // 2 + t)
        if not all(0 <= o[a] < rows[-1].output_shape[a + 1] for a in range(2)) or any(
                touches_padding(maps[a], sizes[a], o[a]) for a in range(2)):
            continue
        (grad,) = torch.autograd.grad(y[0, 0, o[0], o[1]], x, retain_graph=True)
        support = grad[0].abs().sum(0).nonzero()
        expected_hw = [fields[a].interval(o[a]) for a in range(2)]
        if None in expected_hw:  # e.g. an odd output of ConvTranspose2d(k=1, stride=2)
            assert len(support) == 0
            continue
        for a, expected in enumerate(expected_hw):
            span = (int(support[:, a].min()), int(support[:, a].max()))
            assert span == expected, f"axis {'HW'[a]} unit {o[a]}"
            assert rows[-1].receptive_field is not None
            assert span[1] - span[0] + 1 <= rows[-1].receptive_field[a]
        checked += 1
    assume(checked > 0)


def linear_field_by_gradient(texts: list[str], height: int, width: int) -> tuple[int, int]:
    """The span, per axis, of the input pixels with a non-zero gradient of one output of
    `texts` + Flatten() + Linear(2), run as real torch modules (positive weights); 0 if none."""
    rows = analyze(parse_stack([*texts, "Flatten()", "Linear(2)"]), (2, height, width))
    model = nn.Sequential(*[rf_module(r.spec.text, r.input_shape[0]) for r in rows]).double()
    x = torch.rand(1, 2, height, width, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[0, 0], x)
    support = grad[0].abs().sum(0).nonzero()
    if not len(support):
        return 0, 0
    h, w = (int(support[:, a].max() - support[:, a].min()) + 1 for a in range(2))
    return h, w


@pytest.mark.parametrize(("texts", "size", "field"), [
    ([], (10, 10), (10, 10)),
    (["Conv2d(3, 3, padding=1)", "ReLU()", "MaxPool2d(2)"], (9, 12), (9, 12)),  # the whole image
    (["Conv2d(1, 1, stride=5)"], (10, 10), (6, 6)),  # pixels 0 and 5 of each axis
    (["Upsample(size=1)"], (10, 10), (1, 1)),
    (["Conv2d(1, 1, stride=3, padding=1)"], (10, 10), (7, 7)),  # reads -1 (padding), 2, 5, 8
    (["Conv2d(1, 1, stride=3, padding=1)"], (1, 1), (0, 0)),  # reads only padding
    (["Conv2d(1, 2, dilation=3, stride=4)"], (11, 11), (8, 8)),  # 0, 3, 4, 7 (8 past the end)
    (["MaxPool2d(2, stride=4)", "AvgPool2d(1, stride=2)"], (13, 13), (10, 10)),  # 0-1, 8-9
    (["AvgPool2d(2, stride=3, padding=1, ceil_mode=True)"], (8, 8), (7, 7)),  # -1 to 6
    (["Upsample(scale_factor=0.5)", "Conv2d(1, 1, stride=2)"], (12, 9), (9, 5)),
    (["ConvTranspose2d(1, 1, stride=2, padding=2)", "Conv2d(1, 1, stride=3)"], (6, 6), (4, 4)),
    (["AdaptiveAvgPool2d((2, 5))", "Conv2d(1, 1, stride=2)"], (8, 10), (4, 10)),  # H: 0-3
])
def test_linear_field_is_the_span_its_inputs_depend_on(texts: list[str], size: tuple[int, int],
                                                       field: tuple[int, int]) -> None:
    """A Linear reads every unit before it: its field is the span of the input pixels those
    depend on, as gradients give it, which is the whole image unless strides, resampling or
    padding leave some pixels out (hand-counted in the comments); the same in --json."""
    assert linear_field_by_gradient(texts, *size) == field
    rows = analyze(parse_stack([*texts, "Flatten()", "Linear(2)", "ReLU()", "Linear(3)"]),
                   (2, *size))
    assert [r.receptive_field for r in rows[-3:]] == [field] * 3
    assert rows[-1].to_json()["receptive_field"] == list(field)


@settings(SETTINGS, max_examples=60)
@given(st.lists(RF_LAYERS, min_size=1, max_size=4), ints(5, 30), ints(5, 30))
def test_linear_field_by_brute_force(texts: list[str], height: int, width: int) -> None:
    """Any stack of the layers above then Flatten, Linear: the reported field is the span of
    the input pixels with a non-zero gradient."""
    try:
        rows = analyze(parse_stack([*texts, "Flatten()", "Linear(2)"]), (2, height, width))
    except SpecError:
        assume(False)
        raise
    assert rows[-1].receptive_field == linear_field_by_gradient(texts, height, width)


@pytest.mark.parametrize(("texts", "field", "jump"), [
    (["Conv2d(1, 3)", "Conv2d(1, 3)"], (5, 5), (1, 1)),
    (["Conv2d(1, 3, stride=2)", "Conv2d(1, 3, stride=2)", "Conv2d(1, 3)"], (15, 15), (4, 4)),
    (["Conv2d(1, 3, dilation=2)", "MaxPool2d(2)"], (6, 6), (2, 2)),
    (["Conv2d(1, (1, 5))"], (1, 5), (1, 1)),
])
def test_receptive_field_classical_examples(texts: list[str], field: tuple[int, int],
                                            jump: tuple[int, int]) -> None:
    """Hand-checked with r_out = r_in + (k_eff - 1)*j_in, j_out = j_in*s (Araujo et al. 2019):
    3x3 then 3x3 -> 5; strides 2, 2 -> 1 + 2 + 2*2 + 2*4 = 15, jump 4."""
    row = analyze(parse_stack(texts), (1, 32, 32))[-1]
    assert row.receptive_field == field and row.jump == jump


def test_receptive_field_depends_on_phase_after_upsampling() -> None:
    """Upsample x2 then a 4-wide kernel reads 4 upsampled pixels = 2 or 3 input pixels
    depending on the output position; the reported field is the largest, 3; jump 1/2."""
    row = analyze(parse_stack(["Upsample(scale_factor=2)", "Conv2d(1, 4)"]), (1, 8, 8))[-1]
    assert row.receptive_field == (3, 3)
    assert row.to_json()["jump"] == [0.5, 0.5]


def test_pool_ceil_mode_drops_a_window_that_would_start_in_the_padding() -> None:
    """ceil((4 + 2*1 - 1 - 1)/3) + 1 = 3, but window 3 would start at 2*3 = 6 >= 4 + 1."""
    assert arith.pool2d_output_size(4, 2, 3, padding=1, ceil_mode=True) == 2
    assert arith.pool2d_output_size(4, 2, 3, padding=1, ceil_mode=False) == 2
    assert arith.pool2d_output_size(12, 3, 2, ceil_mode=True) == 6  # floor mode: 5
    pool = nn.MaxPool2d(2, stride=3, padding=1, ceil_mode=True)
    assert pool(torch.zeros(1, 1, 4, 4)).shape[-1] == 2
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(torch.zeros(1, 1, 12, 12)).shape[-1] == 6
