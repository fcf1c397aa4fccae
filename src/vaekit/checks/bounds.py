"""Ex.2 Q1-Q3 as numbers: the ELBO bounds log p(x) (exactly, on a linear-Gaussian VAE), the IWAE
bound tightens with k, KL >= 0, and the closed-form KL of Q3 against torch.distributions and Monte
Carlo. Each function is one claim (`vaekit.checks` runs them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.distributions import Categorical, Normal, kl_divergence

from vaekit.checks.claim import F64, ClaimResult, seeded_generator
from vaekit.vae import prob
from vaekit.vae.linear_gaussian import LinearGaussianVAE

# ----------------------------------------------------------------------------- Ex.2 Q1


ExactElbo = Callable[[LinearGaussianVAE, Tensor], Tensor]


def _exact_elbo(model: LinearGaussianVAE, x: Tensor) -> Tensor:
    return model.elbo(x)


@torch.no_grad()
def _randomize_encoder(model: LinearGaussianVAE, scale: float, g: torch.Generator) -> None:
    for p in (model.A, model.c, model.l):
        p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * scale)


@torch.no_grad()
def elbo_bound(seed: int = 0, n_x: int = 2000, n_random_encoders: int = 6, data_dim: int = 8,
               latent_dim: int = 3, k: int = 100, elbo: ExactElbo = _exact_elbo,
               neg_elbo: Callable[..., prob.Terms] = prob.negative_elbo, tol: float = 1e-8) -> ClaimResult:
    """Ex.2 Q1: log p(x) >= ELBO, with log p(x) - ELBO = KL(q(z|x) || p(z|x)).

    On the linear-Gaussian VAE (`linear_gaussian.py`) log p(x), the ELBO and the KL to the true
    posterior are all exact, so the identity log p(x) = ELBO + KL(q || p(z|x)) [Kingma & Welling
    2014, eq. 1] can be checked to float64 precision, for x drawn from the model and x far from it,
    for random encoders (a gap > 0) and the optimal one (gap 0). The sampled ELBO of
    `prob.negative_elbo` (K reparameterized samples) must agree with the exact one within 4 s.e.
    """
    g = seeded_generator(seed)
    model = LinearGaussianVAE(data_dim, latent_dim, seed=seed)
    x = torch.cat([model.sample(n_x // 2, g),  # typical x, and x far out in the tails
                   torch.randn(n_x - n_x // 2, data_dim, generator=g, dtype=F64) * 4.0])
    worst_excess, worst_identity, min_gap, worst_optimal = -math.inf, 0.0, math.inf, 0.0
    for i in range(n_random_encoders + 1):
        optimal = i == n_random_encoders
        if optimal:
            model.set_optimal_encoder()
        else:
            _randomize_encoder(model, scale=[0.1, 0.5, 1.0][i % 3], g=g)
        log_px, value = model.log_marginal(x), elbo(model, x)
        gap = log_px - value  # (N,)
        kl_post = model.kl_to_posterior(x)
        worst_excess = max(worst_excess, float((value - log_px).max()))
        worst_identity = max(worst_identity, float((gap - kl_post).abs().max()))
        if optimal:
            worst_optimal = float(gap.abs().max())
        else:
            min_gap = min(min_gap, float(gap.min()))
    # the sampled ELBO of prob.negative_elbo against the exact one (last encoder: a random one)
    _randomize_encoder(model, 0.5, g)
    diff = -neg_elbo(x, model, k=k, generator=g).neg_elbo - elbo(model, x)  # (N,) mean 0
    z_sampled = float(diff.mean() / (diff.std() / math.sqrt(len(diff))))
    passed = (worst_excess <= tol and worst_identity <= tol and worst_optimal <= tol
              and min_gap > 0 and abs(z_sampled) <= 4.0)
    numbers = {"n_x": n_x, "encoders": n_random_encoders + 1, "max_elbo_minus_logpx": worst_excess,
               "max_identity_error": worst_identity, "min_gap_random_q": min_gap,
               "max_gap_optimal_q": worst_optimal, "sampled_elbo_z": z_sampled}
    summary = (f"{n_x} x, {n_random_encoders} random q + optimal q: max(ELBO - log p) = "
               f"{worst_excess:.3g}, max|log p - ELBO - KL(q||p(z|x))| = {worst_identity:.1e}, optimal-q "
               f"gap <= {worst_optimal:.1e}, random-q gap >= {min_gap:.3g}; sampled ELBO (K={k}) "
               f"z = {z_sampled:+.2f}")
    claim = ("log p(x) >= ELBO and log p(x) - ELBO = KL(q(z|x) || p(z|x)), = 0 for the true posterior")
    return ClaimResult("elbo_bound", "Ex.2 Q1", claim, numbers, summary, passed)


@torch.no_grad()
def iwae_tightens(seed: int = 0, n_x: int = 500, ks: Sequence[int] = (1, 10, 100, 1000), data_dim: int = 8,
                  latent_dim: int = 3, bound: Callable[[Tensor], Tensor] = prob.iwae_bound) -> ClaimResult:
    """The importance-weighted bound L_K = log 1/K sum_k w_k [Burda et al. 2016, eq. 8 and theorem 1]
    rises with K towards log p(x): E[L_1] = ELBO <= E[L_10] <= ... <= log p(x).

    On the linear-Gaussian VAE with a random encoder, for each x, L_K uses the first K of max(ks)
    importance weights (nested, so that the differences between K are measured with less noise);
    the gap log p(x) - L_K is averaged over x. Passes when L_1 is the ELBO (L_1 = log w_1 to float
    precision, and its gap minus the exact KL(q || p(z|x)) averages 0 within 4 s.e.), each mean gap
    is below the previous one by more than 3 standard errors of the paired difference, no mean gap
    is below 0 by more than 3 s.e., and the largest K closes at least 90% of the K = 1 gap."""
    g = seeded_generator(seed)
    model = LinearGaussianVAE(data_dim, latent_dim, seed=seed)
    _randomize_encoder(model, 0.3, g)
    x = model.sample(n_x, g)
    log_px = model.log_marginal(x)
    log_w, _, _ = prob.log_importance_weights(x, model, max(ks), generator=g)  # (K_max, N)
    gap = torch.stack([log_px - bound(log_w[:k]) for k in ks])  # (len(ks), N)
    gaps = [float(v) for v in gap.mean(dim=1)]
    ses = [float(v) for v in gap.std(dim=1) / math.sqrt(n_x)]
    elbo_err = gap[0] - model.kl_to_posterior(x) if ks[0] == 1 else torch.zeros(n_x, dtype=F64)  # (N,)
    z_elbo = float(elbo_err.mean() / (elbo_err.std() / math.sqrt(n_x)).clamp(min=1e-300))
    l1_err = float((bound(log_w[:1]) - log_w[0]).abs().max())  # L_1 = log w_1 exactly
    step = gap[:-1] - gap[1:]  # (len(ks) - 1, N): how much each larger K closes, per x
    rises = bool((step.mean(dim=1) > 3.0 * step.std(dim=1) / math.sqrt(n_x)).all())
    below = all(v > -3.0 * se for v, se in zip(gaps, ses, strict=True))
    closes = gaps[-1] <= 0.1 * gaps[0]
    numbers = {"k": list(ks), "mean_gap": gaps, "stderr": ses, "l1_minus_elbo_z": z_elbo,
               "max_l1_minus_log_w1": l1_err}
    summary = f"{n_x} x, mean log p(x) - L_K: " + ", ".join(
        f"K={k}: {v:.4f}±{se:.4f}" for k, v, se in zip(ks, gaps, ses, strict=True)
    ) + f"; |L_1 - log w_1| <= {l1_err:.1e}, L_1 vs exact ELBO z = {z_elbo:+.2f}"
    claim = "the IWAE bound L_K rises with K and approaches log p(x) from below"
    passed = rises and below and closes and abs(z_elbo) <= 4.0 and l1_err <= 1e-12
    return ClaimResult("iwae_tightens", "Ex.2 Q1", claim, numbers, summary, passed)


# ----------------------------------------------------------------------------- Ex.2 Q2, Q3


GaussianKL = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
CategoricalKL = Callable[[Tensor, Tensor], Tensor]


def _random_simplex(n: int, m: int, g: torch.Generator) -> Tensor:
    """n points uniform on the (m-1)-simplex (Dirichlet(1, ..., 1)): normalized Exp(1) draws."""
    e = -torch.rand(n, m, generator=g, dtype=F64).log()
    return e / e.sum(dim=-1, keepdim=True)


@torch.no_grad()
def kl_nonnegative(seed: int = 0, n_pairs: int = 20000, dim: int = 4, n_categories: int = 6,
                   gaussian_kl: GaussianKL = prob.diag_gaussian_kl,
                   categorical_kl: CategoricalKL = prob.categorical_kl, tol: float = 1e-10) -> ClaimResult:
    """Ex.2 Q2: KL(p || q) = E_p[log(p / q)] >= 0 (Jensen), = 0 when p = q, and KL(p||q) != KL(q||p).

    Random pairs of diagonal Gaussians (`prob.diag_gaussian_kl`) and of categorical distributions
    (`prob.categorical_kl`, a quarter of them with zeros in p, where 0 log 0 = 0), half of them
    nearly equal (q a 1% perturbation of p, so KL is close to 0); each value is also
    held against `torch.distributions.kl_divergence`, so that a function which is >= 0 but is not
    the KL fails too."""
    g = seeded_generator(seed)
    mu_p, mu_q = (torch.randn(n_pairs, dim, generator=g, dtype=F64) * 2.0 for _ in range(2))
    lv_p, lv_q = ((torch.rand(n_pairs, dim, generator=g, dtype=F64) - 0.5) * 6.0 for _ in range(2))
    near = slice(n_pairs // 2, None)  # half the pairs nearly equal: KL close to 0, still >= 0
    mu_q[near] = mu_p[near] + 0.01 * torch.randn(mu_p[near].shape, generator=g, dtype=F64)
    lv_q[near] = lv_p[near] + 0.01 * torch.randn(lv_p[near].shape, generator=g, dtype=F64)
    kl_g = gaussian_kl(mu_p, lv_p, mu_q, lv_q)  # KL(p || q), (N,)
    ref_g = kl_divergence(Normal(mu_p, (0.5 * lv_p).exp()), Normal(mu_q, (0.5 * lv_q).exp())).sum(-1)
    self_g = gaussian_kl(mu_p, lv_p, mu_p, lv_p)
    p, q = _random_simplex(n_pairs, n_categories, g), _random_simplex(n_pairs, n_categories, g)
    q[near] = p[near] * (1.0 + 0.01 * torch.rand(p[near].shape, generator=g, dtype=F64))
    q = q / q.sum(dim=-1, keepdim=True)
    p[: n_pairs // 4, : n_categories // 2] = 0.0  # zeros in p: terms 0 log(0 / q) = 0
    p = p / p.sum(dim=-1, keepdim=True)
    kl_c, self_c = categorical_kl(p, q), categorical_kl(q, q)
    ref_c = kl_divergence(Categorical(probs=p), Categorical(probs=q))
    # not symmetric: p = N(0, 1), q = N(1, 2^2); p = (0.9, 0.1), q = (0.5, 0.5)
    zero, one, four = (torch.tensor([v], dtype=F64) for v in (0.0, 1.0, math.log(4.0)))
    asym_g = (float(gaussian_kl(zero, zero, one, four)), float(gaussian_kl(one, four, zero, zero)))
    pc, qc = torch.tensor([0.9, 0.1], dtype=F64), torch.tensor([0.5, 0.5], dtype=F64)
    asym_c = (float(categorical_kl(pc, qc)), float(categorical_kl(qc, pc)))
    min_g, min_c = float(kl_g.min()), float(kl_c.min())
    max_self = float(max(self_g.abs().max(), self_c.abs().max()))
    max_err = float(max((kl_g - ref_g).abs().max(), (kl_c - ref_c).abs().max()))
    numbers = {"pairs": n_pairs, "min_kl_gaussian": min_g, "min_kl_categorical": min_c,
               "max_kl_p_p": max_self, "max_error_vs_torch": max_err, "gaussian_kl_pq_qp": asym_g,
               "categorical_kl_pq_qp": asym_c}
    passed = (min_g >= -tol and min_c >= -tol and max_self <= tol and max_err <= 1e-9
              and abs(asym_g[0] - asym_g[1]) > 1e-3 and abs(asym_c[0] - asym_c[1]) > 1e-3)
    summary = (f"{n_pairs} Gaussian and {n_pairs} categorical pairs: min KL = {min_g:.3g}, {min_c:.3g}; "
               f"max |KL(p||p)| = {max_self:.1e}; vs torch {max_err:.1e}; KL(p||q), KL(q||p) = "
               f"{asym_g[0]:.3f}, {asym_g[1]:.3f} (N(0,1), N(1,4)) and {asym_c[0]:.3f}, {asym_c[1]:.3f}")
    claim = "KL(p||q) >= 0, = 0 when p = q, and KL(p||q) != KL(q||p) (not a distance)"
    return ClaimResult("kl_nonnegative", "Ex.2 Q2", claim, numbers, summary, passed)


@torch.no_grad()
def kl_closed_form(seed: int = 0, mus: Sequence[float] = (-3.0, -1.5, -0.5, 0.0, 0.5, 1.5, 3.0),
                   sigmas: Sequence[float] = (0.1, 0.3, 0.7, 1.0, 1.5, 3.0), n_samples: int = 20000,
                   kl: Callable[[Tensor, Tensor], Tensor] = prob.gaussian_kl,
                   z_max: float = 4.0) -> ClaimResult:
    """Ex.2 Q3: KL(N(mu, sigma^2) || N(0, 1)) = -1/2 (log sigma^2 + 1 - sigma^2 - mu^2).

    Over a grid of (mu, sigma), `prob.gaussian_kl` (applied to one latent dim) must equal
    `torch.distributions.kl_divergence` (to 1e-10) and a Monte-Carlo estimate of E_q[log q - log p]
    with log-densities from `torch.distributions.Normal` (within `z_max` standard errors)."""
    g = seeded_generator(seed)
    mu, sigma = torch.meshgrid(torch.tensor(mus, dtype=F64), torch.tensor(sigmas, dtype=F64), indexing="ij")
    mu, sigma = mu.reshape(-1), sigma.reshape(-1)  # (G,)
    closed = kl(mu.unsqueeze(-1), (2.0 * sigma.log()).unsqueeze(-1))  # (G, 1) latent dim 1 -> (G,)
    q, p = Normal(mu, sigma), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    reference = kl_divergence(q, p)
    z = mu + sigma * torch.randn(n_samples, len(mu), generator=g, dtype=F64)  # (S, G)
    estimate, se = prob.monte_carlo_kl(q.log_prob(z), p.log_prob(z))
    # at mu = 0, sigma = 1 every sample gives exactly 0: se = 0 and the estimate must be exact
    zscore = (closed - estimate).abs() / se.clamp(min=1e-12)
    numbers = {"grid_points": len(mu), "n_samples": n_samples,
               "max_error_vs_torch": float((closed - reference).abs().max()),
               "max_z_vs_monte_carlo": float(zscore.max()), "max_kl": float(closed.max())}
    passed = numbers["max_error_vs_torch"] <= 1e-10 and numbers["max_z_vs_monte_carlo"] <= z_max
    summary = (f"{len(mu)} (mu, sigma) in [{min(mus)}, {max(mus)}] x [{min(sigmas)}, {max(sigmas)}]: "
               f"max |closed - torch| = {numbers['max_error_vs_torch']:.1e}, max |closed - MC|/s.e. = "
               f"{numbers['max_z_vs_monte_carlo']:.2f} (S={n_samples}, limit {z_max})")
    claim = "KL(N(mu, s^2) || N(0,1)) = -1/2 (log s^2 + 1 - s^2 - mu^2)"
    return ClaimResult("kl_closed_form", "Ex.2 Q3", claim, numbers, summary, passed)
