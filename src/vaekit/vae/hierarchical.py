"""A VAE with two stochastic layers: the HVAE of Tomczak & Welling, "VAE with a VampPrior"
(AISTATS 2018, section 2.3 and appendix, "two-layered VAE"), MLP or convolutional.

Generative model (top-down), z2 the top layer, z1 the layer next to x, each of `latent` dims:

    p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2)
    p(z2)        = N(0, I), or the VampPrior 1/K sum_k q(z2 | u_k)        (`vaekit.vae.priors`)
    p(z1 | z2)   = N(z1; mu_p(z2), diag sigma_p^2(z2))                    p1_dec, p1_mu, p1_logvar
    p(x | z1, z2) = Bernoulli or Gaussian of p_dec([z1, z2])              p_dec

Inference model (bottom-up, then conditioned on the top layer):

    q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x)
    q(z2 | x)     = N(z2; mu(x), diag sigma^2(x))                        q_enc, q_mu, q_logvar
    q(z1 | x, z2) = N(z1; mu(h(x), z2), diag sigma^2(h(x), z2))           q1_enc, q1_mu, q1_logvar

q_enc is the single-layer model's encoder (dense, or strided convolutions then dense) and p_dec its
decoder, fed [z1, z2] (2 x latent inputs). The log-variances of the z1 layer are clamped to
[-6, 2] by a hardtanh as in the authors' code, so that p(z1|z2) cannot collapse to a point.

The importance weights use both layers (IWAE eq. 8 with z = (z1, z2)):

    log w = log p(x | z1, z2) + log p(z1 | z2) + log p(z2) - log q(z1 | x, z2) - log q(z2 | x),

with z2 = mu(x) + sigma(x) eps2 and z1 = mu(x, z2) + sigma(x, z2) eps1, eps = [eps2, eps1] of
2 x latent dims per sample (`noise_dim`). No KL term is in closed form: the ELBO's KL is the Monte-
Carlo 1/K sum_k [log q(z_k|x) - log p(z_k)]. tests/vae/test_hierarchical.py holds `log_terms`
against torch.distributions, term by term.

For what treats a VAE as one latent (the report's maps, the explorer, `vaekit.__init__`'s API),
`encode(x)` is q(z2|x) and `decode(z2)` decodes at z1 = mu_p(z2), the mean of p(z1|z2); `sample`
is ancestral: z2 ~ p(z2), z1 ~ p(z1|z2), then E[x | z1, z2].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.vae.base import (
    GAUSSIAN_LOGVAR_MIN,
    ConvGeometry,
    VAEBase,
    _mlp,
    conv_decoder,
    conv_encoder,
    mlp_decoder,
    mlp_encoder,
)
from vaekit.vae.prob import (
    DecoderOutput,
    LogTerms,
    decoder_mean,
    log_normal_diag,
    log_px_samples,
    log_q_at_sample,
    reparameterize,
)

LOGVAR_MIN, LOGVAR_MAX = -6.0, 2.0  # the z1 layer's log sigma^2, clamped (the authors' hardtanh)


class HierarchicalVAE(VAEBase):
    """Two stochastic layers z2 -> z1 -> x (module docstring); `kind` 'mlp' or 'conv' chooses the
    encoder of x and the decoder of [z1, z2]."""

    def __init__(self, image_shape: tuple[int, int, int], kind: str, hidden: list[int], latent: int,
                 channels: list[int], kernel_size: int = 4, stride: int = 2, likelihood: str = "bernoulli",
                 variance: str = "pixel", activation: str = "relu", gated: bool = False,
                 prior: str = "standard", pseudo_inputs: int = 500,
                 autoregressive: int = 0, autoregressive_dropout: float = 0.0,
                 autoregressive_window: int = 0) -> None:
        super().__init__(image_shape, latent, likelihood, variance, prior, pseudo_inputs, autoregressive,
                         autoregressive_dropout, autoregressive_window)
        self.kind = kind
        if kind == "conv":
            geometry = ConvGeometry.of(self.image_shape, channels, kernel_size, stride)
            self.q_enc, features = conv_encoder(geometry, hidden, activation, gated)
        else:
            self.q_enc, features = mlp_encoder(self.image_shape, hidden, activation, gated)
        width = hidden[-1] if hidden else features  # the z1 layer's own hidden size
        self.q_mu = nn.Linear(features, latent)  # q(z2 | x)
        self.q_logvar = nn.Linear(features, latent)
        self.q1_enc = nn.Sequential(*_mlp([features + latent, width], activation, True, gated))
        self.q1_mu = nn.Linear(width, latent)  # q(z1 | x, z2)
        self.q1_logvar = nn.Linear(width, latent)
        self.p1_dec = nn.Sequential(*_mlp([latent, width], activation, True, gated))
        self.p1_mu = nn.Linear(width, latent)  # p(z1 | z2)
        self.p1_logvar = nn.Linear(width, latent)
        if kind == "conv":
            self.p_dec = conv_decoder(2 * latent, geometry, hidden, activation, gated)
        else:
            self.p_dec = mlp_decoder(2 * latent, self.image_shape, hidden, activation, gated)

    @property
    def noise_dim(self) -> int:
        return 2 * self.latent_dim  # eps = [eps2, eps1]

    @property
    def closed_form_kl(self) -> bool:
        return False

    def p_z1(self, z2: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of p(z1 | z2), (..., D) each."""
        h = self.p1_dec(z2)
        return self.p1_mu(h), F.hardtanh(self.p1_logvar(h), LOGVAR_MIN, LOGVAR_MAX)

    def q_z1(self, h: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z1 | x, z2) from the encoder's features h (B, F) and z2 (K, B, D)."""
        hq = self.q1_enc(torch.cat([h.expand(*z2.shape[:-1], h.shape[-1]), z2], dim=-1))
        return self.q1_mu(hq), F.hardtanh(self.q1_logvar(hq), LOGVAR_MIN, LOGVAR_MAX)

    def decode_pair(self, z12: Tensor) -> DecoderOutput:
        """[z1, z2] (B, 2D) -> the parameters of p(x | z1, z2)."""
        out = self.p_dec(z12)
        return out if self.likelihood == "bernoulli" else (out, self.p_logvar.clamp(min=GAUSSIAN_LOGVAR_MIN))

    def decode_net(self, z: Tensor) -> DecoderOutput:
        """z2 (B, D) -> p_dec's output at [z1 = mu_p(z2), z2], before any autoregressive term."""
        return self.decode_pair(torch.cat([self.p_z1(z)[0], z], dim=-1))

    def decode(self, z: Tensor) -> DecoderOutput:
        """z2 (B, D) -> p(x | z1 = mu_p(z2), z2): the top latent decoded at the mean of p(z1|z2)
        (for an autoregressive decoder, the logits of its mean-field pass: `shown`)."""
        z12 = torch.cat([self.p_z1(z)[0], z], dim=-1)
        return self.shown(self.decode_pair(z12), z12)

    def draw_x(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x | z1 = mu_p(z2), z2) for z2 (B, D): what `decode` shows, drawn."""
        z12 = torch.cat([self.p_z1(z)[0], z], dim=-1)
        return self.draw_from(self.decode_pair(z12), z12, generator)

    def log_terms(self, x: Tensor, eps: Tensor, encoded: tuple[Tensor, Tensor] | None = None) -> LogTerms:
        """log p(x|z1,z2), log p(z1|z2) + log p(z2), log q(z1|x,z2) + log q(z2|x) at the K samples
        of eps (K, B, 2D) = [eps2, eps1]; (K, B) each. `encoded` is ignored: q(z1|x, z2) needs the
        encoder's features, so the encoder runs here."""
        d = self.latent_dim
        h = self.q_enc(x)  # (B, F)
        mu2, logvar2 = self.q_mu(h), self.q_logvar(h)  # q(z2|x), (B, D)
        z2 = reparameterize(mu2, logvar2, eps[..., :d])  # (K, B, D)
        mu1, logvar1 = self.q_z1(h, z2)  # q(z1|x, z2), (K, B, D)
        z1 = reparameterize(mu1, logvar1, eps[..., d:])
        pm1, plv1 = self.p_z1(z2)  # p(z1|z2)
        log_px = log_px_samples(self, x, torch.cat([z1, z2], dim=-1), decode=self.decode_pair)
        log_pz = log_normal_diag(z1, pm1, plv1, batch_dims=2) + self.log_prior(z2, 2)
        log_qz = (log_q_at_sample(eps[..., d:], logvar1, batch_dims=2)
                  + log_q_at_sample(eps[..., :d], logvar2, batch_dims=2))
        return LogTerms(log_px, log_pz, log_qz)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral: z2 ~ p(z2), z1 ~ p(z1 | z2), then E[x | z1, z2] (n, C, H, W)."""
        z2 = self.sample_prior(n, generator)
        mu1, logvar1 = self.p_z1(z2)
        eps = torch.randn(mu1.shape, generator=generator, dtype=mu1.dtype, device=mu1.device)
        z1 = reparameterize(mu1, logvar1, eps)
        z12 = torch.cat([z1, z2], dim=-1)
        return decoder_mean(self.shown(self.decode_pair(z12), z12))
