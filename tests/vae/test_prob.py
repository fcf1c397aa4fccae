"""vaekit.vae.prob against independent references: torch.distributions, closed forms, Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vaekit.vae import prob


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mu_logvar(b: int = 6, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), \
        torch.randn(b, d, generator=g, dtype=torch.float64)


class TestKL:
    def test_gaussian_kl_equals_torch_distributions(self) -> None:
        mu, logvar = _mu_logvar()
        ours = prob.gaussian_kl(mu, logvar)
        ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
        assert ours.shape == (6,)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)

    def test_gaussian_kl_per_dim_is_zero_only_at_the_prior(self) -> None:
        zeros = torch.zeros(3, 4)
        assert torch.equal(prob.gaussian_kl_per_dim(zeros, zeros), zeros)
        mu, logvar = _mu_logvar()
        assert (prob.gaussian_kl_per_dim(mu, logvar) > 0).all()

    def test_gaussian_kl_matches_a_monte_carlo_estimate(self) -> None:
        mu, logvar = _mu_logvar(b=3, d=4, seed=1)
        eps = torch.randn(200_000, 3, 4, generator=_gen(2), dtype=torch.float64)
        z = prob.reparameterize(mu, logvar, eps)  # (S, B, D)
        q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
        p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
        estimate, stderr = prob.monte_carlo_kl(q.log_prob(z), p.log_prob(z))
        exact = prob.gaussian_kl(mu, logvar)
        assert (stderr > 0).all()
        assert ((estimate - exact).abs() < 5 * stderr).all(), (estimate, exact, stderr)

    def test_diag_gaussian_kl_equals_torch_distributions(self) -> None:
        mu_q, lv_q = _mu_logvar(seed=3)
        mu_p, lv_p = _mu_logvar(seed=4)
        ours = prob.diag_gaussian_kl(mu_q, lv_q, mu_p, lv_p)
        ref = kl_divergence(Independent(Normal(mu_q, (0.5 * lv_q).exp()), 1),
                            Independent(Normal(mu_p, (0.5 * lv_p).exp()), 1))
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        # against the standard normal it is Ex.2 Q3
        torch.testing.assert_close(
            prob.diag_gaussian_kl(mu_q, lv_q, torch.zeros_like(mu_q), torch.zeros_like(lv_q)),
            prob.gaussian_kl(mu_q, lv_q))


class TestLogDensities:
    def test_log_bernoulli_equals_torch_distributions(self) -> None:
        g = _gen(5)
        logits = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64) * 20  # large |l| too
        logits[0, 0, 0, 0], logits[0, 0, 0, 1] = 80.0, -80.0
        x = (torch.rand(4, 2, 3, 3, generator=g) < 0.5).double()
        ref = Independent(Bernoulli(logits=logits), 3).log_prob(x)
        torch.testing.assert_close(prob.log_bernoulli(x, logits), ref, rtol=1e-10, atol=1e-10)
        assert torch.isfinite(prob.log_bernoulli(x, logits)).all()

    def test_log_bernoulli_with_sample_dims_broadcasts_x(self) -> None:
        g = _gen(6)
        logits = torch.randn(3, 4, 1, 2, 2, generator=g)  # (K, B, C, H, W)
        x = (torch.rand(4, 1, 2, 2, generator=g) < 0.5).float()
        ours = prob.log_bernoulli(x.unsqueeze(0), logits, batch_dims=2)
        ref = Independent(Bernoulli(logits=logits), 3).log_prob(x.expand(3, 4, 1, 2, 2))
        assert ours.shape == (3, 4)
        torch.testing.assert_close(ours, ref)

    @pytest.mark.parametrize("variance_shape", [(1, 1, 1), (1, 3, 2)])
    def test_log_normal_diag_equals_torch_distributions(self, variance_shape: tuple[int, ...]) -> None:
        g = _gen(7)
        x = torch.rand(5, 1, 3, 2, generator=g, dtype=torch.float64)
        mean = torch.randn(5, 1, 3, 2, generator=g, dtype=torch.float64)
        logvar = torch.randn(variance_shape, generator=g, dtype=torch.float64)
        ref = Independent(Normal(mean, (0.5 * logvar).exp().expand_as(mean)), 3).log_prob(x)
        torch.testing.assert_close(prob.log_normal_diag(x, mean, logvar), ref, rtol=1e-12, atol=1e-12)

    def test_log_standard_normal_equals_torch_distributions(self) -> None:
        z = torch.randn(7, 4, generator=_gen(8), dtype=torch.float64)
        ref = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
        torch.testing.assert_close(prob.log_standard_normal(z), ref, rtol=1e-12, atol=1e-12)
        # fully normalized: the density of 0 in D dims is (2 pi)^(-D/2)
        assert prob.log_standard_normal(torch.zeros(1, 4)).item() == pytest.approx(-2 * math.log(2 * math.pi))

    def test_log_px_given_z_dispatches_on_the_likelihood(self) -> None:
        x = torch.tensor([[1.0, 0.0]])
        logits = torch.tensor([[0.3, -1.2]])
        assert torch.equal(prob.log_px_given_z(x, logits, "bernoulli"), prob.log_bernoulli(x, logits))
        mean, logvar = torch.tensor([[0.5, 0.1]]), torch.tensor(0.2)
        torch.testing.assert_close(prob.log_px_given_z(x, (mean, logvar), "gaussian"),
                                   Independent(Normal(mean, (0.1 * torch.ones(1, 2)).exp()), 1).log_prob(x))
        with pytest.raises(ValueError):
            prob.log_px_given_z(x, logits, "poisson")


class LinearGaussianEncoderVAE(nn.Module):
    """A tiny VAE with linear maps: enough to exercise the bounds."""

    likelihood = "bernoulli"
    latent_dim = 3

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Linear(4, 6)
        self.dec = nn.Linear(3, 4)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x.flatten(1))
        return h[:, :3], h[:, 3:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z).view(-1, 1, 2, 2)


class TestBounds:
    def setup_method(self) -> None:
        self.model = LinearGaussianEncoderVAE()
        self.x = (torch.rand(5, 1, 2, 2, generator=_gen(9)) < 0.5).float()

    def _reference_log_w(self, eps: torch.Tensor) -> torch.Tensor:
        """log p(x|z) + log p(z) - log q(z|x) for each eps, with torch.distributions."""
        with torch.no_grad():
            mu, logvar = self.model.encode(self.x)
            q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
            z = mu + (0.5 * logvar).exp() * eps  # (K, B, D)
            logits = self.model.decode(z.reshape(-1, 3)).reshape(eps.shape[0], 5, 1, 2, 2)
            log_px = Independent(Bernoulli(logits=logits), 3).log_prob(self.x.expand_as(logits))
            log_pz = Independent(Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z)
            return log_px + log_pz - q.log_prob(z)

    def test_iwae_bound_with_one_sample_is_the_one_sample_elbo(self) -> None:
        eps = torch.randn(1, 5, 3, generator=_gen(10))
        log_w, _, _ = prob.log_importance_weights(self.x, self.model, k=1, eps=eps)
        bound = prob.iwae_bound(log_w)
        torch.testing.assert_close(bound, self._reference_log_w(eps)[0])
        # and on the same eps its reconstruction term is negative_elbo's: the two one-sample
        # ELBOs differ only in the KL, sampled (IWAE) against closed form (negative_elbo)
        terms = prob.negative_elbo(self.x, self.model, k=1, eps=eps)
        mu, logvar = self.model.encode(self.x)
        z = prob.reparameterize(mu, logvar, eps[0])
        q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
        sampled_kl = q.log_prob(z) - Independent(Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z)
        torch.testing.assert_close(bound, -(terms.recon + sampled_kl).detach())

    def test_closed_form_and_sampled_kl_agree_on_average(self) -> None:
        eps = torch.randn(20_000, 5, 3, generator=_gen(11))
        log_w, _, _ = prob.log_importance_weights(self.x, self.model, k=20_000, eps=eps)
        terms = prob.negative_elbo(self.x, self.model, k=20_000, eps=eps)
        diff = log_w + terms.neg_elbo.detach()  # per-sample ELBO minus the closed-form one
        assert (diff.mean(0).abs() < 5 * diff.std(0) / math.sqrt(20_000)).all()

    def test_iwae_bound_is_log_mean_exp(self) -> None:
        log_w = torch.randn(7, 4, generator=_gen(12), dtype=torch.float64) * 30 - 200
        brute = [math.log(sum(math.exp(v) for v in col) / 7) for col in log_w.T.tolist()]
        torch.testing.assert_close(prob.iwae_bound(log_w), torch.tensor(brute, dtype=torch.float64))
        # IWAE theorem 1: L_K >= L_1 in expectation; here pointwise L_K >= mean_k log w_k (Jensen)
        assert (prob.iwae_bound(log_w) >= log_w.mean(0)).all()

    def test_negative_elbo_terms_and_k_samples(self) -> None:
        eps = torch.randn(4, 5, 3, generator=_gen(13))
        terms = prob.negative_elbo(self.x, self.model, k=4, beta=0.5, eps=eps)
        mu, logvar = self.model.encode(self.x)
        kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
        z = prob.reparameterize(mu, logvar, eps)  # (K, B, D)
        logits = self.model.decode(z.reshape(-1, 3)).reshape(4, 5, 1, 2, 2)
        recon = -Independent(Bernoulli(logits=logits), 3).log_prob(self.x.expand_as(logits)).mean(0)
        torch.testing.assert_close(terms.recon, recon)
        torch.testing.assert_close(terms.kl, kl)
        torch.testing.assert_close(terms.neg_elbo, recon + kl)
        torch.testing.assert_close(terms.loss, recon + 0.5 * kl)

    def test_free_bits_floor_each_dimension_in_the_objective_only(self) -> None:
        terms = prob.negative_elbo(self.x, self.model, k=1, free_bits=10.0, generator=_gen(14))
        assert (terms.kl_per_dim < 10).all()
        torch.testing.assert_close(terms.loss, terms.recon + 3 * 10.0)
        torch.testing.assert_close(terms.neg_elbo, terms.recon + terms.kl)

    def test_gradient_reaches_mu_and_logvar_through_reparameterize(self) -> None:
        mu = torch.randn(5, 3, generator=_gen(15), requires_grad=True)
        logvar = torch.randn(5, 3, generator=_gen(16), requires_grad=True)
        eps = torch.randn(1, 5, 3, generator=_gen(17))

        class Fixed(LinearGaussianEncoderVAE):
            def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return mu, logvar

        model = Fixed()
        # beta = 0: no KL, so any gradient of logvar can only come through z = mu + sigma * eps
        prob.negative_elbo(self.x, model, k=1, beta=0.0, eps=eps).loss.sum().backward()
        assert mu.grad is not None and logvar.grad is not None
        # the same loss written independently: -log Bernoulli(x; dec(mu + exp(logvar/2) eps))
        mu2, lv2 = mu.detach().clone().requires_grad_(), logvar.detach().clone().requires_grad_()
        logits = model.dec(mu2 + (0.5 * lv2).exp() * eps[0]).view(-1, 1, 2, 2)
        (-Independent(Bernoulli(logits=logits), 3).log_prob(self.x)).sum().backward()
        torch.testing.assert_close(mu.grad, mu2.grad)
        torch.testing.assert_close(logvar.grad, lv2.grad)
        assert logvar.grad.abs().sum() > 0

    def test_negative_iwae_is_minus_the_bound(self) -> None:
        eps = torch.randn(6, 5, 3, generator=_gen(18))
        terms = prob.negative_iwae(self.x, self.model, k=6, eps=eps)
        ref = torch.logsumexp(self._reference_log_w(eps), 0) - math.log(6)
        torch.testing.assert_close(terms.loss.detach(), -ref)
        # the K-sample IWAE bound is at least the K-sample ELBO with sampled KL, pointwise
        assert (-terms.loss >= self._reference_log_w(eps).mean(0) - 1e-5).all()

    def test_bits_per_dim(self) -> None:
        assert prob.bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)


class TestLikelihoodFastPaths:
    """The evaluation paths of the log-densities (no gradient, x in {0, 1} for the Bernoulli one)
    against torch.distributions, on the shapes the IWAE estimator uses: x (B, P) against K samples
    of decoder outputs (K, B, P). The same calls with gradients take the autograd path: both agree."""

    @staticmethod
    def _binary(b: int, p: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return (torch.rand(b, p, generator=torch.Generator().manual_seed(5)) < 0.4).to(dtype)

    @pytest.mark.parametrize("binary", [True, False])
    def test_bernoulli_equals_torch_distributions(self, binary: bool) -> None:
        g = torch.Generator().manual_seed(0)
        x = self._binary(4, 10) if binary else torch.rand(4, 10, generator=g, dtype=torch.float64)
        logits = (torch.randn(3 * 4, 10, generator=g, dtype=torch.float64) * 4).reshape(3, 4, 10)
        with torch.no_grad():
            ours = prob.log_bernoulli(x.unsqueeze(0), logits, batch_dims=2)
        ref = Independent(Bernoulli(logits=logits, validate_args=False), 1).log_prob(x)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
        with_grad = prob.log_bernoulli(x.unsqueeze(0), logits.clone().requires_grad_(), batch_dims=2)
        torch.testing.assert_close(with_grad.detach(), ref, rtol=1e-10, atol=1e-10)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_bernoulli_fast_path_at_extreme_logits(self, dtype: torch.dtype) -> None:
        """Logits of +-30 (log(1 + e) vs log1p(e) differs by < 1e-13) and of +-1000 (exp overflows
        to inf: the call falls back to the stable form)."""
        x = self._binary(4, 10, dtype=dtype)
        for scale in (30.0, 1000.0):
            logits = (2 * x - 1).repeat(3, 1) * scale  # (3*4, 10)
            logits[::2] *= -1  # half the rows confident and wrong
            with torch.no_grad():
                ours = prob.log_bernoulli(x.unsqueeze(0), logits.reshape(3, 4, 10), batch_dims=2)
            ref = Independent(Bernoulli(logits=logits.reshape(3, 4, 10).double()), 1).log_prob(x.double())
            assert torch.isfinite(ours).all()
            torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=1e-5)

    @pytest.mark.parametrize("var_shape", [(10,), (1,)])
    def test_gaussian_equals_torch_distributions(self, var_shape: tuple[int, ...]) -> None:
        g = torch.Generator().manual_seed(1)
        x = torch.rand(4, 10, generator=g, dtype=torch.float64)
        mean = torch.rand(3 * 4, 10, generator=g, dtype=torch.float64).reshape(3, 4, 10)
        logvar = torch.randn(var_shape, generator=g, dtype=torch.float64) - 2
        with torch.no_grad():
            ours = prob.log_normal_diag(x.unsqueeze(0), mean, logvar, batch_dims=2)
        std = (0.5 * logvar).exp().expand(3, 4, 10)
        ref = Independent(Normal(mean, std), 1).log_prob(x)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


class TestLogQAtSample:
    """log q(z|x) at z = mu + sigma eps, held against torch.distributions and, where float32's
    sigma underflows, against the change of variables log N(eps; 0, I) - sum log sigma."""

    def test_equals_the_normal_density_at_the_sample(self) -> None:
        mu, logvar = _mu_logvar()
        eps = torch.randn(3, *mu.shape, generator=_gen(1), dtype=torch.float64)
        z = prob.reparameterize(mu, logvar, eps)
        ref = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
        ours = prob.log_q_at_sample(eps, logvar, batch_dims=2)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)

    def test_is_exact_where_sigma_underflows(self) -> None:
        mu, _ = _mu_logvar()
        logvar = torch.full_like(mu, -300.0)  # sigma = e^-150: 0 in float32
        eps = torch.randn(3, *mu.shape, generator=_gen(2), dtype=torch.float64)
        m32, lv32, e32 = mu.float(), logvar.float(), eps.float()
        z = prob.reparameterize(m32, lv32, e32)
        assert prob.log_normal_diag(z, m32, lv32, batch_dims=2).isnan().all()  # 0 * inf
        ref = Normal(0.0, 1.0).log_prob(eps).sum(-1) - 0.5 * logvar.sum(-1)
        ours = prob.log_q_at_sample(e32, lv32, batch_dims=2)
        torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=0.0)

    def test_a_collapsed_posterior_gives_finite_importance_weights(self) -> None:
        from vaekit.vae.models import MLPVAE
        torch.manual_seed(0)
        model = MLPVAE((1, 4, 4), [8], latent=3)
        with torch.no_grad():
            model.q_logvar.weight.zero_()
            model.q_logvar.bias.fill_(-300.0)
        x = torch.rand(5, 1, 4, 4, generator=_gen(3)).round()
        log_w, _, _ = prob.log_importance_weights(x, model, k=4, generator=_gen(4))
        assert log_w.shape == (4, 5) and log_w.isfinite().all()
