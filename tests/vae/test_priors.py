"""vaekit.vae.priors: VampPrior.log_prob against torch.distributions' MixtureSameFamily (float64
and float32, peaked mixtures, many rows), its samples against the mixture's moments, the standard
normal against Normal(0, 1), and the Monte-Carlo KL of a VampPrior VAE against torch.distributions
at the same eps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal

from vaekit.vae import priors
from vaekit.vae.models import MLPVAE, ConvVAE
from vaekit.vae.prob import negative_elbo

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 3)


def mixture(mu_k: Tensor, logvar_k: Tensor) -> MixtureSameFamily:
    """1/K sum_k N(mu_k, diag exp(logvar_k)), by torch.distributions."""
    k = mu_k.shape[0]
    weights = Categorical(probs=torch.full((k,), 1.0 / k, dtype=mu_k.dtype))
    return MixtureSameFamily(weights, Independent(Normal(mu_k, torch.exp(0.5 * logvar_k)), 1))


def components_by_hand(prior: priors.VampPrior, encode: priors.Encode) -> tuple[Tensor, Tensor]:
    """(mu_k, logvar_k) = encode(clamp(w_k, 0, 1)): hardtanh(w, 0, 1) written as a clamp."""
    return encode(prior.w.clamp(0.0, 1.0))


class LinearEncoder(nn.Module):
    """x -> (A flat(x) + a, B flat(x) + b + shift): a small encoder with a tunable variance."""

    def __init__(self, n_in: int, d: int, shift: float = 0.0) -> None:
        super().__init__()
        self.mu = nn.Linear(n_in, d)
        self.logvar = nn.Linear(n_in, d)
        self.shift = shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.flatten(1)
        return self.mu(flat) * 3.0, self.logvar(flat) + self.shift


def make_prior(k: int, dtype: torch.dtype, seed: int = 0) -> priors.VampPrior:
    torch.manual_seed(seed)
    prior = priors.VampPrior(k, SHAPE).to(dtype)
    with torch.no_grad():  # spread the pseudo-inputs so that the components differ
        prior.w.uniform_(-0.3, 1.3)
    return prior


ENCODERS = {
    "mlp-vae": lambda d: MLPVAE(SHAPE, [8], latent=d).encode,
    "linear": lambda d: LinearEncoder(12, d),
    "peaked": lambda d: LinearEncoder(12, d, shift=-8.0),  # logvar_k near -8: a peaked mixture
}


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)], ids=["f64", "f32"])
def test_log_prob_equals_mixture_same_family(encoder: str, dtype: torch.dtype, tol: float) -> None:
    d, k = 3, 6
    prior = make_prior(k, dtype)
    torch.manual_seed(1)
    enc = ENCODERS[encoder](d)
    if isinstance(enc, nn.Module):
        enc = enc.to(dtype)
    else:
        enc.__self__.to(dtype)  # type: ignore[attr-defined]
    with torch.no_grad():
        # the reference in float64 from the same (float32-rounded where dtype is float32) components
        mu_k, logvar_k = components_by_hand(prior, enc)
        ref = mixture(mu_k.double(), logvar_k.double())
        if encoder == "peaked":
            assert logvar_k.max() < -6.0
        # z near the components (where the peaked mixture is not -inf in float32) and away from them
        near = mu_k[torch.arange(5) % k] + 0.05 * torch.randn(5, d, dtype=dtype)
        far = torch.randn(4, d, dtype=dtype)
        z1 = torch.cat([near, far])  # (B, D)
        z2 = torch.stack([z1, z1.flip(0) + 0.01, z1 * 0.9])  # (K, B, D)
        got1 = prior.log_prob(z1, enc, batch_dims=1)
        got2 = prior.log_prob(z2, enc, batch_dims=2)
    assert got1.shape == (9,) and got2.shape == (3, 9)
    assert got1.dtype == dtype
    want1, want2 = ref.log_prob(z1.double()), ref.log_prob(z2.double())
    for got, want in ((got1, want1), (got2, want2)):
        assert torch.isfinite(want).all()
        torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * want.abs().max().item())


def test_peaked_mixture_float32_digits() -> None:
    """Small variances (logvar = -8, sigma ~ 0.018) at z one sigma from a component: float32
    to 1e-4 of the float64 mixture, with no catastrophic cancellation."""
    d, k = 4, 5
    prior = make_prior(k, torch.float32, seed=3)
    mu_k = torch.randn(k, d) * 5.0
    logvar_k = torch.full((k, d), -8.0)

    def encode(_u: Tensor) -> tuple[Tensor, Tensor]:
        return mu_k, logvar_k

    z = mu_k + torch.exp(torch.tensor(-4.0)) * torch.randn(k, d)
    got = prior.log_prob(z, encode)
    want = mixture(mu_k.double(), logvar_k.double()).log_prob(z.double())
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_many_rows_in_chunks_equal_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    d, k = 2, 4
    prior = make_prior(k, torch.float64)
    enc = LinearEncoder(12, d).double()
    z = torch.randn(3, 11, d, dtype=torch.float64)
    with torch.no_grad():
        whole = prior.log_prob(z, enc, batch_dims=2)
        monkeypatch.setattr(priors, "ROWS_PER_CALL", 4)  # 33 rows in 9 calls, the last of 1 row
        chunked = prior.log_prob(z, enc, batch_dims=2)
        want = mixture(*components_by_hand(prior, enc)).log_prob(z)
    assert torch.equal(whole, chunked)
    torch.testing.assert_close(chunked, want, rtol=1e-12, atol=1e-12)


def test_standard_normal_log_prob() -> None:
    z = torch.randn(3, 5, 4, dtype=torch.float64)
    p = priors.StandardNormal()
    want = Independent(Normal(torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)), 1)
    torch.testing.assert_close(p.log_prob(z, lambda x: (x, x), batch_dims=2), want.log_prob(z),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p.log_prob(z[0], lambda x: (x, x)), want.log_prob(z[0]),
                               rtol=1e-12, atol=1e-12)
    assert p.closed_form_kl and not priors.VampPrior(2, SHAPE).closed_form_kl


def test_sample_matches_the_mixture_moments() -> None:
    d, k, n = 3, 5, 200_000
    prior = make_prior(k, torch.float64, seed=4)
    enc = LinearEncoder(12, d).double()
    with torch.no_grad():
        mu_k, logvar_k = components_by_hand(prior, enc)
        z = prior.sample(n, d, enc, generator=torch.Generator().manual_seed(0))
    assert z.shape == (n, d) and z.dtype == torch.float64
    var_k = logvar_k.exp()
    mean = mu_k.mean(dim=0)
    var = (var_k + mu_k.pow(2)).mean(dim=0) - mean.pow(2)
    # standard errors of the sample mean and of the sample variance (the latter from the
    # sample's fourth central moment)
    se_mean = (var / n).sqrt()
    m4 = (z - z.mean(dim=0)).pow(4).mean(dim=0)
    se_var = ((m4 - var.pow(2)) / n).sqrt()
    assert ((z.mean(dim=0) - mean).abs() < 4 * se_mean).all(), (z.mean(dim=0), mean)
    assert ((z.var(dim=0) - var).abs() < 4 * se_var).all(), (z.var(dim=0), var)
    # and each component is drawn about 1/K of the time: the mixture is not one component
    assert var.min() > var_k.mean(dim=0).min()


def test_sample_is_seeded() -> None:
    prior = make_prior(3, torch.float64)
    enc = LinearEncoder(12, 2).double()
    with torch.no_grad():
        a = prior.sample(50, 2, enc, generator=torch.Generator().manual_seed(7))
        b = prior.sample(50, 2, enc, generator=torch.Generator().manual_seed(7))
        c = prior.sample(50, 2, enc, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pseudo_inputs_lie_in_the_unit_interval() -> None:
    prior = priors.VampPrior(7, SHAPE)
    assert prior.w.shape == (7, *SHAPE)
    # the authors' initialization N(0.05, 0.01): inside (0, 1), where hardtanh is the identity
    assert abs(prior.w.mean().item() - priors.PSEUDO_MEAN) < 0.01
    torch.testing.assert_close(prior.pseudo_inputs(), prior.w)
    with torch.no_grad():
        prior.w.uniform_(-3.0, 3.0)
    u = prior.pseudo_inputs()
    assert u.min() >= 0.0 and u.max() <= 1.0
    assert (u == 0).any() and (u == 1).any()
    inside = (prior.w > 0) & (prior.w < 1)
    assert torch.equal(u[inside], prior.w[inside])


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("gated", [False, True])
def test_vamp_vae_kl_is_monte_carlo_at_the_same_eps(kind: str, gated: bool) -> None:
    torch.manual_seed(5)
    shape, d, s = (1, 8, 8), 3, 4
    model = (MLPVAE(shape, [16], latent=d, gated=gated, prior="vamp", pseudo_inputs=5) if kind == "mlp"
             else ConvVAE(shape, [4], latent=d, hidden=[16], gated=gated, prior="vamp", pseudo_inputs=5))
    model = model.double()
    x = torch.bernoulli(torch.rand(6, *shape, dtype=torch.float64))
    eps = torch.randn(s, 6, d, dtype=torch.float64)
    terms = negative_elbo(x, model, k=s, eps=eps)
    assert terms.kl_per_dim is None
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps  # (S, B, D)
        log_q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
        mu_k, logvar_k = model.encode(model.prior.w.clamp(0.0, 1.0))
        log_p = mixture(mu_k, logvar_k).log_prob(z)
        logits = model.p_dec(z.reshape(-1, d)).reshape(s, 6, *shape)
        log_px = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(2).sum(-1)
    torch.testing.assert_close(terms.kl.detach(), (log_q - log_p).mean(0), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(terms.recon.detach(), -log_px.mean(0), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(terms.neg_elbo.detach(), (log_q - log_p - log_px).mean(0),
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(terms.loss, terms.neg_elbo)  # beta = 1
    beta = negative_elbo(x, model, k=s, beta=0.25, eps=eps)
    torch.testing.assert_close(beta.loss.detach(), (-log_px + 0.25 * (log_q - log_p)).mean(0),
                               rtol=1e-9, atol=1e-9)
    # the gradient reaches the pseudo-inputs through log p(z)
    terms.loss.sum().backward()
    assert model.prior.w.grad is not None and model.prior.w.grad.abs().sum() > 0


def test_vamp_vae_refuses_free_bits() -> None:
    model = MLPVAE((1, 8, 8), [8], latent=2, prior="vamp", pseudo_inputs=3)
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="free bits"):
        negative_elbo(x, model, free_bits=0.5)
    assert math.isfinite(float(negative_elbo(x, model, free_bits=0.0).loss.detach().sum()))


def test_vamp_vae_sample_prior_follows_the_mixture() -> None:
    """model.sample_prior draws from the VampPrior (moments of the mixture of the model's own
    posteriors at the pseudo-inputs), not from N(0, I)."""
    torch.manual_seed(6)
    d, n = 2, 100_000
    model = MLPVAE((1, 8, 8), [8], latent=d, prior="vamp", pseudo_inputs=4).double()
    with torch.no_grad():
        model.q_mu.bias.fill_(5.0)  # components near z = 5, far from N(0, I)
        z = model.sample_prior(n, torch.Generator().manual_seed(1))
        mu_k, logvar_k = model.encode(model.prior.w.clamp(0, 1))
    mean = mu_k.mean(0)
    var = (logvar_k.exp() + mu_k.pow(2)).mean(0) - mean.pow(2)
    assert ((z.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()
    assert (z.mean(0) > 3.0).all()
