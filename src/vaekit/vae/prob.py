"""The probability of the sheet (TD-2, Exercise 2) as pure functions, one equation each.

Conventions, everywhere in vaekit:
- log-densities keep all their constants (fully normalized), in nats;
- they are summed over the event dimensions (pixels, latent dims) and keep the batch dimensions:
  `batch_dims` leading dimensions are kept (1 for (B, ...), 2 for (K, B, ...));
- batch means are taken by the caller (training), so every function here returns per-image values;
- variances are parameterized by their logarithm, `logvar = log sigma^2`.

References: Kingma & Welling, "Auto-Encoding Variational Bayes" (2014) [AEVB]; Burda, Grosse &
Salakhutdinov, "Importance Weighted Autoencoders" (2016) [IWAE]; Kingma et al., "Improved
Variational Inference with Inverse Autoregressive Flow" (2016) [free bits].
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)

# A decoder's output: Bernoulli logits, or a Gaussian's (mean, logvar), logvar broadcastable.
DecoderOutput = Tensor | tuple[Tensor, Tensor]


def _sum_event(t: Tensor, batch_dims: int) -> Tensor:
    """Sum over every dimension after the first `batch_dims` ones."""
    return t.flatten(start_dim=batch_dims).sum(dim=-1) if t.dim() > batch_dims else t


# ----------------------------------------------------------------------------- sampling


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2), eps ~ N(0, I)  (Ex.2 Q6; AEVB eq. 10).

    The sample is a deterministic, differentiable function of (mu, logvar) and an independent noise
    eps, so gradients flow to the encoder through z (the reparameterization trick, Ex.2 Q5).
    The network outputs log sigma^2 rather than sigma^2 or sigma: it ranges over all of R, so no
    positivity constraint is needed, and exp() keeps sigma > 0 while small variances stay well
    resolved (a softplus or square of a raw output underflows or has vanishing gradients near 0).
    `eps` may carry extra leading sample dimensions, e.g. (K, B, D) against mu of shape (B, D).
    """
    return mu + torch.exp(0.5 * logvar) * eps


# ----------------------------------------------------------------------------- KL divergences


def gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) = -1/2 (log sigma^2 + 1 - sigma^2 - mu^2), elementwise.

    Ex.2 Q3 of the sheet; AEVB appendix B. Zero exactly when mu = 0 and sigma = 1.
    """
    return -0.5 * (logvar + 1.0 - logvar.exp() - mu.pow(2))


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || p(z)) for q = N(mu, diag sigma^2), p = N(0, I): Ex.2 Q3 summed over the
    latent dims (the last dimension). (B, D) -> (B,)."""
    return gaussian_kl_per_dim(mu, logvar).sum(dim=-1)


def diag_gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mu_q, diag s_q^2) || N(mu_p, diag s_p^2)), summed over the last dimension:

        1/2 sum_d [ log(s_p^2 / s_q^2) + (s_q^2 + (mu_q - mu_p)^2) / s_p^2 - 1 ].

    The general closed form of which Ex.2 Q3 is the case mu_p = 0, s_p = 1.
    """
    var_ratio = (logvar_q - logvar_p).exp()
    return 0.5 * (
        logvar_p - logvar_q + var_ratio + (mu_q - mu_p).pow(2) / logvar_p.exp() - 1.0
    ).sum(dim=-1)


def monte_carlo_kl(log_q: Tensor, log_p: Tensor) -> tuple[Tensor, Tensor]:
    """KL(q || p) = E_{z~q}[log q(z) - log p(z)] estimated from S samples z_s ~ q (Ex.2 Q2).

    `log_q`, `log_p`: (S, ...) log-densities of the same samples. Returns the estimate and its
    standard error (std / sqrt(S)), each of shape (...).
    """
    diff = log_q - log_p
    n = diff.shape[0]
    return diff.mean(dim=0), diff.std(dim=0) / math.sqrt(n)


def categorical_kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) = sum_i p_i log(p_i / q_i) over the last dimension, with 0 log 0 = 0 (Ex.2 Q2)."""
    terms = torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p))
    return terms.sum(dim=-1)


# ----------------------------------------------------------------------------- log-densities


def log_bernoulli(x: Tensor, logits: Tensor, batch_dims: int = 1) -> Tensor:
    """log p(x) for x in [0, 1] under Bernoulli(sigmoid(logits)), summed over event dims:

        log p(x) = x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = x l - softplus(l).

    The Bernoulli decoder of AEVB appendix C.1; on binarized images, the likelihood published NLLs
    use. `x` broadcasts against `logits` (e.g. x (1, B, ...) against K samples (K, B, ...)).

    Two paths, one value (tests/vae/test_prob.py holds both against torch.distributions):
    - with gradients: torch's binary_cross_entropy_with_logits, which is -(x l - softplus(l)) from
      logits without forming sigmoid(l) (stable for |l| large), in fewer passes over the data than
      three elementwise ops;
    - without gradients (evaluation) and for x in {0, 1}: x l - softplus(l) = log sigmoid((2x - 1) l)
      = -log(1 + exp(flip * l)) with flip = 1 - 2x, by an in-place exp, add and log: about half the
      time of torch's softplus or log_sigmoid, whose log1p is slow on a CPU (bench/eval_speed.py).
      Where exp overflows (a pixel given probability < e^-88) the call is recomputed with the stable
      logsigmoid. log(1 + e) instead of log1p(e) loses e < 6e-8 per pixel, below the float32
      rounding of the sum over pixels.
    """
    needs_grad = torch.is_grad_enabled() and (logits.requires_grad or x.requires_grad)
    if not needs_grad and bool(((x == 0) | (x == 1)).all()):
        flip = 1.0 - 2.0 * x.to(logits.dtype)  # broadcasts like x
        t = logits * flip  # -(2x - 1) l, the shape of the broadcast
        out = _sum_event(t.exp_().add_(1.0).log_(), batch_dims).neg_()
        if bool(torch.isfinite(out).all()):
            return out
        return _sum_event(F.logsigmoid(logits * -flip), batch_dims)
    if x.shape != logits.shape:
        logits, x = torch.broadcast_tensors(logits, x)
    x = x.to(logits.dtype)
    return _sum_event(-F.binary_cross_entropy_with_logits(logits, x, reduction="none"), batch_dims)


def log_normal_diag(x: Tensor, mu: Tensor, logvar: Tensor | float, batch_dims: int = 1) -> Tensor:
    """log N(x; mu, diag sigma^2) = -1/2 sum [log 2pi + log sigma^2 + (x - mu)^2 / sigma^2].

    Fully normalized (keeps the log 2pi). `logvar` broadcasts (a global or per-pixel variance): its
    exp is taken on its own shape, not on the broadcast one.
    """
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    sq = (x - mu).pow(2) * torch.exp(-logvar)
    return _sum_event(-0.5 * (sq + logvar + LOG_2PI), batch_dims)


def log_q_at_sample(eps: Tensor, logvar: Tensor, batch_dims: int = 1) -> Tensor:
    """log q(z|x) at its own reparameterized sample z = mu + sigma eps (`reparameterize`):

        log N(mu + sigma eps; mu, sigma^2) = -1/2 sum [log 2pi + log sigma^2 + eps^2]

    since (z - mu) / sigma = eps (AEVB, Kingma & Welling 2014, sec. 2.4). The value and its
    gradient are those of `log_normal_diag(z, mu, logvar)`, but exact where sigma underflows: at
    log sigma^2 below about -174 float32's sigma is 0 and (z - mu)^2 / sigma^2 is 0 * inf = nan.
    """
    return _sum_event(-0.5 * (eps.pow(2) + logvar + LOG_2PI), batch_dims)


def log_standard_normal(z: Tensor, batch_dims: int = 1) -> Tensor:
    """log N(z; 0, I) = -1/2 sum [log 2pi + z^2]: the prior p(z) of the sheet."""
    return _sum_event(-0.5 * (LOG_2PI + z.pow(2)), batch_dims)


def log_px_given_z(x: Tensor, decoded: DecoderOutput, likelihood: str, batch_dims: int = 1) -> Tensor:
    """log p_theta(x|z) for a decoder output: 'bernoulli' (logits) or 'gaussian' ((mean, logvar))."""
    if likelihood == "bernoulli":
        assert isinstance(decoded, Tensor)
        return log_bernoulli(x, decoded, batch_dims)
    if likelihood == "gaussian":
        mean, logvar = decoded
        return log_normal_diag(x, mean, logvar, batch_dims)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def decoder_mean(decoded: DecoderOutput) -> Tensor:
    """The mean of p(x|z), in [0, 1] for images: sigmoid(logits) for Bernoulli, the mean for Gaussian."""
    return decoded[0] if isinstance(decoded, tuple) else torch.sigmoid(decoded)


# ----------------------------------------------------------------------------- bounds


class VAE(Protocol):
    """What the bounds need of a model: q(z|x) parameters and p(x|z) parameters.

    A model may also define (vaekit's `VAEBase` does) `log_terms(x, eps, encoded=None) ->
    LogTerms`, its own log p(x|z), log p(z) and log q(z|x) at the samples that `eps` gives (a
    VampPrior, two stochastic layers), `noise_dim` (the size of eps per sample, when it is not
    `latent_dim`) and `closed_form_kl` (whether KL(q(z|x) || p(z)) is Ex.2 Q3's closed form);
    without them the model is the sheet's: one Gaussian layer, p(z) = N(0, I).
    """

    likelihood: str
    latent_dim: int

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    def decode(self, z: Tensor) -> DecoderOutput: ...


@dataclass
class Terms:
    """Per-image terms of a bound, each of shape (B,), in nats.

    loss:     the objective minimized (with beta, free bits, or the IWAE bound);
    neg_elbo: -ELBO = recon + kl (beta = 1), the number that is reported;
    recon:    -E_q[log p(x|z)] estimated with the K samples;
    kl:       KL(q(z|x) || p(z)): closed form for one Gaussian layer against N(0, I), else the
              Monte-Carlo estimate 1/K sum_k [log q(z_k|x) - log p(z_k)] at the same K samples;
    kl_per_dim: (B, D) closed form per latent dimension, None where the KL is estimated.
    """

    loss: Tensor
    neg_elbo: Tensor
    recon: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None


@dataclass
class LogTerms:
    """log p(x|z), log p(z) and log q(z|x) at K samples, (K, B) each, in nats. For two stochastic
    layers z = (z1, z2): log p(z) = log p(z1|z2) + log p(z2), log q(z|x) = log q(z1|x, z2) +
    log q(z2|x)."""

    log_px: Tensor
    log_pz: Tensor
    log_qz: Tensor

    @property
    def log_w(self) -> Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)  (IWAE eq. 8), (K, B)."""
        return self.log_px + self.log_pz - self.log_qz


def noise_dim(model: VAE) -> int:
    """The size of eps per sample: `latent_dim` for one layer, the sum over layers for several."""
    return int(getattr(model, "noise_dim", model.latent_dim))


def placement(model: VAE) -> tuple[torch.dtype, torch.device]:
    """(dtype, device) of the model's first parameter (else first buffer): what the tensors made
    for it are made of and where; float32 on the CPU for a model that holds no tensor."""
    tensors = itertools.chain(*(getattr(model, name)() for name in ("parameters", "buffers")
                                if hasattr(model, name)))
    ref = next(tensors, None)
    return (ref.dtype, ref.device) if ref is not None else (torch.float32, torch.device("cpu"))


def closed_form_kl(model: VAE) -> bool:
    """Whether the model's KL(q(z|x) || p(z)) is the closed form of Ex.2 Q3 (one Gaussian layer,
    p(z) = N(0, I)); otherwise it is estimated by Monte Carlo."""
    return bool(getattr(model, "closed_form_kl", True))


def draw_eps(mu: Tensor, k: int, generator: torch.Generator | None = None, dim: int | None = None) -> Tensor:
    """eps ~ N(0, I) of shape (K, B, dim) for mu of shape (B, D) (dim defaults to D), in mu's dtype.
    Drawn in float32 (float64 for float64 mu) and rounded where mu is of lower precision (under
    bfloat16 autocast): torch's own bfloat16 draws are other numbers from one version to the next,
    its float32 draws are not, so a seed gives the same eps with or without autocast."""
    shape = (k, mu.shape[0], mu.shape[1] if dim is None else dim)
    wide = mu.dtype if mu.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.randn(shape, generator=generator, dtype=wide, device=mu.device).to(mu.dtype)


def log_px_samples(model: VAE, x: Tensor, z: Tensor,
                   decode: Callable[[Tensor], DecoderOutput] | None = None) -> Tensor:
    """log p(x|z_k) for z of shape (K, B, D): decode all K*B at once (by `decode`, default the
    model's `decode_net` where it has one, else `model.decode`), plus the model's `log_px_offset`
    (the change of variables of dequantized 8-bit pixels, `vaekit.data.binarize.log_px_offset`).
    A model with an autoregressive decoder (`p_ar`, `vaekit.vae.autoregressive`) adds to each
    pixel's logit its term of the pixels of x before it (teacher forcing). Returns (K, B)."""
    k, b, d = z.shape
    net: Callable[[Tensor], DecoderOutput] = (decode if decode is not None
                                              else getattr(model, "decode_net", model.decode))
    decoded = net(z.reshape(k * b, d))  # (K*B, C, H, W)
    if isinstance(decoded, tuple):
        mean, logvar = decoded
        decoded = (mean.reshape(k, b, *mean.shape[1:]), logvar)
    else:
        decoded = decoded.reshape(k, b, *decoded.shape[1:])  # (K, B, C, H, W)
        ar = getattr(model, "p_ar", None)
        if ar is not None:
            decoded = ar.teacher_forced(decoded, x, z)
    offset = getattr(model, "log_px_offset", 0.0)  # -D log 256 for dequantized 8-bit pixels
    log_px = log_px_given_z(x.unsqueeze(0), decoded, model.likelihood, batch_dims=2)
    return log_px + offset if offset else log_px


def one_layer_terms(x: Tensor, model: VAE, mu: Tensor, logvar: Tensor, eps: Tensor,
                    log_prior: Callable[[Tensor], Tensor] | None = None) -> LogTerms:
    """The terms of one Gaussian layer at z_k = mu + sigma eps_k: log p(x|z_k), log p(z_k) (by
    `log_prior` (K, B, D) -> (K, B), default N(0, I)) and log q(z_k|x) = log N(z_k; mu, sigma^2)
    (`log_q_at_sample`)."""
    z = reparameterize(mu, logvar, eps)  # (K, B, D)
    log_pz = log_standard_normal(z, batch_dims=2) if log_prior is None else log_prior(z)
    return LogTerms(log_px_samples(model, x, z), log_pz, log_q_at_sample(eps, logvar, batch_dims=2))


def latent_terms(x: Tensor, model: VAE, eps: Tensor,
                 encoded: tuple[Tensor, Tensor] | None = None) -> LogTerms:
    """The model's `LogTerms` at the samples of eps (K, B, noise_dim): its own `log_terms` where it
    has one, else the sheet's one layer against N(0, I). `encoded` is `model.encode(x)` when the
    caller already has it (the encoder then runs once for many calls)."""
    if hasattr(model, "log_terms"):
        return model.log_terms(x, eps, encoded)  # type: ignore[attr-defined, no-any-return]
    mu, logvar = encoded if encoded is not None else model.encode(x)
    return one_layer_terms(x, model, mu, logvar, eps)


def negative_elbo(x: Tensor, model: VAE, k: int = 1, beta: float = 1.0, free_bits: float = 0.0,
                  eps: Tensor | None = None, generator: torch.Generator | None = None) -> Terms:
    """The sheet's loss (Ex.2 Q4, Q6), per image, with K >= 1 reparameterized samples:

        L(x) = -1/K sum_k log p_theta(x | mu_x + sigma_x * eps_k) + beta * KL(q(z|x) || N(0, I)).

    K = 1 and beta = 1 is exactly the sheet's single-sample loss (Q6). beta != 1 is the beta-VAE
    weighting (Higgins et al. 2017) and KL warm-up; `free_bits` = lambda replaces each latent dim's
    KL by max(KL_d, lambda) in the objective only (IAF paper, eq. 15 applied per dimension).
    `neg_elbo` always holds the true -ELBO (beta = 1, no floor).

    A model without the closed-form KL (a VampPrior, two stochastic layers: `closed_form_kl`)
    takes the Monte-Carlo KL at the same K samples, KL ~= 1/K sum_k [log q(z_k|x) - log p(z_k)]
    (AEVB eq. 6, the generic estimator; Tomczak & Welling 2018, eq. 4); free bits need the closed
    form per dimension and are refused.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not closed_form_kl(model):
        if free_bits > 0:
            raise ValueError("free bits need the closed-form KL per latent dimension")
        mu, logvar = model.encode(x)
        if eps is None:
            eps = draw_eps(mu, k, generator, noise_dim(model))
        lt = latent_terms(x, model, eps, (mu, logvar))
        recon = -lt.log_px.mean(dim=0)
        kl = (lt.log_qz - lt.log_pz).mean(dim=0)
        return Terms(recon + beta * kl, recon + kl, recon, kl, None)
    mu, logvar, _, log_px = _sample(x, model, k, eps, generator)
    recon = -log_px.mean(dim=0)  # (B,)
    kl_d = gaussian_kl_per_dim(mu, logvar)  # (B, D)
    kl = kl_d.sum(dim=-1)
    kl_obj = kl_d.clamp(min=free_bits).sum(dim=-1) if free_bits > 0 else kl
    return Terms(recon + beta * kl_obj, recon + kl, recon, kl, kl_d)


def _sample(x: Tensor, model: VAE, k: int, eps: Tensor | None,
            generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Encode, draw K reparameterized samples, decode: (mu, logvar, z (K,B,D), log p(x|z) (K,B))."""
    mu, logvar = model.encode(x)  # (B, D) each
    if eps is None:
        eps = draw_eps(mu, k, generator)
    z = reparameterize(mu, logvar, eps)  # (K, B, D)
    return mu, logvar, z, log_px_samples(model, x, z)


def log_weights(x: Tensor, model: VAE, mu: Tensor, logvar: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) at the samples of eps (K, B, noise_dim)
    (IWAE eq. 8), for the encoder's (mu, logvar) (B, D): `latent_terms`, so a two-layer model's
    weights use both layers' q and p. Returns (log w, log p(x|z)), (K, B)."""
    lt = latent_terms(x, model, eps, (mu, logvar))
    return lt.log_w, lt.log_px


def log_importance_weights(x: Tensor, model: VAE, k: int, eps: Tensor | None = None,
                           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """log w_k of K samples z_k ~ q(z|x) (`log_weights`), the encoder run once.

    Returns (log_w, mu, logvar) with log_w of shape (K, B).
    """
    mu, logvar = model.encode(x)  # (B, D) each
    if eps is None:
        eps = draw_eps(mu, k, generator, noise_dim(model))
    return log_weights(x, model, mu, logvar, eps)[0], mu, logvar


def iwae_bound(log_w: Tensor) -> Tensor:
    """L_K = log (1/K sum_k w_k) = logsumexp_k(log w_k) - log K  (IWAE eq. 8), over dim 0.

    The value of the bound (not a gradient surrogate). L_1 is the ELBO; L_K <= L_{K+1} <= log p(x)
    in expectation (IWAE theorem 1), and L_K -> log p(x) as K grows.
    """
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def negative_iwae(x: Tensor, model: VAE, k: int, eps: Tensor | None = None,
                  generator: torch.Generator | None = None) -> Terms:
    """-L_K per image as the objective (IWAE training), with the K-sample ELBO's parts reported."""
    mu, logvar = model.encode(x)  # (B, D) each
    if eps is None:
        eps = draw_eps(mu, k, generator, noise_dim(model))
    lt = latent_terms(x, model, eps, (mu, logvar))
    recon = -lt.log_px.mean(dim=0)
    if closed_form_kl(model):
        kl_d: Tensor | None = gaussian_kl_per_dim(mu, logvar)
        kl = kl_d.sum(dim=-1)  # type: ignore[union-attr]
    else:
        kl_d, kl = None, (lt.log_qz - lt.log_pz).mean(dim=0)
    return Terms(-iwae_bound(lt.log_w), recon + kl, recon, kl, kl_d)


def bits_per_dim(nats: Tensor | float, dims: int) -> Tensor | float:
    """Convert a negative log-likelihood in nats per image to bits per dimension: nats / (D ln 2)."""
    return nats / (dims * math.log(2.0))
