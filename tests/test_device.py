"""vaekit.device's formats: bytes in binary units by their definition (1 KiB = 2^10 B, ...), to one
decimal in a table and to three significant figures in a sentence."""

from __future__ import annotations

import math

import pytest

from vaekit.device import format_bytes

GiB = 2**30


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1023, "1023 B"), (2**10, "1.0 KiB"), (1536, "1.5 KiB"), (2**20 - 1, "1024.0 KiB"),
    (5 * 2**30, "5.0 GiB"), (2**40, "1.0 TiB"), (2**50, "1.0 PiB"),
])
def test_table_bytes_binary_units(n: int, text: str) -> None:
    assert format_bytes(n, 1) == text


def test_table_bytes_are_the_value_in_its_unit_to_one_decimal() -> None:
    for exponent, unit in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"), start=1):
        for n in (3 * 2**(10 * exponent) + 12345, 1000 * 2**(10 * exponent)):
            assert format_bytes(n, 1) == f"{n / 2**(10 * exponent):.1f} {unit}"


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 64 * GiB, 3 * 2**40 // 2)] == [
        "0 B", "1023 B", "1.5 KiB", "64 GiB", "1.5 TiB"]
    assert format_bytes(2**70).endswith("EiB") and math.isfinite(float(format_bytes(2**70).split()[0]))


def test_format_bytes_near_the_next_unit_has_no_exponent() -> None:
    """.3g writes 1000 and up as '1e+03': those stay whole numbers of the smaller unit."""
    assert format_bytes(2**20 - 1) == "1024 KiB"
    assert format_bytes(1000 * 2**20) == "1000 MiB"
    assert format_bytes(2**70) == "1024 EiB"
