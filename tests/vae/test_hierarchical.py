"""vaekit.vae.hierarchical: the two-layer VAE's log p(x|z1,z2), log p(z1|z2) + log p(z2) and
log q(z1|x,z2) + log q(z2|x) recomputed by hand from its submodules with torch.distributions, term
by term; the IWAE bound and `evaluate.iwae.estimate_batch` from those weights; shapes, sampling and
gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal

from vaekit.config import TrainConfig
from vaekit.evaluate.iwae import estimate_batch
from vaekit.vae.hierarchical import HierarchicalVAE
from vaekit.vae.models import build_model
from vaekit.vae.prob import closed_form_kl, negative_elbo, negative_iwae, noise_dim

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)
D, B, K = 3, 5, 3

CASES = [
    ("mlp", False, "standard", "bernoulli"),
    ("mlp", True, "standard", "bernoulli"),
    ("mlp", False, "vamp", "bernoulli"),
    ("mlp", True, "vamp", "gaussian"),
    ("conv", False, "standard", "bernoulli"),
    ("conv", True, "vamp", "bernoulli"),
    ("conv", True, "standard", "gaussian"),
]
IDS = ["-".join([kind, "gated" if gated else "plain", prior, lik]) for kind, gated, prior, lik in CASES]


def make(kind: str, gated: bool, prior: str, likelihood: str = "bernoulli", seed: int = 0) -> HierarchicalVAE:
    torch.manual_seed(seed)
    model = HierarchicalVAE(SHAPE, kind, [16], D, [4], likelihood=likelihood, gated=gated, prior=prior,
                            pseudo_inputs=4)
    model = model.double()
    with torch.no_grad():  # move the z1 log-variances off zero so that the clamp and scales matter
        model.q1_logvar.bias.uniform_(-1.0, 1.0)
        model.p1_logvar.bias.uniform_(-1.0, 1.0)
        if likelihood == "gaussian":
            model.p_logvar.uniform_(-2.0, 0.0)
    return model


def images(likelihood: str, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, *SHAPE, generator=g, dtype=torch.float64)
    return torch.bernoulli(x, generator=g) if likelihood == "bernoulli" else x


def diag_normal(mu: Tensor, logvar: Tensor) -> Independent:
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


def by_hand(model: HierarchicalVAE, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(log p(x|z1,z2), log p(z1|z2) + log p(z2), log q(z1|x,z2) + log q(z2|x)), (K, B) each, from
    the model's submodules and torch.distributions only."""
    d = model.latent_dim
    k = eps.shape[0]
    h = model.q_enc(x)  # (B, F)
    mu2, logvar2 = model.q_mu(h), model.q_logvar(h)
    z2 = mu2 + torch.exp(0.5 * logvar2) * eps[..., :d]  # (K, B, D)
    hq = model.q1_enc(torch.cat([h.unsqueeze(0).repeat(k, 1, 1), z2], dim=-1))
    mu1 = model.q1_mu(hq)
    logvar1 = model.q1_logvar(hq).clamp(-6.0, 2.0)  # the authors' hardtanh on the z1 layer
    z1 = mu1 + torch.exp(0.5 * logvar1) * eps[..., d:]
    hp = model.p1_dec(z2)
    pmu1, plogvar1 = model.p1_mu(hp), model.p1_logvar(hp).clamp(-6.0, 2.0)
    out = model.p_dec(torch.cat([z1, z2], dim=-1).reshape(k * x.shape[0], 2 * d)).reshape(k, *x.shape)
    if model.likelihood == "bernoulli":
        log_px = Bernoulli(logits=out).log_prob(x.expand_as(out)).flatten(2).sum(-1)
    else:
        scale = torch.exp(0.5 * model.p_logvar.clamp(min=math.log(1e-4)))
        log_px = Normal(out, scale).log_prob(x.expand_as(out)).flatten(2).sum(-1)
    if model.prior.closed_form_kl:
        log_p2 = diag_normal(torch.zeros_like(z2), torch.zeros_like(z2)).log_prob(z2)
    else:
        u = model.prior.w.clamp(0.0, 1.0)
        hu = model.q_enc(u)
        mu_k, logvar_k = model.q_mu(hu), model.q_logvar(hu)
        n = mu_k.shape[0]
        mix = MixtureSameFamily(Categorical(probs=torch.full((n,), 1.0 / n, dtype=x.dtype)),
                                diag_normal(mu_k, logvar_k))
        log_p2 = mix.log_prob(z2)
    log_pz = diag_normal(pmu1, plogvar1).log_prob(z1) + log_p2
    log_qz = diag_normal(mu1, logvar1).log_prob(z1) + diag_normal(mu2, logvar2).log_prob(z2)
    return log_px, log_pz, log_qz


def close(a: Tensor, b: Tensor, tol: float = 1e-9) -> None:
    torch.testing.assert_close(a.detach(), b.detach(), rtol=tol, atol=tol)


@pytest.mark.parametrize("kind, gated, prior, likelihood", CASES, ids=IDS)
def test_log_terms_term_by_term(kind: str, gated: bool, prior: str, likelihood: str) -> None:
    model = make(kind, gated, prior, likelihood)
    x = images(likelihood)
    eps = torch.randn(K, B, 2 * D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        lt = model.log_terms(x, eps)
        log_px, log_pz, log_qz = by_hand(model, x, eps)
    for got in (lt.log_px, lt.log_pz, lt.log_qz):
        assert got.shape == (K, B) and torch.isfinite(got).all()
    close(lt.log_px, log_px)
    close(lt.log_pz, log_pz)
    close(lt.log_qz, log_qz)
    close(lt.log_w, log_px + log_pz - log_qz)
    # `encoded` is ignored: passing something else changes nothing
    with torch.no_grad():
        again = model.log_terms(x, eps, (torch.zeros(B, D, dtype=torch.float64),) * 2)
    assert torch.equal(again.log_w, lt.log_w)


def test_eps_halves_are_eps2_then_eps1() -> None:
    """Changing eps1 (the second half) leaves z2, hence log q(z2|x) + log p(z2), alone; changing
    eps2 moves everything."""
    model = make("mlp", False, "standard")
    x = images("bernoulli")
    eps = torch.randn(K, B, 2 * D, dtype=torch.float64)
    other = eps.clone()
    other[..., D:] += 1.0
    with torch.no_grad():
        a, b = by_hand(model, x, eps), by_hand(model, x, other)
        la, lb = model.log_terms(x, eps), model.log_terms(x, other)
    assert not torch.allclose(la.log_px, lb.log_px)
    close(la.log_px, a[0])
    close(lb.log_px, b[0])


@pytest.mark.parametrize("kind, gated, prior, likelihood", CASES[:3] + CASES[5:6], ids=IDS[:3] + IDS[5:6])
def test_bounds_from_the_hand_weights(kind: str, gated: bool, prior: str, likelihood: str) -> None:
    model = make(kind, gated, prior, likelihood)
    x = images(likelihood)
    eps = torch.randn(K, B, 2 * D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        log_px, log_pz, log_qz = by_hand(model, x, eps)
    log_w = log_px + log_pz - log_qz
    iwae = negative_iwae(x, model, K, eps=eps)
    close(iwae.loss, -(torch.logsumexp(log_w, 0) - math.log(K)))
    close(iwae.kl, (log_qz - log_pz).mean(0))
    assert iwae.kl_per_dim is None
    elbo = negative_elbo(x, model, K, eps=eps)
    assert elbo.kl_per_dim is None
    close(elbo.recon, -log_px.mean(0))
    close(elbo.kl, (log_qz - log_pz).mean(0))
    close(elbo.neg_elbo, -log_w.mean(0))
    assert (iwae.loss <= elbo.neg_elbo + 1e-12).all()  # Jensen: L_K >= the K-sample ELBO
    with pytest.raises(ValueError, match="free bits"):
        negative_elbo(x, model, K, free_bits=0.1, eps=eps)


@pytest.mark.parametrize("kind, gated, prior, likelihood", [CASES[0], CASES[2], CASES[5]],
                         ids=[IDS[0], IDS[2], IDS[5]])
def test_estimate_batch_with_explicit_eps(kind: str, gated: bool, prior: str, likelihood: str) -> None:
    model = make(kind, gated, prior, likelihood).eval()
    x = images(likelihood)
    k = 7
    eps = torch.randn(k, B, 2 * D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        log_px, log_pz, log_qz = by_hand(model, x, eps)
        mu2 = model.q_mu(model.q_enc(x))
    log_w = log_px + log_pz - log_qz
    want_nll = -(torch.logsumexp(log_w, 0) - math.log(k))
    est = estimate_batch(x, model, k, eps=eps, chunk=32, tile=32)
    close(est.nll, want_nll)
    close(est.recon, -log_px.mean(0))
    close(est.kl, (log_qz - log_pz).mean(0))
    close(est.neg_elbo, -log_w.mean(0))
    close(est.mu, mu2)
    assert est.kl_per_dim is None
    for chunk, tile in [(1, 1), (2, 1), (3, 2), (5, 5)]:
        other = estimate_batch(x, model, k, eps=eps, chunk=chunk, tile=tile)
        close(other.nll, est.nll, 1e-12)
        close(other.kl, est.kl, 1e-12)
        close(other.recon, est.recon, 1e-12)
    with pytest.raises(ValueError, match="eps must have shape"):
        estimate_batch(x, model, k, eps=eps[..., :D], chunk=32, tile=32)


def test_estimate_batch_chooses_its_own_tile() -> None:
    """Without `tile`, estimate_batch sizes the decoder calls itself (`activation_elements`): for a
    two-layer model that must decode a latent of the top layer's size (latent_dim), not of the
    noise size (2 x latent_dim)."""
    model = make("mlp", False, "standard").eval()
    x = images("bernoulli")
    eps = torch.randn(4, B, 2 * D, dtype=torch.float64)
    est = estimate_batch(x, model, 4, eps=eps)
    close(est.nll, estimate_batch(x, model, 4, eps=eps, chunk=32, tile=32).nll, 1e-12)


def test_noise_dim_and_kl_form() -> None:
    for prior in ("standard", "vamp"):
        model = make("mlp", False, prior)
        assert noise_dim(model) == model.noise_dim == 2 * D
        assert model.closed_form_kl is False and closed_form_kl(model) is False


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_sample_and_decode_shapes(kind: str, prior: str) -> None:
    model = make(kind, True, prior).eval()
    with torch.no_grad():
        a = model.sample(6, torch.Generator().manual_seed(0))
        b = model.sample(6, torch.Generator().manual_seed(0))
        out = model.decode(torch.randn(4, D, dtype=torch.float64))
        mean = model.decode_mean(torch.randn(4, D, dtype=torch.float64))
        mu, logvar = model.encode(images("bernoulli"))
    assert a.shape == (6, *SHAPE) and torch.equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert isinstance(out, Tensor) and out.shape == (4, *SHAPE)
    assert mean.shape == (4, *SHAPE) and mean.min() >= 0 and mean.max() <= 1
    assert mu.shape == logvar.shape == (B, D)


def test_decode_is_at_the_mean_of_p_z1() -> None:
    model = make("mlp", False, "standard")
    z2 = torch.randn(4, D, dtype=torch.float64)
    with torch.no_grad():
        pmu1 = model.p1_mu(model.p1_dec(z2))
        close(model.decode(z2), model.p_dec(torch.cat([pmu1, z2], dim=-1)))


@pytest.mark.parametrize("kind, gated, prior", [("mlp", False, "standard"), ("mlp", True, "vamp"),
                                                ("conv", True, "vamp"), ("conv", False, "standard")])
def test_gradients_reach_every_parameter(kind: str, gated: bool, prior: str) -> None:
    model = make(kind, gated, prior)
    x = images("bernoulli")
    negative_elbo(x, model, k=2, generator=torch.Generator().manual_seed(0)).loss.mean().backward()
    names = dict(model.named_parameters())
    missing = [n for n, p in names.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    for prefix in ("q1_enc", "q1_mu", "q1_logvar", "p1_dec", "p1_mu", "p1_logvar"):
        assert any(n.startswith(prefix) for n in names), prefix
    if prior == "vamp":
        assert "prior.w" in names


def test_build_model_makes_the_hierarchical_vae() -> None:
    config = TrainConfig()
    config.model.image_shape = list(SHAPE)
    config.model.hidden, config.model.latent = [16], D
    config.model.stochastic_layers = 2
    config.model.prior, config.model.pseudo_inputs, config.model.gated = "vamp", 3, True
    model = build_model(config)
    assert isinstance(model, HierarchicalVAE) and model.kind == "mlp"
    assert model.prior.w.shape == (3, *SHAPE)
    config.model.stochastic_layers = 1
    assert not isinstance(build_model(config), HierarchicalVAE)


def test_z1_log_variances_are_clamped() -> None:
    model = make("mlp", False, "standard")
    with torch.no_grad():
        model.p1_logvar.bias.fill_(50.0)
        model.q1_logvar.bias.fill_(-50.0)
        _, plv = model.p_z1(torch.randn(2, D, dtype=torch.float64))
        h = model.q_enc(images("bernoulli"))
        _, qlv = model.q_z1(h, torch.randn(1, B, D, dtype=torch.float64))
    assert torch.equal(plv, torch.full_like(plv, 2.0)) and torch.equal(qlv, torch.full_like(qlv, -6.0))
    assert F.hardtanh(torch.tensor(3.0), -6.0, 2.0) == 2.0
