"""Two ways to differentiate an expectation (Ex.2 Q5): the score function and the pathwise gradient.

The sheet's loss contains E_{z ~ q(z|x)}[-log p(x|z)], an expectation under a distribution whose
parameters theta = (mu, sigma) are being trained. Its gradient can be estimated by Monte Carlo in two
ways [Mohamed et al. 2020, sections 4 and 5]:

score function (REINFORCE, likelihood ratio, "policy gradient") [Williams 1992; Glynn 1990]:

    d/dtheta E_{q_theta}[f(z)] = E_{z ~ q_theta}[ f(z) d/dtheta log q_theta(z) ]
                               = E_{z ~ q_theta}[ (f(z) - b) d/dtheta log q_theta(z) ]   for any b

  (the baseline, or control variate, b may be any constant independent of z: E[d log q] = 0). It
  needs only values of f, never its derivative, so f may be discrete or a black box; its variance
  grows with the size of f and with the dimension of z. For q = N(mu, diag sigma^2) and z = mu +
  sigma * eps the scores are d log q / d mu = eps / sigma, d log q / d sigma = (eps^2 - 1) / sigma
  and d log q / d log sigma^2 = (eps^2 - 1) / 2.

pathwise (reparameterization trick) [Kingma & Welling 2014, section 2.4; Rezende et al. 2014]:

    d/dtheta E_{q_theta}[f(z)] = E_{eps ~ N(0, I)}[ d/dtheta f(mu + sigma * eps) ]

  z is rewritten as a differentiable function of theta and a parameter-free noise; it needs f to be
  differentiable, and its variance depends on how fast f varies, not on the size of f.

Both functions below take an objective `f` mapping samples z of shape (S, *batch, D) to values of
shape (S, *batch), acting on each sample separately, and return one gradient estimate per sample
(`GradientSamples`), so that their mean, variance and standard error can be measured. The mean of
S estimates has variance Var / S: one sample (the sheet's Q6) is unbiased but noisy.

`score_negative_elbo` is the sheet's loss with the encoder trained by the score function.

References: R. J. Williams, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning", Machine Learning 8 (1992); P. W. Glynn, "Likelihood ratio gradient
estimation for stochastic systems", Communications of the ACM 33 (1990); D. P. Kingma & M. Welling,
"Auto-Encoding Variational Bayes", ICLR 2014; D. J. Rezende, S. Mohamed & D. Wierstra, "Stochastic
Backpropagation and Approximate Inference in Deep Generative Models", ICML 2014; A. Mnih &
K. Gregor, "Neural Variational Inference and Learning in Belief Networks", ICML 2014; S. Mohamed,
M. Rosca, M. Figurnov & A. Mnih, "Monte Carlo Gradient Estimation in Machine Learning", JMLR 21
(2020).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from vaekit.vae.prob import (
    VAE,
    Terms,
    draw_eps,
    gaussian_kl_per_dim,
    log_normal_diag,
    log_px_samples,
    reparameterize,
)

# f: samples (S, *batch, D) -> values (S, *batch), each sample on its own.
Objective = Callable[[Tensor], Tensor]
# How the scale of q is parameterized: its standard deviation sigma, or log sigma^2.
ScaleParam = Literal["sigma", "logvar"]


@dataclass
class GradientSamples:
    """Per-sample gradient estimates of E_q[f(z)] with respect to q's parameters.

    mu:     (S, *batch, D) estimates of d/dmu E[f];
    scale:  (S, *batch, D) estimates of d/dsigma E[f] or d/dlogvar E[f] (as `scale_is` says);
    values: (S, *batch) the values f(z_s), whose mean estimates E[f].
    """

    mu: Tensor
    scale: Tensor
    values: Tensor

    @property
    def n(self) -> int:
        return int(self.mu.shape[0])

    def mean(self) -> tuple[Tensor, Tensor]:
        """The S-sample estimate: the mean over samples of each gradient."""
        return self.mu.mean(dim=0), self.scale.mean(dim=0)

    def variance(self) -> tuple[Tensor, Tensor]:
        """The per-sample variance of each gradient coordinate (unbiased, over the S samples)."""
        return self.mu.var(dim=0), self.scale.var(dim=0)

    def stderr(self) -> tuple[Tensor, Tensor]:
        """The standard error of `mean()`: sqrt(variance / S)."""
        v_mu, v_scale = self.variance()
        return (v_mu / self.n).sqrt(), (v_scale / self.n).sqrt()


class GradientEstimator(Protocol):
    """The signature shared by `score_function_gradient` and `pathwise_gradient`."""

    def __call__(self, f: Objective, mu: Tensor, scale: Tensor, n: int, *,
                 scale_is: ScaleParam = "sigma", baseline: float | Tensor | None = None,
                 generator: torch.Generator | None = None) -> GradientSamples: ...


def _sigma(scale: Tensor, scale_is: ScaleParam) -> Tensor:
    if scale_is == "sigma":
        return scale
    if scale_is == "logvar":
        return torch.exp(0.5 * scale)
    raise ValueError(f"scale_is must be 'sigma' or 'logvar', got {scale_is!r}")


def _per_sample_leaves(mu: Tensor, scale: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """One copy of (mu, scale) per sample, (S, *batch, D) each, as leaves of a new graph: the
    gradient of a sum over samples with respect to a copy is that sample's own gradient."""
    shape = (n, *mu.shape)
    mu_s = mu.detach().expand(shape).clone().requires_grad_(True)
    scale_s = scale.detach().expand(shape).clone().requires_grad_(True)
    return mu_s, scale_s


def score_function_gradient(f: Objective, mu: Tensor, scale: Tensor, n: int, *,
                            scale_is: ScaleParam = "sigma", baseline: float | Tensor | None = None,
                            generator: torch.Generator | None = None) -> GradientSamples:
    """Score-function (REINFORCE) estimates of d/dtheta E_{z ~ N(mu, diag sigma^2)}[f(z)]:

        g_s = (f(z_s) - b) * d/dtheta log q_theta(z_s),   z_s ~ q_theta,  s = 1..S

    [Williams 1992: REINFORCE's update (r - b) d ln g / d w, reward r, baseline b, "characteristic
    eligibility" d ln g / d w; Mohamed et al. 2020, section 4, and section 7 for baselines].
    Unbiased for any constant b (default 0), since E_q[d log q] = 0; a b close to E[f] usually
    lowers the variance. f is evaluated only, never differentiated (it is called under
    `torch.no_grad`). The score d log q / d theta is taken by autograd of `prob.log_normal_diag` at
    the fixed sample z_s (z_s is not a function of theta here).

    mu, scale: (*batch, D); scale is sigma or log sigma^2 (`scale_is`). baseline: a float, or a
    tensor broadcastable to (*batch,), independent of the samples drawn here.
    """
    sigma = _sigma(scale.detach(), scale_is)
    eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    z = (mu.detach() + sigma * eps).detach()  # (S, *batch, D): a sample, no path to theta
    with torch.no_grad():
        values = f(z)  # (S, *batch)
    mu_s, scale_s = _per_sample_leaves(mu, scale, n)
    logvar_s = 2.0 * scale_s.log() if scale_is == "sigma" else scale_s
    log_q = log_normal_diag(z, mu_s, logvar_s, batch_dims=z.dim() - 1)  # (S, *batch)
    score_mu, score_scale = torch.autograd.grad(log_q.sum(), (mu_s, scale_s))
    weight = values if baseline is None else values - baseline
    weight = weight.unsqueeze(-1)  # (S, *batch, 1) against the (S, *batch, D) scores
    return GradientSamples(weight * score_mu, weight * score_scale, values)


def pathwise_gradient(f: Objective, mu: Tensor, scale: Tensor, n: int, *,
                      scale_is: ScaleParam = "sigma", baseline: float | Tensor | None = None,
                      generator: torch.Generator | None = None) -> GradientSamples:
    """Pathwise (reparameterization) estimates of d/dtheta E_{z ~ N(mu, diag sigma^2)}[f(z)]:

        g_s = d/dtheta f(mu + sigma * eps_s),   eps_s ~ N(0, I)

    i.e. d/dmu = f'(z_s) and d/dsigma = f'(z_s) * eps_s [Kingma & Welling 2014, section 2.4;
    Mohamed et al. 2020, section 5]. f must be differentiable. `baseline` is accepted for
    a common signature and ignored: a constant does not change d f.
    """
    del baseline
    mu_s, scale_s = _per_sample_leaves(mu, scale, n)
    eps = torch.randn(mu_s.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu_s + _sigma(scale_s, scale_is) * eps  # (S, *batch, D), differentiable in (mu, scale)
    values = f(z)  # (S, *batch)
    grad_mu, grad_scale = torch.autograd.grad(values.sum(), (mu_s, scale_s))
    return GradientSamples(grad_mu, grad_scale, values.detach())


def score_negative_elbo(x: Tensor, model: VAE, k: int = 1, beta: float = 1.0, baseline: float | None = None,
                        generator: torch.Generator | None = None) -> Terms:
    """The sheet's loss (Ex.2 Q4) with the encoder trained by the score function, per image.

    The loss -ELBO = E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I)) has two parts. The KL is in
    closed form (Ex.2 Q3) and keeps its exact gradient. The reconstruction term is estimated with K
    samples z_k ~ q(z|x) that are *detached* from the encoder (no pathwise gradient), and the
    encoder's gradient of it comes from the score function instead:

        d/dpsi E_q[-log p(x|z)] ~= 1/K sum_k (-log p(x|z_k) - b) d/dpsi log q_psi(z_k|x)

    The surrogate returned as `.loss` is

        1/K sum_k [ -log p(x|z_k) + (-log p(x|z_k) - b)|detached * (log q(z_k|x) - log q(z_k|x)|detached) ]
        + beta * KL

    whose value is the sampled objective (the second term is 0) and whose gradient is: for the
    decoder, the ordinary d/dtheta -log p(x|z_k) (pathwise in theta, the same as `negative_elbo`'s
    for the same draw); for the encoder, the score-function term above plus beta * d KL. b is the
    baseline (a float such as a running mean of the reconstruction loss, default 0).
    `.neg_elbo`, `.recon` and `.kl` hold the true values, as in `prob.negative_elbo`; with the same
    `generator` state, the same numbers. [Williams 1992; Mnih & Gregor, "Neural Variational Inference
    and Learning in Belief Networks", ICML 2014, which trains this way with learned baselines.]
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mu, logvar = model.encode(x)  # (B, D) each
    eps = draw_eps(mu, k, generator)  # (K, B, D)
    z = reparameterize(mu, logvar, eps).detach()  # (K, B, D): no path to the encoder
    log_px = log_px_samples(model, x, z)  # (K, B): the decoder's ordinary gradient
    log_q = log_normal_diag(z, mu, logvar, batch_dims=2)  # (K, B): the encoder's score path
    reward = -log_px.detach() - (0.0 if baseline is None else baseline)  # (K, B)
    score_term = reward * (log_q - log_q.detach())  # value 0, gradient (f - b) d log q
    recon = -log_px.mean(dim=0)  # (B,)
    kl_d = gaussian_kl_per_dim(mu, logvar)  # (B, D)
    kl = kl_d.sum(dim=-1)
    loss = recon + score_term.mean(dim=0) + beta * kl
    return Terms(loss, recon + kl, recon, kl, kl_d)

