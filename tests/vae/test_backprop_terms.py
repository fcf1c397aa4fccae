"""vaekit.vae.backprop's own log-densities, KL and IWAE bound (in-place copies, kept for the hot
path's speed) held against vaekit.vae.prob's: the same quantity computed both ways on random
inputs, equal to float32 rounding (and to float64's), so the two cannot drift apart."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from vaekit.vae import backprop
from vaekit.vae.prob import (
    LogTerms,
    gaussian_kl_per_dim,
    iwae_bound,
    log_bernoulli,
    log_normal_diag,
    log_standard_normal,
    reparameterize,
)

K, N, D, PIXELS = 4, 7, 5, 30
DTYPES = [torch.float32, torch.float64]
# (rtol, atol) per dtype: float32 rounding of sums of a few hundred terms of order 1; float64's
TOL = {torch.float32: (1e-5, 1e-4), torch.float64: (1e-12, 1e-11)}


def draws(seed: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """mu, logvar (N, D), eps (K, N, D), logits (K N, PIXELS) and binary images x (N, PIXELS)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(N, D, generator=g, dtype=dtype)
    logvar = torch.randn(N, D, generator=g, dtype=dtype)
    eps = torch.randn(K, N, D, generator=g, dtype=dtype)
    logits = 3 * torch.randn(K * N, PIXELS, generator=g, dtype=dtype)
    x = torch.bernoulli(torch.full((N, PIXELS), 0.3, dtype=dtype), generator=g)
    return mu, logvar, eps, logits, x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "grey"])
def test_log_bernoulli_rows_is_prob_log_bernoulli(binary: bool, dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    _, _, _, logits, x = draws(0, dtype)
    if not binary:
        x = torch.rand(x.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    xs = x.expand(K, N, -1).reshape(K * N, -1)  # each row's image, sample-major as backprop's
    want = log_bernoulli(xs, logits)  # (K N,)
    torch.testing.assert_close(backprop._log_bernoulli_rows(xs, logits), want, rtol=rtol, atol=atol)
    one = logits[:N]  # one sample per image
    torch.testing.assert_close(backprop._neg_log_bernoulli_sum(x, one), -log_bernoulli(x, one).sum(),
                               rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_kl_per_dim_is_prob_gaussian_kl_per_dim(dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    mu, logvar, _, _, _ = draws(2, dtype)
    var = logvar.mul(0.5).exp() ** 2  # sigma^2 as backprop forms it, from sigma
    got = backprop._gaussian_kl_per_dim(mu, logvar, var)
    torch.testing.assert_close(got, gaussian_kl_per_dim(mu, logvar), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_iwae_log_weights_and_bound_are_prob_s(dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    mu, logvar, eps, logits, x = draws(3, dtype)
    z = reparameterize(mu, logvar, eps)  # (K, N, D)
    xs = x.expand(K, N, -1).reshape(K * N, -1)
    log_px = log_bernoulli(xs, logits).view(K, N)
    want = LogTerms(log_px, log_standard_normal(z, batch_dims=2),
                    log_normal_diag(z, mu, logvar, batch_dims=2)).log_w  # (K, N)
    got = backprop._iwae_log_weights(log_px, eps, z.reshape(K * N, D), logvar)
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)

    loss, c = backprop._iwae_loss_and_weights(got, 1.0 / N)
    torch.testing.assert_close(loss, -iwae_bound(want).sum(), rtol=rtol, atol=atol)
    # the weights are d(-L_K)/d log w_k of the batch mean, by autograd on prob.iwae_bound
    log_w = want.clone().requires_grad_(True)
    (-iwae_bound(log_w).mean()).backward()
    assert log_w.grad is not None
    torch.testing.assert_close(c, -log_w.grad, rtol=rtol, atol=atol / 1000)
