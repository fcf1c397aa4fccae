"""Where a training step's gradients come from: engines behind one interface.

    engine.loss_and_grads(model, x, beta, generator, y=None) -> sums

computes the objective on a batch x (B, C, H, W) of float images (and labels y (B,) for a
classifier), writes d(batch mean of the objective)/d(theta) into every parameter's `.grad`
(overwriting what was there), and returns the batch sums on the device, one per `engine.names`:
for the VAE engines here (4,) in nats, objective, -ELBO, reconstruction -log p(x|z), KL; for the
classifier's (`vaekit.classify.loss`) the loss and the number right. The training loop
(`vaekit.train.loop`) calls it and steps the optimizer; it never knows which engine it has. Every
random draw of the step (eps) comes from `generator`.

    AutogradEngine(objective)   any objective of `vaekit.vae` (`Objective`: per-image `Terms`),
                                differentiated by autograd; for the score estimator it keeps the
                                running-mean baseline b <- 0.9 b + 0.1 mean(recon) (Mnih & Gregor
                                2014, section 3.3, with a constant instead of a learned baseline)
    BackpropEngine(model)       the MLP VAE's K-sample ELBO or IWAE-K differentiated by hand
                                (`vaekit.vae.backprop`), faster per epoch than autograd on a CPU
                                (docs/benchmarks.md has the figures)
    make_engine(model, loop)    the engine a run's config asks for ('auto': the hand-derived one
                                where it applies and is measured faster, autograd elsewhere;
                                'autograd': always autograd);
                                `--precision bf16` is the hand-derived engine's bfloat16 products,
                                or torch.autocast(bfloat16) around an autograd engine's forward
                                (CPU or CUDA)
    DistributedEngine(e, w)     under torchrun (`vaekit.distributed`): engine e on this rank's share
                                of each global batch, the gradients (one flat buffer) and the batch
                                sums all-reduced
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from vaekit.config import LoopConfig
from vaekit.distributed import World, share
from vaekit.vae import backprop
from vaekit.vae.estimators import score_negative_elbo
from vaekit.vae.prob import VAE, Terms, negative_elbo, negative_iwae, noise_dim

BASELINE_DECAY = 0.9  # score estimator: baseline <- 0.9 baseline + 0.1 mean reconstruction

# (x, model, beta, baseline, generator, eps or None) -> per-image Terms: one training objective;
# eps (k, B, D) given: the objective's reparameterization noise, else drawn from the generator.
Objective = Callable[[Tensor, VAE, float, "float | None", torch.Generator, "Tensor | None"], Terms]


VAE_SUMS = ("loss", "neg_elbo", "recon", "kl")  # what the VAE engines' sums are, in this order


class Engine(Protocol):
    """What the training loop needs of an engine (see the module docstring)."""

    @property
    def names(self) -> tuple[str, ...]: ...  # what each of the returned sums is

    baseline: float | None  # the score estimator's running baseline (None for the others)

    def loss_and_grads(self, model: nn.Module, x: Tensor, beta: float, generator: torch.Generator,
                       y: Tensor | None = None) -> Tensor: ...

    def describe(self, means: list[float]) -> str:
        """The progress bar's text for the running means of the sums."""
        ...


class VAEEngine:
    """What the VAE engines share: their sums, how the progress bar shows them, and the draw rule
    of eps under `vaekit.distributed`: with `share` = (start, stop, total) set, x is the
    rows [start, stop) of a global batch of `total`, and eps are those rows of the eps one process
    draws for the whole batch (so the draws depend neither on the rank nor on the world size)."""

    names: tuple[str, ...] = VAE_SUMS
    baseline: float | None = None
    share: tuple[int, int, int] | None = None
    noise: Tensor | None = None  # eps given from outside (`vaekit.train.step.GraphStep`'s static input)

    @property
    def capturable(self) -> bool:
        """Whether a step of this engine can be captured in a CUDA graph: its eps can come from
        `noise` and it reads nothing back to the host."""
        return self.share is None

    def noise_shape(self, model: nn.Module, batch: int) -> tuple[int, int, int]:
        """The shape (K, B, D) of a step's eps for a batch of `batch` images."""
        return (self.samples, batch, noise_dim(model))  # type: ignore[attr-defined, arg-type]

    def shared_eps(self, shape: tuple[int, ...], generator: torch.Generator, x: Tensor) -> Tensor | None:
        """eps of the step: `noise` where it is given; of this share: N(0, I) of `shape` with the
        batch axis (-2) of `total` rows, drawn as one process would, sliced to [start, stop); None
        otherwise (the engine draws them)."""
        if self.noise is not None:
            return self.noise
        if self.share is None:
            return None
        start, stop, total = self.share
        full = torch.randn((*shape[:-2], total, shape[-1]), generator=generator, device=x.device)
        return full[..., start:stop, :]

    def describe(self, means: list[float]) -> str:
        return f"-ELBO {means[1]:.2f} recon {means[2]:.2f} KL {means[3]:.2f}"


def objective_for(loop: LoopConfig) -> Objective:
    """The per-image objective of a run's [train] section: the K-sample ELBO (beta, free bits),
    IWAE-K, or the ELBO with the encoder trained by the score function."""
    k, free_bits = loop.samples, loop.free_bits
    if loop.objective == "iwae":
        def iwae(x: Tensor, model: VAE, beta: float, baseline: float | None, g: torch.Generator,
                 eps: Tensor | None = None) -> Terms:
            return negative_iwae(x, model, k=k, eps=eps, generator=g)
        return iwae
    if loop.estimator == "score":
        def score(x: Tensor, model: VAE, beta: float, baseline: float | None, g: torch.Generator,
                  eps: Tensor | None = None) -> Terms:
            if eps is not None:
                raise ValueError("the score estimator draws its own noise (one process only)")
            return score_negative_elbo(x, model, k=k, beta=beta, baseline=baseline, generator=g)
        return score

    def elbo(x: Tensor, model: VAE, beta: float, baseline: float | None, g: torch.Generator,
             eps: Tensor | None = None) -> Terms:
        return negative_elbo(x, model, k=k, beta=beta, free_bits=free_bits, eps=eps, generator=g)
    return elbo


class AutogradEngine(VAEEngine):
    """An objective of `vaekit.vae` and its gradient by autograd. With `track_baseline`, the
    running mean of the batch reconstruction is kept (a host sync per step) and handed to the
    objective as its baseline: what the score estimator needs."""

    def __init__(self, objective: Objective, track_baseline: bool = False,
                 baseline: float | None = None, samples: int = 1,
                 autocast: torch.dtype | None = None) -> None:
        self.objective = objective
        self.samples = samples
        self.track_baseline = track_baseline
        self.baseline = baseline
        self.autocast = autocast  # None: float32; torch.bfloat16: the forward under torch.autocast

    @property
    def capturable(self) -> bool:
        return self.share is None and not self.track_baseline  # the baseline is read by the host

    def loss_and_grads(self, model: nn.Module, x: Tensor, beta: float, generator: torch.Generator,
                       y: Tensor | None = None) -> Tensor:
        eps = self.shared_eps((self.samples, x.shape[0], noise_dim(model)), generator, x)  # type: ignore[arg-type]
        # bf16 autocast (`--precision bf16` off the hand-derived engine): autocast's listed ops
        # (linear, conv) take bfloat16 inputs, the weights, gradients and the per-image sums stay
        # float32 (the objective's reductions are float32 ops under autocast, and are cast back here);
        # no cast cache where a step may be captured in a CUDA graph (the CUDA-graphs notes of torch.amp)
        with torch.autocast(x.device.type, dtype=self.autocast or torch.bfloat16,
                            enabled=self.autocast is not None, cache_enabled=x.device.type != "cuda"):
            terms = self.objective(x, model, beta, self.baseline, generator, eps)  # type: ignore[arg-type]
        model.zero_grad(set_to_none=True)
        terms.loss.float().mean().backward()
        with torch.no_grad():
            sums = torch.stack([terms.loss.sum(), terms.neg_elbo.sum(), terms.recon.sum(),
                                terms.kl.sum()]).float()
        if self.track_baseline:
            r = terms.recon.detach().mean().item()
            self.baseline = r if self.baseline is None else (
                BASELINE_DECAY * self.baseline + (1 - BASELINE_DECAY) * r)
        return sums


class BackpropEngine(VAEEngine):
    """The MLP VAE's K-sample ELBO or IWAE-K and its gradient derived by hand (`vaekit.vae.backprop`):
    eps ~ N(0, I) of shape (K, B, D) from the generator, the same draws `prob.negative_elbo` and
    `prob.negative_iwae` make.
    The engine owns the model's layer plan (looked up once, not per step)."""

    def __init__(self, model: backprop.MLPVAE, free_bits: float = 0.0,
                 mm_dtype: torch.dtype | None = None, objective: str = "elbo", samples: int = 1) -> None:
        self.free_bits = free_bits
        self.objective, self.samples = objective, samples  # "elbo" | "iwae", and its K
        self.mm_dtype = mm_dtype  # None: float32 products; torch.bfloat16: `backprop`'s mixed precision
        self._model: nn.Module = model
        self._plan = backprop.Plan.of(model)

    def noise_shape(self, model: nn.Module, batch: int) -> tuple[int, int, int]:
        return (self.samples, batch, self._plan.latent_dim)  # (K, B, D), as draw_eps

    def loss_and_grads(self, model: nn.Module, x: Tensor, beta: float, generator: torch.Generator,
                       y: Tensor | None = None) -> Tensor:
        if model is not self._model:  # another model than the one planned for
            self._model, self._plan = model, backprop.Plan.of(model)  # type: ignore[arg-type]
        shape = (self.samples, x.shape[0], self._plan.latent_dim)  # (K, B, D), as draw_eps
        eps = self.shared_eps(shape, generator, x)
        if eps is None:
            eps = torch.randn(shape, generator=generator, device=x.device)
        return backprop.backprop(model, x, eps, beta, self.free_bits, plan=self._plan,  # type: ignore[arg-type]
                                 mm_dtype=self.mm_dtype, objective=self.objective)


def make_engine(model: nn.Module, loop: LoopConfig, baseline: float | None = None) -> Engine:
    """The engine of a run: `loop.engine` 'auto' takes `BackpropEngine` where
    `backprop.faster(model, loop)` (it computes the objective and is measured faster), and
    `AutogradEngine` on `objective_for(loop)` otherwise."""
    fast = loop.engine == "auto" and backprop.faster(model, loop)  # type: ignore[arg-type]
    low = torch.bfloat16 if loop.precision == "bf16" else None
    if fast:
        return BackpropEngine(model, loop.free_bits, low, loop.objective, loop.samples)  # type: ignore[arg-type]
    return AutogradEngine(objective_for(loop), track_baseline=loop.estimator == "score", baseline=baseline,
                          samples=loop.samples, autocast=low)


class DistributedEngine:
    """`inner`'s loss and gradients on this rank's share of each global batch, all-reduced."""

    baseline: float | None = None  # the score estimator is refused with more than one process

    def __init__(self, inner: Engine, w: World) -> None:
        self.inner, self.world = inner, w
        self.names = inner.names

    def describe(self, means: list[float]) -> str:
        return self.inner.describe(means)

    def loss_and_grads(self, model: nn.Module, x: Tensor, beta: float, generator: torch.Generator,
                       y: Tensor | None = None) -> Tensor:
        total = x.shape[0]
        start, stop = share(total, self.world)
        setattr(self.inner, "share", (start, stop, total))  # noqa: B010 - the engines' draw rule
        sums = self.inner.loss_and_grads(model, x[start:stop], beta, generator,
                                         None if y is None else y[start:stop])
        params = [p for p in model.parameters() if p.requires_grad]
        scale = (stop - start) / total
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in params]).mul_(scale)
        self.world.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n
        return self.world.all_reduce(sums.clone())
