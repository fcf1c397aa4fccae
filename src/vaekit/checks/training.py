"""Ex.2 Q5 in practice: the same VAE trained with the encoder's gradient from the score function and
from the reparameterization trick, same seed, same data, same steps (`vaekit check`: training).

The runs go through vaekit's one training loop (`vaekit.train.loop.train_epoch`: seeded permutation,
dynamically binarized batches, Adam) with an autograd engine on each loss, and differ only in the
loss function: `prob.negative_elbo` (pathwise gradient for the encoder) or
`estimators.score_negative_elbo` (score function for the encoder, without a baseline or with the
engine's running-mean baseline); the decoder's gradient is the ordinary one in every run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vaekit.checks.claim import ClaimResult
from vaekit.config import TrainConfig, format_duration
from vaekit.data.binarize import fixed_binarization
from vaekit.data.folder import MixedSizes
from vaekit.data.image_files import Unreadable
from vaekit.data.load import check_findable, load_dataset
from vaekit.errors import ChecksumError, ConfigError, DataError, DivergenceError, IDXFormatError
from vaekit.train.engines import BASELINE_DECAY, AutogradEngine
from vaekit.train.loop import SLOW_EPOCH, Pixels, kl_weight, train_epoch
from vaekit.train.optim import make_optimizer
from vaekit.vae import prob
from vaekit.vae.estimators import score_negative_elbo
from vaekit.vae.models import build_model

# The fewest steps at which the claim compares what it says it does, the estimators' variance: the
# steps the score-function run's running-mean baseline (decay BASELINE_DECAY) and Adam's first moment
# (beta1 = 0.9, the same memory) average over, 1 / (1 - 0.9) = 10. Before them Adam moves every weight
# by about lr whatever the gradient's variance (its first step by exactly lr * sign(g)) and the
# baseline has not formed (at one step the score runs with and without it are the same run), so one
# step "passed" on the direction of a single gradient. `vaekit check --steps` is refused below it.
MIN_STEPS = round(1 / (1 - BASELINE_DECAY))


def check_steps(steps: int) -> None:
    """`vaekit check --steps`: at least MIN_STEPS (see there), one sentence otherwise."""
    if steps < MIN_STEPS:
        raise ConfigError(f"--steps must be at least {MIN_STEPS} for the training claim, got {steps}: the "
                          f"score-function baseline and Adam's first moment average over about {MIN_STEPS} "
                          "steps, and fewer compare single gradients' directions, not the estimators' "
                          "variance.")


# (x, model, baseline, generator) -> Terms: one training loss per way of estimating the gradient.
TrainingLoss = Callable[[Tensor, prob.VAE, float | None, torch.Generator], prob.Terms]


def reparam_loss(x: Tensor, model: prob.VAE, baseline: float | None, g: torch.Generator) -> prob.Terms:
    return prob.negative_elbo(x, model, generator=g)


def score_loss(x: Tensor, model: prob.VAE, baseline: float | None, g: torch.Generator) -> prob.Terms:
    return score_negative_elbo(x, model, generator=g)


def score_baseline_loss(x: Tensor, model: prob.VAE, baseline: float | None,
                        g: torch.Generator) -> prob.Terms:
    return score_negative_elbo(x, model, baseline=baseline, generator=g)


LOSSES: dict[str, TrainingLoss] = {
    "reparam": reparam_loss, "score": score_loss, "score+baseline": score_baseline_loss,
}


@dataclass
class Curve:
    steps: list[int]  # the steps at which the held-out set was evaluated
    heldout_neg_elbo: list[float]  # -ELBO per image on the held-out images, nats
    heldout_kl: list[float]  # KL(q(z|x) || p(z)) per image on the held-out images, nats
    train_neg_elbo: list[float]  # the training batch's -ELBO at every step
    seconds: float


@torch.no_grad()
def _evaluate(model: prob.VAE, x: Tensor, seed: int) -> tuple[float, float]:
    terms = prob.negative_elbo(x, model, k=10, generator=torch.Generator().manual_seed(seed))
    return float(terms.neg_elbo.mean()), float(terms.kl.mean())


def curve_config(images: Tensor, steps: int, batch: int, lr: float, hidden: tuple[int, ...],
                 latent: int) -> TrainConfig:
    """The run of one curve as a vaekit training config: an MLP VAE with a Bernoulli decoder, Adam,
    dynamic binarization, autograd, and as many epochs as `steps` steps of `batch` need."""
    config = TrainConfig()
    config.model.hidden, config.model.latent = list(hidden), latent
    config.model.image_shape = [int(s) for s in images.shape[1:]]
    config.optim.lr = lr
    config.train.batch_size, config.train.engine = batch, "autograd"
    config.train.epochs = max(1, math.ceil(steps / math.ceil(images.shape[0] / batch)))
    return config


RATE_STEPS = 20  # the steps of the first curve timed for `note_slow_training`'s estimate


def note_slow_training(seconds: float, steps: int, curves: int) -> None:
    """One note on stderr where the first RATE_STEPS steps took `seconds`, so that the `curves`
    runs of `steps` steps will take more than SLOW_EPOCH: `check --steps 100000` is said to be long,
    not left silent for minutes. The first steps hold the first allocations: an upper estimate."""
    total = seconds / RATE_STEPS * steps * curves
    if total > SLOW_EPOCH:
        print(f"note: training: the first {RATE_STEPS} steps took {format_duration(seconds)}, so the "
              f"{curves} runs of {steps:,} steps will take up to about {format_duration(total)}",
              file=sys.stderr, flush=True)


def train_curve(loss: TrainingLoss, images: Tensor, heldout: Tensor, seed: int, steps: int, batch: int,
                lr: float, hidden: tuple[int, ...], latent: int, eval_every: int,
                on_rate: Callable[[float], None] | None = None) -> Curve:
    """Train a fresh MLP VAE (`vaekit.vae.models.MLPVAE`, initialized from `seed`) for `steps` Adam
    steps of vaekit's training loop on `images` (uint8 (N, C, H, W)), binarized afresh each step,
    with `loss` differentiated by autograd, and evaluate -ELBO on `heldout` (float {0, 1}) every
    `eval_every` steps. The baseline handed to the loss is the engine's running mean (decay
    `engines.BASELINE_DECAY`) of the batch's reconstruction term, None at the first step. A loss
    that diverges ends the curve with NaN. `on_rate` is given the seconds of the first RATE_STEPS
    steps (where there are more)."""
    config = curve_config(images, steps, batch, lr, hidden, latent)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(config)
    optimizer = make_optimizer(model.parameters(), config.optim)
    def objective(x: Tensor, m: Any, beta: float, b: float | None, g: torch.Generator,
                  eps: Tensor | None = None) -> Any:
        return loss(x, m, b, g)

    engine = AutogradEngine(objective, track_baseline=True)
    generator = torch.Generator().manual_seed(seed)
    curve = Curve([], [], [], [], 0.0)

    def record(step: int) -> None:
        neg_elbo, kl = _evaluate(model, heldout, seed)
        curve.steps.append(step)
        curve.heldout_neg_elbo.append(neg_elbo)
        curve.heldout_kl.append(kl)

    def on_step(step: int, sums: Tensor, n: int) -> bool:
        curve.train_neg_elbo.append(float(sums[1]) / n)
        if step % eval_every == 0 or step == steps:
            record(step)
        if on_rate is not None and step == RATE_STEPS < steps:
            on_rate(time.perf_counter() - start)
        return step >= steps

    start = time.perf_counter()
    record(0)
    step, epoch = 0, 0
    try:
        while step < steps:
            epoch += 1
            _, step = train_epoch(model, optimizer, engine, Pixels(images, "dynamic"),
                                  config.train.batch_size, config.train.epochs, config.optim, generator,
                                  step, epoch, kl_weight(config.train), show_bar=False, on_step=on_step)
    except DivergenceError:
        curve.steps.append(steps)
        curve.heldout_neg_elbo.append(math.nan)
        curve.heldout_kl.append(math.nan)
    curve.seconds = time.perf_counter() - start
    return curve


DATASET, FALLBACK = "fashion-mnist", "digits"  # the claim's set, and the one it trains on without it


def check_data(dataset: str = DATASET, data_dir: str | None = None, fallback: str | None = FALLBACK,
               **sizes: Any) -> None:
    """What `_load` refuses of the claim's data, found without reading it (`check_findable`), so that
    `run_checks` refuses before any claim runs: an unknown name, a path that is neither kind, a data
    directory that does not hold the set (a directory the user named is final, never a fall-back),
    and, without a `fallback`, a set not on this machine. `sizes`: the claim's other keywords
    (`training_curves`), ignored."""
    check_findable(dataset, data_dir, missing_ok=fallback is not None)


def _load(dataset: str, data_dir: str | None, fallback: str | None) -> tuple[Any, str]:
    """The dataset, or `fallback` (with a note) if it is not on this machine; never downloads. A copy
    that is there but damaged (a checksum mismatch, a corrupt file) is an error, not a fall-back."""
    check_data(dataset, data_dir, fallback)
    try:
        return load_dataset(dataset, data_dir, download=False), ""
    except (ChecksumError, IDXFormatError):
        raise
    except MixedSizes as err:  # there, but not of one size: no fall-back, and no --image-size here
        raise DataError(f"{err.said}; `vaekit check` reads a folder at its images' own size, so give them "
                        "one size first (`vaekit train --image-size S` trains on them resized).") from None
    except Unreadable as err:  # no --skip-bad here either
        raise err.advising("remove it from the folder first (`vaekit check` reads every file of a "
                           "folder)") from None
    except DataError:
        if fallback is None:
            raise
        note = f"{dataset} is not on this machine, trained on {fallback} (vaekit data fetch {dataset})"
        return load_dataset(fallback), note


def training_curves(seed: int = 0, steps: int = 500, batch: int = 100, dataset: str = DATASET,
                    data_dir: str | None = None, fallback: str | None = FALLBACK, lr: float = 1e-3,
                    hidden: tuple[int, ...] = (400,), latent: int = 20, n_heldout: int = 1000,
                    losses: Mapping[str, TrainingLoss] | None = None) -> ClaimResult:
    """Ex.2 Q5 in practice: the same MLP VAE trained for `steps` steps with each loss of `losses`
    (default: reparameterization, score function, score function with a running-mean baseline).
    Passes when the reparameterized run ends with the lowest held-out -ELBO (the first entry of
    `losses` is the one that must win)."""
    losses = dict(losses or LOSSES)
    ds, note = _load(dataset, data_dir, fallback)
    heldout = fixed_binarization(ds.val.images[:n_heldout], seed)
    eval_every = max(1, steps // 20)
    def say(seconds: float) -> None:
        note_slow_training(seconds, steps, len(losses))

    first, *others = list(losses)
    curves = {name: train_curve(loss, ds.train.images, heldout, seed, steps, batch, lr, hidden, latent,
                                eval_every, say if name == first else None) for name, loss in losses.items()}
    final = {name: c.heldout_neg_elbo[-1] for name, c in curves.items()}
    kl = {name: c.heldout_kl[-1] for name, c in curves.items()}
    passed = all(final[first] < final[o] for o in others) and all(map(math.isfinite, final.values()))
    numbers: dict[str, Any] = {"dataset": ds.name, "steps": steps, "batch": batch,
                               "final_heldout_neg_elbo": final, "final_heldout_kl": kl,
                               "start_heldout_neg_elbo": curves[first].heldout_neg_elbo[0]}
    if note:
        numbers["note"] = note
    summary = (f"{ds.name}, {steps} steps of {batch}, held-out -ELBO after training: " + ", ".join(
        f"{name} {v:.1f} (KL {kl[name]:.1f})" for name, v in final.items())
        + f" nats, from {numbers['start_heldout_neg_elbo']:.1f}" + (f"; note: {note}" if note else ""))
    claim = "trained the same way, the reparameterized VAE reaches a lower -ELBO than the score-function one"
    details = {"curves": {name: vars(c) for name, c in curves.items()}}
    return ClaimResult("training", "Ex.2 Q5", claim, numbers, summary, passed, details)
