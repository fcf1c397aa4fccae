"""`vaekit arch` on sizes, numbers and texts beyond the bounds of vaekit.arch.spec: each
is refused at once with one sentence and exit 2, sizes within the bounds are answered at
once and exactly, and random layer texts with huge, negative, float, inf or nan values end in a
result or a SpecError, never another exception, in bounded time."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.arch import arith
from vaekit.arch import field as rfield
from vaekit.arch.explain import explain_row
from vaekit.arch.spec import MAX_LAYER_CHARS, MAX_LAYERS, SIGNATURES, parse_stack
from vaekit.arch.stack import MAX_INPUT_CHARS, analyze, index_maps, parse_input_shape
from vaekit.arch.table import stack_table
from vaekit.arch.values import MAX_NUMBER, MAX_SIZE
from vaekit.cli import main
from vaekit.errors import SpecError

HANG_SECONDS = 5.0  # a hang check, not a benchmark: the work bounded, whatever the machine
HUGE = 10**20  # the 20-digit sizes
BOUND = f"{MAX_SIZE:,}"


def run_cli(*argv: str) -> tuple[int, str, str, float]:
    """vaekit.cli.main(["arch", *argv]) -> (status, stdout, stderr, seconds)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["arch", *argv])
    return status, out.getvalue(), err.getvalue(), time.perf_counter() - start


def assert_refused(one_sentence: Callable[..., None], argv: list[str], *names: str) -> str:
    """Exit 2 within HANG_SECONDS, nothing on stdout, no traceback, and a last stderr line
    `vaekit arch: error: <one sentence>` naming each of `names`."""
    status, out, err, seconds = run_cli(*argv)
    assert status == 2, err
    assert out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vaekit arch: error: "), err
    message = last.removeprefix("vaekit arch: error: ")
    one_sentence(message, *names)
    assert seconds < HANG_SECONDS, f"{seconds:.1f} s for {argv!r}"[:300]
    return message


# ----------------------------------------------------------------------------- beyond the bounds

LONG_SPEC = "Conv2d(20, 3, padding=" + "1" * 100_000 + ")"
NESTED_SPEC = "Conv2d(20, " + "(" * 50_000 + "3" + ")" * 50_000 + ")"


@pytest.mark.parametrize(("argv", "names"), [
    (["--input", "3,10,10", f"Conv2d(20, 3, padding={HUGE})"], ["padding", str(HUGE), BOUND]),
    (["--input", "3,10,10", "Conv2d(20, 3, padding=100000000000000000000)"],
     ["padding", "100000000000000000000", BOUND]),
    (["--input", "3,10,10", "Conv2d(20, 3, padding=10**20)"], ["padding", "10**20"]),
    (["--input", "3,10,10", f"Upsample(size={HUGE})"], ["size", str(HUGE)]),
    (["--input", "3,10,10", f"Upsample(size=(4, {HUGE}))"], ["size", str(HUGE)]),
    (["--input", f"3,{HUGE},10", "Conv2d(20, 3)"], ["--input", str(HUGE), BOUND]),
    (["--input", str(HUGE), "Linear(3)"], ["--input", str(HUGE)]),
    (["--input", "3,10,10", f"Conv2d({HUGE}, 3)"], ["out_channels", str(HUGE)]),
    (["--input", "3,10,10", f"Conv2d(20, 3, stride={HUGE})"], ["stride"]),
    (["--input", "3,10,10", f"ConvTranspose2d(20, 3, stride={HUGE})"], ["stride"]),
    (["--input", "3,10,10", f"AdaptiveAvgPool2d({HUGE})"], ["output_size"]),
    (["--input", "3,10,10", f"Linear({HUGE})"], ["out_features"]),
    (["--input", "3,10,10", "Upsample(scale_factor=1e300)"], ["scale_factor", "1e+300"]),
    (["--input", "3,10,10", "Upsample(scale_factor=1e999)"], ["scale_factor", "finite", "inf"]),
    (["--input", "3,10,10", "Upsample(scale_factor=(2, -1e999))"], ["scale_factor"]),
    (["--input", "3,10,10", "Dropout(1e999)"], ["p", "finite"]),
    (["--input", "3,10,10", "LeakyReLU(-1e999)"], ["negative_slope", "-inf"]),
    (["--input", "3,10,10", "BatchNorm2d(eps=1e999)"], ["eps", "finite"]),
    (["--input", "3,10,10", f"Softplus(beta={HUGE})"], ["beta", f"{MAX_NUMBER:,}"]),
    (["--input", "3,10,10", "Conv2d(20, 3, padding=0x" + "f" * 900 + ")"], ["padding", "base prefix"]),
    (["--input", "3,10,10", "Conv2d(20, " + "-" * 900 + "1)"], ["kernel_size", "literal"]),
    (["--input", "3,10,10", "a" + "()" * 400], ["not a layer call"]),
    (["--input", "3,10,10", "Conv2d(20,\udcff 3)"], ["not a layer call"]),
    (["--input", "3,10,10", "Conv2d(20,\0 3)"], ["not a layer call"]),
    (["--input", "3,²,10", "ReLU()"], ["--input"]),
    (["--input", "3,10,10", LONG_SPEC], [f"{len(LONG_SPEC):,}", f"{MAX_LAYER_CHARS:,}"]),
    (["--input", "3,10,10", NESTED_SPEC], [f"{len(NESTED_SPEC):,}"]),
    (["--input", "3," * 50_000 + "3", "ReLU()"], ["--input", f"{MAX_INPUT_CHARS}"]),
    (["--input", "3,10,10", *["ReLU()"] * (MAX_LAYERS + 1)],
     [f"{MAX_LAYERS + 1:,}", f"{MAX_LAYERS:,}"]),
])
def test_beyond_a_bound_is_one_sentence_at_once(one_sentence: Callable[..., None],
                                                 argv: list[str], names: list[str]) -> None:
    assert_refused(one_sentence, argv, *names)


@pytest.mark.parametrize(("shape", "layer", "axis"), [
    ("3,10,10", f"Conv2d(20, 3, padding={2**30})", "H"),
    ("3,10,10", f"Upsample(scale_factor={MAX_SIZE})", "H"),
    ("3,10,10", f"Upsample(scale_factor=(1, {MAX_SIZE / 4}))", "W"),
    ("1,10,10", f"ConvTranspose2d(1, {MAX_SIZE}, stride={MAX_SIZE})", "H"),
    (f"{MAX_SIZE},{MAX_SIZE},1", "Flatten()", "N"),
])
def test_an_output_beyond_the_size_bound_is_one_sentence(one_sentence: Callable[..., None],
                                                         shape: str, layer: str,
                                                         axis: str) -> None:
    """Arguments within the bound whose output would not be: the size it would have is named."""
    message = assert_refused(one_sentence, ["--input", shape, layer], "output size",
                             f"along {axis}", BOUND)
    assert "layer 1" in message


def test_the_largest_sizes_within_the_bounds_are_accepted() -> None:
    status, out, err, seconds = run_cli("--input", f"1,{MAX_SIZE},{MAX_SIZE}", "Conv2d(1, 1)",
                                        "--json")
    assert status == 0, err
    layer = json.loads(out)["layers"][0]
    assert layer["output_shape"] == [1, MAX_SIZE, MAX_SIZE]
    assert layer["macs"] == MAX_SIZE * MAX_SIZE and layer["receptive_field"] == [1, 1]
    assert seconds < HANG_SECONDS


# ----------------------------------------------------------------------------- large, within bounds

DEEP_SIDE = 2_000_000_000


def naive_field(maps: list[Callable[[int], Any]], unit: int, level: int) -> tuple[int, int] | None:
    """The definition, recursively and without shortcuts: the hull of the fields read."""
    if level == 0:
        return unit, unit
    seen = [f for u in maps[level - 1](unit) if (f := naive_field(maps, u, level - 1))]
    return (min(f[0] for f in seen), max(f[1] for f in seen)) if seen else None


def test_a_two_billion_pixel_stack_gets_the_field_of_a_small_one() -> None:
    """Convolutions, pooling and transposed convolutions have fields that repeat along the image:
    the largest on 2e9 x 2e9 pixels equals the largest on 40 x 40, found by the naive definition."""
    texts = ["Conv2d(8, 3, stride=2, padding=1)", "MaxPool2d(2)", "ReLU()",
             "ConvTranspose2d(4, 4, stride=2, padding=1)", "Conv2d(4, 3, dilation=2)"]
    start = time.perf_counter()
    big = analyze(parse_stack(texts), (3, DEEP_SIDE, DEEP_SIDE))
    assert time.perf_counter() - start < HANG_SECONDS
    small = analyze(parse_stack(texts), (3, 40, 40))
    maps: list[Callable[[int], Any]] = []
    for row in small:
        row_maps = index_maps(row.spec, row.input_shape, row.output_shape)
        if row_maps:
            maps.append(row_maps[0])
        if maps:
            out = row.output_shape[1]
            sizes = [f[1] - f[0] + 1 for o in range(out)
                     if (f := naive_field(maps, o, len(maps)))]
            assert row.receptive_field == (max(sizes), max(sizes))
    assert [r.receptive_field for r in big] == [r.receptive_field for r in small]
    assert [r.jump for r in big] == [r.jump for r in small]


def test_a_thousand_layers_follow_the_classical_recurrence() -> None:
    """MAX_LAYERS stride-1 convolutions: no recursion limit, r = 1 + 2*1000 (Araujo et al.)."""
    start = time.perf_counter()
    rows = analyze(parse_stack(["Conv2d(1, 3, padding=1)"] * MAX_LAYERS), (1, 8, 8))
    assert time.perf_counter() - start < HANG_SECONDS
    r, j = 1, 1
    for _ in range(MAX_LAYERS):
        r, j = rfield.receptive_field_step(r, j, 3, 1)
    assert rows[-1].receptive_field == (r, r) and rows[-1].output_shape == (1, 8, 8)


def test_a_field_beyond_the_work_bound_is_reported_as_not_computed(
        one_sentence: Callable[..., None]) -> None:
    """Upsample(size=...) to an odd ratio has a field that varies with the position; on 2**31 - 1
    outputs it is not searched unit by unit: '-' with a note, every other number exact."""
    texts = ["Conv2d(2, 3)", f"Upsample(size=({MAX_SIZE}, 12))", "Conv2d(2, 3)"]
    start = time.perf_counter()
    rows = analyze(parse_stack(texts), (1, 10, 10))
    assert time.perf_counter() - start < HANG_SECONDS
    assert rows[0].receptive_field == (3, 3)  # before the expensive layer: kept
    assert rows[1].receptive_field is None and rows[2].receptive_field is None
    assert rows[2].output_shape == (2, arith.conv2d_output_size(MAX_SIZE, 3),
                                    arith.conv2d_output_size(12, 3))
    assert rows[1].jump == (Fraction(8, MAX_SIZE), Fraction(8, 12))
    table = stack_table((1, 10, 10), rows, explain=True)
    assert f"{rfield.MAX_FIELD_STEPS:,} steps" in table
    assert any(line.strip().startswith("receptive field not computed")
               for line in explain_row(rows[1], rows[0]))
    status, out, err, seconds = run_cli("--input", "1,10,10", *texts, "--json")
    assert status == 0 and seconds < HANG_SECONDS, err
    assert [x["receptive_field"] for x in json.loads(out)["layers"]] == [[3, 3], None, None]


def test_a_jump_beyond_a_float_is_written_as_a_fraction() -> None:
    """A jump of 2147483647**40 / 3 input pixels overflows a float: --json gives 'p/q'."""
    texts = ["ConvTranspose2d(1, 1, stride=3)", *[f"Conv2d(1, 1, stride={MAX_SIZE})"] * 40]
    status, out, err, _ = run_cli("--input", "1,4,4", *texts, "--json")
    assert status == 0, err
    jump = json.loads(out)["layers"][-1]["jump"]
    assert [Fraction(j) for j in jump] == [Fraction(MAX_SIZE**40, 3)] * 2


# ----------------------------------------------------------------------------- random texts

SMALL = st.integers(0, 6).map(str)  # often valid, so that the extremes reach the arithmetic
EXTREME = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from([MAX_SIZE, MAX_SIZE + 1, 2**31, 2**30, 2**63, HUGE, -HUGE, 10**400]).map(str),
    st.integers(10, 400).map(lambda k: "9" * k),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e999", "-1e999", "1e300", "-1e300", "1e-300", "5e-324", "-0.0", "nan",
                     "inf", "float('nan')", "10**20", "2**31", "0x" + "f" * 200, "True", "None",
                     "'same'", "'valid'", "(3, 5)", "(0, 1)", "()", "(1, 2, 3)", "'x' * 9",
                     "1.5", "0.5", "2.0", str(MAX_SIZE / 2), "1e-9"]),
)
ONE = st.one_of(SMALL, SMALL, EXTREME)
VALUE = st.one_of(ONE, ONE, st.tuples(ONE, ONE).map(lambda t: f"({t[0]}, {t[1]})"))


@st.composite
def layer_text(draw: st.DrawFn) -> str:
    """A layer of any kind with a few of its arguments, positional or keyword, set to extremes."""
    kind = draw(st.sampled_from(sorted(SIGNATURES)))
    names = [name for name, _, _ in SIGNATURES[kind]]
    n_pos = draw(st.integers(0, min(2, len(names))))
    args = [draw(VALUE) for _ in range(n_pos)]
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else []:
        if name not in names[:n_pos]:
            args.append(f"{name}={draw(VALUE)}")
    return f"{kind}({', '.join(args)})"


BIG = st.sampled_from([1, 2, 3, 7, 2**16 + 1, 2**20, 2**30, MAX_SIZE // 3, MAX_SIZE - 1, MAX_SIZE])


@st.composite
def big_layer(draw: st.DrawFn) -> str:
    """A well-formed spatial layer whose sizes are drawn up to MAX_SIZE: the arithmetic, the output
    bound and the receptive field's work bound on sizes within the bounds."""
    n = [draw(BIG) for _ in range(4)]
    return draw(st.sampled_from([
        f"Conv2d(1, ({n[0]}, 3), stride={n[1]}, padding=({n[2]}, 1), dilation={n[3]})",
        f"ConvTranspose2d(1, {n[0]}, stride=({n[1]}, 2), padding={n[2] // 2})",
        f"MaxPool2d({n[0]}, stride={n[1]}, padding={n[0] // 2}, ceil_mode=True)",
        f"AvgPool2d(({n[0]}, 2), stride={n[1]})",
        f"AdaptiveAvgPool2d(({n[0]}, {n[1]}))",
        f"Upsample(size=({n[0]}, {n[1]}))",
        f"Upsample(scale_factor=({n[0]}, {draw(st.sampled_from([0.5, 1.5, 2, 3.7, 1e-6]))}))",
    ]))


INPUT = st.one_of(
    st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 40)).map(
        lambda s: ",".join(map(str, s))),
    st.sampled_from([f"1,{MAX_SIZE},{MAX_SIZE}", f"2,{MAX_SIZE},3", f"1,3,{2**30}", "1,1,1",
                     "784", str(MAX_SIZE), f"3,{MAX_SIZE + 1},4", f"2,{HUGE},3", "0,4,4",
                     "-3,4,4", "3,4", "3,1e3,4"]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.one_of(layer_text(), big_layer()), min_size=1, max_size=4), INPUT,
       st.sampled_from([[], ["--json"], ["--explain"]]))
def test_random_extreme_layers_give_a_result_or_one_sentence(
        one_sentence: Callable[..., None], texts: list[str], shape: str, flags: list[str]) -> None:
    status, out, err, seconds = run_cli("--input", shape, *texts, *flags)
    assert "Traceback" not in err
    assert status in (0, 2), err
    if status == 2:
        last = err.strip().splitlines()[-1]
        assert last.startswith("vaekit arch: error: ") and out == "", err
        one_sentence(last.removeprefix("vaekit arch: error: "))
    else:
        assert err == "" and out
    assert seconds < HANG_SECONDS, f"{seconds:.1f} s: {shape} {texts}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(layer_text(), big_layer()), min_size=1, max_size=4), INPUT)
def test_the_library_raises_only_spec_errors(texts: list[str], shape: str) -> None:
    """parse_stack + analyze + table + explain + JSON: a result or SpecError, nothing else; every
    size of a result within the bound, every jump a finite number or a fraction."""
    start = time.perf_counter()
    try:
        rows = analyze(parse_stack(texts), parse_input_shape(shape))
    except SpecError:
        return
    stack_table(rows[0].input_shape, rows, explain=True)
    json.dumps([r.to_json() for r in rows], allow_nan=False)
    assert time.perf_counter() - start < HANG_SECONDS
    for row in rows:
        assert all(0 < n <= MAX_SIZE for n in row.output_shape)
        assert row.receptive_field is None or all(n >= 1 for n in row.receptive_field)
