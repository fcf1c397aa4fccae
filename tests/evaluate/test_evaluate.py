"""The estimators of vaekit.evaluate (iwae, run, latents) against independent references:
torch.distributions, the exact log p(x) of a linear-Gaussian VAE, numpy, scikit-learn, and the
unchunked bound of vaekit.vae.prob."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, Normal

from vaekit.evaluate import iwae
from vaekit.evaluate import run as ev
from vaekit.vae import prob
from vaekit.vae.linear_gaussian import LinearGaussianVAE

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: see conftest.one_thread


class TinyBernoulliVAE(nn.Module):
    """A small MLP VAE written here, independent of vaekit.vae.models: P pixels, D latent dims."""

    likelihood = "bernoulli"

    def __init__(self, pixels: int = 12, latent: int = 2, hidden: int = 16, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.latent_dim = latent
        self.enc = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, pixels))
        self.to(dtype)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar - 1.0

    def decode(self, z: Tensor) -> Tensor:
        return self.dec(z) * 3.0


def _binary(n: int, p: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, p, generator=g, dtype=dtype) * 0.8 + 0.1, generator=g)


def _eps(k: int, b: int, d: int, seed: int = 0) -> Tensor:
    return torch.randn(k, b, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class TestOneSample:
    def test_k1_nll_is_minus_log_w_computed_with_torch_distributions(self) -> None:
        model, x = TinyBernoulliVAE(), _binary(9, 12)
        eps = _eps(1, 9, 2)
        est = iwae.estimate_batch(x, model, 1, eps=eps)
        with torch.no_grad():
            mu, logvar = model.encode(x)
            z = mu + (0.5 * logvar).exp() * eps[0]
            log_w = (Independent(Bernoulli(logits=model.decode(z)), 1).log_prob(x)
                     + Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)
                     - Independent(Normal(mu, (0.5 * logvar).exp()), 1).log_prob(z))
        torch.testing.assert_close(est.nll, -log_w, rtol=1e-10, atol=1e-10)

    def test_k1_neg_elbo_equals_prob_negative_elbo_with_the_same_eps(self) -> None:
        model, x = TinyBernoulliVAE(), _binary(9, 12)
        eps = _eps(1, 9, 2, seed=3)
        est = iwae.estimate_batch(x, model, 1, eps=eps)
        with torch.no_grad():
            ref = prob.negative_elbo(x, model, k=1, eps=eps)
        torch.testing.assert_close(est.neg_elbo, ref.neg_elbo, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(est.recon, ref.recon, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(est.kl_per_dim, ref.kl_per_dim, rtol=1e-12, atol=1e-12)

    def test_k1_nll_estimate_averages_to_minus_elbo(self) -> None:
        """-log w_1 = -ELBO with a one-sample KL; its mean over eps is -ELBO with the closed-form KL."""
        model, x, s = TinyBernoulliVAE(), _binary(4, 12), 20000
        # S independent one-sample estimates of each image, as one batch of S*4 images
        draws = iwae.estimate_batch(x.repeat(s, 1), model, 1, eps=_eps(1, s * 4, 2, seed=1)).nll
        draws = draws.reshape(s, 4)  # (S, B)
        with torch.no_grad():
            exact = prob.negative_elbo(x, model, k=20000, eps=_eps(20000, 4, 2, seed=99)).neg_elbo
        stderr = draws.std(dim=0) / math.sqrt(draws.shape[0])
        assert ((draws.mean(dim=0) - exact).abs() < 4 * stderr + 0.02).all()


class TestMonotoneInK:
    def test_estimate_non_increasing_in_k_on_average(self) -> None:
        model, x = TinyBernoulliVAE(pixels=20, latent=3, seed=1), _binary(64, 20, seed=1)
        ks = (1, 10, 100, 1000)
        seeds = range(4)
        means, errs = [], []
        for k in ks:
            runs = torch.stack([iwae.estimate_batch(x, model, k, generator=torch.Generator().manual_seed(
                10 * s + k)).nll for s in seeds])  # (S, B)
            means.append(float(runs.mean()))
            # Monte-Carlo error of the mean: the spread over seeds of each image, pooled
            errs.append(math.sqrt(float(runs.var(dim=0).mean()) / runs.numel()))
        for i in range(len(ks) - 1):
            assert means[i + 1] <= means[i] + 3 * math.hypot(errs[i], errs[i + 1]), (ks, means)
        # and the bound does tighten: k = 1000 is clearly below k = 1
        assert means[-1] < means[0] - 10 * math.hypot(errs[0], errs[-1]), (ks, means)


class TestLinearGaussian:
    """p(x) = N(b, W W^T + s^2 I) is known exactly (vaekit.vae.linear_gaussian)."""

    def test_with_the_true_posterior_every_weight_is_p_x(self) -> None:
        model = LinearGaussianVAE(data_dim=8, latent_dim=3, seed=0)
        model.set_optimal_encoder()
        x = model.sample(16, generator=torch.Generator().manual_seed(0)).detach()
        exact = model.log_marginal(x).detach()
        for k in (1, 7, 100):
            est = iwae.estimate_batch(x, model, k, generator=torch.Generator().manual_seed(k))
            torch.testing.assert_close(est.nll, -exact, rtol=1e-10, atol=1e-9)

    def test_estimate_converges_to_exact_and_never_below_beyond_mc_error(self) -> None:
        model = LinearGaussianVAE(data_dim=8, latent_dim=3, seed=1)
        model.set_optimal_encoder()
        with torch.no_grad():  # a worse encoder: shifted means, wider variances (finite-variance w)
            model.c.add_(0.3)
            model.l.add_(0.7)
        x = model.sample(12, generator=torch.Generator().manual_seed(1)).detach()
        exact_nll = -model.log_marginal(x).detach()  # (B,)
        gaps, errs = [], []
        for k in (1, 10, 100, 1000, 10000):
            runs = torch.stack([iwae.estimate_batch(x, model, k, generator=torch.Generator().manual_seed(
                1000 * r + k)).nll for r in range(8)])  # (R, B)
            mean, stderr = runs.mean(dim=0), runs.std(dim=0) / math.sqrt(runs.shape[0])
            assert (mean >= exact_nll - 4 * stderr - 1e-9).all(), (k, mean - exact_nll, stderr)
            gaps.append(float((mean - exact_nll).mean()))
            errs.append(float(stderr.pow(2).mean().sqrt() / math.sqrt(x.shape[0])))
        assert gaps[0] > 0.5, gaps  # the ELBO's gap (KL to the true posterior) is visible
        assert gaps[0] > gaps[1] > gaps[2], gaps  # tightening while the gap exceeds the MC error
        # at k = 1000 and 10000 the gap is zero within Monte-Carlo error, and below 0.01 nats
        assert abs(gaps[3]) < 4 * errs[3] + 1e-3 and abs(gaps[4]) < 4 * errs[4] + 1e-3, (gaps, errs)
        assert abs(gaps[4]) < 0.01, gaps


class TestChunks:
    def test_chunked_equals_unchunked_for_the_same_eps(self) -> None:
        model, x = TinyBernoulliVAE(), _binary(5, 12)
        k = 37
        eps = _eps(k, 5, 2, seed=7)
        whole = iwae.estimate_batch(x, model, k, eps=eps, chunk=k)
        with torch.no_grad():
            log_w, _, _ = prob.log_importance_weights(x, model, k, eps=eps)
            ref = -prob.iwae_bound(log_w)
        torch.testing.assert_close(whole.nll, ref, rtol=1e-10, atol=1e-10)
        for chunk in (1, 3, 8, 36):
            part = iwae.estimate_batch(x, model, k, eps=eps, chunk=chunk)
            torch.testing.assert_close(part.nll, whole.nll, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(part.recon, whole.recon, rtol=1e-10, atol=1e-10)

    def test_chunked_equals_unchunked_for_the_same_seed(self) -> None:
        model, x = TinyBernoulliVAE(), _binary(5, 12)
        k = 100  # not a multiple of the block
        results = [iwae.estimate_batch(x, model, k, generator=torch.Generator().manual_seed(3), chunk=c)
                   for c in (iwae.EPS_BLOCK, 3 * iwae.EPS_BLOCK, 13 * iwae.EPS_BLOCK)]
        for r in results[1:]:
            torch.testing.assert_close(r.nll, results[0].nll, rtol=1e-10, atol=1e-10)
        other = iwae.estimate_batch(x, model, k, generator=torch.Generator().manual_seed(4))
        assert not torch.allclose(other.nll, results[0].nll)  # the seed does matter

    def test_tiles_do_not_change_the_result(self) -> None:
        model, x = TinyBernoulliVAE(), _binary(5, 12)
        eps = _eps(50, 5, 2, seed=8)
        ref = iwae.estimate_batch(x, model, 50, eps=eps, chunk=50, tile=50)
        for chunk, tile in ((50, 1), (20, 7), (7, 3)):
            got = iwae.estimate_batch(x, model, 50, eps=eps, chunk=chunk, tile=tile)
            torch.testing.assert_close(got.nll, ref.nll, rtol=1e-10, atol=1e-10)

    @pytest.mark.parametrize("k,batch,pixels,acts,latent", [
        (5000, 100, 784, 1968, 20), (5000, 1, 784, 0, 2), (10, 500, 3072, 50000, 64),
        (100000, 64, 784, 1968, 20), (10**7, 1000, 784, 1968, 200)])
    def test_chunk_and_tile_sizes_respect_the_budget(self, k: int, batch: int, pixels: int, acts: int,
                                                     latent: int) -> None:
        budget = 64 * 2**20
        c = iwae.chunk_size(k, batch, latent, budget)
        t = iwae.tile_size(batch, pixels, acts, budget)
        assert c % iwae.EPS_BLOCK == 0 and iwae.EPS_BLOCK <= c <= max(k + iwae.EPS_BLOCK, iwae.EPS_BLOCK)
        chunk_bytes = c * batch * (2 * latent + 4) * 4  # eps, z, log w and log p(x|z)
        tile_bytes = t * batch * (acts + iwae.TEMPORARIES * pixels) * 4  # decoder output, temporaries
        assert c == iwae.EPS_BLOCK or chunk_bytes <= budget // 2
        assert t == 1 or tile_bytes <= budget // 2
        assert t * batch <= iwae.TARGET_ROWS + batch

    def test_peak_memory_of_k5000_stays_bounded(self) -> None:
        """A subprocess evaluates k=5000 on 25 MNIST-sized images with the 784-400-20 MLP: unchunked,
        the logits alone would be 25*5000*784*4 bytes = 392 MB per temporary (measured with
        chunk = tile = 5000: +0.78 GB of peak resident memory; chunked: +71 MB). The growth of its
        peak must stay near the 256 MB budget, and the whole process under the issue's 2 GB."""
        code = textwrap.dedent("""
            import resource, torch
            from torch import nn
            from vaekit.evaluate import run as ev
            class M(nn.Module):
                likelihood, latent_dim = "bernoulli", 20
                def __init__(self):
                    super().__init__()
                    self.e = nn.Linear(784, 40); self.d1 = nn.Linear(20, 400); self.d2 = nn.Linear(400, 784)
                def encode(self, x):
                    return self.e(x.flatten(1)).chunk(2, dim=-1)
                def decode(self, z):
                    return self.d2(torch.relu(self.d1(z))).unflatten(1, (1, 28, 28))
            m = M()
            x = torch.bernoulli(torch.full((25, 1, 28, 28), 0.3))
            ev.evaluate_model(m, x[:2], 8, batch_size=2, progress=False)  # warm up allocators
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            e = ev.evaluate_model(m, x, 5000, batch_size=25, progress=False)
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            assert torch.isfinite(e.nll).all()
            print(before * 1024, after * 1024)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        before, after = map(int, out.stdout.split())
        assert after - before < 300 * 2**20, (before, after)
        assert after < 2 * 2**30


class TestLatentStatistics:
    def test_active_units_against_numpy(self) -> None:
        rng = np.random.default_rng(0)
        scales = np.array([1.0, 0.5, 0.12, 0.08, 0.01, 0.0])  # variances 1, .25, .0144, .0064, 1e-4, 0
        mu = rng.standard_normal((20000, 6)) * scales
        count, var = ev.active_units(torch.from_numpy(mu))
        np.testing.assert_allclose(var.numpy(), mu.var(axis=0), rtol=1e-12)
        assert count == 3

    def test_probe_reads_a_linear_code_and_not_noise(self) -> None:
        g = torch.Generator().manual_seed(0)
        labels = torch.arange(600) % 3
        centers = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
        mu = centers[labels] + torch.randn(600, 2, generator=g)
        assert ev.probe_accuracy(mu[:400], labels[:400], mu[400:], labels[400:]) > 0.97
        noise = torch.randn(600, 2, generator=g)
        assert ev.probe_accuracy(noise[:400], labels[:400], noise[400:], labels[400:]) < 0.5

    def test_evaluate_model_summary_and_progress(self, capsys: pytest.CaptureFixture[str]) -> None:
        model, x = TinyBernoulliVAE(), _binary(30, 12)
        result = ev.evaluate_model(model, x, 20, batch_size=8, seed=5, progress=True)
        assert "30/30" in capsys.readouterr().err  # the bar counts images
        again = ev.evaluate_model(model, x, 20, batch_size=8, seed=5, progress=False)
        assert torch.equal(result.nll, again.nll)  # same seed, same numbers
        s = result.summary(pixels=12)
        assert set(ev.REQUIRED_FIELDS) <= set(s)
        assert s["images"] == 30 and s["k"] == 20 and s["latent_dim"] == 2
        assert s["test_neg_elbo"] == pytest.approx(s["test_recon"] + s["test_kl"])
        assert s["bits_per_dim"] == pytest.approx(s["test_nll"] / (12 * math.log(2)))
        assert s["test_nll"] <= s["test_neg_elbo"]
        with torch.no_grad():  # MSE of the mean of p(x|z=mu), recomputed by hand
            mu, _ = model.encode(x)
            mse = float((torch.sigmoid(model.decode(mu)) - x).pow(2).mean())
        assert s["mse"] == pytest.approx(mse, rel=1e-9)
