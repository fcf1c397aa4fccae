"""The sheet's Ex.2 Q5 and Q6 as numbers: both gradient estimators are unbiased, and they differ in
variance (`vaekit check`: reparam_unbiased, score_unbiased, variance).

A problem is an objective E_{z ~ N(mu, diag sigma^2)}[f(z)] whose gradient is known exactly:

    E[z^2]       = mu^2 + sigma^2                  d/dmu = 2 mu,              d/dsigma = 2 sigma
    E[(z - a)^2] = (mu - a)^2 + sigma^2            d/dmu = 2 (mu - a),        d/dsigma = 2 sigma
    E[cos z]     = cos(mu) exp(-sigma^2 / 2)       d/dmu = -sin(mu) e^{-sigma^2/2},
                                                   d/dsigma = -sigma cos(mu) e^{-sigma^2/2}

(each summed over D dims), and the ELBO of the linear-Gaussian VAE with respect to its encoder's
parameters, exact by autograd of `LinearGaussianVAE.elbo`; there the estimator handles the
reconstruction term E_q[log p(x|z)] and the KL keeps its closed-form gradient, as in training.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vaekit.checks.claim import ClaimResult
from vaekit.vae import prob
from vaekit.vae.estimators import (
    GradientEstimator,
    Objective,
    ScaleParam,
    pathwise_gradient,
    score_function_gradient,
    score_negative_elbo,
)
from vaekit.vae.linear_gaussian import LinearGaussianVAE

F64 = torch.float64
QUICK: dict[str, Any] = {"n_samples": 4000, "n_calls": 100}
VAELoss = Callable[..., prob.Terms]  # (x, model, k=..., generator=...) -> Terms, like negative_elbo


@dataclass
class Problem:
    """E_q[f(z)], q = N(mu, diag sigma^2) (or log sigma^2, `scale_is`), and its exact gradient."""

    name: str
    f: Objective
    mu: Tensor
    scale: Tensor
    scale_is: ScaleParam
    exact: Tensor  # (C,): the exact gradient, flattened
    # per-sample gradients (S, *batch, D) x 2 -> per-sample gradients of the target, (S, C)
    to_target: Callable[[Tensor, Tensor], Tensor]


def _concat(g_mu: Tensor, g_scale: Tensor) -> Tensor:
    return torch.cat([g_mu.flatten(1), g_scale.flatten(1)], dim=1)  # (S, 2D)


def closed_form_problems(dim: int, g: torch.Generator) -> list[Problem]:
    """E[z^2], E[(z - a)^2] and E[cos z] at a random (mu, sigma) in dimension `dim`."""
    mu = torch.randn(dim, generator=g, dtype=F64)
    sigma = 0.5 + torch.rand(dim, generator=g, dtype=F64)  # in [0.5, 1.5]
    a = torch.randn(dim, generator=g, dtype=F64)
    damp = torch.exp(-0.5 * sigma**2)
    return [
        Problem("E[z^2]", lambda z: z.pow(2).sum(-1), mu, sigma, "sigma",
                torch.cat([2 * mu, 2 * sigma]), _concat),
        Problem("E[(z-a)^2]", lambda z: (z - a).pow(2).sum(-1), mu, sigma, "sigma",
                torch.cat([2 * (mu - a), 2 * sigma]), _concat),
        Problem("E[cos z]", lambda z: z.cos().sum(-1), mu, sigma, "sigma",
                torch.cat([-mu.sin() * damp, -sigma * mu.cos() * damp]), _concat),
    ]


def linear_gaussian_problem(model: LinearGaussianVAE, x: Tensor) -> Problem:
    """d ELBO / d(A, c, l), the encoder's parameters, at the data x (B, P).

    The estimators give per-sample gradients of E_q[log p(x|z)] with respect to (mu(x), logvar(x));
    the chain rule through the encoder maps them to (A, c, l) (autograd with one backward per
    sample, batched), and the closed-form KL's exact gradient is subtracted."""
    params = (model.A, model.c, model.l)
    exact = torch.autograd.grad(model.elbo(x).sum(), params)
    mu, logvar = model.encode(x)  # (B, D), attached to (A, c, l)
    grad_kl = torch.autograd.grad(prob.gaussian_kl(mu, logvar).sum(), params, retain_graph=True)

    def f(z: Tensor) -> Tensor:  # log p(x|z): (S, B, D) -> (S, B)
        mean, log_s2 = model.decode(z)
        return prob.log_normal_diag(x, mean, log_s2, batch_dims=2)

    def to_target(g_mu: Tensor, g_logvar: Tensor) -> Tensor:
        per_sample = torch.autograd.grad((mu, logvar), params, grad_outputs=(g_mu, g_logvar),
                                         retain_graph=True, is_grads_batched=True)  # (S, *param)
        return torch.cat([(g - k).flatten(1) for g, k in zip(per_sample, grad_kl, strict=True)], dim=1)

    return Problem("linear-Gaussian ELBO", f, mu.detach(), logvar.detach(), "logvar",
                   torch.cat([e.flatten() for e in exact]).detach(), to_target)


def estimate(problem: Problem, estimator: GradientEstimator, n: int, g: torch.Generator,
             baseline: float | Tensor | None = None) -> Tensor:
    """n per-sample estimates of the problem's gradient, (n, C)."""
    samples = estimator(problem.f, problem.mu, problem.scale, n, scale_is=problem.scale_is,
                        baseline=baseline, generator=g)
    return problem.to_target(samples.mu, samples.scale).detach()


def pilot_baseline(problem: Problem, g: torch.Generator, n: int = 1000) -> Tensor:
    """b ~= E_q[f(z)] from n draws independent of the estimator's: a constant, so (f - b) d log q
    stays unbiased (a control variate: Mohamed et al. 2020, section 7)."""
    sigma = problem.scale if problem.scale_is == "sigma" else (0.5 * problem.scale).exp()
    z = problem.mu + sigma * torch.randn((n, *problem.mu.shape), generator=g, dtype=F64)
    with torch.no_grad():
        return problem.f(z).mean(dim=0)


def _zscores(samples: Tensor, exact: Tensor) -> Tensor:
    """|mean - exact| / s.e. per coordinate, from per-sample (or per-call) estimates (S, C)."""
    se = samples.std(dim=0) / math.sqrt(samples.shape[0])
    return (samples.mean(dim=0) - exact).abs() / se.clamp(min=1e-300)


def _loss_problem_z(loss: VAELoss, model: LinearGaussianVAE, x: Tensor, n_calls: int, k: int,
                    g: torch.Generator, **kwargs: Any) -> float:
    """Largest |z| of the gradient of `loss(x, model, k).loss.sum()` (a VAE training loss), averaged
    over n_calls independent calls, against the exact gradient of -ELBO, for all parameters."""
    params = list(model.parameters())
    exact = torch.cat([e.flatten() for e in torch.autograd.grad(-model.elbo(x).sum(), params)])
    calls = []
    for _ in range(n_calls):
        grads = torch.autograd.grad(loss(x, model, k=k, generator=g, **kwargs).loss.sum(), params)
        calls.append(torch.cat([gr.flatten() for gr in grads]))
    return float(_zscores(torch.stack(calls), exact).max())


def _unbiased(claim_id: str, estimator: GradientEstimator, loss: VAELoss, baselines: Sequence[bool],
              seed: int, dim: int, n_samples: int, n_calls: int, z_max: float) -> ClaimResult:
    g = torch.Generator().manual_seed(seed)
    model = LinearGaussianVAE(data_dim=6, latent_dim=dim, seed=seed)
    x = model.sample(4, g)
    problems = [*closed_form_problems(dim, g), linear_gaussian_problem(model, x)]
    worst: dict[str, float] = {}
    for problem in problems:
        for use_baseline in baselines:
            b = pilot_baseline(problem, g) if use_baseline else None
            label = problem.name + (" (baseline)" if use_baseline else "")
            worst[label] = float(_zscores(estimate(problem, estimator, n_samples, g, b), problem.exact).max())
    loss_kwargs = {"baseline": 1.0} if claim_id == "score_unbiased" else {}  # any constant is fine
    worst[f"{loss.__name__} loss"] = _loss_problem_z(loss, model, x, n_calls, 20, g, **loss_kwargs)
    max_z = max(worst.values())
    numbers = {"n_samples": n_samples, "n_calls": n_calls, "max_z": max_z, "z_by_problem": worst}
    name = "score function" if claim_id == "score_unbiased" else "reparameterization"
    summary = (f"max |mean - exact|/s.e. = {max_z:.2f} (limit {z_max}) over " + ", ".join(
        f"{k} {v:.1f}" for k, v in worst.items()) + f"; S={n_samples}, loss: {n_calls} calls x K=20")
    claim = f"the {name} gradient estimator is unbiased (mean = exact gradient wrt mu, sigma)"
    return ClaimResult(claim_id, "Ex.2 Q5", claim, numbers, summary, max_z <= z_max)


def reparam_unbiased(seed: int = 0, dim: int = 3, n_samples: int = 50000, n_calls: int = 500,
                     z_max: float = 5.0, estimator: GradientEstimator = pathwise_gradient,
                     loss: VAELoss = prob.negative_elbo) -> ClaimResult:
    """Ex.2 Q5: E_eps[d/dtheta f(mu + sigma eps)] = d/dtheta E_q[f] on every problem, and the
    gradient of `prob.negative_elbo` (all parameters) averaged over calls equals d(-ELBO) exactly:
    each coordinate's mean within `z_max` standard errors of the exact gradient."""
    return _unbiased("reparam_unbiased", estimator, loss, (False,), seed, dim, n_samples, n_calls, z_max)


def score_unbiased(seed: int = 0, dim: int = 3, n_samples: int = 50000, n_calls: int = 500,
                   z_max: float = 5.0, estimator: GradientEstimator = score_function_gradient,
                   loss: VAELoss = score_negative_elbo) -> ClaimResult:
    """Ex.2 Q5: E_q[(f(z) - b) d/dtheta log q(z)] = d/dtheta E_q[f] on every problem, without and with
    a baseline b, and the gradient of `estimators.score_negative_elbo` (all parameters, encoder by
    the score function) averaged over calls equals d(-ELBO) exactly, within `z_max` s.e."""
    return _unbiased("score_unbiased", estimator, loss, (False, True), seed, dim, n_samples, n_calls, z_max)


# ----------------------------------------------------------------------------- variance (Q5, Q6)


def reconstruction_problem(dim: int, seed: int, g: torch.Generator) -> Problem:
    """E_q[log p(x|z)] of a linear-Gaussian VAE with `dim` latents (data dim + 10), at one x drawn
    from the model and the model's random encoder, with respect to (mu(x), log sigma^2(x)). Only
    its variance is measured (`exact` is left empty)."""
    model = LinearGaussianVAE(data_dim=dim + 10, latent_dim=dim, seed=seed)
    x = model.sample(1, g)  # (1, P)
    with torch.no_grad():
        mu, logvar = model.encode(x)  # (1, D)

        def f(z: Tensor) -> Tensor:  # (S, 1, D) -> (S, 1)
            mean, log_s2 = model.decode(z)
            return prob.log_normal_diag(x, mean, log_s2, batch_dims=2)

    return Problem("linear-Gaussian log p(x|z)", f, mu, logvar, "logvar", torch.empty(0), _concat)


ESTIMATOR_NAMES = ("score", "score+baseline", "reparam")


def variance(seed: int = 0, dims: Sequence[int] = (1, 3, 10, 30, 100), ns: Sequence[int] = (1, 10, 100),
             replicates: int = 300, score: GradientEstimator = score_function_gradient,
             reparam: GradientEstimator = pathwise_gradient) -> ClaimResult:
    """Ex.2 Q5, Q6: the variance of each estimator, and of the mean of n of its samples.

    For E[(z - a)^2] and a linear-Gaussian VAE's E_q[log p(x|z)] in `dims` latent dimensions, draw
    replicates x max(ns) per-sample gradients with each estimator (score function without baseline,
    with a constant baseline b ~= E[f] from independent draws, and reparameterization), and measure
    the variance of the n-sample mean over `replicates` independent means, averaged over the 2D
    gradient coordinates (mu and the scale). Theory: Var(n) = Var(1) / n; the score function's
    variance grows with D (f sums D terms and multiplies each score), the pathwise one's does not
    here [Mohamed et al. 2020, section 3]. Passes when reparameterization has the lowest variance
    for every problem, D and n, and the median over cells of n Var(n) / Var(1 sample) is in
    [0.75, 1.33] (the median, as the score function's heavy tails make single cells noisy). A
    baseline b = E[f] usually lowers the score function's variance but need not (the best constant
    is E[f s^2] / E[s^2] for a score s), so it is reported, not required.
    """
    g = torch.Generator().manual_seed(seed)
    rows: list[dict[str, Any]] = []
    ordered, one_over_n = True, []
    for dim in dims:
        problems = [closed_form_problems(dim, g)[1], reconstruction_problem(dim, seed, g)]
        for problem in problems:
            b = pilot_baseline(problem, g)
            methods = {"score": (score, None), "score+baseline": (score, b), "reparam": (reparam, None)}
            var: dict[str, dict[int, float]] = {}
            for name, (estimator, baseline) in methods.items():
                draws = estimate(problem, estimator, replicates * max(ns), g, baseline)  # (R*N, C)
                per_sample = float(draws.var(dim=0).mean())
                var[name] = {}
                for n in ns:
                    means = draws[: replicates * n].reshape(replicates, n, -1).mean(dim=1)  # (R, C)
                    var[name][n] = float(means.var(dim=0).mean())
                    one_over_n.append(n * var[name][n] / per_sample if per_sample > 0 else math.inf)
                    rows.append({"problem": problem.name, "dim": dim, "estimator": name, "n": n,
                                 "variance": var[name][n], "per_sample_variance": per_sample})
            ordered &= all(var["reparam"][n] < min(var["score+baseline"][n], var["score"][n]) for n in ns)
    ratios = _ratios(rows)
    lo_n, mid_n, hi_n = min(one_over_n), statistics.median(one_over_n), max(one_over_n)
    passed = ordered and 0.75 <= mid_n <= 1.33
    numbers = {"dims": list(dims), "ns": list(ns), "replicates": replicates, "reparam_lowest": ordered,
               "n_var_n_over_var_1": {"min": lo_n, "median": mid_n, "max": hi_n}, "ratios": ratios}
    parts = [f"{p}: score/reparam {r['score'][0]:.3g}x (D={dims[0]}) to {r['score'][-1]:.3g}x "
             f"(D={dims[-1]}), with baseline {r['score+baseline'][0]:.3g}x to {r['score+baseline'][-1]:.3g}x"
             for p, r in ratios.items()]
    summary = (f"reparam lowest at every D, n: {ordered}; " + "; ".join(parts)
               + f"; n*Var(n)/Var(1) median {mid_n:.2f} (range {lo_n:.2f} to {hi_n:.2f})")
    claim = "reparameterization has lower variance than the score function; Var(n samples) = Var(1)/n"
    return ClaimResult("variance", "Ex.2 Q5, Q6", claim, numbers, summary, passed, {"table": rows})


def _ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """problem -> estimator -> per-sample variance / reparameterization's, one per dim (in order)."""
    per: dict[tuple[str, int, str], float] = {
        (r["problem"], r["dim"], r["estimator"]): r["per_sample_variance"] for r in rows}
    out: dict[str, dict[str, list[float]]] = {}
    for (problem, dim, name), v in per.items():
        if name != "reparam":
            out.setdefault(problem, {}).setdefault(name, []).append(
                v / per[(problem, dim, "reparam")] if per[(problem, dim, "reparam")] > 0 else math.inf)
    return out


def variance_table(rows: list[dict[str, Any]]) -> str:
    """The variance rows as a text table: one line per (problem, estimator, n), one column per D."""
    dims = sorted({r["dim"] for r in rows})
    keys = list(dict.fromkeys((r["problem"], r["estimator"], r["n"]) for r in rows))
    value = {(r["problem"], r["estimator"], r["n"], r["dim"]): r["variance"] for r in rows}
    width = max(len(p) for p, _, _ in keys)
    header = "".join(f"{'D=' + str(d):>10}" for d in dims)
    lines = [f"{'problem':<{width}}  {'estimator':<14} {'n':>4}  {header}"]
    for problem, name, n in keys:
        cells = "".join(f"{value[(problem, name, n, d)]:>10.3g}" for d in dims)
        lines.append(f"{problem:<{width}}  {name:<14} {n:>4}  {cells}")
    return "\n".join(lines)
