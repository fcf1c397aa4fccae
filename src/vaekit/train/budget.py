"""A run inside a wall-time budget (`vaekit train --time-budget 60m`): its epochs planned to fit.

The schedule of a run is a function of its number of epochs: the cosine learning rate reaches 0 at
the last epoch (`optim.lr_at`), the KL warm-up is a number of epochs (`optim.beta_at`). With a
budget of T seconds of training (wall time: the epochs, their validation and checkpoints, and the
probe below), the run

1. probes: `PROBE_STEPS` optimizer steps and one validation on a copy of the model and optimizer
   (the run's own weights, optimizer and random draws are untouched, so the epochs that follow are
   those of a run of as many epochs planned by hand: same seed, same numbers); a budget shorter
   than one epoch so estimated is refused in one sentence, before anything is written;
2. plans N = floor((T - probe) / epoch estimate) epochs, so that the cosine decay ends at epoch N,
   and shortens the warm-up to at most N / 5 epochs (a warm-up longer than the run would leave
   beta < 1 at the end), in a run's first session only: a resumed run keeps the warm-up it was
   trained with, so that its KL weight goes on from the step it stopped at (a warm-up planned anew
   would make beta jump there, and differ from the one its weights and config.json record); a
   patience or a step schedule's step size of at least N would do nothing, which a note says, as
   --epochs N would be refused (`idle_note`), once the plan is made and when a re-plan first makes it so;
3. re-plans after each epoch from the mean measured epoch time of this session: N shrinks as soon
   as the epochs left would not fit (the budget is never overrun by more than part of one epoch's
   estimate), and grows when more than `GROW_MARGIN` more would fit (the probe overestimates
   epochs of a warm machine). Each re-plan is logged and written to config.json, whose
   `train.epochs` is therefore the number of epochs the run had when it ended: training again with
   `--epochs N` and no budget reproduces it.

Early stopping (`--patience`) still applies inside the budget. On `--resume` the seconds already
spent (`Progress.train_seconds`, in the checkpoint) count against the budget.

`TimeBudget` is a session's plan: the first from the probe, a re-plan after each epoch, each logged;
under torchrun every rank plans from the ranks' mean measurements, so that all plan alike.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vaekit.config import OptimConfig, check_epochs, format_duration
from vaekit.device import synchronize
from vaekit.distributed import World
from vaekit.errors import ConfigError
from vaekit.train.engines import Engine
from vaekit.train.loop import Batches, Beta, train_epoch
from vaekit.train.optim import make_optimizer
from vaekit.train.resume import Progress
from vaekit.train.step import make_step

PROBE_STEPS = 12  # optimizer steps timed by the probe, after WARM_STEPS untimed
WARM_STEPS = 3
PROBE_SEED = 2**31 - 1  # the probe's own generator: the run's draws are not touched
GROW_MARGIN = 1.05  # the plan grows when more than 5% more epochs would fit
FIRST_MARGIN = 1.08  # the first plan takes epochs 8% longer than the probe's estimate (checkpoints,
# the first epoch's allocations: the probe measured 3-6% short on the MLP VAE)
WARMUP_SHARE = 0.2  # the KL warm-up is at most this share of the planned epochs
MAX_EPOCHS = 1_000_000  # a plan never exceeds this (a budget of years over a tiny dataset)
REPLAN_LOG_SHARE = 0.02  # a re-plan is logged when it moves the end by 2% since the last one said
class BudgetTooShort(ConfigError):
    """A time budget shorter than one epoch of the run, named as the flag `--time-budget`; `detail` is
    the sentence after that name, for a command that names the budget by where it came from (a TOML
    file's train.time_budget, a resumed run's config.json)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"--time-budget {detail}")
        self.detail = detail


def given_seconds(seconds: float) -> str:
    """A time budget as given: its seconds as they were written under a minute or where not whole
    (2.95 s, not 3.0 s), else `format_duration`."""
    return f"{seconds:g} s" if seconds < 60 or seconds != int(seconds) else format_duration(seconds)


def shown_seconds(seconds: float) -> str:
    """Seconds as a message shows them: `format_duration` from 1 s on, else with 2 significant digits,
    so that 0.001 s is not shown as 0.0 s."""
    return format_duration(seconds) if seconds >= 1 else f"{seconds:.2g} s"


@dataclass
class Probe:
    """What the probe measured: seconds per optimizer step, per validation, the estimate of an
    epoch (steps x step + validation) and the probe's own wall time."""

    step_seconds: float
    validation_seconds: float
    epoch_seconds: float
    seconds: float


def probe(model: nn.Module, optim: OptimConfig, engine: Engine, data: Batches, batch_size: int,
          beta: Beta | None, validate: Callable[[nn.Module], object], capture: bool = False,
          tick: Callable[[], None] | None = None) -> Probe:
    """Time `PROBE_STEPS` steps (after `WARM_STEPS`) and one validation on copies of the model and
    optimizer, with the probe's own generator, each step's clock read once the device has done its
    work (`device.synchronize`); the steps are the run's (`step.make_step`: captured in a CUDA
    graph where `capture` asks and it applies). The engine's running baseline is restored after.
    `tick`: called after each step (the run's `device.ThreadGovernor`, which the probe's steps move
    as the run's would)."""
    t_start = time.perf_counter()
    clone = copy.deepcopy(model)
    opt = make_optimizer(clone.parameters(), optim)
    generator = torch.Generator(device=data.device).manual_seed(PROBE_SEED)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    n = min(steps_per_epoch, WARM_STEPS + PROBE_STEPS)
    times: list[float] = []
    baseline = engine.baseline

    def stop(step: int, _sums: Tensor, _b: int) -> bool:
        synchronize(data.device)
        times.append(time.perf_counter())
        if tick is not None:
            tick()
        return step >= n

    stepper = make_step(engine, clone, opt, optim.clip, capture)
    train_epoch(clone, opt, engine, data, batch_size, 1, optim, generator, 0, 1, beta, False, on_step=stop,
                stepper=stepper)
    engine.baseline = baseline
    warm = min(WARM_STEPS, len(times) - 2) if len(times) > 1 else 0  # at least one step timed after
    if len(times) > 1:
        step_s = (times[-1] - times[warm]) / (len(times) - 1 - warm)
    else:
        step_s = times[0] - t_start
    t0 = time.perf_counter()
    validate(clone)
    synchronize(data.device)
    val_s = time.perf_counter() - t0
    return Probe(step_s, val_s, step_s * steps_per_epoch + val_s, time.perf_counter() - t_start)


@dataclass
class Plan:
    """The epochs of a budgeted run and how they were decided."""

    budget: float  # seconds of training in all
    epochs: int  # planned epochs in all (the run ends after this one)
    warmup: float  # the KL warm-up actually used, in epochs

    @classmethod
    def first(cls, budget: float, spent: float, epoch_estimate: float, done: int, warmup: float,
              what: str, before: float = 0.0) -> Plan:
        """The plan from an epoch estimate: `done` epochs already trained, `spent` seconds used, of
        which `before` by earlier sessions; ConfigError when not one more epoch fits. The KL warm-up
        is shortened to the plan before the first epoch only: after `done` epochs it is the one the
        run was trained with, kept."""
        left = budget - spent
        more = math.floor(left / (epoch_estimate * FIRST_MARGIN)) if epoch_estimate > 0 else 1
        if more < 1:  # the advice: a session's start varies from one to the next, so half as much again
            least = math.ceil(before + (spent - before) * 1.5 + epoch_estimate * FIRST_MARGIN * 1.1)
            raise BudgetTooShort(
                f"{given_seconds(budget)} is too short for this run: {what} "
                f"{shown_seconds(epoch_estimate)} an epoch, and the run has spent {shown_seconds(spent)} "
                + (f"of wall time in its sessions so far (start-up, data and epochs) and this probe, "
                   f"leaving {shown_seconds(max(left, 0))} of the budget" if done else "starting and probing")
                + f"; give at least {format_duration(least)}, or a smaller model or dataset."
            )
        epochs = done + more
        return cls(budget, epochs, warmup if done else _warmup(warmup, epochs))

    def replan(self, done: int, spent: float, mean_epoch: float) -> bool:
        """After epoch `done` with `spent` seconds used and epochs of `mean_epoch` seconds: shrink
        when the planned epochs would not fit, grow past GROW_MARGIN. Returns whether it changed."""
        fits = done + max(0, math.floor((self.budget - spent) / max(mean_epoch, 1e-9)))
        if fits < self.epochs or fits > self.epochs * GROW_MARGIN:
            self.epochs = max(done, fits)
            return True
        return False


def idle_note(config: Any, plan: Plan) -> str | None:
    """What `config.check_epochs` says of a patience or a step schedule that the plan's epochs leave
    nothing to do (--epochs of as many would be refused), as a note, not a refusal: the plan is
    measured, so its epochs differ from run to run and move with each re-plan, and no bound on them
    would hold when a user followed it. None where the plan leaves them something to do."""
    try:
        check_epochs(config, config, planned=plan.epochs)
    except ConfigError as err:
        return (f"{str(err).rstrip('.')} (the plan is measured: its epochs differ from run to run); the run "
                "trains with the settings as they are.")
    return None


def _warmup(warmup: float, epochs: int) -> float:
    """The configured KL warm-up, at most WARMUP_SHARE of the planned epochs."""
    return min(warmup, WARMUP_SHARE * epochs) if warmup > 0 else warmup


class TimeBudget:
    """The plan of one session of a budgeted run: `first` (from the probe), then after each epoch
    `replan` (from the epochs this session has timed since `begin`) and `say` (the log line of a
    plan that moved). The run's config takes `plan.epochs` and `plan.warmup` from its caller."""

    def __init__(self, plan: Plan, log: Callable[[str], None], w: World | None) -> None:
        self.plan, self.log, self.w = plan, log, w
        self.logged = plan.epochs  # the epochs the log last said
        self.idle_noted = False  # whether a note said the plan leaves a setting nothing to do
        self.begun, self.done = time.perf_counter(), 0  # the session's epochs: since when, after which

    @classmethod
    def first(cls, budget: float, probed: Probe, progress: Progress, warmup: float, cosine: bool,
              log: Callable[[str], None], w: World | None, before: float = 0.0) -> TimeBudget:
        """The plan from the `probed` epoch time (its seconds added to the run's), logged; ConfigError,
        before anything is written, if not one epoch fits. `warmup`: the configured KL warm-up;
        `before`: the seconds of the run's earlier sessions."""
        measured = [probed.epoch_seconds, probed.seconds, probed.step_seconds]
        estimate, seconds, step = mean_over_ranks(measured, w)
        progress.train_seconds += seconds
        plan = Plan.first(budget, progress.train_seconds, estimate, progress.epoch, warmup,
                          "the probe measured", before)
        plan.epochs = min(plan.epochs, MAX_EPOCHS)
        log(f"time budget {format_duration(plan.budget)}: {PROBE_STEPS} steps probed at "
            f"{step * 1000:.1f} ms each and one validation ({format_duration(probed.validation_seconds)}): "
            f"about {format_duration(estimate)} an epoch; planned {plan.epochs} epochs in all"
            + (", the cosine decay ending there" if cosine else "")
            + (f", KL warm-up {plan.warmup:g} epochs (was {warmup:g})"
               if warmup and plan.warmup != warmup else "")
            + (f", the KL warm-up kept at the {warmup:g} epochs the run was trained with, longer than "
               "the plan, so the KL weight ends below beta"
               if progress.epoch and warmup > plan.epochs else "")
            + ".")
        return cls(plan, log, w)

    def begin(self, done: int) -> None:
        """This session's epochs start now, after epoch `done`."""
        self.begun, self.done = time.perf_counter(), done

    def replan(self, epoch: int, spent: float, reserve: float) -> bool:
        """Re-plan after `epoch` from the run's `spent` seconds plus `reserve` kept for its last write,
        and this session's mean epoch (writes included). Returns whether the planned epochs changed."""
        mean_epoch = (time.perf_counter() - self.begun) / (epoch - self.done)
        spent, mean = mean_over_ranks([spent + reserve, mean_epoch], self.w)
        before = self.plan.epochs
        self.plan.replan(epoch, spent, mean)
        self.plan.epochs = min(self.plan.epochs, MAX_EPOCHS)
        return self.plan.epochs != before

    def say(self, epoch: int, spent: float) -> None:
        """Log the plan after a re-plan at `epoch` if it moved the end by REPLAN_LOG_SHARE since the
        log last said, or ends the run there."""
        epochs = self.plan.epochs
        if abs(epochs - self.logged) >= max(1.0, REPLAN_LOG_SHARE * self.logged) or epochs == epoch:
            self.logged = epochs
            self.log(f"time budget: {format_duration(spent)} of {format_duration(self.plan.budget)} used; "
                     f"re-planned to {epochs} epochs"
                     + (" (the next epoch would not fit)" if epochs == epoch else "") + ".")


def mean_over_ranks(values: list[float], w: World | None) -> list[float]:
    """The ranks' mean of each value, so that every rank makes the same plan."""
    if w is None:
        return values
    t = w.all_reduce(torch.tensor(values, dtype=torch.float64))
    return (t / w.size).tolist()
