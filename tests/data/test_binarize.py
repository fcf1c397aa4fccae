"""vaekit.data.binarize.binarize, THE binarization law (x = 1[r < 65536 pixel/255 - 32768.5], r uniform
int16) and the draws it is built on, random_int16: the law of x for every pixel value by enumerating
all 65,536 values of r, the uniformity of every lane of the int16 draws, and the frequencies on real
draws."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from vaekit.data import binarize as binarize_mod
from vaekit.data.binarize import binarize as binarize_batch
from vaekit.data.binarize import random_int16

ALL_R = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)  # every int16 value, once
PIXELS = torch.arange(256, dtype=torch.int64)


def exact_count(p: int) -> int:
    """#{r integer in [-32768, 32767] : r < 65536 p / 255 - 32768.5}, in integer arithmetic:
    r < t  <=>  510 r < 131072 p - 16711935."""
    bound = 131072 * p - 16711935
    below = -((-bound) // 510)  # ceil(bound / 510): the first r with 510 r >= bound
    return min(max(below + 32768, 0), 65536)


def test_exact_law_for_every_pixel_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pixel value p meets every r once: the count of ones is 65536 P(x=1 | p)."""
    pixels = PIXELS.to(torch.uint8)[:, None].expand(256, 65536).contiguous()  # row p: 65,536 pixels p
    asked = []

    def enumerate_all(n: int, generator: torch.Generator, device: torch.device | None = None) -> Tensor:
        asked.append(n)
        return ALL_R.repeat(256)

    monkeypatch.setattr(binarize_mod, "random_int16", enumerate_all)
    x = binarize_batch(pixels, torch.Generator().manual_seed(0))
    assert asked == [pixels.numel()]
    assert x.dtype == torch.float32 and x.shape == pixels.shape
    assert ((x == 0) | (x == 1)).all()
    counts = x.sum(dim=1, dtype=torch.float64).long().tolist()

    for p, count in enumerate(counts):
        assert count == exact_count(p), f"p={p}: {count} ones, the rule gives {exact_count(p)}"
        assert count == (65536 * p + 127) // 255, f"p={p}: {count} ones"  # round(65536 p / 255)
        assert abs(count / 65536 - p / 255) <= 2.0**-17, f"p={p}"
    assert counts[0] == 0 and counts[255] == 65536  # never for black, always for white
    assert counts == sorted(counts)


def chi2_bound(bins: int, sds: float = 6.0) -> tuple[float, float]:
    """mean -/+ sds standard deviations of a chi-square with bins - 1 degrees of freedom."""
    dof = bins - 1
    return dof - sds * math.sqrt(2 * dof), dof + sds * math.sqrt(2 * dof)


def chi2(values: Tensor, bins: int) -> float:
    counts = torch.bincount(values.long(), minlength=bins).double()
    assert counts.numel() == bins
    expected = values.numel() / bins
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.fixture(scope="module")
def lanes() -> Tensor:
    """2^20 draws of random_int16, as (2^18, 4): one row per 64-bit word, one column per lane."""
    r = random_int16(2**20, torch.Generator().manual_seed(1234))
    assert r.dtype == torch.int16 and r.shape == (2**20,)
    return r.view(-1, 4).to(torch.int32)


@pytest.mark.parametrize("lane", range(4))
def test_each_lane_is_uniform(lanes: Tensor, lane: int) -> None:
    v = lanes[:, lane]
    low, high = chi2_bound(256)
    for name, byte in (("high", (v >> 8) & 0xFF), ("low", v & 0xFF)):
        stat = chi2(byte, 256)
        assert low < stat < high, f"lane {lane}, {name} byte: chi2 {stat:.1f} not in ({low:.1f}, {high:.1f})"
    n = v.numel()
    top = (v < 0).double().mean().item()  # the sign bit: in lane 3 it is bit 63 of the word
    assert abs(top - 0.5) <= 6 * 0.5 / math.sqrt(n), f"lane {lane}: top bit set {top:.4f} of the time"


@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (2, 3), (3, 4)], ids=["0-1", "1-2", "2-3", "3-next0"])
def test_neighbouring_lanes_are_independent(lanes: Tensor, pair: tuple[int, int]) -> None:
    """The high nibbles of two neighbouring draws (3-next0: across two 64-bit words) are uniform on
    the 256 joint values."""
    a, b = pair
    flat = lanes.reshape(-1)
    first = flat[a : flat.numel() - 4 : 4] if b == 4 else lanes[:, a]
    second = flat[4 : flat.numel() : 4] if b == 4 else lanes[:, b]
    joint = (((first >> 12) & 0xF) << 4) | ((second >> 12) & 0xF)
    low, high = chi2_bound(256)
    stat = chi2(joint, 256)
    assert low < stat < high, f"lanes {pair}: chi2 {stat:.1f} not in ({low:.1f}, {high:.1f})"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 13])
def test_random_int16_length_and_words(n: int) -> None:
    """n values from ceil(n/4) 64-bit words: the generator moves on by exactly that many words."""
    g = torch.Generator().manual_seed(5)
    r = random_int16(n, g)
    assert r.dtype == torch.int16 and r.shape == (n,)
    after = torch.empty(1, dtype=torch.int64).random_(-(2**63), None, generator=g)
    h = torch.Generator().manual_seed(5)
    words = torch.empty((n + 3) // 4 + 1, dtype=torch.int64).random_(-(2**63), None, generator=h)
    assert torch.equal(r, words[:-1].view(torch.int16)[:n])
    assert torch.equal(after, words[-1:])


@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (3, 5, 7), (1, 1, 1, 1), (2, 3)])
def test_shape_dtype_values_and_seed(shape: tuple[int, ...]) -> None:
    pixels = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    x = binarize_batch(pixels, torch.Generator().manual_seed(3))
    assert x.dtype == torch.float32 and x.shape == pixels.shape and x.device == pixels.device
    assert ((x == 0) | (x == 1)).all()
    torch.manual_seed(99)  # the global RNG plays no part
    again = binarize_batch(pixels, torch.Generator().manual_seed(3))
    assert torch.equal(x, again)
    assert torch.equal(x[pixels == 0], torch.zeros_like(x[pixels == 0]))
    assert torch.equal(x[pixels == 255], torch.ones_like(x[pixels == 255]))


def test_seed_and_generator_state_matter() -> None:
    pixels = torch.full((64, 1, 8, 8), 128, dtype=torch.uint8)
    g = torch.Generator().manual_seed(3)
    first, second = binarize_batch(pixels, g), binarize_batch(pixels, g)
    other_seed = binarize_batch(pixels, torch.Generator().manual_seed(4))
    assert not torch.equal(first, second)  # the generator moved on
    assert not torch.equal(first, other_seed)


def test_frequencies_on_real_draws() -> None:
    """Mean of x per pixel value over 2^15 draws each: within 5 standard errors of p / 255."""
    m = 2**15
    pixels = PIXELS.to(torch.uint8)[:, None].expand(256, m).contiguous()
    x = binarize_batch(pixels, torch.Generator().manual_seed(7))
    freq = x.mean(dim=1, dtype=torch.float64)
    q = PIXELS.double() / 255
    se = (q * (1 - q) / m).sqrt()
    err = (freq - q).abs()
    assert freq[0] == 0 and freq[255] == 1
    worst = int((err / se.clamp(min=1e-300))[1:255].argmax()) + 1
    assert (err[1:255] <= 5 * se[1:255]).all(), f"p={worst}: {freq[worst]:.5f} vs {q[worst]:.5f}"
    z = ((freq - q) / se)[1:255]
    assert abs(z.mean().item()) < 5 / math.sqrt(254)  # no bias shared by all the pixel values
