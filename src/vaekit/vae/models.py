"""The VAEs of the sheet (TD-2, Exercise 2 Q6): an MLP and a convolutional version.

Both follow the sheet's names:

    q_enc      x -> h            a representation of x (MLP, or strided convolutions then an MLP)
    q_mu       h -> mu_x         mean of q(z|x) = N(mu_x, diag sigma_x^2)
    q_logvar   h -> log sigma_x^2   (the sheet's q_sigma, parameterized by its log: see
                                  `prob.reparameterize` for why)
    p_dec      z -> parameters of p(x|z)

Models return distribution parameters only; the loss lives in `vaekit.vae.prob` (`negative_elbo`,
`negative_iwae`). `decode(z)` returns Bernoulli logits (B, C, H, W) for the 'bernoulli' likelihood,
or `(mean, logvar)` for the 'gaussian' one, where `logvar` is a learned parameter of shape (C, H, W)
('pixel') or (1, 1, 1) ('global') that broadcasts against the images.

The pieces both models are built of, and `VAEBase`, are in `vaekit.vae.base` (the two-layer
`vaekit.vae.hierarchical` builds on them too); `build_model` builds any of the three from a config.
"""

from __future__ import annotations

from torch import nn

from vaekit.config import ModelConfig, TrainConfig, check_image_shape
from vaekit.data.binarize import log_px_offset
from vaekit.errors import ConfigError
from vaekit.vae.base import (
    ACTIVATIONS,
    ConvGeometry,
    VAEBase,
    conv_decoder,
    conv_encoder,
    mlp_decoder,
    mlp_encoder,
)
from vaekit.vae.hierarchical import HierarchicalVAE


class MLPVAE(VAEBase):
    """The sheet's VAE (Ex.2 Q6): q_enc an MLP of `hidden` sizes, linear heads q_mu and q_logvar,
    p_dec the mirrored MLP. hidden=[400], latent=20 is pytorch/examples' `vae/main.py` model
    (784-400-20-400-784); hidden=[] makes both maps linear."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: list[int], latent: int = 20,
                 likelihood: str = "bernoulli", variance: str = "pixel", activation: str = "relu",
                 gated: bool = False, prior: str = "standard", pseudo_inputs: int = 500,
                 autoregressive: int = 0, autoregressive_dropout: float = 0.0,
                 autoregressive_window: int = 0) -> None:
        super().__init__(image_shape, latent, likelihood, variance, prior, pseudo_inputs, autoregressive,
                         autoregressive_dropout, autoregressive_window)
        self.q_enc, features = mlp_encoder(self.image_shape, hidden, activation, gated)
        self.q_mu = nn.Linear(features, latent)
        self.q_logvar = nn.Linear(features, latent)
        self.p_dec = mlp_decoder(latent, self.image_shape, hidden, activation, gated)


class ConvVAE(VAEBase):
    """Strided Conv2d encoder, ConvTranspose2d decoder (DCGAN-like), for any image size the
    arithmetic allows.

    Encoder: Conv2d(k, s, p=(k-1)//2) per entry of `channels`, then optional dense layers `hidden`.
    Sizes follow H_out = floor((H_in + 2p - (k-1) - 1)/s + 1) (`vaekit.arch.arith.conv2d_output_size`);
    28 -> 14 -> 7 for k=4, s=2. The decoder mirrors it with ConvTranspose2d, each given the
    output_padding that brings (H_in - 1)s - 2p + (k-1) + output_padding + 1
    (`vaekit.arch.arith.conv_transpose2d_output_size`) back to the encoder's size at that depth, so odd sizes
    (7 -> 3 -> 7) come back exactly.
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int], latent: int = 20,
                 hidden: list[int] | None = None, likelihood: str = "bernoulli", variance: str = "pixel",
                 activation: str = "relu", kernel_size: int = 4, stride: int = 2, gated: bool = False,
                 prior: str = "standard", pseudo_inputs: int = 500,
                 autoregressive: int = 0, autoregressive_dropout: float = 0.0,
                 autoregressive_window: int = 0) -> None:
        super().__init__(image_shape, latent, likelihood, variance, prior, pseudo_inputs, autoregressive,
                         autoregressive_dropout, autoregressive_window)
        geometry = ConvGeometry.of(self.image_shape, channels, kernel_size, stride)
        self.q_enc, features = conv_encoder(geometry, list(hidden or []), activation, gated)
        self.q_mu = nn.Linear(features, latent)
        self.q_logvar = nn.Linear(features, latent)
        self.p_dec = conv_decoder(latent, geometry, list(hidden or []), activation, gated)


def build_model(config: TrainConfig | ModelConfig) -> VAEBase:
    """The model a config describes; `image_shape` must be set (the trainer fills it from the data).
    From a TrainConfig of dequantized x, its log p(x|z) are of the 8-bit pixels (`log_px_offset`)."""
    m = config.model if isinstance(config, TrainConfig) else config
    if m.image_shape is None:
        raise ConfigError("model.image_shape must be [C, H, W], got None.")
    check_image_shape(list(m.image_shape), "model.image_shape")  # 1 or 3 channels: fit of a Python dataset
    c, h, w = m.image_shape
    shape = (int(c), int(h), int(w))
    if m.activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {m.activation!r}; valid values are {', '.join(ACTIVATIONS)}.")
    if m.kind not in ("mlp", "conv"):
        raise ConfigError(f"unknown model {m.kind!r}; valid values are mlp, conv.")
    common = {"likelihood": m.likelihood, "variance": m.variance, "activation": m.activation,
              "gated": m.gated, "prior": m.prior, "pseudo_inputs": m.pseudo_inputs,
              "autoregressive": m.autoregressive, "autoregressive_dropout": m.autoregressive_dropout,
              "autoregressive_window": m.autoregressive_window}
    model: VAEBase
    if m.stochastic_layers == 2:
        model = HierarchicalVAE(shape, m.kind, list(m.hidden), m.latent, list(m.channels), m.kernel_size,
                                m.stride, **common)  # type: ignore[arg-type]
    elif m.kind == "mlp":
        model = MLPVAE(shape, list(m.hidden), m.latent, **common)  # type: ignore[arg-type]
    else:
        model = ConvVAE(shape, list(m.channels), m.latent, list(m.hidden), kernel_size=m.kernel_size,
                        stride=m.stride, **common)  # type: ignore[arg-type]
    if isinstance(config, TrainConfig):  # what x is: the data's business (a ModelConfig alone: 0)
        model.log_px_offset = log_px_offset(config.resolved_binarize(), c * h * w)
    return model
