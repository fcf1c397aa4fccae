"""Planted bugs shared by the tests of the estimators and of `vaekit check`: each must be caught."""

from __future__ import annotations

import torch
from torch import Tensor

from vaekit.vae import prob


def score_loss_without_score_term(x: Tensor, model: prob.VAE, k: int = 1, baseline: float | None = None,
                                  generator: torch.Generator | None = None) -> prob.Terms:
    """The sample detached and nothing in its place: the encoder learns only from the KL."""
    mu, logvar = model.encode(x)
    z = prob.reparameterize(mu, logvar, prob.draw_eps(mu, k, generator)).detach()
    recon = -prob.log_px_samples(model, x, z).mean(dim=0)
    kl_d = prob.gaussian_kl_per_dim(mu, logvar)
    return prob.Terms(recon + kl_d.sum(-1), recon + kl_d.sum(-1), recon, kl_d.sum(-1), kl_d)
