"""Exercise 2 answered: each question's formula with numbers in (from `vaekit.vae.prob` and the Q6
run), the claims of `vaekit check` that prove it, and for Q6 the sheet's model trained with one
sample, beside the published table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

from vaekit.checks.claim import ClaimResult
from vaekit.report.figures import training_figure, variance_figure
from vaekit.sheet.answer import Answer, Check, Table
from vaekit.sheet.vae_run import PUBLISHED, VaeRun
from vaekit.vae import prob

EXAMPLE_MU, EXAMPLE_SIGMA = 1.5, 0.7  # the (mu, sigma) Q3's formula is shown at


def _claims(results: Mapping[str, ClaimResult], *ids: str) -> list[Check]:
    return [Check.of_claim(results[i]) for i in ids if i in results]


def question1(results: Mapping[str, ClaimResult], run: VaeRun) -> Answer:
    """Ex.2 Q1: Jensen on log E_q[p(x, z)/q(z|x)]; the exact check and the trained model's bounds."""
    e = run.evaluation
    formulas = [r"\log p(x) = \log \int_z q(z|x) \frac{p(x, z)}{q(z|x)}\, dz \geq \int_z q(z|x) \log "
                r"\frac{p(x|z)\, p(z)}{q(z|x)}\, dz = \mathbb{E}_{q}[\log p_\theta(x|z)] "
                r"- D_{KL}[q_\psi(z|x) \,\|\, p(z)]",
                rf"\text{{test, the Q6 model:}}\ -\log p(x) \approx {e['test_nll']:.2f} \leq "
                rf"-\text{{ELBO}} = {e['test_neg_elbo']:.2f} \text{{ nats}} \quad (k = {e['k']:,})"]
    text = ("Jensen's inequality (log is concave) moves the log inside the expectation; the gap is "
            "$\\log p(x) - \\text{ELBO} = D_{KL}[q_\\psi(z|x) || p_\\theta(z|x)] \\geq 0$, zero when q is "
            "the true posterior. On a linear-Gaussian VAE, where every term is exact, the gap equals that "
            "KL to float precision; on the trained model the importance-weighted bound sits below the "
            "-ELBO.")
    gap = e["test_neg_elbo"] - e["test_nll"]
    checks = _claims(results, "elbo_bound", "iwae_tightens") + [Check(
        "the Q6 model's -ELBO >= -log p(x)", gap >= 0,
        f"test -ELBO {e['test_neg_elbo']:.3f} - test -log p(x) (k = {e['k']:,}) {e['test_nll']:.3f} = "
        f"{gap:.3f} nats >= 0", {"test_neg_elbo": e["test_neg_elbo"], "test_nll": e["test_nll"]})]
    return Answer("ex2-q1", formulas, text, checks, numbers={"elbo_gap_nats": gap})


def question2(results: Mapping[str, ClaimResult]) -> Answer:
    """Ex.2 Q2: what the KL measures, when it is 0, its formula."""
    r = results.get("kl_nonnegative")
    formulas = [r"KL(p \,\|\, q) = \int_x p(x) \log \frac{p(x)}{q(x)}\, dx = \mathbb{E}_{p}\left[\log "
                r"\frac{p(x)}{q(x)}\right] \geq 0, \quad KL(p \,\|\, q) = 0 \iff p = q"]
    text = ("The KL divergence measures how much q differs from p, seen from p: the expected extra "
            "nats of coding samples of p with q. It is 0 exactly when p = q (almost everywhere), "
            "positive otherwise (Jensen), and it is not a distance: not symmetric, no triangle "
            "inequality.")
    numbers = {} if r is None else {"kl_pq_qp": r.numbers["gaussian_kl_pq_qp"]}
    return Answer("ex2-q2", formulas, text, _claims(results, "kl_nonnegative"), numbers=numbers)


def question3(results: Mapping[str, ClaimResult]) -> Answer:
    """Ex.2 Q3: the closed form, shown at EXAMPLE_MU, EXAMPLE_SIGMA with `prob.gaussian_kl`."""
    mu, sigma = EXAMPLE_MU, EXAMPLE_SIGMA
    value = float(prob.gaussian_kl(torch.tensor([[mu]], dtype=torch.float64),
                                   torch.tensor([[2 * math.log(sigma)]], dtype=torch.float64)))
    formulas = [r"D_{KL}(\mathcal{N}(\mu, \sigma^2) \,\|\, \mathcal{N}(0, 1)) = -\frac{1}{2}\left(\log "
                r"\sigma^2 + 1 - \sigma^2 - \mu^2\right)",
                rf"\mu = {mu},\ \sigma = {sigma}:\ -\frac{{1}}{{2}}\left(\log {sigma**2:.2f} + 1 "
                rf"- {sigma**2:.2f} - {mu**2:.2f}\right) = {value:.4f} \text{{ nats}}"]
    text = ("The sheet's final formula is right (vaekit's `prob.gaussian_kl_per_dim`); two lines of its "
            "derivation carry a wrong sign (errata below).")
    return Answer("ex2-q3", formulas, text, _claims(results, "kl_closed_form"),
                  numbers={"mu": mu, "sigma": sigma, "kl": value})


def question4(run: VaeRun) -> Answer:
    """Ex.2 Q4: the loss; the Q6 model's test terms filled in."""
    e = run.evaluation
    total = e["test_recon"] + e["test_kl"]
    formulas = [r"\mathcal{L}(x) = -\mathbb{E}_{z \sim q_\psi(z|x)}[\log p_\theta(x|z)] - \frac{1}{2}"
                r"\sum_{j=1}^{d}\left(\log \sigma_j^2 + 1 - \sigma_j^2 - \mu_j^2\right)",
                rf"\text{{test, the Q6 model:}}\ {e['test_recon']:.2f} + {e['test_kl']:.2f} = "
                rf"{total:.2f} \text{{ nats per image}}"]
    text = ("The loss is minus the ELBO: a reconstruction term (the expected log-likelihood, "
            "estimated by sampling z) and the closed-form KL of Q3, summed over the latent dimensions.")
    check = Check("-ELBO = reconstruction + KL", abs(total - e["test_neg_elbo"]) < 1e-2,
                  f"test reconstruction {e['test_recon']:.4f} + KL {e['test_kl']:.4f} = {total:.4f}; "
                  f"eval's -ELBO {e['test_neg_elbo']:.4f}")
    numbers = {"test_recon": e["test_recon"], "test_kl": e["test_kl"], "test_neg_elbo": e["test_neg_elbo"]}
    return Answer("ex2-q4", formulas, text, [check], numbers=numbers)


def question5(results: Mapping[str, ClaimResult], work: Path) -> Answer:
    """Ex.2 Q5: Monte Carlo with the score function or the reparameterization; their variance."""
    formulas = [r"\mathbb{E}_{q}[-\log p_\theta(x|z)] \approx \frac{1}{S}\sum_{s=1}^{S} -\log p_\theta(x "
                r"\mid \mu + \sigma \odot \epsilon_s),\quad \epsilon_s \sim \mathcal{N}(0, I)",
                r"\nabla_\psi \mathbb{E}_{q_\psi}[f(z)] = \mathbb{E}_{q_\psi}[f(z) \nabla_\psi \log "
                r"q_\psi(z|x)] \quad \text{(score function, policy gradient)}"]
    text = ("The expectation is estimated by Monte Carlo over samples of z; its gradient with respect "
            "to the encoder either by the score function (unbiased, high variance) or by writing "
            "$z = \\mu + \\sigma \\epsilon$ and differentiating through it (the reparameterization "
            "trick: unbiased, far lower variance).")
    figures = []
    answer_tables = []
    if "variance" in results:
        figures.append((variance_figure(results["variance"], work / "variance.png"),
                        "Variance of each gradient estimator against the latent dimension."))
        table: list[dict] = results["variance"].details.get("table") or []
        rows = [tuple(row.values()) for row in table if row.get("n") == 1]
        if rows:
            answer_tables.append(Table(
                "Variance of the one-sample gradient estimate per coordinate (vaekit check: variance; "
                "n samples divide it by n)", tuple(table[0].keys()), rows, (1, 3, 4, 5)))
    if "training" in results:
        figures.append((training_figure(results["training"], work / "training.png"),
                        "The same VAE trained with each estimator: held-out -ELBO against the step."))
    checks = _claims(results, "reparam_unbiased", "score_unbiased", "variance", "training")
    return Answer("ex2-q5", formulas, text, checks, answer_tables, figures)


@torch.no_grad()
def one_sample_check(run: VaeRun, seed: int, images: int = 1000, k: int = 100) -> Check:
    """One sample (K = 1, the sheet's Q6) estimates the same -ELBO as K samples: on `images` test
    images, `prob.negative_elbo` with K = 1 and with K = k, their paired difference within 4
    standard errors of 0."""
    x = run.x[:images]
    g = torch.Generator().manual_seed(seed)
    one = prob.negative_elbo(x, run.model, k=1, generator=g).neg_elbo.double()  # (N,)
    many = prob.negative_elbo(x, run.model, k=k, generator=g).neg_elbo.double()  # (N,)
    diff = one - many
    z = float(diff.mean() / (diff.std() / math.sqrt(len(diff))))
    numbers = {"images": len(x), "k": k, "one_sample": float(one.mean()), "k_samples": float(many.mean()),
               "z": z, "one_sample_std": float(diff.std())}
    return Check("one sample is unbiased", abs(z) <= 4.0,
                 f"on {len(x):,} test images the one-sample loss averages {float(one.mean()):.3f} nats, "
                 f"the {k}-sample one {float(many.mean()):.3f} (z = {z:+.2f}); one sample's own spread "
                 f"per image is {float(diff.std()):.2f} nats: unbiased, noisy", numbers)


DATA_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "kmnist": "KMNIST",
               "digits": "scikit-learn's 8x8 digits"}


def nats_caption(data: str) -> str:
    """The caption of Q6's table for a run trained on `data` (its config's data name): the published
    numbers are on Fashion-MNIST, the run's on its own set, said as such where they differ."""
    published = "published: the Exemplar VAE paper's table"
    if data == "fashion-mnist":
        return f"Test nats per image on Fashion-MNIST ({published})"
    title = DATA_TITLES.get(data, repr(data if len(data) <= 60 else "..." + data[-57:]))
    return f"Test nats per image: this run on {title}, not comparable to the {published} on Fashion-MNIST"


def question6(run: VaeRun, seed: int = 0) -> Answer:
    """Ex.2 Q6: the corrected one-sample loss, the run's numbers beside the published table."""
    e, m, t = run.evaluation, run.config.model, run.config.train
    sizes = "-".join(str(s) for s in [784 if not m.image_shape else math.prod(m.image_shape), *m.hidden,
                                      m.latent])
    formulas = [r"\mathcal{L}(x) = -\log p_\theta(x \mid z = \mu_x + \sigma_x \epsilon) - \frac{1}{2}"
                r"\sum_{j=1}^{d}\left(\log \sigma_{x,j}^2 + 1 - \sigma_{x,j}^2 - \mu_{x,j}^2\right)",
                r"\epsilon \sim \mathcal{N}(0, I),\quad \mu_x = q_\mu(q_{enc}(x)),\quad \log \sigma_x^2 = "
                r"q_{logvar}(q_{enc}(x)),\quad \sigma_x = \exp(\tfrac{1}{2} \log \sigma_x^2)"]
    seconds = sum(float(r.get("epoch_seconds") or 0.0) for r in run.metrics)
    where = "trained by this command" if run.trained_here else f"read from {run.path}"
    text = (f"The model: an MLP VAE {sizes} ({m.kind}, {m.likelihood} decoder), objective {t.objective} "
            f"with {t.samples} sample(s), {t.epochs} epochs, {where}; {len(run.metrics)} epochs in "
            f"{seconds:.0f} s of training. Its test -ELBO and importance-weighted -log p(x) "
            f"(k = {e['k']:,}) stand beside the published table (k = 5,000, ~2,000 GPU epochs).")
    rows = [(f"this run: -log p(x), k = {e['k']:,}", e["test_nll"]), ("this run: -ELBO", e["test_neg_elbo"])]
    rows += [(f"published: {name}", value) for name, value in PUBLISHED.items()]
    table = Table(nats_caption(run.config.data.name), ("model", "nats"), rows, (1,))
    names = {"learning_curves": "Learning curves of the run (metrics.jsonl).",
             "reconstructions": "Test images over their reconstructions.",
             "samples": "Samples: E[x | z] for z ~ N(0, I)."}
    figures = [(run.figures[n], caption) for n, caption in names.items() if n in run.figures]
    numbers = {"run": str(run.path), "trained_here": run.trained_here, "epochs": len(run.metrics),
               "train_seconds": seconds, "test_nll": e["test_nll"], "test_neg_elbo": e["test_neg_elbo"],
               "k": e["k"], "published": PUBLISHED, "model": sizes, "samples": t.samples,
               "data": run.config.data.name}
    check = one_sample_check(run, seed)
    numbers["one_sample"] = check.numbers
    return Answer("ex2-q6", formulas, text, [check], [table], figures, numbers)
