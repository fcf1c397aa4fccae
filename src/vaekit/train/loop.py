"""THE training loop of vaekit (Ex.2 Q6: "any gradient descent algorithm"): one epoch, and the
validation -ELBO. `vaekit.train.fit` runs it epoch after epoch for a run; `vaekit check`'s training
claim (`vaekit.checks.training`) runs it for a fixed number of steps.

The training set stays in memory as one uint8 tensor (N, C, H, W) on the device; each batch is
indexed from it with a seeded permutation and turned into the engine's inputs by a `Batches`
object: `Pixels` for the VAE (x by `vaekit.data.binarize`, drawn afresh for dynamic binarization),
`vaekit.classify.data.Labelled` for a classifier (x in [0, 1], augmented, and the labels). No
DataLoader, no per-image Python objects. The gradients come from an engine
(`vaekit.train.engines`, `vaekit.classify.loss`): the loop does not know which, nor what its sums
are (the engine names them). Every random draw of an epoch (permutation, binarization,
augmentation, eps) comes from the one `generator` it is given.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from vaekit import distributed
from vaekit.config import LoopConfig, OptimConfig, format_duration
from vaekit.data.binarize import prepare
from vaekit.device import progress_bar
from vaekit.errors import DivergenceError
from vaekit.train.engines import Engine
from vaekit.train.optim import beta_at
from vaekit.train.step import EagerStep, Step
from vaekit.vae.prob import VAE, negative_elbo

VAL_EPS_SEED = 0  # eps of the validation -ELBO: the same draws each epoch, so epochs compare
VAL_BATCH = 1000

# Called after each optimizer step with (steps taken in all, the batch sums of the step, the batch
# size); returning True ends the epoch there.
OnStep = Callable[[int, Tensor, int], "bool | None"]
# (steps taken, steps per epoch) -> the KL weight beta of the step (the VAE's warm-up); a
# classifier's engine ignores it.
Beta = Callable[[int, int], float]


class Batches(Protocol):
    """The training set as the loop sees it: its size, its device, and the engine's inputs
    (x, y) of the images at `index` (y is None for the VAE), drawn with `generator`."""

    @property
    def device(self) -> torch.device: ...

    def __len__(self) -> int: ...

    def __call__(self, index: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor | None]: ...


@dataclass
class DeviceImages:
    """What every `Batches` holds: the training set's uint8 images (N, C, H, W) on the device."""

    images: Tensor

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class Pixels(DeviceImages):
    """The VAE's batches: x = `prepare(pixels, mode)`."""

    mode: str

    def __call__(self, index: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        return prepare(self.images.index_select(0, index), self.mode, generator), None


def kl_weight(loop: LoopConfig) -> Beta:
    """The VAE run's beta schedule (`train.optim.beta_at`: warm-up, then `loop.beta`)."""
    return lambda step, steps: beta_at(step, steps, loop)


SLOW_EPOCH = 60.0  # seconds: an epoch estimated longer, with no bar to show it, is said before it runs on
_SAID_SLOW: list[bool] = []  # whether this process has said so (once: the first epoch tells)


def note_slow_epoch(first: float, steps: int, epoch: int) -> None:
    """Where no progress bar shows an epoch (--no-progress, or not a terminal), one note on stderr,
    once a process (by rank 0 under torchrun), when the epoch's first batch took `first` seconds
    and its `steps` batches will so take more than SLOW_EPOCH: a network enormous for its data
    (`Conv2d(100000, 3)` on 8x8 images) is said to be slow, not left silent for minutes. The first
    batch holds the allocations of the later ones too, so the estimate is an upper one."""
    place = distributed.place()
    if _SAID_SLOW or first * steps <= SLOW_EPOCH or (place is not None and place[0] != 0):
        return
    _SAID_SLOW.append(True)
    print(f"note: the first batch of epoch {epoch} took {format_duration(first)}, so its {steps:,} "
          f"batches will take up to about {format_duration(first * steps)}", file=sys.stderr, flush=True)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, engine: Engine, data: Batches,
                batch_size: int, epochs: int, optim: OptimConfig, generator: torch.Generator, step: int,
                epoch: int, beta: Beta | None = None, show_bar: bool | None = None,
                on_step: OnStep | None = None, stepper: Step | None = None,
                checkpointed: int | None = None) -> tuple[dict[str, float], int]:
    """One epoch of `epochs` over `data` in batches of `batch_size`, starting at optimizer step
    `step` (the KL warm-up's clock; `beta` None: beta = 1), gradients clipped to `optim.clip`.
    Returns the means per image of the engine's sums (`train_` + each of `engine.names`: for the
    VAE the objective, -ELBO, reconstruction and KL; for a classifier the loss and the accuracy)
    over the images seen, and the steps taken in all.

    Each batch goes through `stepper` (`vaekit.train.step`: the engine's gradients, the clip, the
    optimizer's update; default `EagerStep`; a run keeps one across its epochs, so that a captured
    step is captured once). Sums stay on the device during the epoch (no host round-trip per step
    beyond the finiteness check, every step on a CPU and every 50 on a GPU). A non-finite loss
    raises DivergenceError before the optimizer steps on it where the step is eager; a step
    captured whole in a CUDA graph is checked after its update, and the run stops there as well.
    `checkpointed`: the epoch of the run's last checkpoint, as the divergence sentence names it
    (default: the epoch before this one).
    """
    if stepper is None:
        stepper = EagerStep(engine, model, optimizer, optim.clip)
    model.train()
    n, batch = len(data), batch_size
    steps = math.ceil(n / batch)
    perm = torch.randperm(n, generator=generator, device=data.device)
    sums = torch.zeros(len(engine.names), dtype=torch.float64, device=data.device)
    check_every = 1 if data.device.type == "cpu" else 50  # host sync per check on a GPU
    bar = progress_bar(steps, f"epoch {epoch}/{epochs}", "batch", show_bar, leave=False,
                       dynamic_ncols=True)
    seen = 0
    i = 0

    def finite(batch_sums: Tensor) -> None:
        value = float(batch_sums[0]) / batch_sums_images
        if not math.isfinite(value):
            bar.close()
            raise diverged(f"the loss became {value} at epoch {epoch}, step {i + 1} of {steps}",
                           epoch - 1 if checkpointed is None else checkpointed)

    started = time.perf_counter()
    for i in range(steps):
        index = perm[i * batch : (i + 1) * batch]
        x, y = data(index, generator)  # (b, C, H, W) float32, (b,) int64 or None
        batch_sums_images = x.shape[0]
        checked = i % check_every == 0 or i == steps - 1
        batch_sums = stepper(x, y, 1.0 if beta is None else beta(step, steps), generator,
                             finite if checked else None)
        step += 1
        sums += batch_sums
        seen += x.shape[0]
        if i == 0 and bar.disable and data.device.type == "cpu":  # a CPU step has ended here
            note_slow_epoch(time.perf_counter() - started, steps, epoch)
        if not bar.disable and (i % 20 == 19 or i == steps - 1):
            bar.set_postfix_str(engine.describe((sums / seen).tolist()), refresh=False)
            bar.update(i + 1 - bar.n)
        if on_step is not None and on_step(step, batch_sums, x.shape[0]):
            break
    bar.close()
    means = (sums / max(seen, 1)).tolist()
    return {f"train_{name}": m for name, m in zip(engine.names, means, strict=True)}, step


def diverged(what: str, checkpointed: int) -> DivergenceError:
    """The one sentence of a run that diverged (`what` became NaN or infinite): training stopped,
    the checkpoint of epoch `checkpointed` (0: none) kept, a lower --lr advised."""
    kept = (f"the last good checkpoint (epoch {checkpointed}) is kept" if checkpointed > 0 else
            "no checkpoint had been written, so a new run may use the directory")
    return DivergenceError(f"{what}; training stopped and {kept}: try a lower --lr or --clip.")


def check_finite_state(model: nn.Module, optimizer: torch.optim.Optimizer, val: dict[str, float],
                       epoch: int, checkpointed: int) -> None:
    """After `epoch` and its validation, before anything of it is written: the weights (buffers
    included), every tensor of the optimizer's state (Adam's moments) and every number of `val`
    finite, or DivergenceError (`diverged`). A loss that stays finite while a squared gradient
    overflows to inf would otherwise save a checkpoint that resume refuses as damaged. One host
    sync for all the tensors."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    state = [t for s in optimizer.state.values() for t in s.values()
             if isinstance(t, Tensor) and t.is_floating_point()]
    bad = [name for name, ts in (("the model's weights", tensors), ("the optimizer's state", state))
           if ts and not bool(torch.stack([torch.isfinite(t).all() for t in ts]).all())]
    bad += [f"the validation {key} ({value})" for key, value in val.items() if not math.isfinite(value)]
    if bad:
        raise diverged(f"{' and '.join(bad)} became NaN or infinite in epoch {epoch}", checkpointed)


@torch.inference_mode()
def validate(model: VAE, x: Tensor, batch_size: int = VAL_BATCH, k: int = 1,
             seed: int = VAL_EPS_SEED) -> dict[str, float]:
    """Mean -ELBO, reconstruction and KL (nats per image) of float images `x` (N, C, H, W), with k
    reparameterized samples drawn from a generator seeded with `seed` (the same eps each call)."""
    if isinstance(model, nn.Module):
        model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        terms = negative_elbo(x[start : start + batch_size], model, k=k, generator=generator)
        sums += torch.stack([terms.neg_elbo.sum(), terms.recon.sum(), terms.kl.sum()])
    neg_elbo, recon, kl = (sums / x.shape[0]).tolist()
    return {"neg_elbo": neg_elbo, "recon": recon, "kl": kl}
