"""The values of the layer language: the checks each argument of a layer is held to (`Check`:
a written value in, its normalized form out, a ValueError with the reason if bad), the bounds they
share (`MAX_SIZE`, `MAX_NUMBER`; see `vaekit.arch.spec`), and how a message quotes what was written
(`excerpt`, `shown`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from vaekit.config import is_int, is_number

Literal = int | float | bool | str | None | tuple[Any, ...]
Check = Callable[[Any], Any]
"""Validate a written value and return its normalized form; raise ValueError(reason) if bad."""

REQUIRED = object()
MAX_SIZE = 2**31 - 1
MAX_NUMBER = 2**31 - 1
SHOWN_CHARS = 60  # longest text or value quoted whole in a message
FLOAT32_EPS = 2.0**-23  # the smallest Softplus beta: 1 + beta x tells inputs apart in float32
SOFTPLUS_BETA = ("must be positive and at least 2**-23 (about 1.2e-07; softplus(x) = log(1 + exp(beta x)) / "
                  "beta: 0 makes every output NaN, less rounds exp(beta x) to 1: one constant near 0)")


def excerpt(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` as a message quotes it, on one line (a newline, a tab or any other character that
    does not print is written as its escape, `\\n`): whole, or for a long one its start and its
    length."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text):,} characters)"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A written value as a message quotes it: its repr, excerpted; an integer of more than 57
    digits is counted, not printed."""
    if is_int(value) and value.bit_length() > 190:
        try:
            return f"an integer of {len(str(abs(value))):,} digits"
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return "an integer of thousands of digits"
    return excerpt(repr(value), limit)

# ----------------------------------------------------------------------------- value checks


def an_int(minimum: int) -> Check:
    """An integer in [minimum, MAX_SIZE]."""
    def check(value: Any) -> int:
        if not is_int(value):
            raise ValueError(f"must be an integer, got {shown(value)}")
        if value < minimum:
            raise ValueError(f"must be {'positive' if minimum == 1 else '>= ' + str(minimum)}, "
                             f"got {shown(value)}")
        if value > MAX_SIZE:
            raise ValueError(f"must be at most {MAX_SIZE:,} (2**31 - 1, the bound on any size), "
                             f"got {shown(value)}")
        return int(value)
    return check


def a_pair(minimum: int) -> Check:
    """An int or a 2-tuple of ints (height, width), each >= minimum."""
    one = an_int(minimum)

    def check(value: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError("must be an integer or a pair (height, width), got "
                                 f"{shown(value)}")
            try:
                return one(value[0]), one(value[1])
            except ValueError as err:
                raise ValueError(f"{err} in {shown(value)}") from None
        v = one(value)
        return v, v
    return check


def optional(inner: Check) -> Check:
    return lambda value: None if value is None else inner(value)


def a_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be True or False, got {shown(value)}")
    return value


def bounded_number(minimum: float | None = None, maximum: float | None = None,
            positive: bool = False) -> Check:
    """A finite number of magnitude at most MAX_NUMBER, optionally positive or in [min, max]."""
    def check(value: Any) -> float:
        if not is_number(value):
            raise ValueError(f"must be a number, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        if abs(value) > MAX_NUMBER:
            raise ValueError(f"must be at most {MAX_NUMBER:,} (2**31 - 1) in magnitude, got "
                             f"{shown(value)}")
        if positive and value <= 0:
            raise ValueError(f"must be positive, got {value!r}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(f"must be between {minimum} and {maximum}, got {value!r}")
        return value
    return check


def degenerate(inner: Check, ok: Callable[[float], bool], rule: str) -> Check:
    """`inner`, then `ok`: a value torch accepts but with which the layer's output is the same (or
    NaN) for every input, so that nothing before it trains, is refused with `rule`."""
    def check(value: Any) -> Any:
        checked = inner(value)
        if checked is not None and not ok(checked):
            raise ValueError(f"{rule}, got {value!r}")
        return checked
    return check


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(map(repr, options))}, got "
                             f"{shown(value)}")
        return str(value)
    return check


def fixed(expected: Any, reason: str) -> Check:
    def check(value: Any) -> Any:
        if value != expected or type(value) is not type(expected):
            raise ValueError(f"{reason}, got {shown(value)}")
        return value
    return check


def conv_padding(value: Any) -> tuple[int, int] | str:
    padding: tuple[int, int] | str = (choice("valid", "same") if isinstance(value, str)
                                      else a_pair(0))(value)
    return padding


def adaptive_size(value: Any) -> tuple[int | None, int | None]:
    """AdaptiveAvgPool2d output_size: int or (int or None, int or None); None keeps the input."""
    one = optional(an_int(1))
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError("must be an integer or a pair (height, width), got "
                             f"{shown(value)}")
        return one(value[0]), one(value[1])
    if value is None:
        raise ValueError("must be an integer or a pair, got None")
    v = one(value)
    return v, v


def scale(value: Any) -> tuple[float, float]:
    one = bounded_number(positive=True)
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"must be a number or a pair (height, width), got {shown(value)}")
        return one(value[0]), one(value[1])
    v = one(value)
    return v, v
