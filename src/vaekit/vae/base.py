"""What every VAE of `vaekit.vae.models` and `vaekit.vae.hierarchical` is built on: `VAEBase` (encode,
decode, sample, the log-weights' terms), the activations, and the encoder and decoder pieces (MLP,
strided convolutions with their `ConvGeometry`). The sheet's names (q_enc, q_mu, q_logvar, p_dec)
and what `decode` returns are described in `vaekit.vae.models`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vaekit.arch.arith import conv2d_output_size, conv_transpose2d_output_size
from vaekit.arch.values import MAX_SIZE
from vaekit.config import MAX_IMAGE_SIDE, check_conv_stride
from vaekit.errors import ConfigError
from vaekit.vae.autoregressive import AutoregressiveTerm
from vaekit.vae.layers import GatedConv2d, GatedConvTranspose2d, GatedLinear
from vaekit.vae.priors import Prior, make_prior
from vaekit.vae.prob import DecoderOutput, LogTerms, decoder_mean, one_layer_terms

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
# Floor of a Gaussian decoder's log-variance: sigma >= 0.01 in pixel units of [0, 1]. Without it a
# pixel that is always 0 (the background of Fashion-MNIST) drives sigma -> 0 and log p(x|z) -> +inf.
GAUSSIAN_LOGVAR_MIN = math.log(1e-4)


def _mlp(sizes: list[int], activation: str, last_activation: bool, gated: bool = False) -> list[nn.Module]:
    """Linear layers between consecutive sizes, an activation after each (but the last, unless
    `last_activation`); with `gated`, each layer that has an activation is a `GatedLinear` instead
    (the gate is its non-linearity) and the last stays linear."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        hidden = i < len(sizes) - 2 or last_activation
        if hidden and gated:
            layers.append(GatedLinear(n_in, n_out))
            continue
        layers.append(nn.Linear(n_in, n_out))
        if hidden:
            layers.append(ACTIVATIONS[activation]())
    return layers


class VAEBase(nn.Module):
    """What the VAEs share: the heads, the likelihood, the prior p(z) (`vaekit.vae.priors`: N(0, I)
    or a VampPrior), encode/decode, the bound's terms and the parameter count."""

    q_enc: nn.Module
    q_mu: nn.Linear
    q_logvar: nn.Linear
    p_dec: nn.Module
    prior: Prior
    # Added to every log p(x|z): -D log 256 when x is dequantized 8-bit pixels
    # (`vaekit.data.binarize.log_px_offset`), so that likelihoods are of the 8-bit images.
    log_px_offset: float = 0.0

    def __init__(self, image_shape: tuple[int, int, int], latent: int, likelihood: str,
                 variance: str, prior: str = "standard", pseudo_inputs: int = 500,
                 autoregressive: int = 0, autoregressive_dropout: float = 0.0,
                 autoregressive_window: int = 0) -> None:
        super().__init__()
        if latent < 1:
            raise ConfigError(f"latent size must be at least 1, got {latent}.")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ConfigError(f"unknown likelihood {likelihood!r}; valid values are bernoulli, gaussian.")
        c, h, w = (int(s) for s in image_shape)
        self.image_shape: tuple[int, int, int] = (c, h, w)
        self.latent_dim = latent
        self.likelihood = likelihood
        if likelihood == "gaussian":
            shape = self.image_shape if variance == "pixel" else (1, 1, 1)
            self.p_logvar = nn.Parameter(torch.zeros(shape))  # log sigma^2 of p(x|z), learned
        self.prior = make_prior(prior, pseudo_inputs, self.image_shape)
        # The autoregressive decoder's masked layer over the pixels before each pixel
        # (`vaekit.vae.autoregressive`), conditioned on the decoder's input z; None: the sheet's
        # factorized decoder.
        self.p_ar: AutoregressiveTerm | None = None
        if autoregressive:
            if likelihood != "bernoulli":
                raise ConfigError("an autoregressive decoder is a Bernoulli decoder; use --likelihood "
                                  "bernoulli, or --autoregressive 0 with a gaussian likelihood.")
            self.p_ar = AutoregressiveTerm(c * h * w, self.noise_dim, autoregressive, autoregressive_dropout,
                                           autoregressive_window)

    @property
    def noise_dim(self) -> int:
        """Size of eps per sample: one per latent dimension of each stochastic layer."""
        return self.latent_dim

    @property
    def closed_form_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) is Ex.2 Q3's closed form (N(0, I) prior, one layer)."""
        return self.prior.closed_form_kl

    def log_prior(self, z: Tensor, batch_dims: int = 1) -> Tensor:
        """log p(z) of the top latent, summed over its dimensions."""
        return self.prior.log_prob(z, self.encode, batch_dims)

    def log_terms(self, x: Tensor, eps: Tensor, encoded: tuple[Tensor, Tensor] | None = None) -> LogTerms:
        """log p(x|z_k), log p(z_k), log q(z_k|x) at z_k = mu + sigma eps_k (K, B) each
        (`prob.one_layer_terms` with this model's prior)."""
        mu, logvar = encoded if encoded is not None else self.encode(x)
        log_prior = None if self.prior.closed_form_kl else (lambda z: self.log_prior(z, 2))
        return one_layer_terms(x, self, mu, logvar, eps, log_prior)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, C, H, W) -> (mu, logvar) of q(z|x), each (B, D)."""
        h = self.q_enc(x)
        return self.q_mu(h), self.q_logvar(h)

    def decode_net(self, z: Tensor) -> DecoderOutput:
        """z (B, D) -> p_dec's parameters of p(x|z): logits (B, C, H, W), or (mean (B, C, H, W),
        logvar (C, H, W) or (1, 1, 1)); for an autoregressive decoder, the logits l(z) to which
        each pixel's term a(x_<i, z) is added (`prob.log_px_samples`)."""
        out = self.p_dec(z)
        if self.likelihood == "bernoulli":
            return out
        return out, self.p_logvar.clamp(min=GAUSSIAN_LOGVAR_MIN)

    def shown(self, decoded: DecoderOutput, z: Tensor) -> DecoderOutput:
        """What `decode` gives for the decoder's output at z: itself, or for an autoregressive
        decoder the logits of its mean-field pass (`AutoregressiveTerm.mean_field`)."""
        if self.p_ar is None:
            return decoded
        return self.p_ar.mean_field(decoded, z)  # type: ignore[arg-type]

    def decode(self, z: Tensor) -> DecoderOutput:
        """z (B, D) -> logits (B, C, H, W), or (mean (B, C, H, W), logvar (C, H, W) or (1, 1, 1));
        for an autoregressive decoder, the logits of its mean-field pass (the images shown for z)."""
        return self.shown(self.decode_net(z), z)

    def draw_x(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x|z) for z (B, D) -> (B, C, H, W): Bernoulli draws (pixel by pixel for an
        autoregressive decoder), or mean + sigma * eps for a Gaussian decoder."""
        return self.draw_from(self.decode_net(z), z, generator)

    def draw_from(self, decoded: DecoderOutput, z: Tensor, generator: torch.Generator | None) -> Tensor:
        """x ~ p(x|z) given the decoder's output `decoded` at z (`decode_net`)."""
        if isinstance(decoded, tuple):
            mean, logvar = decoded
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            return mean + (0.5 * logvar).exp() * eps
        if self.p_ar is not None:
            return self.p_ar.sample(decoded, z, generator)
        return torch.bernoulli(torch.sigmoid(decoded), generator=generator)

    def decode_mean(self, z: Tensor) -> Tensor:
        """z (B, D) -> E[x|z] (B, C, H, W): the images a latent decodes to, in [0, 1] for Bernoulli."""
        return decoder_mean(self.decode(z))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latents z ~ p(z) (n, D): N(0, I), or the VampPrior's mixture."""
        return self.prior.sample(n, self.latent_dim, self.encode, generator, like=self.q_mu.weight)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from the model: z ~ p(z), then E[x|z] (n, C, H, W)."""
        return self.decode_mean(self.sample_prior(n, generator))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The parameters of q(z|x); the loss is `vaekit.vae.prob.negative_elbo(x, model)`."""
        return self.encode(x)

    def num_parameters(self) -> int:
        """Trainable parameters (floats), like the sheet's Ex.1 counts."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def mlp_encoder(image_shape: tuple[int, int, int], hidden: list[int], activation: str,
                gated: bool = False) -> tuple[nn.Sequential, int]:
    """x (B, C, H, W) -> h (B, F) through dense layers of `hidden` sizes; returns (module, F)."""
    c, h, w = image_shape
    sizes = [c * h * w, *hidden]
    return nn.Sequential(nn.Flatten(), *_mlp(sizes, activation, True, gated)), sizes[-1]


def mlp_decoder(n_in: int, image_shape: tuple[int, int, int], hidden: list[int], activation: str,
                gated: bool = False) -> nn.Sequential:
    """z (B, n_in) -> the decoder's output (B, C, H, W) through the mirrored dense layers."""
    c, h, w = image_shape
    return nn.Sequential(*_mlp([n_in, *reversed(hidden), c * h * w], activation, False, gated),
                         nn.Unflatten(1, (c, h, w)))  # (B, C*H*W) -> (B, C, H, W)


def conv_sizes(size: int, n_layers: int, kernel_size: int, stride: int, padding: int) -> list[int]:
    """Feature-map sizes along one axis through `n_layers` strided convolutions: [in, ..., out]."""
    sizes = [size]
    for _ in range(n_layers):
        sizes.append(conv2d_output_size(sizes[-1], kernel_size, stride, padding))
    return sizes


def least_size(n_layers: int, kernel_size: int, stride: int, padding: int) -> int:
    """The smallest input size whose `n_layers` strided convolutions leave a feature map of at least
    one: going back from the last layer, an output of `need` takes an input of at least
    stride (need - 1) + kernel_size - 2 padding (the inverse of floor((n + 2p - k) / s) + 1 >= need).
    A closed form: a search over sizes would take 2^31 steps for a stride of 2^31."""
    need = 1
    for _ in range(n_layers):
        need = max(1, stride * (need - 1) + kernel_size - 2 * padding)
    return need


def last_seen(sizes: list[int], kernel_size: int, stride: int, padding: int) -> int:
    """The last input index along one axis that any output of a strided conv stack reads, its
    feature-map `sizes` [in, ..., out] (`conv_sizes`): going back from the last map, whose every
    index the flatten reads, output o reads inputs o s - p ... o s - p + k - 1, so the last index
    read is min(n - 1, u s - p + k - 1) for a last output read u. With kernel_size >= stride the
    windows touch or overlap, so the indices read are 0 ... last_seen with no gap between."""
    seen = sizes[-1] - 1
    for n in reversed(sizes[:-1]):
        seen = min(n - 1, seen * stride - padding + kernel_size - 1)
    return seen


def _covering(side: int, n_layers: int, k: int, s: int, p: int) -> bool:
    sizes = conv_sizes(side, n_layers, k, s, p)
    return sizes[-1] >= 1 and last_seen(sizes, k, s, p) == side - 1


def _works(h: int, w: int, n_layers: int, k: int, s: int) -> bool:
    """Whether a stack of `n_layers` convolutions of kernel k, stride s builds on an h x w image and
    reads it whole: the rules `ConvGeometry.of` holds it to, a fix a refusal may offer."""
    p = (k - 1) // 2
    return s <= k <= min(h, w) and _covering(h, n_layers, k, s, p) and _covering(w, n_layers, k, s, p)


def _other_stacks(h: int, w: int, n_layers: int, k: int, s: int) -> list[str]:
    """The fixes of an h x w image's refusal that keep the image: the largest kernel_size below k
    (from s up) and the most convolutions below n_layers (from 1) with which the stack works
    (`_works`); none where neither does."""
    kernel = next((k2 for k2 in range(min(k - 1, h, w), s - 1, -1) if _works(h, w, n_layers, k2, s)), None)
    layers = next((n for n in range(n_layers - 1, 0, -1) if _works(h, w, n, k, s)), None)
    return ([f"kernel_size {kernel}"] if kernel is not None else []) + (
        [f"{layers} channels entr{'y' if layers == 1 else 'ies'} (--channels)"] if layers is not None else [])


def _convolutions(n: int) -> str:
    return f"{n} convolution{'s' if n != 1 else ''}"


def working_side(start: int, n_layers: int, k: int, s: int) -> int | None:
    """The least image side from `start` (up to MAX_IMAGE_SIDE, in at most 4096 steps) that the conv
    stack both builds on and reads whole (`_covering`): the size a refusal may offer. A side past it
    need not work: three layers of kernel 2, stride 2 read all of 8 and 16, not of 9 to 15."""
    p = (k - 1) // 2
    return next((n for n in range(start, min(start + 4096, MAX_IMAGE_SIDE + 1))
                 if _covering(n, n_layers, k, s, p)), None)


def _check_edges(h: int, w: int, n_layers: int, k: int, s: int, hs: list[int], ws: list[int]) -> None:
    """A ConfigError where the conv stack never reads the last rows or columns of an h x w image
    (`last_seen`), with a kernel_size or an image size that would read them all."""
    p = (k - 1) // 2
    unseen = {axis: n - 1 - last_seen(sizes, k, s, p)
              for axis, n, sizes in (("rows", h, hs), ("columns", w, ws))}
    if not any(unseen.values()):
        return
    said = " and ".join(f"the last {axis[:-1]}" if m == 1 else f"the last {m} {axis}"
                        for axis, m in unseen.items() if m)
    side = working_side(max(h, w), n_layers, k, s)
    kernel = next((k2 for k2 in range(k + 1, k + 2 * s + 1) if k2 <= min(h, w)
                   and _covering(h, n_layers, k2, s, (k2 - 1) // 2)
                   and _covering(w, n_layers, k2, s, (k2 - 1) // 2)), None)
    fixes = [f"kernel_size {kernel}"] if kernel is not None else []
    fixes += [f"images of {side}x{side} (--image-size {side})"] if side is not None else []
    layers = f"{_convolutions(n_layers)} (kernel {k}, stride {s})"
    raise ConfigError(f"a conv encoder of {layers} never reads {said} of a {h}x{w} image: a layer's last "
                      f"window stops short of its edge (sizes {hs} x {ws}); use "
                      + (" or ".join(fixes) if fixes else "another kernel_size or stride") + ".")


class ConvGeometry:
    """The feature-map sizes of a strided conv stack on an image, checked invertible: a kernel at
    least its stride (`vaekit.config.check_conv_stride`) and every size at least 1 leave each
    transposed convolution an output_padding of (n + 2p - k) mod s, in [0, s), which restores n;
    and checked to read every pixel, its last windows reaching the image's edges (`last_seen`)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int], k: int, s: int,
                 hs: list[int], ws: list[int]) -> None:
        self.image_shape, self.channels, self.k, self.s, self.p = image_shape, channels, k, s, (k - 1) // 2
        self.hs, self.ws = hs, ws

    @classmethod
    def of(cls, image_shape: tuple[int, int, int], channels: list[int], kernel_size: int,
           stride: int) -> ConvGeometry:
        c, h, w = image_shape
        k, s, p = kernel_size, stride, (kernel_size - 1) // 2
        check_conv_stride(k, s)
        hs = conv_sizes(h, len(channels), k, s, p)
        ws = conv_sizes(w, len(channels), k, s, p)
        least = max(least_size(len(channels), k, s, p), k)  # the smallest side that builds
        side = working_side(least, len(channels), k, s) if least <= MAX_IMAGE_SIDE else None
        stack = f"{_convolutions(len(channels))} of kernel {k}, stride {s}"
        if least > MAX_SIZE:
            raise ConfigError(
                f"an image of {h}x{w} is too small for {stack}: the sizes go {hs} x {ws}, and no image "
                f"up to {MAX_SIZE:,} pixels a side is large enough; use a smaller stride or fewer "
                "channels entries."
            )
        if min(hs[-1], ws[-1]) < 1 or k > min(h, w):
            fixes = _other_stacks(h, w, len(channels), k, s) + (
                [f"images of {side}x{side} (--image-size {side})"] if side is not None else [])
            fix = "use " + " or ".join(fixes) if fixes else "use a smaller kernel_size and stride"
            raise ConfigError(
                f"an image of {h}x{w} is too small for {stack}: the sizes go {hs} x {ws}; {fix}."
                if min(hs[-1], ws[-1]) < 1 else
                f"the conv kernel {k} is larger than the {h}x{w} image (its first layer would see mostly "
                f"padding); {fix}."
            )
        _check_edges(h, w, len(channels), k, s, hs, ws)
        return cls(image_shape, list(channels), k, s, hs, ws)

    @property
    def flat(self) -> int:
        """Features of the last feature map, flattened: C_L * H_L * W_L."""
        return self.channels[-1] * self.hs[-1] * self.ws[-1]


def conv_encoder(g: ConvGeometry, hidden: list[int], activation: str,
                 gated: bool = False) -> tuple[nn.Sequential, int]:
    """x (B, C, H, W) -> h (B, F): a Conv2d(k, s, p) (or `GatedConv2d`) and activation per entry of
    `channels`, flatten, then dense layers `hidden`; returns (module, F)."""
    chans = [g.image_shape[0], *g.channels]
    enc: list[nn.Module] = []
    for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
        if gated:
            enc.append(GatedConv2d(c_in, c_out, g.k, g.s, g.p))
        else:
            enc += [nn.Conv2d(c_in, c_out, g.k, g.s, g.p), ACTIVATIONS[activation]()]
    module = nn.Sequential(*enc, nn.Flatten(),  # (B, C_L, H_L, W_L) -> (B, C_L*H_L*W_L)
                           *_mlp([g.flat, *hidden], activation, True, gated))
    return module, (hidden[-1] if hidden else g.flat)


def conv_decoder(n_in: int, g: ConvGeometry, hidden: list[int], activation: str,
                 gated: bool = False) -> nn.Sequential:
    """z (B, n_in) -> (B, C, H, W): dense layers, unflatten, then a ConvTranspose2d per conv of the
    encoder, each with the output_padding that restores the encoder's size at that depth."""
    chans = [g.image_shape[0], *g.channels]
    dec: list[nn.Module] = _mlp([n_in, *reversed(hidden), g.flat], activation, True, gated)
    dec.append(nn.Unflatten(1, (chans[-1], g.hs[-1], g.ws[-1])))  # (B, flat) -> (B, C_L, H_L, W_L)
    for i in range(len(g.channels), 0, -1):  # from depth n back to depth 0 (the image)
        pad = (g.hs[i - 1] - conv_transpose2d_output_size(g.hs[i], g.k, g.s, g.p),
               g.ws[i - 1] - conv_transpose2d_output_size(g.ws[i], g.k, g.s, g.p))
        if i > 1 and gated:
            dec.append(GatedConvTranspose2d(chans[i], chans[i - 1], g.k, g.s, g.p, output_padding=pad))
            continue
        dec.append(nn.ConvTranspose2d(chans[i], chans[i - 1], g.k, g.s, g.p, output_padding=pad))
        if i > 1:
            dec.append(ACTIVATIONS[activation]())
    return nn.Sequential(*dec)
