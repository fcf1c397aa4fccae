"""A VAE whose log p(x) and true posterior are known in closed form: the linear-Gaussian model.

    p(z) = N(0, I_D),  p(x|z) = N(W z + b, s^2 I_P)   =>   p(x) = N(x; b, W W^T + s^2 I_P),
    p(z|x) = N(m(x), S),  S = (I_D + W^T W / s^2)^{-1},  m(x) = S W^T (x - b) / s^2

(probabilistic PCA: Tipping & Bishop 1999, eqs. 6-7; Bishop, PRML section 12.2). The encoder is
amortized and linear, q(z|x) = N(A (x - b) + c, diag exp(l)); it equals the true posterior when
A = S W^T / s^2, c = 0 and S is diagonal, which holds when W has orthogonal columns
(`orthogonal=True`). This is the yardstick for the sheet's Ex.2 Q1 (ELBO <= log p(x), gap = KL to
the true posterior) and for the importance-weighted NLL estimator, which must converge to log p(x).
Everything is float64 so that identities hold to float precision.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vaekit.vae.prob import LOG_2PI, gaussian_kl, log_normal_diag


class LinearGaussianVAE(nn.Module):
    likelihood = "gaussian"

    def __init__(self, data_dim: int, latent_dim: int, noise_std: float = 0.5, seed: int = 0,
                 orthogonal: bool = True) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.data_dim, self.latent_dim = data_dim, latent_dim
        w = torch.randn(data_dim, latent_dim, generator=g, dtype=torch.float64)
        if orthogonal:  # orthogonal columns with distinct lengths: a diagonal posterior covariance
            q, _ = torch.linalg.qr(w)
            w = q * torch.linspace(0.5, 2.0, latent_dim, dtype=torch.float64)
        self.W = nn.Parameter(w)  # (P, D)
        self.b = nn.Parameter(torch.randn(data_dim, generator=g, dtype=torch.float64) * 0.3)
        self.log_s2 = nn.Parameter(torch.tensor(2.0 * math.log(noise_std), dtype=torch.float64))
        # amortized linear encoder: mu = A (x - b) + c, logvar = l (random start)
        self.A = nn.Parameter(torch.randn(latent_dim, data_dim, generator=g, dtype=torch.float64) * 0.1)
        self.c = nn.Parameter(torch.randn(latent_dim, generator=g, dtype=torch.float64) * 0.1)
        self.l = nn.Parameter(torch.randn(latent_dim, generator=g, dtype=torch.float64) * 0.3)

    # -- the VAE protocol of vaekit.vae.prob
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = (x - self.b) @ self.A.T + self.c  # (B, D)
        return mu, self.l.expand_as(mu)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z @ self.W.T + self.b, self.log_s2  # (B, P), scalar

    # -- closed forms
    def marginal_cov(self) -> Tensor:
        """W W^T + s^2 I: the covariance of p(x)."""
        s2 = self.log_s2.exp()
        return self.W @ self.W.T + s2 * torch.eye(self.data_dim, dtype=self.W.dtype)

    def log_marginal(self, x: Tensor) -> Tensor:
        """log p(x) = log N(x; b, W W^T + s^2 I), exactly, per row of x (B, P) -> (B,)."""
        chol = torch.linalg.cholesky(self.marginal_cov())
        diff = (x - self.b).T  # (P, B)
        sol = torch.linalg.solve_triangular(chol, diff, upper=False)  # (P, B)
        logdet = 2.0 * chol.diagonal().log().sum()
        return -0.5 * (self.data_dim * LOG_2PI + logdet + sol.pow(2).sum(dim=0))

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The true posterior p(z|x) = N(m(x), S): means (B, D) and covariance S (D, D)."""
        s2 = self.log_s2.exp()
        eye = torch.eye(self.latent_dim, dtype=self.W.dtype)
        cov = torch.linalg.inv(eye + self.W.T @ self.W / s2)
        mean = (x - self.b) @ self.W @ cov / s2  # (B, D); S symmetric
        return mean, cov

    def kl_to_posterior(self, x: Tensor) -> Tensor:
        """KL(q(z|x) || p(z|x)) for the current encoder, exactly, (B,):

        1/2 [tr(S^-1 Sigma_q) + (m - mu)^T S^-1 (m - mu) - D + log det S - log det Sigma_q].
        """
        mu, logvar = self.encode(x)
        m, cov = self.posterior(x)
        prec = torch.linalg.inv(cov)
        diff = m - mu  # (B, D)
        trace = (prec.diagonal() * logvar.exp()).sum(dim=-1)
        maha = ((diff @ prec) * diff).sum(dim=-1)
        return 0.5 * (trace + maha - self.latent_dim + torch.logdet(cov) - logvar.sum(dim=-1))

    def elbo(self, x: Tensor) -> Tensor:
        """The ELBO of the current encoder, exactly (no sampling), (B,):

        E_q[log p(x|z)] - KL(q || p(z)) with
        E_q[log p(x|z)] = log N(x; W mu + b, s^2 I) - tr(W diag(sigma^2) W^T) / (2 s^2).
        """
        mu, logvar = self.encode(x)
        mean, log_s2 = self.decode(mu)
        trace = (self.W.pow(2).sum(dim=0) * logvar.exp()).sum(dim=-1)  # tr(W diag(var) W^T)
        expected_log_px = log_normal_diag(x, mean, log_s2) - 0.5 * trace / log_s2.exp()
        return expected_log_px - gaussian_kl(mu, logvar)

    @torch.no_grad()
    def set_optimal_encoder(self) -> None:
        """Make q(z|x) the true posterior (exact when S is diagonal, i.e. `orthogonal=True`)."""
        s2 = self.log_s2.exp()
        _, cov = self.posterior(torch.zeros(1, self.data_dim, dtype=self.W.dtype))
        self.A.copy_(cov @ self.W.T / s2)
        self.c.zero_()
        self.l.copy_(cov.diagonal().log())

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x), (n, P)."""
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=self.W.dtype)
        noise = torch.randn(n, self.data_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.log_s2.mul(0.5).exp() * noise
