"""The VAEs of the sheet (TD-2, Exercise 2 Q6): an MLP and a convolutional version.

Both follow the sheet's names:

    q_enc      x -> h            a representation of x (MLP, or strided convolutions then an MLP)
    q_mu       h -> mu_x         mean of q(z|x) = N(mu_x, diag sigma_x^2)
    q_logvar   h -> log sigma_x^2   (the sheet's q_sigma, parameterized by its log: see
                                  `prob.reparameterize` for why)
    p_dec      z -> parameters of p(x|z)

Models return distribution parameters only; the loss lives in `vaekit.prob` (`negative_elbo`,
`negative_iwae`). `decode(z)` returns Bernoulli logits (B, C, H, W) for the 'bernoulli' likelihood,
or `(mean, logvar)` for the 'gaussian' one, where `logvar` is a learned parameter of shape (C, H, W)
('pixel') or (1, 1, 1) ('global') that broadcasts against the images.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vaekit.arch.arith import conv2d_output_size, conv_transpose2d_output_size
from vaekit.config import ModelConfig, TrainConfig
from vaekit.errors import ConfigError
from vaekit.vae.prob import DecoderOutput, decoder_mean

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
# Floor of a Gaussian decoder's log-variance: sigma >= 0.01 in pixel units of [0, 1]. Without it a
# pixel that is always 0 (the background of Fashion-MNIST) drives sigma -> 0 and log p(x|z) -> +inf.
GAUSSIAN_LOGVAR_MIN = math.log(1e-4)


def _mlp(sizes: list[int], activation: str, last_activation: bool) -> list[nn.Module]:
    """Linear layers between consecutive sizes, an activation after each (but the last, unless
    `last_activation`)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or last_activation:
            layers.append(ACTIVATIONS[activation]())
    return layers


class VAEBase(nn.Module):
    """What both VAEs share: the heads, the likelihood, encode/decode and the parameter count."""

    q_enc: nn.Module
    q_mu: nn.Linear
    q_logvar: nn.Linear
    p_dec: nn.Module

    def __init__(self, image_shape: tuple[int, int, int], latent: int, likelihood: str,
                 variance: str) -> None:
        super().__init__()
        if latent < 1:
            raise ConfigError(f"latent size must be at least 1, got {latent}.")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ConfigError(f"unknown likelihood {likelihood!r}; valid values are bernoulli, gaussian.")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = latent
        self.likelihood = likelihood
        if likelihood == "gaussian":
            shape = self.image_shape if variance == "pixel" else (1, 1, 1)
            self.p_logvar = nn.Parameter(torch.zeros(shape))  # log sigma^2 of p(x|z), learned

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, C, H, W) -> (mu, logvar) of q(z|x), each (B, D)."""
        h = self.q_enc(x)
        return self.q_mu(h), self.q_logvar(h)

    def decode(self, z: Tensor) -> DecoderOutput:
        """z (B, D) -> logits (B, C, H, W), or (mean (B, C, H, W), logvar (C, H, W) or (1, 1, 1))."""
        out = self.p_dec(z)
        if self.likelihood == "bernoulli":
            return out
        return out, self.p_logvar.clamp(min=GAUSSIAN_LOGVAR_MIN)

    def decode_mean(self, z: Tensor) -> Tensor:
        """z (B, D) -> E[x|z] (B, C, H, W): the images a latent decodes to, in [0, 1] for Bernoulli."""
        return decoder_mean(self.decode(z))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from the model: z ~ p(z) = N(0, I), then E[x|z] (n, C, H, W)."""
        dtype = self.q_mu.weight.dtype
        device = self.q_mu.weight.device
        z = torch.randn((n, self.latent_dim), generator=generator, dtype=dtype, device=device)
        return self.decode_mean(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The parameters of q(z|x); the loss is `vaekit.prob.negative_elbo(x, model)`."""
        return self.encode(x)

    def num_parameters(self) -> int:
        """Trainable parameters (floats), like the sheet's Ex.1 counts."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class MLPVAE(VAEBase):
    """The sheet's VAE (Ex.2 Q6): q_enc an MLP of `hidden` sizes, linear heads q_mu and q_logvar,
    p_dec the mirrored MLP. hidden=[400], latent=20 is pytorch/examples' `vae/main.py` model
    (784-400-20-400-784); hidden=[] makes both maps linear."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: list[int], latent: int = 20,
                 likelihood: str = "bernoulli", variance: str = "pixel", activation: str = "relu") -> None:
        super().__init__(image_shape, latent, likelihood, variance)
        c, h, w = self.image_shape
        d = c * h * w
        enc_sizes = [d, *hidden]
        self.q_enc = nn.Sequential(nn.Flatten(), *_mlp(enc_sizes, activation, last_activation=True))
        self.q_mu = nn.Linear(enc_sizes[-1], latent)
        self.q_logvar = nn.Linear(enc_sizes[-1], latent)
        dec_sizes = [latent, *reversed(hidden), d]
        self.p_dec = nn.Sequential(
            *_mlp(dec_sizes, activation, last_activation=False),
            nn.Unflatten(1, (c, h, w)),  # (B, C*H*W) -> (B, C, H, W)
        )


def conv_sizes(size: int, n_layers: int, kernel_size: int, stride: int, padding: int) -> list[int]:
    """Feature-map sizes along one axis through `n_layers` strided convolutions: [in, ..., out]."""
    sizes = [size]
    for _ in range(n_layers):
        sizes.append(conv2d_output_size(sizes[-1], kernel_size, stride, padding))
    return sizes


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
                 activation: str = "relu", kernel_size: int = 4, stride: int = 2) -> None:
        super().__init__(image_shape, latent, likelihood, variance)
        c, h, w = self.image_shape
        hidden = list(hidden or [])
        k, s, p = kernel_size, stride, (kernel_size - 1) // 2
        hs = conv_sizes(h, len(channels), k, s, p)
        ws = conv_sizes(w, len(channels), k, s, p)
        if min(hs[-1], ws[-1]) < 1:
            raise ConfigError(
                f"an image of {h}x{w} is too small for {len(channels)} convolutions of kernel {k}, "
                f"stride {s}: the sizes go {hs} x {ws}; use fewer channels entries."
            )
        chans = [c, *channels]
        enc: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            enc += [nn.Conv2d(c_in, c_out, k, s, p), ACTIVATIONS[activation]()]
        flat = chans[-1] * hs[-1] * ws[-1]
        self.q_enc = nn.Sequential(*enc, nn.Flatten(),  # (B, C_L, H_L, W_L) -> (B, C_L*H_L*W_L)
                                   *_mlp([flat, *hidden], activation, last_activation=True))
        features = hidden[-1] if hidden else flat
        self.q_mu = nn.Linear(features, latent)
        self.q_logvar = nn.Linear(features, latent)

        dec: list[nn.Module] = _mlp([latent, *reversed(hidden), flat], activation, last_activation=True)
        dec.append(nn.Unflatten(1, (chans[-1], hs[-1], ws[-1])))  # (B, flat) -> (B, C_L, H_L, W_L)
        n = len(channels)
        for i in range(n, 0, -1):  # from depth n back to depth 0 (the image)
            pad_h = hs[i - 1] - conv_transpose2d_output_size(hs[i], k, s, p)
            pad_w = ws[i - 1] - conv_transpose2d_output_size(ws[i], k, s, p)
            if not (0 <= pad_h < s and 0 <= pad_w < s):
                raise ConfigError(
                    f"kernel {k} with stride {s} cannot be inverted by a transposed convolution on "
                    f"a {h}x{w} image; use kernel_size >= stride."
                )
            dec.append(nn.ConvTranspose2d(chans[i], chans[i - 1], k, s, p, output_padding=(pad_h, pad_w)))
            if i > 1:
                dec.append(ACTIVATIONS[activation]())
        self.p_dec = nn.Sequential(*dec)


def build_model(config: TrainConfig | ModelConfig) -> VAEBase:
    """The model a config describes; `image_shape` must be set (the trainer fills it from the data)."""
    m = config.model if isinstance(config, TrainConfig) else config
    if m.image_shape is None or len(m.image_shape) != 3:
        raise ConfigError(f"model.image_shape must be [C, H, W], got {m.image_shape}.")
    c, h, w = m.image_shape
    shape = (int(c), int(h), int(w))
    if m.activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {m.activation!r}; valid values are {', '.join(ACTIVATIONS)}.")
    if m.kind == "mlp":
        return MLPVAE(shape, list(m.hidden), m.latent, m.likelihood, m.variance, m.activation)
    if m.kind == "conv":
        return ConvVAE(shape, list(m.channels), m.latent, list(m.hidden), m.likelihood, m.variance,
                       m.activation, m.kernel_size, m.stride)
    raise ConfigError(f"unknown model {m.kind!r}; valid values are mlp, conv.")
