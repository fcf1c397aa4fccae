"""The explorer's model side: one trained VAE run and what the API derives from its test set (codes,
the map, active units), with the operations the API asks of the model (encode, decode, draw,
interpolate, sample) on tensors.

The model is loaded once, at start, with everything derived from the test set; after that the
explorer is read-only: the server runs each request under `torch.inference_mode()`, every draw takes
its own random generator, so threads share no mutable state, and nothing is ever written to the run
directory.

Devices (`vaekit serve --device`): the model and what the explorer derives from the test set (the
images, their codes, the map) live on the run's device, and each operation computes there. Drawn
images (prior samples, a decode's sample) come from a generator on that device seeded with the
request's seed; the eps of an upload's nll are drawn on the CPU (`vaekit.evaluate.iwae`), the same
on every device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaekit.data.binarize import EVAL_SEED
from vaekit.errors import CheckpointError
from vaekit.evaluate.iwae import estimate_batch
from vaekit.evaluate.latents import ACTIVE_THRESHOLD, active_units
from vaekit.runs import MODEL, Run, load_run, load_run_data, task_for
from vaekit.train.resume import check_trained_data
from vaekit.vae.prob import gaussian_kl_per_dim, placement

TASK = "vae"  # the kind of run explored (`runs.Task`); `runs.load_run` refuses another, in its sentence
N_MAP = 2000  # test images whose codes the explorer holds (the map, /api/code, /api/interpolate)
IWAE_K, IWAE_SEED = 200, 0  # the nll of an upload: importance-weighted, k samples, seeded


@dataclass(frozen=True)
class Explorer:
    """A run and what the API derives from its test set, computed once on the run's device;
    read-only afterwards."""

    run: Run
    images: Tensor  # (N, C, H, W) the first N_MAP test images as the model sees them, on its device
    labels: list[int] | None
    classes: list[str] | None
    mu: Tensor  # (N, D)
    kl_per_dim: list[float]
    active: list[int]
    map_mean: Tensor  # (D,) the default map (latent or PCA)
    map_basis: Tensor  # (2, D)
    map_method: str

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> Explorer:
        """The explorer of a run, its model on `device` (cpu, cuda, auto: `runs.load_run`)."""
        run = load_run(run_dir, TASK, device)
        ds = load_run_data(run.config.data, run.path)
        name = run.config.data.name  # its test split the one trained with, as `vaekit eval` holds it
        check_trained_data(run.path, ds, name, f"explore a run trained on it (`vaekit train --data {name}`)")
        # the first N_MAP test images, binarized on the CPU as `vaekit eval` does
        labels = ds.test.labels
        return cls.of(run, task_for(run.config).images(run.config, ds.test.images[:N_MAP]),
                      None if labels is None else labels[:N_MAP], ds.classes)

    @classmethod
    def of(cls, run: Run, images: Tensor, labels: Tensor | None, classes: Sequence[str] | None) -> Explorer:
        """The explorer of a loaded run over test images (N, C, H, W) as its model sees them (on any
        device: copied to the model's), their labels and the class names: what the API derives from
        them, computed on the model's device."""
        with torch.inference_mode():
            images = images.to(placement(run.model)[1])
            mu, logvar = run.model.encode(images)
            if not bool(mu.isfinite().all() & logvar.isfinite().all()):
                raise CheckpointError(f"{run.path / MODEL}: the model's codes of the test images are not "
                                      "finite (its weights overflow in the encoder); train the run again "
                                      "into another --out.")
            kl = gaussian_kl_per_dim(mu, logvar).double().mean(dim=0).cpu()
            variance = active_units(mu)[1].cpu()
            order = sorted(range(mu.shape[1]), key=lambda d: -float(kl[d]))
            active = [d for d in order if float(variance[d]) > ACTIVE_THRESHOLD]
            mean, basis, method = default_map(mu)
        return cls(run, images, None if labels is None else [int(v) for v in labels], None if classes is None
                   else list(classes), mu, [float(v) for v in kl], active, mean, basis, method)

    @property
    def model(self) -> Any:
        return self.run.model

    @property
    def device(self) -> torch.device:
        """Where the model, the images and the codes are."""
        return self.mu.device

    @property
    def dim(self) -> int:
        return int(self.model.latent_dim)

    @property
    def binarize(self) -> str:
        """How the run's model reads pixels: 'none', 'dequantize' or a binarization."""
        return str(self.run.config.resolved_binarize())

    @property
    def decoder(self) -> str:
        return "factorized" if getattr(self.model, "p_ar", None) is None else "autoregressive"

    # --------------------------------------------------------------------- images the model sees

    def prepare(self, pixels: Tensor) -> Tensor:
        """uint8 (C, H, W) -> x (1, C, H, W) as the model saw its test images (the run kind's
        `images`: binarized, or dequantized, once with the evaluation seed, on the CPU), on the
        explorer's device."""
        return task_for(self.run.config).images(self.run.config, pixels.unsqueeze(0)).to(self.device)

    def from_unit(self, unit: Tensor) -> Tensor:
        """Pixels in [0, 1] (C, H, W) on the CPU -> x (1, C, H, W): as given for a run that reads
        pixels as they are, else rounded to 8 bits and prepared as the test images were."""
        if self.binarize == "none":
            return unit.unsqueeze(0).to(self.device)
        return self.prepare(torch.round(unit * 255.0).to(torch.uint8))

    def preparation(self) -> str | None:
        """What `prepare` does to an image beyond reading it, in words (None: nothing)."""
        if self.binarize == "dequantize":
            return f"dequantized once, (pixel + u)/256 with seed {EVAL_SEED}, as the test images are"
        if self.binarize != "none":
            return f"binarized once with seed {EVAL_SEED}, as the test images are"
        return None

    # --------------------------------------------------------------------- the map

    def plane(self, a: int, b: int) -> tuple[Tensor, Tensor]:
        """(mean, basis (2, D)) of the plane of latent dimensions a and b (a != b), the others held
        at the codes' mean."""
        basis = torch.zeros(2, self.dim, dtype=self.mu.dtype, device=self.device)
        basis[0, a] = basis[1, b] = 1.0
        mean = self.mu.mean(dim=0)
        mean[a] = mean[b] = 0.0
        return mean, basis

    def points(self, mean: Tensor, basis: Tensor) -> Tensor:
        """The test codes on the plane (mean, basis): (N, 2) float64 on the CPU."""
        return ((self.mu - mean) @ basis.T).to("cpu", torch.float64)

    def on_map(self, z: Tensor) -> Tensor:
        """A code (D,) on the default map: (2,)."""
        return (z - self.map_mean) @ self.map_basis.T

    # --------------------------------------------------------------------- the model

    def decode_mean(self, z: Tensor) -> Tensor:
        """z (B, D) -> the decoder's mean images (B, C, H, W)."""
        return self.model.decode_mean(z)

    def draw(self, z: Tensor, seed: int) -> Tensor:
        """x ~ p(x|z) (B, C, H, W), from a generator on the explorer's device seeded with `seed`."""
        generator = torch.Generator(device=self.device).manual_seed(seed)
        return self.model.draw_x(z, generator)

    def interpolate(self, a: int, b: int, steps: int) -> tuple[Tensor, Tensor]:
        """(t (steps,), the decoded means (steps, C, H, W)) along the line from test code a to b."""
        t = torch.linspace(0.0, 1.0, steps, dtype=self.mu.dtype, device=self.device)[:, None]
        z = self.mu[a] + t * (self.mu[b] - self.mu[a])  # (steps, D)
        return t[:, 0], self.model.decode_mean(z)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (1, C, H, W) -> (mu (1, D) of q(z|x), nll (1,)): -log p(x) estimated by the IWAE bound
        with IWAE_K samples, its eps drawn on the CPU from IWAE_SEED and copied."""
        mu, _ = self.model.encode(x)
        eps_seed = torch.Generator(device="cpu").manual_seed(IWAE_SEED)
        return mu, estimate_batch(x, self.model, IWAE_K, generator=eps_seed).nll

    def sample(self, n: int, seed: int) -> Tensor:
        """n images (n, C, H, W) decoded from z ~ N(0, I), from a generator seeded with `seed`."""
        return self.model.sample(n, torch.Generator(device=self.device).manual_seed(seed))


def default_map(mu: Tensor) -> tuple[Tensor, Tensor, str]:
    """(mean, basis (2, D), method) of the plane the codes are shown on: the latent plane itself for
    D <= 2 (mean 0, identity basis), else the two leading principal axes of the codes (SVD); on mu's
    device."""
    d = mu.shape[1]
    if d <= 2:
        basis = torch.eye(2, d, dtype=mu.dtype, device=mu.device)
        return torch.zeros(d, dtype=mu.dtype, device=mu.device), basis, "latent"
    mean = mu.mean(dim=0)
    _, _, vh = torch.linalg.svd(mu - mean, full_matrices=False)
    return mean, vh[:2].clone(), "pca"
