"""What a trained VAE draws, as arrays: reconstructions, prior samples, latent interpolations, the
decoded manifold and the latent means; and `write_figures`, which turns them into RUN_DIR/figures/.

Every picture shows the mean of p(x|z) (sigmoid of the logits for a Bernoulli decoder), not a
sample of it: a Bernoulli sample is salt-and-pepper noise around that mean. For an autoregressive
decoder, whose mean has no closed form, it shows what `model.decode` gives: the pixel probabilities
of its mean-field pass (`vaekit.vae.autoregressive`).

Devices: everything is computed where the model is (its parameters' device), images given on
another device (the CPU's test set) are copied there batch by batch, and the arrays come back on
that device (`vaekit.report.figures` copies what it draws to the CPU). Prior draws come from a
generator on the model's device seeded with `seed`: the same seed draws the same images on a
device, but a CUDA generator draws other numbers than the CPU's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaekit.evaluate.latents import ACTIVE_THRESHOLD
from vaekit.report import figures
from vaekit.vae.prob import VAE, decoder_mean, placement

FIGURES_DIR = "figures"
BATCH = 1000


def _decode_mean(model: VAE, z: Tensor) -> Tensor:
    """Mean of p(x|z) for z (N, D), in batches."""
    return torch.cat([decoder_mean(model.decode(z[i : i + BATCH])) for i in range(0, z.shape[0], BATCH)])


@torch.inference_mode()
def latent_means(model: VAE, x: Tensor) -> Tensor:
    """mu(x) of q(z|x) for images x (N, ...), in batches copied to the model's device: (N, D) there."""
    device = placement(model)[1]
    return torch.cat([model.encode(x[i : i + BATCH].to(device))[0] for i in range(0, x.shape[0], BATCH)])


@torch.inference_mode()
def reconstruct(model: VAE, x: Tensor) -> Tensor:
    """E[x | z = mu(x)]: the decoder mean at the posterior mean, shaped like x."""
    return _decode_mean(model, latent_means(model, x)).reshape(x.shape)


@torch.inference_mode()
def sample_prior(model: VAE, n: int, seed: int = 0) -> Tensor:
    """E[x | z] for n draws z ~ p(z) from a generator on the model's device seeded with `seed`:
    (n, C, H, W) there. The model's own `sample` where it has one (its prior: N(0, I), the
    VampPrior's mixture, or ancestral through two stochastic layers), else z ~ N(0, I) decoded."""
    dtype, device = placement(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    if hasattr(model, "sample_prior"):
        return torch.cat([model.sample(min(BATCH, n - i), generator)  # type: ignore[attr-defined]
                          for i in range(0, n, BATCH)])
    z = torch.randn(n, model.latent_dim, generator=generator, dtype=dtype, device=device)
    return _decode_mean(model, z)


@torch.inference_mode()
def interpolate(model: VAE, xa: Tensor, xb: Tensor, steps: int = 10) -> Tensor:
    """Decoder means along the segment mu(a) + t (mu(b) - mu(a)), t = 0..1 in `steps` steps, for
    pairs of images (R, ...) -> (R, steps, C, H, W)."""
    ma, mb = latent_means(model, xa), latent_means(model, xb)  # (R, D)
    t = torch.linspace(0.0, 1.0, steps, dtype=ma.dtype, device=ma.device).view(1, steps, 1)
    z = ma.unsqueeze(1) + t * (mb - ma).unsqueeze(1)  # (R, S, D)
    r = ma.shape[0]
    out = _decode_mean(model, z.reshape(r * steps, -1))
    return out.reshape(r, steps, *out.shape[1:])


def prior_quantiles(n: int, low: float = 0.05) -> tuple[Tensor, Tensor]:
    """n equally spaced probabilities from `low` to 1 - `low`, and z = Phi^-1(p) = sqrt(2)
    erfinv(2p - 1), the standard normal quantile function (Kingma & Welling 2014, figure 4). On the
    CPU, in float64."""
    p = torch.linspace(low, 1.0 - low, n, dtype=torch.float64, device="cpu")
    return p, math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)


@torch.inference_mode()
def manifold_grid(model: VAE, n: int = 20) -> tuple[Tensor, list[float]]:
    """For a 2-D latent: images decoded on the n x n grid of prior quantiles, (n, n, C, H, W), row
    i at z_2 = Phi^-1(p_{n-1-i}) (up is larger z_2), column j at z_1 = Phi^-1(p_j), decoded on the
    model's device; and the p."""
    if model.latent_dim != 2:
        raise ValueError(f"the manifold needs a 2-D latent, this one has {model.latent_dim} dims")
    p, q = prior_quantiles(n)
    z1, z2 = torch.meshgrid(q, q.flip(0), indexing="xy")  # (n, n): column j, row i
    dtype, device = placement(model)
    z = torch.stack([z1, z2], dim=-1).reshape(n * n, 2).to(device, dtype)
    out = _decode_mean(model, z)
    return out.reshape(n, n, *out.shape[1:]), p.tolist()


def pca_2d(points: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Projection of centred points (N, D) on their two first principal axes (SVD), and the share
    of variance each explains."""
    a = points.detach().double().cpu().numpy()
    a = a - a.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    var = s**2
    k = min(2, vt.shape[0])
    proj = a @ vt[:k].T
    if k < 2:
        proj = np.concatenate([proj, np.zeros((a.shape[0], 2 - k))], axis=1)
    return proj, var[:2] / max(var.sum(), 1e-300)


def write_figures(model: VAE, x: Tensor, out_dir: str | Path, labels: Tensor | None = None,
                  classes: Sequence[str] | None = None, metrics: Sequence[dict[str, Any]] = (),
                  evaluation: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Path]:
    """All figures of a run into `out_dir` (RUN_DIR/figures): name -> path, in report order.

    `x`: test images as the model sees them (N, C, H, W), on any device; `metrics`: metrics.jsonl
    rows; `evaluation`: eval.json (for per-dim KL and active units). The interpolated pairs are
    drawn on the CPU from `seed` (the same pairs on every device).
    """
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    if metrics:
        paths["learning_curves"] = figures.learning_curves(metrics, out / "learning_curves.png")
    n = min(30, x.shape[0])
    paths["reconstructions"] = figures.reconstructions(x[:n], reconstruct(model, x[:n]),
                                                        out / "reconstructions.png", ncols=10)
    paths["samples"] = figures.image_grid(sample_prior(model, 64, seed), out / "samples.png", ncols=8,
                                          title="means of p(x|z) for z ~ N(0, I)")
    pairs = min(8, x.shape[0] // 2)
    if pairs:
        g = torch.Generator(device="cpu").manual_seed(seed)
        idx = torch.randperm(x.shape[0], generator=g, device="cpu")[: 2 * pairs].to(x.device)
        rows = interpolate(model, x[idx[:pairs]], x[idx[pairs:]], steps=10)
        # the two real test images at both ends of each row
        rows = torch.cat([x[idx[:pairs]].unsqueeze(1).to(rows.device, rows.dtype), rows,
                          x[idx[pairs:]].unsqueeze(1).to(rows.device, rows.dtype)], dim=1)
        paths["interpolations"] = figures.interpolations(
            rows, out / "interpolations.png",
            title="test image a | decoded mu_a + t (mu_b - mu_a), t = 0..1 | test image b")
    mu = latent_means(model, x)
    if model.latent_dim == 2:
        grid, quantiles = manifold_grid(model, 20)
        paths["manifold"] = figures.manifold(grid, quantiles, out / "manifold.png")
        paths["latent_space"] = figures.latent_scatter(mu, out / "latent_space.png", labels, classes)
    else:
        proj, ratio = pca_2d(mu)
        paths["latent_space"] = figures.latent_scatter(
            proj, out / "latent_space.png", labels, classes,
            title=f"PCA of the {model.latent_dim}-D latent means of test images",
            axis_labels=(f"PC 1 ({100 * ratio[0]:.1f}% of variance)",
                         f"PC 2 ({100 * ratio[1]:.1f}% of variance)"))
    if evaluation is not None and evaluation.get("kl_per_dim"):
        variances = evaluation.get("latent_mean_variance")
        active = None if variances is None else [v > ACTIVE_THRESHOLD for v in variances]
        paths["kl_per_dim"] = figures.kl_per_dim(evaluation["kl_per_dim"], out / "kl_per_dim.png", active)
    return paths
