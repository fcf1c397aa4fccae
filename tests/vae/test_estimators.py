"""The gradient estimators (Ex.2 Q5) against closed forms: the per-sample formulas, the means against
exact gradients, and `score_negative_elbo` against the reparameterized `negative_elbo`."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from planted_bugs import score_loss_without_score_term
from vaekit.vae import prob
from vaekit.vae.estimators import (
    GradientEstimator,
    pathwise_gradient,
    score_function_gradient,
    score_negative_elbo,
)
from vaekit.vae.linear_gaussian import LinearGaussianVAE
from vaekit.vae.models import MLPVAE

F64 = torch.float64
ESTIMATORS = [score_function_gradient, pathwise_gradient]


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: see conftest.one_thread


def _eps(seed: int, shape: tuple[int, ...]) -> Tensor:
    """The noise the estimators draw first from a generator seeded with `seed`."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


MU = torch.tensor([0.7, -1.2, 2.0], dtype=F64)
SIGMA = torch.tensor([0.5, 1.0, 1.6], dtype=F64)
A = torch.tensor([0.3, 0.5, -1.0], dtype=F64)
DAMP = torch.exp(-0.5 * SIGMA**2)

# f, exact d/dmu E[f], exact d/dsigma E[f], under z ~ N(mu, sigma^2) per dim, summed over dims
CLOSED_FORMS: dict[str, tuple[Callable[[Tensor], Tensor], Tensor, Tensor]] = {
    "z^2": (lambda z: z.pow(2).sum(-1), 2 * MU, 2 * SIGMA),  # E = mu^2 + sigma^2
    "(z-a)^2": (lambda z: (z - A).pow(2).sum(-1), 2 * (MU - A), 2 * SIGMA),
    # E[exp(z/2)] = exp(mu/2 + sigma^2/8)
    "exp(z/2)": (lambda z: (z / 2).exp().sum(-1), (MU / 2 + SIGMA**2 / 8).exp() / 2,
                 SIGMA / 4 * (MU / 2 + SIGMA**2 / 8).exp()),
    "cos(z)": (lambda z: z.cos().sum(-1), -MU.sin() * DAMP, -SIGMA * MU.cos() * DAMP),
}


class TestPerSampleFormulas:
    def test_score_is_the_closed_form_score(self) -> None:
        # f = 1: each estimate is the score itself, eps / sigma and (eps^2 - 1) / sigma
        n = 7
        out = score_function_gradient(lambda z: torch.ones(z.shape[:-1], dtype=F64), MU, SIGMA, n,
                                      generator=torch.Generator().manual_seed(3))
        eps = _eps(3, (n, 3))
        torch.testing.assert_close(out.mu, eps / SIGMA)
        torch.testing.assert_close(out.scale, (eps**2 - 1) / SIGMA)

    def test_score_wrt_logvar(self) -> None:
        n = 5
        out = score_function_gradient(lambda z: torch.full(z.shape[:-1], 2.0, dtype=F64), MU,
                                      2 * SIGMA.log(), n, scale_is="logvar",
                                      generator=torch.Generator().manual_seed(4))
        eps = _eps(4, (n, 3))
        torch.testing.assert_close(out.mu, 2.0 * eps / SIGMA)
        torch.testing.assert_close(out.scale, 2.0 * (eps**2 - 1) / 2)

    def test_score_times_f_minus_baseline(self) -> None:
        n = 6
        f = CLOSED_FORMS["(z-a)^2"][0]
        out = score_function_gradient(f, MU, SIGMA, n, baseline=1.5,
                                      generator=torch.Generator().manual_seed(5))
        eps = _eps(5, (n, 3))
        weight = (f(MU + SIGMA * eps) - 1.5).unsqueeze(-1)
        torch.testing.assert_close(out.mu, weight * eps / SIGMA)
        torch.testing.assert_close(out.values, f(MU + SIGMA * eps))

    def test_pathwise_is_f_prime_times_dz(self) -> None:
        # f = sum z^2: d/dmu = 2 z, d/dsigma = 2 z eps
        n = 6
        out = pathwise_gradient(lambda z: z.pow(2).sum(-1), MU, SIGMA, n,
                                generator=torch.Generator().manual_seed(6))
        eps = _eps(6, (n, 3))
        z = MU + SIGMA * eps
        torch.testing.assert_close(out.mu, 2 * z)
        torch.testing.assert_close(out.scale, 2 * z * eps)

    @pytest.mark.parametrize("estimator", ESTIMATORS)
    def test_batched_shapes_and_no_mixing(self, estimator: GradientEstimator) -> None:
        # mu (B, D): estimates (S, B, D); each sample and each batch row gets its own gradient
        mu = torch.zeros(4, 2, dtype=F64)
        out = estimator(lambda z: z.pow(2).sum(-1), mu, torch.ones(4, 2, dtype=F64), 9,
                        generator=torch.Generator().manual_seed(0))
        assert out.mu.shape == out.scale.shape == (9, 4, 2)
        assert out.values.shape == (9, 4)
        assert out.mean()[0].shape == out.stderr()[1].shape == (4, 2)

    @pytest.mark.parametrize("estimator", ESTIMATORS)
    def test_same_seed_same_numbers(self, estimator: GradientEstimator) -> None:
        f = CLOSED_FORMS["cos(z)"][0]
        a, b = (estimator(f, MU, SIGMA, 50, generator=torch.Generator().manual_seed(1)) for _ in range(2))
        torch.testing.assert_close(a.mu, b.mu, rtol=0, atol=0)
        c = estimator(f, MU, SIGMA, 50, generator=torch.Generator().manual_seed(2))
        assert not torch.equal(a.mu, c.mu)


class TestMeansMatchExactGradients:
    @pytest.mark.parametrize("name", list(CLOSED_FORMS))
    @pytest.mark.parametrize("estimator", ESTIMATORS)
    @pytest.mark.parametrize("scale_is", ["sigma", "logvar"])
    def test_mean_within_5_standard_errors(self, name: str, estimator: GradientEstimator,
                                           scale_is: str) -> None:
        f, d_mu, d_sigma = CLOSED_FORMS[name]
        scale = SIGMA if scale_is == "sigma" else 2 * SIGMA.log()
        d_scale = d_sigma if scale_is == "sigma" else d_sigma * SIGMA / 2  # d sigma / d logvar = sigma/2
        out = estimator(f, MU, scale, 40000, scale_is=scale_is,  # type: ignore[arg-type]
                        generator=torch.Generator().manual_seed(11))
        (m_mu, m_scale), (se_mu, se_scale) = out.mean(), out.stderr()
        assert ((m_mu - d_mu).abs() <= 5 * se_mu).all(), (m_mu, d_mu, se_mu)
        assert ((m_scale - d_scale).abs() <= 5 * se_scale).all(), (m_scale, d_scale, se_scale)
        # and the test has power: the standard error is small against the gradient's scale
        assert (se_mu < 0.35 * (d_mu.abs() + 1)).all() and (se_scale < 0.35 * (d_scale.abs() + 1)).all()

    def test_a_baseline_keeps_the_mean_and_lowers_the_variance(self) -> None:
        mu, sigma = torch.tensor([3.0], dtype=F64), torch.tensor([1.0], dtype=F64)
        f = lambda z: z.pow(2).sum(-1)  # noqa: E731  E[f] = mu^2 + sigma^2 = 10
        plain = score_function_gradient(f, mu, sigma, 40000, generator=torch.Generator().manual_seed(0))
        based = score_function_gradient(f, mu, sigma, 40000, baseline=10.0,
                                        generator=torch.Generator().manual_seed(1))
        for out in (plain, based):
            assert abs(float(out.mean()[0]) - 6.0) <= 5 * float(out.stderr()[0])
        assert float(based.variance()[0]) < 0.5 * float(plain.variance()[0])

    def test_pathwise_variance_is_lower_on_a_quadratic(self) -> None:
        f = CLOSED_FORMS["(z-a)^2"][0]
        score = score_function_gradient(f, MU, SIGMA, 20000, generator=torch.Generator().manual_seed(0))
        path = pathwise_gradient(f, MU, SIGMA, 20000, generator=torch.Generator().manual_seed(0))
        assert (path.variance()[0] < score.variance()[0]).all()
        # pathwise d/dmu = 2 (z - a): variance exactly 4 sigma^2
        torch.testing.assert_close(path.variance()[0], 4 * SIGMA**2, rtol=0.05, atol=0)


# ----------------------------------------------------------------------------- score_negative_elbo


def _tiny_mlp() -> tuple[MLPVAE, Tensor]:
    torch.manual_seed(0)
    model = MLPVAE((1, 4, 4), [8], latent=2).double()
    x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.4, dtype=F64), generator=torch.Generator().manual_seed(0))
    return model, x


class TestScoreNegativeElbo:
    def test_reports_the_same_values_as_negative_elbo(self) -> None:
        model, x = _tiny_mlp()
        ref = prob.negative_elbo(x, model, k=4, generator=torch.Generator().manual_seed(2))
        out = score_negative_elbo(x, model, k=4, beta=0.5, baseline=3.0,
                                  generator=torch.Generator().manual_seed(2))
        for name in ("neg_elbo", "recon", "kl", "kl_per_dim"):
            torch.testing.assert_close(getattr(out, name), getattr(ref, name))
        # the surrogate's value is the beta-weighted objective: the score term has value 0
        torch.testing.assert_close(out.loss, ref.recon + 0.5 * ref.kl)

    def test_decoder_gradient_is_the_ordinary_one(self) -> None:
        model, x = _tiny_mlp()
        decoder = list(model.p_dec.parameters())
        ref_terms = prob.negative_elbo(x, model, k=3, generator=torch.Generator().manual_seed(5))
        out_terms = score_negative_elbo(x, model, k=3, generator=torch.Generator().manual_seed(5))
        ref = torch.autograd.grad(ref_terms.loss.sum(), decoder)
        out = torch.autograd.grad(out_terms.loss.sum(), decoder)
        for a, b in zip(ref, out, strict=True):
            torch.testing.assert_close(a, b)

    def test_encoder_gradient_is_score_times_reward_plus_kl(self) -> None:
        # one sample, by hand: d/dpsi [(-log p(x|z) - b) log q(z|x)] + d KL, z fixed
        model, x = _tiny_mlp()
        enc = [*model.q_enc.parameters(), *model.q_mu.parameters(), *model.q_logvar.parameters()]
        out = torch.autograd.grad(score_negative_elbo(x, model, baseline=2.0, generator=torch.Generator()
                                                      .manual_seed(8)).loss.sum(), enc)
        mu, logvar = model.encode(x)
        z = (mu + (0.5 * logvar).exp() * _eps(8, (1, *mu.shape))).detach()  # (1, B, D)
        with torch.no_grad():
            logits = model.decode(z[0])
            assert isinstance(logits, Tensor)
            reward = -prob.log_bernoulli(x, logits) - 2.0  # (B,)
        log_q = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z[0]).sum(-1)  # (B,)
        by_hand = torch.autograd.grad((reward * log_q).sum() + prob.gaussian_kl(mu, logvar).sum(), enc)
        for a, b in zip(by_hand, out, strict=True):
            torch.testing.assert_close(a, b)

    @pytest.mark.parametrize("use_baseline", [True, False])
    @pytest.mark.parametrize("which", ["mlp", "linear_gaussian"])
    def test_encoder_gradient_matches_reparameterized_on_average(self, which: str,
                                                                 use_baseline: bool) -> None:
        """Averaged over many draws, the score-function encoder gradient equals the pathwise one of
        `negative_elbo` (and, on the linear-Gaussian VAE, the exact one) within Monte-Carlo error."""
        model: MLPVAE | LinearGaussianVAE
        if which == "mlp":
            model, x = _tiny_mlp()
            params = [*model.q_enc.parameters(), *model.q_mu.parameters(), *model.q_logvar.parameters()]
        else:
            model = LinearGaussianVAE(6, 2, seed=1)
            x = model.sample(3, torch.Generator().manual_seed(0))
            params = [model.get_parameter(name) for name in ("A", "c", "l")]
        g = torch.Generator().manual_seed(0)

        def calls(loss: Callable[..., prob.Terms], n: int, k: int) -> Tensor:
            rows = [torch.cat([p.flatten() for p in torch.autograd.grad(
                loss(x, model, k=k, generator=g).loss.sum(), params)]) for _ in range(n)]
            return torch.stack(rows)  # (n, C)

        with torch.no_grad():  # a constant baseline near E[-log p(x|z)]: unbiased, less variance
            b = float(prob.negative_elbo(x, model, k=200, generator=g).recon.mean()) if use_baseline else None

        def score_with_baseline(x: Tensor, model: prob.VAE, k: int, generator: torch.Generator) -> prob.Terms:
            return score_negative_elbo(x, model, k=k, baseline=b, generator=generator)

        score, path = calls(score_with_baseline, 400, 50), calls(prob.negative_elbo, 100, 50)
        diff = score.mean(0) - path.mean(0)
        se = (score.var(0) / len(score) + path.var(0) / len(path)).sqrt()
        live = se > 0  # a dead ReLU unit has gradient exactly 0 in both
        assert (diff[~live] == 0).all()
        assert float((diff[live].abs() / se[live]).max()) <= 5
        if isinstance(model, LinearGaussianVAE):
            exact = torch.cat([p.flatten() for p in torch.autograd.grad(-model.elbo(x).sum(), params)])
            z = (score.mean(0) - exact).abs() / (score.std(0) / math.sqrt(len(score)))
            assert float(z.max()) <= 5
        if not use_baseline:
            return
        # power: a surrogate without the score term (the encoder sees only the KL) is far off
        no_score = calls(score_loss_without_score_term, 50, 50)
        assert float(((no_score.mean(0) - path.mean(0))[live].abs() / se[live]).max()) > 10, which

    def test_rejects_k_below_one(self) -> None:
        model, x = _tiny_mlp()
        with pytest.raises(ValueError, match="k must be >= 1"):
            score_negative_elbo(x, model, k=0)
