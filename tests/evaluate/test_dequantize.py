"""Uniform dequantization and bits per dimension of 8-bit images (a user's own images).

`vaekit.data.binarize.dequantize` against its law (every x in its pixel's bin [p/256, (p+1)/256),
u uniform), `log_px_offset` against the change of variables, and the whole evaluation of a Gaussian
VAE on dequantized pixels against a brute-force log p(x): numerical integration over a 1-D latent
of p(x|z) p(z), in float64, minus D log 256, divided by D log 2.
"""

from __future__ import annotations

import math

import torch

from vaekit.config import TrainConfig
from vaekit.data.binarize import EVAL_SEED, dequantize, eval_images, log_px_offset, prepare
from vaekit.evaluate.run import evaluate_model
from vaekit.vae.models import build_model
from vaekit.vae.prob import negative_elbo


def test_every_value_lands_in_its_pixels_bin_and_u_is_uniform() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).repeat(4000)  # every value, 4,000 times
    x = dequantize(pixels, torch.Generator().manual_seed(1)).double()
    bins = torch.floor(x * 256).to(torch.int64)
    assert torch.equal(bins, pixels.to(torch.int64))  # every x in [p/256, (p+1)/256)
    u = x * 256 - pixels.double()
    n = u.numel()
    assert abs(float(u.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / n)  # E u = 1/2, sd 1/sqrt(12)
    assert abs(float(u.var()) - 1 / 12) < 0.002
    hist = torch.histc(u.float(), bins=10, min=0, max=1)  # equal bins, equal counts
    assert float((hist - n / 10).abs().max()) < 5 * math.sqrt(n / 10)


def test_fresh_draws_for_training_one_fixed_draw_for_evaluation() -> None:
    pixels = torch.randint(0, 256, (20, 1, 4, 4), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    g = torch.Generator().manual_seed(3)
    a, b = prepare(pixels, "dequantize", g), prepare(pixels, "dequantize", g)
    assert not torch.equal(a, b)
    assert torch.equal(eval_images(pixels, "dequantize"), eval_images(pixels, "dequantize"))
    expected = dequantize(pixels, torch.Generator().manual_seed(EVAL_SEED))
    assert torch.equal(eval_images(pixels, "dequantize"), expected)


def test_the_offset_is_the_change_of_variables() -> None:
    """x = (pixel + u)/256 maps the pixel's unit bin onto a bin of width 1/256 per dimension: the
    density of x is 256^D times the density of pixel + u, so log P >= log p(x) - D log 256."""
    for dims in (1, 784, 3 * 32 * 32):
        assert log_px_offset("dequantize", dims) == -dims * math.log(256)
        for mode in ("dynamic", "fixed", "none"):
            assert log_px_offset(mode, dims) == 0.0


def brute_force_log_px(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log \\int N(x | mean(z), sigma^2) N(z | 0, 1) dz for a 1-D latent, by the
    trapezoidal rule on [-10, 10] in float64 (x: (N, C, H, W)); the density of x, no offset."""
    z = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    with torch.no_grad():
        mean, logvar = model.decode(z[:, None].float())
    mean, logvar = mean.double().flatten(1), logvar.double().flatten()  # (G, D), (D,) or (1,)
    xs = x.double().flatten(1)  # (N, D)
    log_n = -0.5 * (math.log(2 * math.pi) + logvar + (xs[:, None, :] - mean[None]) ** 2 / logvar.exp())
    log_joint = log_n.sum(-1) - 0.5 * (math.log(2 * math.pi) + z**2)  # (N, G)
    dz = float(z[1] - z[0])
    weights = torch.full_like(z, dz)
    weights[0] = weights[-1] = dz / 2
    return torch.logsumexp(log_joint + weights.log(), dim=1)


def tiny_gaussian_vae(seed: int = 0) -> torch.nn.Module:
    config = TrainConfig()
    config.model.likelihood, config.model.latent, config.model.hidden = "gaussian", 1, [8]
    config.model.image_shape = [1, 1, 3]  # D = 3 pixels
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():  # a decoder variance wide enough for the grid and IWAE to agree closely
        model.p_logvar.fill_(math.log(0.02))
    return model


def test_bits_per_dim_equals_brute_force_on_a_tiny_model() -> None:
    model = tiny_gaussian_vae()
    assert model.log_px_offset == -3 * math.log(256)
    pixels = torch.randint(0, 256, (40, 1, 1, 3), generator=torch.Generator().manual_seed(2)).to(torch.uint8)
    x = eval_images(pixels, "dequantize")
    ev = evaluate_model(model, x, k=20000, batch_size=20, progress=False)
    summary = ev.summary(pixels=3)
    truth = brute_force_log_px(model, x) + log_px_offset("dequantize", 3)  # log P(pixels), per image
    expected_bpd = float(-truth.mean()) / (3 * math.log(2))
    assert abs(summary["bits_per_dim"] - expected_bpd) < 0.01
    assert torch.allclose(-ev.nll.double(), truth, atol=0.25)  # image by image, nats (IWAE bias)
    assert summary["bits_per_dim"] == summary["test_nll"] / (3 * math.log(2))


def test_every_bound_moves_by_d_log_256_and_nothing_else() -> None:
    """The same model without the offset gives the density of x: -ELBO, recon and -L_k differ by
    exactly D log 256, the KL not at all."""
    model = tiny_gaussian_vae(1)
    x = eval_images(torch.randint(0, 256, (30, 1, 1, 3)).to(torch.uint8), "dequantize")
    with_offset = negative_elbo(x, model, generator=torch.Generator().manual_seed(0))
    model.log_px_offset = 0.0
    density = negative_elbo(x, model, generator=torch.Generator().manual_seed(0))
    shift = 3 * math.log(256)
    assert torch.allclose(with_offset.recon - density.recon, torch.full((30,), shift), atol=1e-4)
    assert torch.allclose(with_offset.kl, density.kl)
    assert torch.allclose(with_offset.neg_elbo - density.neg_elbo, torch.full((30,), shift), atol=1e-4)
