"""How uint8 pixels become the x a model sees: THE binarization law of vaekit, used by training,
validation, the test set's fixed binarization and `vaekit check`.

    binarize(pixels, generator)     x ~ Bernoulli(pixel / 255), to 2^-17: a fresh draw per call
    fixed_binarization(images, s)   the same law, one draw from a generator seeded with s
    dequantize(pixels, generator)   x = (pixel + u) / 256, u ~ U[0, 1): 8-bit images made continuous
    prepare(images, mode)           'dynamic' | 'fixed' | 'none' (pixel / 255 in [0, 1]) | 'dequantize'
    eval_images(images, mode)       validation and test images under the published protocol
    log_px_offset(mode, dims)       -D log 256 for dequantized x: log-densities as log-probabilities
                                    of the 8-bit pixels (nats per image, bits per dimension)

The evaluation protocol of published NLL tables (docs/anchors.md; Burda et al. 2015; the
Exemplar-VAE code): each held-out image binarized once with a fixed seed (EVAL_SEED), so that every
evaluation of every model sees the same x.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaekit.errors import DataError

EVAL_SEED = 0  # validation and test images are binarized (or dequantized) once, with this seed
MODES = ("dynamic", "fixed", "none", "dequantize")
LEVELS = 256  # values of an 8-bit pixel: the dequantization's bins are [k/256, (k+1)/256)


def random_int16(n: int, generator: torch.Generator | None, device: torch.device | None = None) -> Tensor:
    """n independent uniform draws on the int16 range, from ceil(n/4) 64-bit draws of `generator`."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # uniform over all 2^64 values
    return words.view(torch.int16)[:n]


def binarize(pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarization of uint8 pixels: x = 1[r < 65536 pixel/255 - 32768.5] with r uniform on
    the 65,536 16-bit integers [-32768, 32767], so that

        P(x = 1) = round(65536 pixel / 255) / 65536,

    within 2^-17 (7.6e-6) of Bernoulli(pixel / 255), and exact for pixel 0 (never) and 255 (always).
    uint8 (..., H, W) in, float32 {0, 1} of the same shape out; the input is not modified.

    Four pixels' draws come from one 64-bit draw of the generator (`random_` over the full int64
    range, viewed as four int16): 4x fewer calls to torch's Mersenne Twister than `torch.rand`, the
    single-threaded part of a training step; several times faster than `torch.bernoulli(pixel / 255)`
    on a CPU (docs/benchmarks.md has the figures).
    """
    bits = random_int16(pixels.numel(), generator, pixels.device).view(pixels.shape)
    threshold = (pixels * (65536 / 255)).sub_(32768.5)  # float32; the count of r below it is exact
    return torch.lt(bits, threshold, out=torch.empty(pixels.shape, device=pixels.device))


def fixed_binarization(images: Tensor, seed: int = EVAL_SEED) -> Tensor:
    """Fixed binarization: one seeded draw of `binarize`, the same every time (test-set evaluation,
    as in Burda et al. 2015 and the Exemplar-VAE protocol). The global RNG is not touched."""
    return binarize(images, torch.Generator(device=images.device).manual_seed(seed))


def dequantize(pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization of uint8 pixels: x = (pixel + u) / 256 with u ~ U[0, 1) per pixel, a
    fresh draw per call; float32 in [0, 1) of the same shape, every x inside its pixel's bin
    [pixel/256, (pixel+1)/256).

    A density p on [0, 1)^D then bounds the probability of the 8-bit image (Theis, van den Oord &
    Bethge 2016, sec. 3.1; Ho et al. 2019, eq. 11):

        log P(pixels) >= E_u[log p((pixels + u) / 256)] - D log 256,

    which `log_px_offset` adds: the log-likelihoods of a Gaussian decoder on dequantized x are
    in nats per 8-bit image, and their bits per dimension those of the literature's tables.
    """
    u = torch.rand(pixels.shape, generator=generator, device=pixels.device)
    x = u.add_(pixels)  # float32: pixel + u rounds up to pixel + 1 for u within 2^-17 of 1 ...
    top = pixels.to(torch.float32).add_(1.0)
    torch.minimum(x, torch.nextafter(top, torch.zeros_like(top)), out=x)  # ... so keep it below
    return x.div_(LEVELS)  # exact: a power of two


def log_px_offset(mode: str, dims: int) -> float:
    """What turns log p(x) of x in [0, 1)^D into log P of the 8-bit pixels: -D log 256 for
    dequantized x (`dequantize`), 0 for binary x or x = pixel / 255 (a density, said as such)."""
    return -dims * math.log(LEVELS) if mode == "dequantize" else 0.0


def prepare(images: Tensor, mode: str, generator: torch.Generator | None = None,
            seed: int = EVAL_SEED) -> Tensor:
    """uint8 images -> float32: mode 'dynamic' or 'fixed' binarization, 'none' (scale to [0,1]),
    or 'dequantize' ((pixel + u) / 256, u drawn from `generator`)."""
    if mode == "dynamic":
        return binarize(images, generator)
    if mode == "fixed":
        return fixed_binarization(images, seed)
    if mode == "none":
        return images.to(torch.float32).div_(255.0)
    if mode == "dequantize":
        return dequantize(images, generator)
    raise DataError(f"binarization {mode!r} is not one of {', '.join(MODES)}.")


def eval_images(images: Tensor, mode: str) -> Tensor:
    """Validation/test images as the model sees them, for a run whose training binarization is
    `mode`: binarized once with EVAL_SEED when training is binary (the published-NLL protocol,
    docs/anchors.md), dequantized once with a generator seeded EVAL_SEED when training is
    dequantized, else scaled to [0, 1]."""
    if mode == "dequantize":
        return dequantize(images, torch.Generator(device=images.device).manual_seed(EVAL_SEED))
    return prepare(images, "none" if mode == "none" else "fixed", seed=EVAL_SEED)
