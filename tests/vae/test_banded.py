"""vaekit.vae.banded: every product on a band equals the dense product with the masked matrix
(float64, torch.mm on M . A), for MADE's masks and arbitrary ones; the blocks cover every nonzero of
the mask and no more columns than they must; autograd through `banded_product` equals autograd
through F.linear; the autoregressive term's products are the dense ones at any number of groups."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.vae.autoregressive import AutoregressiveTerm, made_masks
from vaekit.vae.banded import Band, banded_product


def random_mask(out: int, inn: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(out, inn, generator=g) < density).double()


def masks() -> list[tuple[str, torch.Tensor]]:
    cases = [(f"made W={w}", made_masks(40, 33, w)[i].double()) for w in (0, 1, 7, 20) for i in (0, 1)]
    cases.append(("random 0.2", random_mask(17, 23, 0.2, 1)))
    cases.append(("random 0.02 (empty groups)", random_mask(30, 9, 0.02, 2)))
    cases.append(("zero", torch.zeros(6, 5, dtype=torch.float64)))
    return cases


@pytest.mark.parametrize("groups", [1, 3, 16, 100])
@pytest.mark.parametrize("name,mask", masks())
def test_products_equal_the_dense_masked_products(name: str, mask: torch.Tensor, groups: int) -> None:
    g = torch.Generator().manual_seed(0)
    out, inn = mask.shape
    a = torch.randn(out, inn, generator=g, dtype=torch.float64) * mask
    x = torch.randn(11, inn, generator=g, dtype=torch.float64)
    dy = torch.randn(11, out, generator=g, dtype=torch.float64)
    band = Band(mask, groups)
    torch.testing.assert_close(band.forward(x, a), torch.mm(x, a.t()), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(band.backward_input(dy, a), torch.mm(dy, a), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(band.backward_weight(dy, x) * mask, torch.mm(dy.t(), x) * mask,
                               rtol=1e-13, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(out=st.integers(1, 25), inn=st.integers(1, 25), groups=st.integers(1, 30),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_blocks_cover_every_nonzero_and_are_tight(out: int, inn: int, groups: int, density: float,
                                                  seed: int) -> None:
    """Brute force over the entries: each nonzero lies in its row's block; each block's first and
    last column hold a nonzero of its rows; the groups are consecutive and at most `groups`."""
    mask = random_mask(out, inn, density, seed)
    band = Band(mask, groups)
    assert len(band.blocks) <= groups
    covered = torch.zeros(out, inn, dtype=torch.bool)
    for r0, r1, c0, c1 in band.blocks:
        covered[r0:r1, c0:c1] = True
        assert mask[r0:r1, c0].any() and mask[r0:r1, c1 - 1].any()
    assert not (mask.bool() & ~covered).any()
    assert band.density == pytest.approx(covered.sum().item() / mask.numel())


def test_density_of_made_masks_falls_with_the_window() -> None:
    """The full mask is triangular: its band is about half the area (more with fewer groups); a
    window of 168 pixels of 784 keeps about a fifth (the figures of the module docstring)."""
    full = [Band(m, 16).density for m in made_masks(784, 4096)]
    local = [Band(m, 16).density for m in made_masks(784, 4096, 168)]
    assert all(0.5 < d < 0.56 for d in full), full
    assert all(0.14 < d < 0.18 for d in local), local
    assert Band(made_masks(784, 4096)[0], 1).density > 0.99  # one group: the dense product


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="2-D mask"):
        Band(torch.ones(3), 2)
    with pytest.raises(ValueError, match="at least one group"):
        Band(torch.ones(3, 3), 0)


@pytest.mark.parametrize("groups", [1, 4])
def test_autograd_through_banded_product_equals_f_linear(groups: int) -> None:
    mask = made_masks(12, 10, 5)[1].double()  # (12, 10)
    g = torch.Generator().manual_seed(3)
    w = torch.randn(12, 10, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 10, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(2, 3, 12, generator=g, dtype=torch.float64)
    y = banded_product(x, w * mask, Band(mask, groups))
    dx, dw = torch.autograd.grad(y, (x, w), dy)
    y_ref = F.linear(x, w * mask)
    dx_ref, dw_ref = torch.autograd.grad(y_ref, (x, w), dy)
    torch.testing.assert_close(y, y_ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(dw, dw_ref, rtol=1e-13, atol=1e-13)
    assert (dw[mask == 0] == 0).all()


def test_under_autocast_the_product_runs_in_its_dtype() -> None:
    mask = made_masks(12, 10)[0]
    w = torch.randn(10, 12, requires_grad=True)
    x = torch.randn(4, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = banded_product(x, w * mask, Band(mask, 3))
        y_ref = F.linear(x, w * mask)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert w.grad is not None and w.grad.dtype == torch.float32


@pytest.mark.parametrize("window", [0, 3])
def test_autoregressive_term_is_the_same_at_any_number_of_groups(window: int) -> None:
    """teacher_forced on bands equals it on one group (the dense masked products), values and
    gradients, and the regrouped term builds its bands again."""
    torch.manual_seed(0)
    ar = AutoregressiveTerm(15, 4, 13, window=window).double()
    torch.nn.init.normal_(ar.out.weight)
    x = (torch.rand(3, 1, 3, 5) < 0.5).double()
    z = torch.randn(2, 3, 4, dtype=torch.float64)
    base = torch.randn(2, 3, 1, 3, 5, dtype=torch.float64)
    results = []
    for groups in (1, 5):
        ar.regroup(groups)
        ar.zero_grad()
        out = ar.teacher_forced(base, x, z)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in ar.parameters()]))
        assert len(ar.band2.blocks) <= groups
    (o1, g1), (o5, g5) = results
    torch.testing.assert_close(o5, o1, rtol=1e-13, atol=1e-13)
    for a, b in zip(g5, g1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_a_term_built_on_the_meta_device_reads_its_bands_only_when_used() -> None:
    with torch.device("meta"):
        ar = AutoregressiveTerm(784, 40, 64, window=10)  # no mask values to read: not read yet
    assert ar.m1.is_meta
    ar.to_empty(device="cpu")
    ar.m1.copy_(made_masks(784, 64, 10)[0])
    ar.m2.copy_(made_masks(784, 64, 10)[1])
    assert Band(ar.m2, 16).blocks == ar.band2.blocks
