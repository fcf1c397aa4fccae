"""The prior p(z) of a VAE: the sheet's N(0, I), or the VampPrior.

    StandardNormal   p(z) = N(0, I)                                     (the sheet, Ex.2; AEVB)
    VampPrior        p(z) = 1/K sum_k q(z | u_k)                       (Tomczak & Welling 2018, eq. 9)

The VampPrior ("variational mixture of posteriors") is the mixture of the encoder's own posteriors
at K learned pseudo-inputs u_k, images of the data's shape trained with the rest of the model. It is
the approximation of the aggregate posterior q(z) = 1/N sum_n q(z|x_n), the prior that maximizes
the ELBO (ibid., eq. 7-8), by K << N points. Its KL to q(z|x) has no closed form: the ELBO then
takes KL(q(z|x) || p(z)) ~= 1/S sum_s [log q(z_s|x) - log p(z_s)] at the same samples z_s ~ q(z|x)
(ibid., eq. 4 and section 3.2), and training says so.

The pseudo-inputs are u_k = hardtanh(w_k, 0, 1) for free parameters w_k (ibid., section 3.2: the
identity matrix through a linear layer with a hardtanh, here the linear layer's weights directly),
initialized N(0.05, 0.01) as in the authors' code for binary images.

Both priors take `encode` (x -> (mu, logvar) of q(z|x)), which only the VampPrior uses.
tests/vae/test_priors.py holds `VampPrior.log_prob` against torch.distributions' MixtureSameFamily
and its samples against the mixture's moments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.vae.prob import LOG_2PI, log_standard_normal

Encode = Callable[[Tensor], tuple[Tensor, Tensor]]  # x (B, C, H, W) -> (mu, logvar), (B, D) each
PSEUDO_MEAN, PSEUDO_STD = 0.05, 0.01  # initial w_k ~ N(0.05, 0.01^2), the authors' setting
ROWS_PER_CALL = 2048  # mixture densities of this many z at once: (rows, K, D) floats in memory


class StandardNormal(nn.Module):
    """p(z) = N(0, I): the sheet's prior, no parameters."""

    closed_form_kl = True  # KL(N(mu, sigma^2) || N(0, I)) has the closed form of Ex.2 Q3
    name = "N(0, I)"

    def log_prob(self, z: Tensor, encode: Encode, batch_dims: int = 1) -> Tensor:
        """log N(z; 0, I), summed over the last dimension."""
        return log_standard_normal(z, batch_dims)

    def sample(self, n: int, dim: int, encode: Encode, generator: torch.Generator | None = None,
               like: Tensor | None = None) -> Tensor:
        """n draws z ~ N(0, I), (n, dim)."""
        ref = like if like is not None else torch.zeros(())
        return torch.randn((n, dim), generator=generator, dtype=ref.dtype, device=ref.device)


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k N(z; mu(u_k), diag sigma^2(u_k)), (mu, log sigma^2)(u_k) = encode(u_k)."""

    closed_form_kl = False
    name = "VampPrior"

    def __init__(self, n_pseudo: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.n_pseudo = n_pseudo
        self.w = nn.Parameter(torch.empty(n_pseudo, *image_shape).normal_(PSEUDO_MEAN, PSEUDO_STD))

    def pseudo_inputs(self) -> Tensor:
        """u_k = hardtanh(w_k, 0, 1), (K, C, H, W): images in [0, 1]."""
        return F.hardtanh(self.w, 0.0, 1.0)

    def components(self, encode: Encode) -> tuple[Tensor, Tensor]:
        """(mu_k, logvar_k), (K, D) each: the posteriors of the pseudo-inputs."""
        return encode(self.pseudo_inputs())

    def log_prob(self, z: Tensor, encode: Encode, batch_dims: int = 1) -> Tensor:
        """log p(z) = logsumexp_k log N(z; mu_k, diag sigma_k^2) - log K  (Tomczak & Welling 2018,
        eq. 9), z (..., D) -> (...). Each component's log-density in the direct form
        -1/2 sum_d [log 2pi + logvar_kd + (z_d - mu_kd)^2 / sigma_kd^2]: the expanded form by matrix
        products cancels large terms when sigma_k is small and loses float32 digits."""
        mu_k, logvar_k = self.components(encode)  # (K, D) each
        inv_var = torch.exp(-logvar_k)
        const = -0.5 * (LOG_2PI * z.shape[-1] + logvar_k.sum(dim=-1))  # (K,)
        flat = z.reshape(-1, 1, z.shape[-1])  # (N, 1, D)
        parts = []
        for start in range(0, flat.shape[0], ROWS_PER_CALL):
            rows = flat[start : start + ROWS_PER_CALL]
            quad = ((rows - mu_k).pow(2) * inv_var).sum(dim=-1)  # (n, K)
            parts.append(torch.logsumexp(const - 0.5 * quad, dim=-1))
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        return (out - math.log(self.n_pseudo)).reshape(z.shape[:-1])

    def sample(self, n: int, dim: int, encode: Encode, generator: torch.Generator | None = None,
               like: Tensor | None = None) -> Tensor:
        """n draws of the mixture: k ~ Uniform{1..K}, then z ~ q(z|u_k); (n, dim)."""
        mu_k, logvar_k = self.components(encode)
        k = torch.randint(0, self.n_pseudo, (n,), generator=generator, device=mu_k.device)
        eps = torch.randn((n, dim), generator=generator, dtype=mu_k.dtype, device=mu_k.device)
        return mu_k[k] + torch.exp(0.5 * logvar_k[k]) * eps


Prior = StandardNormal | VampPrior


def make_prior(kind: str, n_pseudo: int, image_shape: tuple[int, int, int]) -> Prior:
    """The prior of `model.prior`: 'standard' or 'vamp' (with `n_pseudo` pseudo-inputs)."""
    if kind == "vamp":
        return VampPrior(n_pseudo, image_shape)
    return StandardNormal()
