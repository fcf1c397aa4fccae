"""vaekit.arch.arith's receptive-field shortcuts held against the definition: the index maps
against the formulas of their docstrings written as plain loops, their periods and order against
the maps themselves, `AxisField` against a naive recursive hull, and its work against the sizes
(it must not grow with them: bounded work on any input)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.arch import arith
from vaekit.arch import field as rfield

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PlainMap = Callable[[int], Sequence[int]]

# ----------------------------------------------------------------------------- the definitions


def conv_reads(k: int, s: int, p: int, d: int) -> PlainMap:
    """Output o reads o*s - p + j*d for j = 0..k-1."""
    return lambda o: [o * s - p + j * d for j in range(k)]


def conv_transpose_reads(k: int, s: int, p: int, d: int) -> PlainMap:
    """Input i is scattered to i*s - p + j*d: output o reads every integer (o + p - j*d)/s."""
    return lambda o: [(o + p - j * d) // s for j in range(k) if (o + p - j * d) % s == 0]


def adaptive_reads(size: int, out: int) -> PlainMap:
    """[floor(o*size/out), ceil((o+1)*size/out)), with Fractions."""
    from fractions import Fraction
    from math import ceil, floor

    return lambda o: list(range(floor(Fraction(o * size, out)),
                                ceil(Fraction((o + 1) * size, out))))


def naive_interval(maps: Sequence[PlainMap], unit: int, level: int) -> tuple[int, int] | None:
    if level == 0:
        return unit, unit
    seen = [f for u in maps[level - 1](unit) if (f := naive_interval(maps, u, level - 1))]
    return (min(f[0] for f in seen), max(f[1] for f in seen)) if seen else None


# ----------------------------------------------------------------------------- strategies

K, S, P, D = st.integers(1, 7), st.integers(1, 5), st.integers(0, 4), st.integers(1, 4)


@st.composite
def layer(draw: st.DrawFn, size: int) -> tuple[rfield.IndexMap, PlainMap, int] | None:
    """(vaekit's map, the definition, output size) of a random layer on `size` pixels."""
    kind = draw(st.sampled_from(["conv", "conv_t", "adaptive", "upsample", "upsample_size"]))
    if kind in ("conv", "conv_t"):
        k, s, p, d = draw(K), draw(S), draw(P), draw(D)
        if kind == "conv":
            out = arith.conv2d_output_size(size, k, s, p, d)
            pair = rfield.conv_index_map(k, s, p, d), conv_reads(k, s, p, d)
        else:
            out = arith.conv_transpose2d_output_size(size, k, s, p, 0, d)
            pair = rfield.conv_transpose_index_map(k, s, p, d), conv_transpose_reads(k, s, p, d)
        return (*pair, out) if out >= 1 else None
    if kind == "adaptive":
        out = draw(st.integers(1, 12))
        return rfield.adaptive_index_map(size, out), adaptive_reads(size, out), out
    if kind == "upsample":
        factor = draw(st.sampled_from([0.5, 1, 1.5, 2, 3, 1.7]))
        out = arith.upsample_nearest_output_size(size, factor)
        if out < 1:
            return None
    else:
        factor, out = None, draw(st.sampled_from([size, 2 * size, size + 1, 3 * size]))
    reference = rfield.upsample_index_map(size, out, factor)
    return reference, (lambda o: list(reference(o))), out


@st.composite
def stack(draw: st.DrawFn) -> tuple[list[rfield.IndexMap], list[PlainMap], list[int]]:
    size = draw(st.integers(1, 24))
    ours, plain, sizes = [], [], [size]
    for _ in range(draw(st.integers(1, 4))):
        drawn = draw(layer(sizes[-1]))
        if drawn is None:
            break
        ours.append(drawn[0])
        plain.append(drawn[1])
        sizes.append(drawn[2])
    return ours, plain, sizes


# ----------------------------------------------------------------------------- maps


@settings(SETTINGS)
@given(K, S, P, D, st.integers(-40, 40))
def test_conv_transpose_reads_solve_the_scatter_equation(k: int, s: int, p: int, d: int,
                                                         o: int) -> None:
    ours = rfield.conv_transpose_index_map(k, s, p, d)(o)
    assert list(ours) == sorted(conv_transpose_reads(k, s, p, d)(o))
    assert list(rfield.conv_index_map(k, s, p, d)(o)) == conv_reads(k, s, p, d)(o)


@settings(SETTINGS)
@given(stack(), st.integers(-30, 30))
def test_each_map_has_the_period_and_order_it_claims(drawn: Any, o: int) -> None:
    for index_map in drawn[0]:
        if index_map.period is not None:
            p, q = index_map.period
            assert list(index_map(o + p)) == [r + q for r in index_map(o)]
        if index_map.ordered:
            now, then = index_map(o), index_map(o + 1)
            assert len(now) and len(then)
            assert min(now) <= min(then) and max(now) <= max(then)


@pytest.mark.parametrize("size", range(1, 40))
def test_adaptive_window_lengths_are_those_of_every_window(size: int) -> None:
    for out in range(1, 40):
        windows = (arith.adaptive_pool_window(size, out, o) for o in range(out))
        assert arith.adaptive_pool_window_lengths(size, out) == sorted(
            {end - start for start, end in windows})


# ----------------------------------------------------------------------------- AxisField


@settings(SETTINGS)
@given(stack())
def test_axis_field_equals_the_naive_hull_everywhere(drawn: Any) -> None:
    """Every unit, padding included, and the largest field over the outputs, level by level."""
    ours, plain, sizes = drawn
    field = rfield.AxisField()
    for level, index_map in enumerate(ours, start=1):
        field.push(index_map)
        expected = [naive_interval(plain[:level], o, level) for o in range(sizes[level])]
        assert field.max_field(sizes[level]) == max(
            (f[1] - f[0] + 1 for f in expected if f), default=0)
        for o in range(-6, sizes[level] + 6):
            assert field.interval(o) == naive_interval(plain[:level], o, level), (level, o)


@settings(SETTINGS, max_examples=60)
@given(stack())
def test_a_plain_callable_gets_the_same_field_without_shortcuts(drawn: Any) -> None:
    ours, plain, sizes = drawn
    with_shortcuts, without = rfield.AxisField(), rfield.AxisField()
    for index_map, reads in zip(ours, plain, strict=True):
        with_shortcuts.push(index_map)
        without.push(reads)
    assert with_shortcuts.max_field(sizes[-1]) == without.max_field(sizes[-1])


@pytest.mark.parametrize("maps", [
    [rfield.conv_index_map(3, 2, 1), rfield.conv_index_map(5, 1, 2, 3)],
    [rfield.conv_index_map(2**31 - 1, 1, 0)],
    [rfield.conv_transpose_index_map(4, 2, 1), rfield.conv_index_map(3, 1, 1)],
    [rfield.conv_transpose_index_map(2**20, 3, 7, 2)],
    [rfield.conv_index_map(3, 1, 1), rfield.upsample_index_map(10, 20, 2.0),
     rfield.conv_index_map(3, 1, 1)],
], ids=["convs", "huge-kernel", "conv-t", "dilated-conv-t", "upsample-2x"])
def test_the_work_does_not_grow_with_the_output_size(maps: list[rfield.IndexMap]) -> None:
    """The same steps for 10 outputs as for 2**31 - 1, and the same largest field."""
    fields, steps = [], []
    for out in (10, 2**31 - 1):
        field = rfield.AxisField()
        for index_map in maps:
            field.push(index_map)
        fields.append(field.max_field(out))
        steps.append(field.steps)
    assert fields[0] == fields[1] and steps[0] == steps[1] < 100


def test_position_dependent_maps_stop_at_the_step_bound() -> None:
    field = rfield.AxisField(max_steps=1000)
    field.push(rfield.upsample_index_map(10, 2**31 - 1, None))  # no period: every unit differs
    with pytest.raises(rfield.FieldWorkExceeded):
        field.max_field(2**31 - 1)
    assert field.steps == 1001
    small = rfield.AxisField(max_steps=1000)
    small.push(rfield.upsample_index_map(10, 999, None))
    assert small.max_field(999) == 1  # within the bound: computed


def test_a_deep_stack_needs_no_recursion() -> None:
    """5,000 levels whose padding units are each new: an explicit stack, no RecursionError."""
    field, unit = rfield.AxisField(), -7
    for _ in range(5000):
        field.push(rfield.upsample_index_map(3, 5, None))  # period-free: no shortcut by period
        unit = arith.upsample_nearest_source_index(unit, 3, 5)  # the one unit it reads
    assert field.interval(-7) == (unit, unit)


def test_what_a_linear_depends_on_needs_few_steps_for_gapless_maps() -> None:
    """Convolutions, pools and 2x upsampling read runs without gaps: the whole axis of
    2**31 - 1 pixels in a few steps (the pool leaves the last unit of the 3-wide conv out, but
    the conv before it reads that pixel)."""
    size = 2**31 - 1
    maps = [rfield.conv_index_map(3, 1, 1), rfield.conv_index_map(2, 2, 0),
            rfield.upsample_index_map(size // 2, size // 2 * 2, 2.0)]
    sizes = [size, size, size // 2]
    assert rfield.depends_on(maps, sizes, size // 2 * 2, max_steps=20) == (0, size - 1)


def test_what_a_linear_depends_on_stops_at_the_step_bound_or_reads_only_padding() -> None:
    """A stride that skips pixels is followed unit by unit, within the bound; a unit that reads
    only padding depends on no pixel."""
    skip = [rfield.conv_index_map(1, 3, 1)]  # reads -1 (padding), 2, 5, ...
    assert rfield.depends_on(skip, [10], 4) == (2, 8)
    with pytest.raises(rfield.FieldWorkExceeded):
        rfield.depends_on(skip, [30_000], 10_000, max_steps=1000)
    assert rfield.depends_on(skip, [1], 1) is None
