"""A run's figures: `write_figures` turns what a trained VAE draws, as arrays
(`vaekit.vae.draw`: reconstructions, prior samples, latent interpolations, the decoded manifold,
the latent means; its functions are importable from here too), into RUN_DIR/figures/.

Devices: the arrays are computed where the model is and come back on that device
(`vaekit.vae.draw`); `vaekit.report.figures` copies what it draws to the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaekit.errors import CheckpointError, ConfigError
from vaekit.evaluate.latents import ACTIVE_THRESHOLD
from vaekit.report import figures
from vaekit.runs import read_config
from vaekit.vae.draw import (
    interpolate,
    latent_means,
    manifold_grid,
    pca_2d,
    prior_quantiles,
    reconstruct,
    sample_prior,
)
from vaekit.vae.prob import VAE

FIGURES_DIR = "figures"
__all__ = ["FIGURES_DIR", "config_image_shape", "grid_columns", "interpolate", "latent_means",
           "manifold_grid", "pca_2d", "prior_quantiles", "reconstruct", "sample_prior", "write_figures"]


def write_figures(model: VAE, x: Tensor, out_dir: str | Path, labels: Tensor | None = None,
                  classes: Sequence[str] | None = None, metrics: Sequence[dict[str, Any]] = (),
                  evaluation: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Path]:
    """All figures of a run into `out_dir` (RUN_DIR/figures): name -> path, in report order.

    `x`: test images as the model sees them (N, C, H, W), on any device; `metrics`: metrics.jsonl
    rows; `evaluation`: eval.json (for per-dim KL and active units). The interpolated pairs are
    drawn on the CPU from `seed` (the same pairs on every device).
    """
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    if metrics:
        paths["learning_curves"] = figures.learning_curves(metrics, out / "learning_curves.png")
    n = min(30, x.shape[0])
    paths["reconstructions"] = figures.reconstructions(x[:n], reconstruct(model, x[:n]),
                                                        out / "reconstructions.png", ncols=10)
    paths["samples"] = figures.image_grid(sample_prior(model, 64, seed), out / "samples.png", ncols=8,
                                          title="means of p(x|z) for z ~ N(0, I)")
    pairs = min(8, x.shape[0] // 2)
    if pairs:
        g = torch.Generator(device="cpu").manual_seed(seed)
        idx = torch.randperm(x.shape[0], generator=g, device="cpu")[: 2 * pairs].to(x.device)
        rows = interpolate(model, x[idx[:pairs]], x[idx[pairs:]], steps=10)
        # the two real test images at both ends of each row
        rows = torch.cat([x[idx[:pairs]].unsqueeze(1).to(rows.device, rows.dtype), rows,
                          x[idx[pairs:]].unsqueeze(1).to(rows.device, rows.dtype)], dim=1)
        paths["interpolations"] = figures.interpolations(
            rows, out / "interpolations.png",
            title="test image a | decoded mu_a + t (mu_b - mu_a), t = 0..1 | test image b")
    mu = latent_means(model, x)
    if model.latent_dim == 2:
        grid, quantiles = manifold_grid(model, 20)
        paths["manifold"] = figures.manifold(grid, quantiles, out / "manifold.png")
        paths["latent_space"] = figures.latent_scatter(mu, out / "latent_space.png", labels, classes)
    else:
        proj, ratio = pca_2d(mu)
        paths["latent_space"] = figures.latent_scatter(
            proj, out / "latent_space.png", labels, classes,
            title=f"PCA of the {model.latent_dim}-D latent means of test images",
            axis_labels=(f"PC 1 ({100 * ratio[0]:.1f}% of variance)",
                         f"PC 2 ({100 * ratio[1]:.1f}% of variance)"))
    if evaluation is not None and evaluation.get("kl_per_dim"):
        variances = evaluation.get("latent_mean_variance")
        active = None if variances is None else [v > ACTIVE_THRESHOLD for v in variances]
        paths["kl_per_dim"] = figures.kl_per_dim(evaluation["kl_per_dim"], out / "kl_per_dim.png", active)
    return paths


def config_image_shape(run_dir: str | Path) -> list[int] | None:
    """The image shape (C, H, W) of a VAE run's model as its config.json gives it, read without the
    model; None where it is not read (`runs.load_run` then says what is wrong with the run)."""
    try:
        return read_config(Path(run_dir), "vae").model.image_shape  # type: ignore[no-any-return]
    except CheckpointError:
        return None


def grid_columns(n: int, ncols: int | None, image_shape: Sequence[int]) -> int:
    """The columns of `vaekit sample`'s grid of n images of `image_shape` (C, H, W): `ncols`, or
    about sqrt(n) where None; a grid whose figure would be wider or taller than `figures.MAX_SIDE`
    pixels is a ConfigError naming -n and --ncols, its size, and the --ncols that fit (or the -n)."""
    cols = ncols or math.ceil(math.sqrt(n))
    width, height = figures.grid_pixels(n, cols, image_shape)
    if max(width, height) <= figures.MAX_SIDE:
        return cols
    wide = tall = 0  # the most columns, and the most rows, whose figure fits (its width, its height)
    while figures.grid_pixels(wide + 1, wide + 1, image_shape)[0] <= figures.MAX_SIDE:
        wide += 1
    while figures.grid_pixels(tall + 1, 1, image_shape)[1] <= figures.MAX_SIDE:
        tall += 1
    low, high = (math.ceil(n / tall), min(n, wide)) if tall else (n + 1, 0)  # --ncols of at most `tall` rows
    if low <= high:
        hint = f"--ncols {low}" + (f" to {high}" if high > low else "") + " fits"
    elif wide * tall:
        hint = f"no --ncols fits -n {n}: ask for at most {wide * tall:,} samples, with --ncols {wide}"
    else:
        hint = "even one image of that size makes too large a figure"
    given = f"--ncols {ncols}" if ncols else f"--ncols {cols} (the default)"
    raise ConfigError(f"-n {n} samples of {'x'.join(map(str, image_shape))} with {given} make a grid "
                      f"figure of {width:,} x {height:,} pixels, more than the {figures.MAX_SIDE:,} a side "
                      f"that browsers and image viewers show whole; {hint}.")
