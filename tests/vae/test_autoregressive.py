"""The autoregressive Bernoulli decoder (`vaekit.vae.autoregressive`) against brute force: its masks
give each pixel only the pixels before it (Jacobians), p(x|z) sums to one over all 2^D images, its
draws follow its density, its mean-field pass is its own fixed point, the hand-derived engine's
gradient equals autograd's, and log p(x) by importance sampling equals the integral over z."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vaekit.config import LoopConfig
from vaekit.evaluate.iwae import estimate_batch
from vaekit.vae.autoregressive import AutoregressiveTerm, made_degrees, made_masks
from vaekit.vae.backprop import backprop, supports
from vaekit.vae.hierarchical import HierarchicalVAE
from vaekit.vae.models import MLPVAE, ConvVAE
from vaekit.vae.prob import log_px_samples, negative_elbo


def all_images(shape: tuple[int, int, int]) -> torch.Tensor:
    """Every binary image of `shape`, (2^D, C, H, W) float64."""
    d = math.prod(shape)
    bits = list(itertools.product([0.0, 1.0], repeat=d))
    return torch.tensor(bits, dtype=torch.float64).reshape(-1, *shape)


def noisy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The model with every weight redrawn N(0, 0.5^2) (V starts at zero: a = 0 tells nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return model


@pytest.mark.parametrize("pixels,units", [(2, 1), (6, 5), (20, 7), (784, 512), (784, 2000)])
def test_masks_by_brute_force(pixels: int, units: int) -> None:
    m = made_degrees(pixels, units)
    assert int(m.min()) >= 1 and int(m.max()) <= pixels - 1
    m1, m2 = made_masks(pixels, units)
    # pixel i reaches output o through unit k iff M1[k, i] and M2[o, k]: only when i < o
    reach = (m2 @ m1) > 0  # (outputs, inputs)
    for o in range(pixels):
        for i in range(pixels):
            if reach[o, i]:
                assert i < o
    if units >= pixels - 1:  # enough units: every earlier pixel reaches every later one
        below = torch.ones(pixels, pixels, dtype=torch.bool).tril(-1)
        assert bool(reach[below].all())


@pytest.mark.parametrize("pixels,units,window", [(6, 5, 1), (20, 40, 3), (20, 19, 6), (49, 200, 14),
                                                  (784, 4096, 56), (10, 30, 50)])
def test_windowed_masks_by_brute_force(pixels: int, units: int, window: int) -> None:
    """With a window W, output o is reached from input i only for o - W <= i < o, and (with a unit
    of every degree) from every such i: brute force over the reach of M2 M1."""
    m1, m2 = made_masks(pixels, units, window)
    reach = (m2 @ m1) > 0
    o, i = torch.meshgrid(torch.arange(pixels), torch.arange(pixels), indexing="ij")
    allowed = (i < o) & (i >= o - window)
    assert not bool(reach[~allowed].any())
    assert bool(reach[allowed].all())  # every degree 1..D-1 has a unit in these cases
    full1, full2 = made_masks(pixels, units)
    assert bool((m1 <= full1).all() and (m2 <= full2).all())  # a subset of MADE's connections
    if window >= pixels - 1:
        assert torch.equal(reach, (full2 @ full1) > 0)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_windowed_term_is_a_normalized_density(window: int) -> None:
    """The sum of p(x|z) over all 2^D images of a 3x3 image is 1 for each z, and changing a pixel
    outside a later pixel's window leaves that pixel's logit as it was."""
    torch.manual_seed(6)
    model = noisy(MLPVAE((1, 3, 3), [5], 2, autoregressive=24, autoregressive_window=window).double(), seed=3)
    xs = all_images((1, 3, 3))
    with torch.no_grad():
        for z in torch.randn(3, 1, 1, 2, dtype=torch.float64):
            total = log_px_samples(model, xs, z.expand(1, xs.shape[0], 2)).exp().sum()
            torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64), rtol=1e-12, atol=1e-12)
        ar = model.p_ar
        assert ar is not None and ar.window == window
        z = torch.randn(1, 1, 2, dtype=torch.float64)
        x = (torch.rand(1, 1, 3, 3) < 0.5).double()
        base = torch.zeros(1, 1, 1, 3, 3, dtype=torch.float64)
        before = ar.teacher_forced(base, x, z).flatten()
        flipped = x.clone().flatten()
        flipped[0] = 1 - flipped[0]
        after = ar.teacher_forced(base, flipped.reshape(1, 1, 3, 3), z).flatten()
        changed = (after - before).abs() > 0
        assert not bool(changed[window + 1:].any()) and bool(changed[1 : window + 1].any())


@pytest.mark.parametrize("model_of", [
    lambda: MLPVAE((1, 2, 3), [8], 3, autoregressive=5),
    lambda: MLPVAE((2, 2, 2), [], 2, autoregressive=9),
    lambda: ConvVAE((1, 4, 2), [3], 2, kernel_size=2, stride=2, autoregressive=4),
    lambda: HierarchicalVAE((1, 2, 3), "mlp", [6], 2, [], autoregressive=7),
])
def test_sums_to_one_over_all_images_and_sees_only_earlier_pixels(model_of) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = noisy(model_of().double())
    shape = model.image_shape
    xs = all_images(shape)
    z = torch.randn(3, 1, model.noise_dim, dtype=torch.float64)  # [z1, z2] for two layers
    decode = getattr(model, "decode_pair", None)
    with torch.no_grad():
        for zi in z:  # p(x|z) over {0, 1}^D sums to 1 for each z
            log_p = torch.cat([log_px_samples(model, xs[i : i + 1], zi[None], decode)
                               for i in range(len(xs))], dim=1)
            assert log_p.logsumexp(dim=1).item() == pytest.approx(0.0, abs=1e-12)
            assert log_p.std() > 0.1  # not uniform: the test has something to sum
    # d logit_o / d x_i = 0 for i >= o, by autograd at random images (relu units on and off)
    ar = model.p_ar
    for seed in range(4):
        x = (torch.rand(1, *shape, generator=torch.Generator().manual_seed(seed)) < 0.5).double()
        x.requires_grad_(True)
        logits = ar.teacher_forced(torch.zeros(1, 1, *shape, dtype=torch.float64), x, z[0:1, :1])
        flat = logits.reshape(-1)
        d = flat.numel()
        jac = torch.stack([torch.autograd.grad(flat[o], x, retain_graph=True)[0].reshape(-1)
                           for o in range(d)])
        assert bool((jac.triu() == 0).all())


def test_draws_follow_the_density() -> None:
    torch.manual_seed(1)
    model = noisy(MLPVAE((1, 2, 2), [5], 2, autoregressive=6).double(), seed=3)
    z = torch.randn(1, 2, dtype=torch.float64)
    n = 200_000
    with torch.no_grad():
        x = model.draw_x(z.expand(n, 2), torch.Generator().manual_seed(0))
        xs = all_images((1, 2, 2))
        p = torch.cat([log_px_samples(model, xs[i : i + 1], z[None]) for i in range(16)], dim=1).exp()[0]
    codes = (x.reshape(n, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / n
    se = (p * (1 - p) / n).sqrt()
    assert bool(((freq - p).abs() <= 5 * se + 1e-4).all()), (freq, p)


def test_mean_field_is_its_own_fixed_point_and_starts_as_the_factorized_decoder() -> None:
    torch.manual_seed(2)
    model = MLPVAE((1, 3, 3), [6], 2, autoregressive=8).double()
    z = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model.decode(z), model.decode_net(z))  # V = 0 at initialization
        noisy(model)
        shown = model.decode(z)  # mean-field logits
        # fed its own probabilities, the one-pass (teacher-forced) logits are the same logits
        again = model.p_ar.teacher_forced(model.decode_net(z)[None], torch.sigmoid(shown), z[None])[0]
    torch.testing.assert_close(again, shown, rtol=0, atol=1e-12)
    assert (shown - model.decode_net(z)).abs().max() > 0.1


@pytest.mark.parametrize("dropout", [0.0, 0.25, 0.5])
def test_hand_derived_gradient_equals_autograd(dropout: float) -> None:
    """With dropout, both draw the mask from the global generator at the same point: the same seed
    before each gives the same mask, so the same numbers."""
    torch.manual_seed(3)
    model = noisy(MLPVAE((1, 4, 5), [7, 6], 3, autoregressive=9, autoregressive_dropout=dropout).double())
    assert supports(model, LoopConfig()) and model.training
    x = (torch.rand(5, 1, 4, 5) < 0.4).double()
    eps = torch.randn(1, 5, 3, dtype=torch.float64)
    torch.manual_seed(11)
    sums = backprop(model, x, eps[0], beta=0.7, free_bits=0.1)
    hand = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.manual_seed(11)
    terms = negative_elbo(x, model, k=1, beta=0.7, free_bits=0.1, eps=eps)
    terms.loss.mean().backward()
    assert sums[0].item() == pytest.approx(terms.loss.sum().item(), rel=1e-14)
    assert sums[1].item() == pytest.approx(terms.neg_elbo.sum().item(), rel=1e-14)
    for name, p in model.named_parameters():
        torch.testing.assert_close(hand[name], p.grad, rtol=1e-12, atol=1e-14, msg=name)
    assert hand["p_ar.out.weight"].abs().max() > 0 and hand["p_ar.x_in.weight"].abs().max() > 0


def test_dropout_drops_a_fraction_p_unbiased_in_training_and_never_in_eval() -> None:
    """Training mode: a fraction p of the masked units is zero beyond the ReLU's zeros, and the mean
    of a(x, z) over many masks is the term without dropout (the kept units scaled by 1 / (1 - p));
    eval mode: the term without dropout, exactly."""
    torch.manual_seed(5)
    plain = noisy(MLPVAE((1, 4, 5), [6], 3, autoregressive=64).double(), seed=2)
    dropped = MLPVAE((1, 4, 5), [6], 3, autoregressive=64, autoregressive_dropout=0.25).double()
    dropped.load_state_dict(plain.state_dict())
    ar, ar_d = plain.p_ar, dropped.p_ar
    assert ar is not None and ar_d is not None
    x = (torch.rand(3, 1, 4, 5) < 0.5).double()
    z = torch.randn(1, 3, 3, dtype=torch.float64)
    base = torch.zeros(1, 3, 1, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        want = ar.teacher_forced(base, x, z)
        h = torch.relu(ar.z_in(z) + ar.pixel_part(x))
        hd = ar_d.drop(h.expand(2000, -1, -1))
        live = h.expand_as(hd) > 0
        assert (hd[live] == 0).double().mean().item() == pytest.approx(0.25, abs=0.01)
        torch.testing.assert_close(hd[live & (hd != 0)], h.expand_as(hd)[live & (hd != 0)] / 0.75)
        mean = torch.stack([ar_d.teacher_forced(base, x, z) for _ in range(4000)]).mean(0)
        spread = (want.abs().max() + 1) * 0.05
        assert (mean - want).abs().max().item() < spread.item()
        dropped.eval()
        torch.testing.assert_close(ar_d.teacher_forced(base, x, z), want, rtol=0, atol=0)


def test_importance_sampled_log_px_equals_the_integral_over_z() -> None:
    """A 1-D latent: log p(x) = log int p(x|z) N(z; 0, 1) dz by the trapezoidal rule in float64,
    against `estimate_batch`'s k = 20,000 (the evaluator of `vaekit eval`)."""
    torch.manual_seed(4)
    model = noisy(MLPVAE((1, 1, 3), [4], 1, autoregressive=3).double(), seed=5).eval()
    with torch.no_grad():
        for head in (model.q_mu, model.q_logvar):  # q(z|x) = p(z): weights p(x|z) <= 1, small variance
            head.weight.zero_()
            head.bias.zero_()
        xs = all_images((1, 1, 3))
        grid = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
        log_pxz = log_px_samples(model, xs, grid[:, None, None].expand(-1, len(xs), 1))  # (G, 8)
        log_prior = -0.5 * (grid**2 + math.log(2 * math.pi))
        exact = torch.trapezoid((log_pxz + log_prior[:, None]).exp(), grid, dim=0).log()
        assert exact.exp().sum().item() == pytest.approx(1.0, abs=1e-9)  # p(x) sums to one too
        est = estimate_batch(xs, model, k=20_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(-est.nll, exact, rtol=0, atol=0.01)
    assert exact.max() - exact.min() > 0.5  # the images differ: a wrong pairing would show


def test_refuses_a_gaussian_likelihood_and_a_single_pixel() -> None:
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="Bernoulli decoder"):
        MLPVAE((1, 4, 4), [8], 2, likelihood="gaussian", autoregressive=8)
    with pytest.raises(ValueError, match="2 pixels"):
        AutoregressiveTerm(1, 2, 3)


def test_the_saved_weights_are_the_weights_it_computes_with(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """model.safetensors, read without vaekit, holds zeros where the masks do (a reader of the file
    gets a decoder that sees only earlier pixels), after training has updated the rest."""
    from safetensors.torch import load_file

    from eval_runs import make_run

    run = make_run(tmp_path / "run", autoregressive=16)
    tensors = load_file(run / "model.safetensors")
    w = next(t for name, t in tensors.items() if name.endswith("x_in.weight"))
    v = next(t for name, t in tensors.items() if name.endswith("autoregressive.out.weight")
             or (name.endswith("out.weight") and t.shape == w.shape[::-1]))
    m1, m2 = made_masks(w.shape[1], w.shape[0])
    assert (w[m1 == 0] == 0).all() and (v[m2 == 0] == 0).all()
    assert (w[m1 == 1] != 0).all() and (v[m2 == 1] != 0).any()  # trained, not zeroed


def test_a_file_with_weights_outside_the_masks_is_masked_as_it_is_loaded() -> None:
    term = noisy(AutoregressiveTerm(12, 3, 7))
    assert (term.x_in.weight[term.m1 == 0] != 0).any()  # as an older file could hold them
    state = {k: v.clone() for k, v in term.state_dict().items()}
    z, x = torch.randn(2, 4, 3), torch.bernoulli(torch.full((4, 1, 3, 4), 0.5))
    logits = torch.randn(2, 4, 1, 3, 4)
    before = term.teacher_forced(logits, x, z)
    fresh = AutoregressiveTerm(12, 3, 7)
    fresh.load_state_dict(state)
    assert (fresh.x_in.weight[fresh.m1 == 0] == 0).all() and (fresh.out.weight[fresh.m2 == 0] == 0).all()
    assert torch.equal(fresh.teacher_forced(logits, x, z), before)
