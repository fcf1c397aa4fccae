"""How uint8 pixels become the x a model sees: THE binarization law of vaekit, used by training,
validation, the test set's fixed binarization and `vaekit check`.

    binarize(pixels, generator)     x ~ Bernoulli(pixel / 255), to 2^-17: a fresh draw per call
    fixed_binarization(images, s)   the same law, one draw from a generator seeded with s
    prepare(images, mode)           'dynamic' | 'fixed' | 'none' (pixel / 255 in [0, 1])
    eval_images(images, mode)       validation and test images under the published protocol

The evaluation protocol of published NLL tables (docs/anchors.md; Burda et al. 2015; the
Exemplar-VAE code): each held-out image binarized once with a fixed seed (EVAL_SEED), so that every
evaluation of every model sees the same x.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vaekit.errors import DataError

EVAL_SEED = 0  # validation and test images are binarized once, with this seed
MODES = ("dynamic", "fixed", "none")


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


def prepare(images: Tensor, mode: str, generator: torch.Generator | None = None,
            seed: int = EVAL_SEED) -> Tensor:
    """uint8 images -> float32: mode 'dynamic' or 'fixed' binarization, or 'none' (scale to [0,1])."""
    if mode == "dynamic":
        return binarize(images, generator)
    if mode == "fixed":
        return fixed_binarization(images, seed)
    if mode == "none":
        return images.to(torch.float32).div_(255.0)
    raise DataError(f"binarization {mode!r} is not one of {', '.join(MODES)}.")


def eval_images(images: Tensor, mode: str) -> Tensor:
    """Validation/test images as the model sees them, for a run whose training binarization is
    `mode`: binarized once with EVAL_SEED when training is binary (the published-NLL protocol,
    docs/anchors.md), else scaled to [0, 1]."""
    return prepare(images, "none" if mode == "none" else "fixed", seed=EVAL_SEED)
