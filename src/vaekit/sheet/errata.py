r"""The mistakes of the sheet's own solutions, each stated as "the sheet writes ..., it should read
..., because ..." and held against numbers: every check computes the sheet's version and the
correction and says which one the numbers support (`Verdict.supports`).

    Ex.2 Q1  p(x, y) integrated over z          -> p(x, z)            quadrature against log p(x)
    Ex.2 Q2  "a dissimilarity metric"           -> a divergence       asymmetry, triangle inequality
    Ex.2 Q3  - E[2 mu z] in E[z^2]              -> + E[2 mu z]        Monte Carlo of E[z^2]
    Ex.2 Q3  ... - mu^2 / 2 (first line)        -> + mu^2 / 2         torch.distributions' KL
    Ex.2 Q4  E[p_theta(x|z)]                    -> E[log p_theta(x|z)] a bound on -log p(x) or not
    Ex.2 Q6  -log p_dec(sigma eps + mu)         -> -log p_theta(x | z) the term depends on x
    Ex.2 Q6  q_sigma gives "the variance"       -> q_logvar gives log sigma^2
    Ex.2 Q6  the scalar KL                      -> summed over the latent dimensions

Everything is float64 and seeded: the same seed gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.vae import prob
from vaekit.vae.linear_gaussian import LinearGaussianVAE

F64 = torch.float64


@dataclass(frozen=True)
class Verdict:
    """What a check found: its numbers, which version they support ('correction' or 'sheet') and
    the numbers in one sentence."""

    numbers: dict[str, Any]
    supports: str
    summary: str


@dataclass(frozen=True)
class Erratum:
    """One mistake: where (`question`, e.g. "Ex.2 Q1"), what the sheet writes and what it should
    read (LaTeX), why (prose with `$...$` formulas), and the check that decides between them."""

    id: str
    question: str
    writes: str
    should_read: str
    because: str
    check: Callable[..., Verdict]


def _supports(correction_holds: bool, sheet_holds: bool) -> str:
    return "correction" if correction_holds and not sheet_holds else "sheet" if sheet_holds else "neither"


# ----------------------------------------------------------------------------- Ex.2 Q1


def joint_integral(seed: int = 0, halfwidths: tuple[float, ...] = (4.0, 8.0, 16.0),
                   step: float = 1e-3) -> Verdict:
    """log of the integral over z in [-L, L] (trapezoid rule) of p(x, z) and of the sheet's p(x, y)
    for a 1-D linear-Gaussian model p(z) = N(0, 1), p(x|z) = N(a z + b, s^2), whose log p(x) =
    log N(x; b, a^2 + s^2) is exact. p(x, y), with y any variable but z, is constant in z: its
    integral is 2 L p(x, y), which grows with L instead of converging to p(x)."""
    g = torch.Generator().manual_seed(seed)
    a, b, s, x = (1.0 + torch.rand(4, generator=g, dtype=F64)).tolist()
    y = 0.0  # the sheet's y, held fixed while z runs over the line
    exact = float(Normal(torch.tensor(b, dtype=F64), math.sqrt(a * a + s * s)).log_prob(torch.tensor(x)))
    joint_xz, joint_xy = [], []
    for half in halfwidths:
        z = torch.arange(-half, half + step / 2, step, dtype=F64)
        log_joint = Normal(a * z + b, s).log_prob(torch.tensor(x, dtype=F64)) + Normal(0.0, 1.0).log_prob(z)
        joint_xz.append(float(torch.trapezoid(log_joint.exp(), z).log()))
        log_xy = Normal(a * y + b, s).log_prob(torch.tensor(x, dtype=F64)) + Normal(0.0, 1.0).log_prob(
            torch.tensor(y, dtype=F64))
        joint_xy.append(float((torch.trapezoid(torch.full_like(z, float(log_xy.exp())), z)).log()))
    err = max(abs(v - exact) for v in joint_xz[1:])
    spread = max(joint_xy) - min(joint_xy)
    numbers = {"log_px": exact, "halfwidths": list(halfwidths), "log_int_p_x_z": joint_xz,
               "log_int_p_x_y": joint_xy, "max_error_p_x_z": err}
    summary = (f"log p(x) = {exact:.6f}; log of the integral of p(x, z) over [-L, L] for L = "
               + ", ".join(f"{h:g}: {v:.6f}" for h, v in zip(halfwidths, joint_xz, strict=True))
               + f" (error {err:.1e} once L >= {halfwidths[1]:g}); of p(x, y): "
               + ", ".join(f"{v:.4f}" for v in joint_xy) + f" (grows by {spread:.3f} as L grows)")
    return Verdict(numbers, _supports(err < 1e-8, spread < 1e-8), summary)


# ----------------------------------------------------------------------------- Ex.2 Q2


def kl_not_a_metric(seed: int = 0) -> Verdict:
    """A metric d is symmetric and satisfies d(p, q) <= d(p, r) + d(r, q). For p = N(0, 1),
    r = N(1, 1), q = N(2, 1): KL(p||q) = 2 > KL(p||r) + KL(r||q) = 1/2 + 1/2; and for p = N(0, 1),
    q = N(1, 2^2) KL(p||q) != KL(q||p). `prob.diag_gaussian_kl`, held against torch.distributions."""
    errors: list[float] = []

    def kl(mq: float, vq: float, mp: float, vp: float) -> float:
        t = [torch.tensor([v], dtype=F64) for v in (mq, math.log(vq), mp, math.log(vp))]
        value = float(prob.diag_gaussian_kl(*t))
        ref = kl_divergence(Normal(t[0], (0.5 * t[1]).exp()), Normal(t[2], (0.5 * t[3]).exp()))
        errors.append(abs(value - float(ref)))
        return value

    pq, pr, rq = kl(0, 1, 2, 1), kl(0, 1, 1, 1), kl(1, 1, 2, 1)
    forward, backward = kl(0, 1, 1, 4), kl(1, 4, 0, 1)
    symmetric = abs(forward - backward) < 1e-12
    triangle = pq <= pr + rq + 1e-12
    numbers = {"kl_p_q": pq, "kl_p_r": pr, "kl_r_q": rq, "kl_n01_n14": forward, "kl_n14_n01": backward,
               "max_error_vs_torch": max(errors)}
    summary = (f"KL(N(0,1) || N(2,1)) = {pq:.4f} > KL(N(0,1) || N(1,1)) + KL(N(1,1) || N(2,1)) = "
               f"{pr:.4f} + {rq:.4f}: no triangle inequality; KL(N(0,1) || N(1,4)) = {forward:.4f} but "
               f"KL(N(1,4) || N(0,1)) = {backward:.4f}: not symmetric")
    exact = max(errors) < 1e-12
    return Verdict(numbers, _supports(exact and not (symmetric or triangle), symmetric and triangle), summary)


# ----------------------------------------------------------------------------- Ex.2 Q3


def second_moment(seed: int = 0, mu: float = 1.5, sigma: float = 0.7, n: int = 200_000) -> Verdict:
    """E[z^2] for z ~ N(mu, sigma^2) by Monte Carlo against the sheet's line
    E[(z - mu)^2] - mu^2 - E[2 mu z] = sigma^2 - 3 mu^2 and the corrected
    E[(z - mu)^2] - mu^2 + E[2 mu z] = sigma^2 + mu^2."""
    g = torch.Generator().manual_seed(seed)
    z2 = (mu + sigma * torch.randn(n, generator=g, dtype=F64)).pow(2)
    estimate, se = float(z2.mean()), float(z2.std() / math.sqrt(n))
    sheet, corrected = sigma**2 - mu**2 - 2 * mu * mu, sigma**2 - mu**2 + 2 * mu * mu
    z_sheet, z_corr = abs(estimate - sheet) / se, abs(estimate - corrected) / se
    numbers = {"mu": mu, "sigma": sigma, "samples": n, "monte_carlo": estimate, "stderr": se,
               "sheet": sheet, "corrected": corrected, "z_sheet": z_sheet, "z_corrected": z_corr}
    summary = (f"mu = {mu}, sigma = {sigma}: Monte Carlo E[z^2] = {estimate:.4f} ± {se:.4f} "
               f"({n:,} samples); corrected sigma^2 + mu^2 = {corrected:.4f} ({z_corr:.1f} s.e. away); "
               f"the sheet's line gives sigma^2 - 3 mu^2 = {sheet:.4f} ({z_sheet:,.0f} s.e. away)")
    return Verdict(numbers, _supports(z_corr < 4, z_sheet < 4), summary)


def kl_sign(seed: int = 0, mu: float = 1.5, sigma: float = 0.7) -> Verdict:
    """The first line after "Thus," with - mu^2/2 (the sheet) and + mu^2/2 (the correction) against
    torch.distributions' KL(N(mu, sigma^2) || N(0, 1)) and `prob.gaussian_kl`."""
    reference = float(kl_divergence(Normal(torch.tensor(mu, dtype=F64), sigma), Normal(0.0, 1.0)))
    ours = float(prob.gaussian_kl(torch.tensor([[mu]], dtype=F64),
                                  torch.tensor([[2 * math.log(sigma)]], dtype=F64)))
    base = -math.log(sigma) - 0.5 + 0.5 * sigma**2
    sheet, corrected = base - 0.5 * mu**2, base + 0.5 * mu**2
    numbers = {"mu": mu, "sigma": sigma, "torch": reference, "vaekit": ours, "sheet": sheet,
               "corrected": corrected}
    summary = (f"mu = {mu}, sigma = {sigma}: torch.distributions KL = {reference:.6f}, "
               f"prob.gaussian_kl = {ours:.6f}; corrected line {corrected:.6f}; the sheet's line "
               f"{sheet:.6f} (a negative KL)")
    return Verdict(numbers, _supports(abs(corrected - reference) < 1e-12,
                                      abs(sheet - reference) < 1e-12), summary)


# ----------------------------------------------------------------------------- Ex.2 Q4


@torch.no_grad()
def loss_is_a_bound(seed: int = 0, n_x: int = 400, samples: int = 2000) -> Verdict:
    """On the linear-Gaussian VAE (log p(x) exact) with a random encoder, x from the model and far
    from it: the corrected loss -E_q[log p(x|z)] + KL is >= -log p(x) for every x (Ex.2 Q1) and
    equals the exact -ELBO within Monte-Carlo error; the sheet's -E_q[p(x|z)] + KL is below
    -log p(x) for some x, so it is not the loss of a bound."""
    g = torch.Generator().manual_seed(seed)
    model = LinearGaussianVAE(4, 2, seed=seed)
    with torch.no_grad():
        for p in (model.A, model.c, model.l):
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)
    x = torch.cat([model.sample(n_x // 2, g), torch.randn(n_x - n_x // 2, 4, generator=g, dtype=F64) * 4])
    mu, logvar = model.encode(x)
    eps = torch.randn(samples, *mu.shape, generator=g, dtype=F64)  # (S, N, D)
    mean, log_s2 = model.decode(prob.reparameterize(mu, logvar, eps))
    log_px_z = prob.log_normal_diag(x, mean, log_s2, batch_dims=2)  # (S, N)
    kl = prob.gaussian_kl(mu, logvar)
    corrected, sheet = -log_px_z.mean(0) + kl, -log_px_z.exp().mean(0) + kl
    nll, exact = -model.log_marginal(x), -model.elbo(x)
    se = log_px_z.std(0) / math.sqrt(samples)
    z_max = float(((corrected - exact).abs() / se.clamp(min=1e-300)).max())
    below_corr, below_sheet = int((corrected < nll).sum()), int((sheet < nll).sum())
    numbers = {"x": n_x, "samples": samples, "corrected_below_nll": below_corr,
               "sheet_below_nll": below_sheet, "max_z_corrected_vs_exact_elbo": z_max,
               "mean_nll": float(nll.mean()), "mean_corrected": float(corrected.mean()),
               "mean_sheet": float(sheet.mean())}
    summary = (f"{n_x} x: -log p(x) averages {float(nll.mean()):.3f}; the corrected loss averages "
               f"{float(corrected.mean()):.3f}, is below -log p(x) for {below_corr} x and matches the exact "
               f"-ELBO (max {z_max:.2f} s.e.); the sheet's loss averages {float(sheet.mean()):.3f} and is "
               f"below -log p(x) for {below_sheet} of {n_x} x")
    return Verdict(numbers, _supports(below_corr == 0 and z_max < 5, below_sheet == 0), summary)


# ----------------------------------------------------------------------------- Ex.2 Q6


@torch.no_grad()
def likelihood_term(model: Any, x: Tensor, seed: int = 0) -> Verdict:
    """At one z = mu_x1 + sigma_x1 eps, the sheet's -log p_dec(z) (the decoder's output, Bernoulli
    means, read as a probability: -sum log sigmoid(logits)) and the corrected -log p_theta(x | z)
    for two different test images x1, x2: only the corrected term depends on x, and it equals
    torch.distributions.Bernoulli's -log_prob(x).sum()."""
    g = torch.Generator().manual_seed(seed)
    x1, x2 = x[:1], x[1:2]
    mu, logvar = model.encode(x1)
    z = prob.reparameterize(mu, logvar, torch.randn(mu.shape, generator=g, dtype=mu.dtype))
    logits = model.decode_net(z)
    sheet = float(-torch.log(torch.sigmoid(logits)).sum())  # the same for x1 and x2: no x in it
    corrected = [float(-prob.log_bernoulli(xi, logits)) for xi in (x1, x2)]
    # validate_args off: a run trained on continuous pixels (binarize none) gives x in [0, 1], where
    # log_prob is the same cross-entropy x log sigmoid + (1 - x) log(1 - sigmoid) as on {0, 1}
    bern = torch.distributions.Bernoulli(logits=logits, validate_args=False)
    reference = [float(-bern.log_prob(xi).sum()) for xi in (x1, x2)]
    err = max(abs(a - b) for a, b in zip(corrected, reference, strict=True))
    numbers = {"sheet_x1": sheet, "sheet_x2": sheet, "corrected_x1": corrected[0],
               "corrected_x2": corrected[1], "torch_x1": reference[0], "torch_x2": reference[1],
               "max_error_vs_torch": err}
    summary = (f"at z = mu + sigma eps of test image 1: -log p_dec(z) read literally = {sheet:.2f} nats "
               f"for image 1 and image 2 alike; -log p_theta(x|z) = {corrected[0]:.2f} for image 1 and "
               f"{corrected[1]:.2f} for image 2 (torch.distributions.Bernoulli: {reference[0]:.2f}, "
               f"{reference[1]:.2f})")
    depends = abs(corrected[0] - corrected[1]) > 1e-3
    return Verdict(numbers, _supports(depends and err < 1e-3, not depends), summary)


@torch.no_grad()
def variance_head(model: Any, x: Tensor, seed: int = 0) -> Verdict:
    """What q_sigma's output must be. (a) A variance v read as sigma: the KL with sigma = v against
    torch.distributions' KL of N(mu, v) (sigma = sqrt(v)). (b) A linear layer's raw outputs are
    negative about half the time: as a variance their log is NaN, as log sigma^2 (vaekit's q_logvar,
    `prob.reparameterize`) every one is a valid sigma = exp(out / 2) > 0."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(200, 1, generator=g, dtype=F64)
    v = 0.05 + torch.rand(200, 1, generator=g, dtype=F64) * 2.0  # variances
    reference = kl_divergence(Normal(mu, v.sqrt()), Normal(0.0, 1.0)).squeeze(-1)
    as_sigma = prob.gaussian_kl(mu, 2.0 * v.log())  # the variance plugged in where sigma goes
    as_variance = prob.gaussian_kl(mu, v.log())
    err_sigma = float((as_sigma - reference).abs().max())
    err_variance = float((as_variance - reference).abs().max())
    out = model.q_logvar(model.q_enc(x)).double()  # (B, D): the raw outputs of the head
    negative = float((out < 0).double().mean())
    nan_as_variance = float(torch.isnan(out.log()).double().mean())
    sigma = torch.exp(0.5 * out)
    numbers = {"max_error_variance_read_as_sigma": err_sigma, "max_error_sigma_sqrt_variance": err_variance,
               "negative_outputs": negative, "nan_if_variance": nan_as_variance,
               "min_sigma_from_logvar": float(sigma.min()), "max_sigma_from_logvar": float(sigma.max())}
    summary = (f"KL with the variance put where sigma goes: off by up to {err_sigma:.3f} nats from "
               f"torch.distributions; with sigma = sqrt(variance): {err_variance:.1e}. The head's raw "
               f"outputs on test images: {100 * negative:.1f}% negative, so {100 * nan_as_variance:.1f}% "
               f"NaN as log(variance); as log sigma^2 every sigma is in "
               f"[{float(sigma.min()):.3g}, {float(sigma.max()):.3g}]")
    valid = bool(torch.isfinite(sigma).all() and (sigma > 0).all())
    return Verdict(numbers, _supports(err_variance < 1e-12 and valid,
                                      err_sigma < 1e-12), summary)


@torch.no_grad()
def kl_sum_over_dims(model: Any, x: Tensor, seed: int = 0) -> Verdict:
    """The KL of q(z|x) = N(mu_x, diag sigma_x^2) to N(0, I) for the model's d-dimensional latent:
    the sheet's scalar formula per coordinate (a vector of d values; as one number, their mean)
    against the sum over the d coordinates, held against torch.distributions' KL of the
    d-dimensional Gaussians (Independent Normal)."""
    mu, logvar = (t.double() for t in model.encode(x))
    per_dim = prob.gaussian_kl_per_dim(mu, logvar)  # (B, d)
    summed, mean = per_dim.sum(-1), per_dim.mean(-1)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    reference = kl_divergence(q, p)
    err_sum = float((summed - reference).abs().max())
    err_mean = float((mean - reference).abs().max())
    numbers = {"latent_dim": mu.shape[-1], "images": mu.shape[0], "mean_kl_sum": float(summed.mean()),
               "mean_kl_mean_over_dims": float(mean.mean()), "torch": float(reference.mean()),
               "max_error_sum": err_sum, "max_error_mean": err_mean}
    summary = (f"{mu.shape[0]} test images, d = {mu.shape[-1]}: torch.distributions' KL averages "
               f"{float(reference.mean()):.4f} nats; the sum over dimensions {float(summed.mean()):.4f} "
               f"(max error {err_sum:.1e}); the scalar formula taken once per image (mean over "
               f"dimensions) {float(mean.mean()):.4f}")
    return Verdict(numbers, _supports(err_sum < 1e-9, err_mean < 1e-9), summary)


# ----------------------------------------------------------------------------- the list


ERRATA: tuple[Erratum, ...] = (
    Erratum("q1-joint", "Ex.2 Q1", r"\log \int_z p(x, y)\, dz", r"\log \int_z p(x, z)\, dz",
            r"$p(x)$ is the marginal of the joint $p(x, z)$ over $z$; $p(x, y)$ does not depend on $z$, "
            r"so its integral over $z$ is not $p(x)$ (it grows with the range of $z$).", joint_integral),
    Erratum("q2-metric", "Ex.2 Q2", r"\text{a dissimilarity metric}",
            r"\text{a divergence: } KL(p||q) \geq 0,\ = 0 \iff p = q",
            r"a metric is symmetric and satisfies the triangle inequality; the KL divergence does "
            r"neither ($KL(p||q) \neq KL(q||p)$ in general).", kl_not_a_metric),
    Erratum("q3-moment", "Ex.2 Q3", r"\mathbb{E}[(z-\mu)^2] - \mu^2 - \mathbb{E}[2\mu z]",
            r"\mathbb{E}[(z-\mu)^2] - \mu^2 + \mathbb{E}[2\mu z]",
            r"$z^2 = (z-\mu)^2 + 2\mu z - \mu^2$, as the line above says; the next line has $+ 2\mu "
            r"\mathbb{E}[z]$ again, so only this line's sign is wrong.", second_moment),
    Erratum("q3-sign", "Ex.2 Q3",
            r"-\log(\sigma) - \frac{1}{2\sigma^2}\sigma^2 + \frac{1}{2}\sigma^2 - \frac{1}{2}\mu^2",
            r"-\log(\sigma) - \frac{1}{2\sigma^2}\sigma^2 + \frac{1}{2}\sigma^2 + \frac{1}{2}\mu^2",
            r"$\frac{1}{2}\mathbb{E}[z^2] = \frac{1}{2}(\sigma^2 + \mu^2)$; the next line has $+ \frac{1}{2}"
            r"\mu^2$, so the final formula is right and this line is not.", kl_sign),
    Erratum("q4-log", "Ex.2 Q4", r"-\mathbb{E}_{z \sim q_\psi(z|x)} [p_\theta(x|z)]",
            r"-\mathbb{E}_{z \sim q_\psi(z|x)} [\log p_\theta(x|z)]",
            r"the ELBO of Q1 holds the expected log-likelihood; without the log the loss is not an upper "
            r"bound on $-\log p(x)$, and for images $p_\theta(x|z)$ is of the order of $e^{-230}$, whose "
            r"gradient vanishes.", loss_is_a_bound),
    Erratum("q6-likelihood", "Ex.2 Q6", r"-\log(p_{dec}(\sigma_x \epsilon + \mu_x))",
            r"-\log p_\theta(x \mid z), \quad z = \mu_x + \sigma_x \epsilon",
            r"$p_{dec}(z)$ gives the parameters of $p_\theta(x|z)$ (the pixels' Bernoulli means), not a "
            r"probability; the loss term is the log-likelihood of this $x$ under them, which the "
            r"sheet's expression does not contain.", likelihood_term),
    Erratum("q6-variance", "Ex.2 Q6", r"q_\sigma \text{ produces the variance; } \sigma_x = "
            r"q_\sigma(q_{enc}(x))",
            r"q_{logvar} \text{ produces } \log \sigma_x^2; \ \sigma_x = \exp(\tfrac{1}{2} "
            r"q_{logvar}(q_{enc}(x)))",
            r"the formula uses $\sigma_x$, not the variance; and a linear layer's output is any real "
            r"number: as a variance or $\sigma$ it must be made positive, as $\log \sigma^2$ it needs "
            r"nothing (vaekit's q_logvar, `prob.reparameterize`).", variance_head),
    Erratum("q6-sum", "Ex.2 Q6", r"- \frac{1}{2}(\log(\sigma_x^2) + 1 - \sigma_x^2 - \mu_x^2)",
            r"- \frac{1}{2}\sum_{j=1}^{d} (\log(\sigma_{x,j}^2) + 1 - \sigma_{x,j}^2 - \mu_{x,j}^2)",
            r"$\mu_x$ and $\sigma_x$ are vectors of the latent's $d$ dimensions ($d$ = 20 in "
            r"configs/sheet.toml) and the KL of independent coordinates is the sum of theirs.",
            kl_sum_over_dims),
)

MODEL_CHECKS = ("q6-likelihood", "q6-variance", "q6-sum")  # checks that take (model, x)
