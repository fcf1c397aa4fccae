"""What a trained VAE draws, as arrays: reconstructions, prior samples, latent interpolations, the
decoded manifold and the latent means (and their two principal axes). `vaekit.report.visualize`
turns them into a run's figures, `vaekit.train.tensorboard` into its image grids, `vaekit sample`
into a PNG.

Every picture shows the mean of p(x|z) (sigmoid of the logits for a Bernoulli decoder), not a
sample of it: a Bernoulli sample is salt-and-pepper noise around that mean. For an autoregressive
decoder, whose mean has no closed form, it shows what `model.decode` gives: the pixel probabilities
of its mean-field pass (`vaekit.vae.autoregressive`).

Devices: everything is computed where the model is (its parameters' device), images given on
another device (the CPU's test set) are copied there batch by batch, and the arrays come back on
that device. Prior draws come from a generator on the model's device seeded with `seed`: the same
seed draws the same images on a device, but a CUDA generator draws other numbers than the CPU's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from vaekit.vae.prob import VAE, decoder_mean, placement

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
