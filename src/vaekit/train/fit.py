"""A training run (Ex.2 Q6 made real): data, model, optimizer, epochs of `vaekit.train.loop`,
validation, checkpoints, exact resume, early stopping and logging, in `runs/NAME/` (and with
--tensorboard, `vaekit.train.tensorboard`, an event log in runs/NAME/tensorboard/).

    fit(config, out_dir)           a whole VAE run, or the rest of one with resume=True
    run_task(task, out_dir)        any kind of run (`Task`: the VAE's `VAETask`, the classifier's
                                   `vaekit.classify.fit.ClassifierTask`), in one process or under
                                   torchrun (`vaekit.distributed`: rank 0 locks and writes)

Everything that can fail on user input (config, data, checkpoint) is checked before the first
byte is written. Every random draw of training (permutation, binarization, eps) comes from one
`torch.Generator` seeded with the run's seed, whose state goes into each checkpoint: a resumed run
redraws exactly what an uninterrupted one would, and ends with the same weights (same seed, CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from vaekit import distributed, runs
from vaekit.config import RESUMABLE_CHANGES, TrainConfig, checkpoint_interval, differences, format_duration
from vaekit.config import validate as validate_config
from vaekit.data.binarize import eval_images, fixed_binarization
from vaekit.data.load import Dataset, load_configured
from vaekit.device import available_cores, flush_denormals, flush_incomplete, resolve_device, set_threads
from vaekit.errors import CheckpointError, ConfigError
from vaekit.train import budget, tensorboard
from vaekit.train.checkpoints import BestWeights, CheckpointPolicy
from vaekit.train.engines import DistributedEngine, Engine, make_engine
from vaekit.train.loop import Batches, Beta, Pixels, kl_weight, train_epoch, validate
from vaekit.train.memory import check_fits
from vaekit.train.optim import beta_at, lr_at, make_optimizer
from vaekit.train.resume import check_optimizer_tensors, check_progress, progress_fields
from vaekit.train.step import make_step
from vaekit.vae.models import build_model

REPLAN_LOG_SHARE = 0.02  # a re-plan is logged when it moves the end by 2% since the last one said


@dataclass
class Progress:
    """What a checkpoint must carry besides tensors to resume exactly."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best validation score (early stopping)
    baseline: float | None = None  # score estimator's moving-average baseline
    stopped: str | None = None  # why the run ended early, if it did
    train_seconds: float = 0.0  # wall time of training so far (epochs, validation, probe): the budget's clock


def check_out_dir(out: Path, resume: bool) -> None:
    """The run directory's rules (checked before anything is loaded, and again once it is locked):

    - a new run goes into a directory that does not exist, is empty of run files, or holds only the
      config.json of a run that never finished an epoch (a kill or a divergence in epoch 1): that
      one is replaced;
    - a directory with any result of a run (model, checkpoint, metrics, eval.json, report) is
      refused without --resume, so nothing trained is overwritten or mixed with a new run;
    - --resume continues from the checkpoint, or from epoch 0 if the run never finished an epoch.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: not a directory; --out names the run directory to write.")
    present = [name for name in runs.RESULT_FILES if (out / name).exists()]
    if resume:
        if not out.is_dir():
            raise CheckpointError(f"{out}: no such run directory to resume.")
        if not (out / runs.CONFIG).is_file():
            raise CheckpointError(f"{out} holds no run to resume (no {runs.CONFIG}).")
        if present and not (out / runs.CHECKPOINT).is_file():
            raise CheckpointError(f"{out / runs.CHECKPOINT}: no checkpoint file there to resume from, "
                                  f"but the directory holds {', '.join(present)} of a run; train into "
                                  "another --out.")
        return
    if present:
        raise ConfigError(f"{out} already holds a run ({', '.join(present)}); pass --resume to continue "
                          "it, or choose another --out.")


def _check_resume_config(out: Path, task: Task) -> None:
    old = runs.read_config(out, task.kind)
    changed = [d for d in differences(old, task.config) if d not in task.resumable]
    if changed:
        raise ConfigError(
            f"{out} was trained with a different config ({', '.join(changed)} differ); --resume only "
            f"allows changing {', '.join(task.resumable)}."
        )


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the run directory ({err.strerror or err}).") from None


class Task(Protocol):
    """What a kind of run (a VAE, a classifier) brings to `run_task`; everything else (the
    directory's rules, the lock, checkpoints, exact resume, early stopping, metrics.jsonl) is
    shared. Validation scores are lower-is-better (`score`)."""

    config: Any  # TrainConfig or vaekit.classify.config.ClassifierConfig
    resumable: tuple[str, ...]  # config keys a resumed run may change
    kind: str  # runs.read_config's task name: 'vae' or 'classify'
    score_name: str  # what `score` is, as the early-stopping sentence says it

    @property
    def train_size(self) -> int: ...  # training images

    def build(self) -> nn.Module: ...  # the model (the caller seeds torch first)

    def prepare(self, device: torch.device) -> tuple[Batches, Beta | None]: ...  # training data

    def engine(self, model: nn.Module, baseline: float | None) -> Engine: ...

    def validate(self, model: nn.Module) -> dict[str, float]: ...  # val_* metrics of an epoch

    def score(self, val: dict[str, float]) -> float: ...  # lower is better

    def header(self, model: nn.Module) -> str: ...  # what is trained on what

    def epoch_line(self, stats: dict[str, float], val: dict[str, float]) -> str: ...

    def extra(self, step: int) -> dict[str, float]: ...  # more columns of the metrics row

    def summary(self, best: float) -> dict[str, Any]: ...  # the task's summary keys


@runtime_checkable
class Boarded(Protocol):
    """A task that can also write TensorBoard (`vaekit.train.tensorboard`): the VAE's, when its
    config asks for it (`--tensorboard`); a classifier run has none."""

    def board(self, out: Path) -> tensorboard.Board | None: ...  # None: this run writes no board

    def board_images(self) -> Tensor: ...  # the validation images it reconstructs (after prepare)


class VAETask:
    """The sheet's VAE (Ex.2 Q6): x binarized as the run says, the ELBO engine, the validation
    -ELBO."""

    resumable: tuple[str, ...] = RESUMABLE_CHANGES
    kind = "vae"
    score_name = "validation -ELBO"

    def __init__(self, config: TrainConfig, ds: Dataset) -> None:
        self.config, self.ds = config, ds

    @property
    def train_size(self) -> int:
        return len(self.ds.train)

    def build(self) -> nn.Module:
        return build_model(self.config)

    def prepare(self, device: torch.device) -> tuple[Batches, Beta | None]:
        config, loop = self.config, self.config.train
        mode = config.resolved_binarize()
        images = self.ds.train.images
        if mode == "fixed":  # one draw for the whole run, kept as uint8 {0, 255}
            images = (fixed_binarization(images, loop.seed) * 255).to(torch.uint8)
            mode = "none"
        self.val_x = eval_images(self.ds.val.images, config.resolved_binarize()).to(device)
        return Pixels(images.to(device), mode), kl_weight(loop)

    def engine(self, model: nn.Module, baseline: float | None) -> Engine:
        return make_engine(model, self.config.train, baseline=baseline)

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {f"val_{k}": v for k, v in validate(model, self.val_x).items()}  # type: ignore[arg-type]

    def score(self, val: dict[str, float]) -> float:
        return val["val_neg_elbo"]

    def header(self, model: nn.Module) -> str:
        n = model.num_parameters()  # type: ignore[operator]
        m = self.config.model
        parts = [f"{m.stochastic_layers} stochastic layers"] if m.stochastic_layers > 1 else []
        parts += ["gated layers"] if m.gated else []
        parts += [f"VampPrior of {m.pseudo_inputs} pseudo-inputs"] if m.prior == "vamp" else []
        window = f" over the {m.autoregressive_window} pixels before each" if m.autoregressive_window else ""
        parts += [f"autoregressive decoder of {m.autoregressive} units{window}"] if m.autoregressive else []
        if not getattr(model, "closed_form_kl", True):
            parts.append(f"KL by Monte Carlo ({self.config.train.samples} sample"
                         f"{'s' if self.config.train.samples > 1 else ''} per image)")
        return (f"{type(model).__name__} {n:,} parameters" + (f" ({', '.join(parts)})" if parts else "")
                + f" | {self.ds.name} {len(self.ds.train):,} train / "
                f"{len(self.ds.val):,} val, x: {self.config.resolved_binarize()}")

    def epoch_line(self, stats: dict[str, float], val: dict[str, float]) -> str:
        return (f"train -ELBO {stats['train_neg_elbo']:8.2f}  val -ELBO {val['val_neg_elbo']:8.2f} "
                f"(recon {val['val_recon']:7.2f}, KL {val['val_kl']:6.2f})")

    def extra(self, step: int) -> dict[str, float]:
        loop = self.config.train
        return {"beta": beta_at(step - 1, math.ceil(len(self.ds.train) / loop.batch_size), loop)}

    def summary(self, best: float) -> dict[str, Any]:
        return {"best_val_neg_elbo": best}

    def board(self, out: Path) -> tensorboard.Board | None:
        return tensorboard.Board(out) if self.config.train.tensorboard else None

    def board_images(self) -> Tensor:
        return self.val_x


def fit(config: TrainConfig, out_dir: str | Path, resume: bool = False, show_bar: bool | None = None,
        log: Callable[[str], None] = print, dataset: Dataset | None = None,
        started: float | None = None) -> dict[str, Any]:
    """Train a VAE run in `out_dir` (runs/NAME/), or resume it up to `config.train.epochs`.

    Everything that can fail on user input (config, data, checkpoint, the directory) is checked
    before the first byte is written, and the directory is held for writing (`runs.locked`) for the
    whole run: a second train, eval or report of it is refused. Returns a summary: best validation
    -ELBO and its epoch, epochs done, stop reason. `started`: the `time.perf_counter()` from which
    the time budget counts (`vaekit train`: the process's start; default: the run's first step,
    once the data is loaded and the directory locked).
    """
    validate_config(config)
    if config.train.tensorboard:
        tensorboard.require()  # without the extra: one sentence, before anything is read or written
    out = Path(out_dir)
    check_out_dir(out, resume)
    ds = dataset if dataset is not None else load_configured(config.data)
    if config.data.val_size is not None and len(ds.val) != config.data.val_size:
        raise ConfigError(f"data.val_size is {config.data.val_size}, but the dataset given holds "
                          f"{len(ds.val)} validation images; load it with that split, or leave val_size out.")
    shape = list(ds.image_shape)
    if config.model.image_shape is not None and list(config.model.image_shape) != shape:
        raise ConfigError(f"the model was built for images {config.model.image_shape}, but "
                          f"{config.data.name} has images {shape}.")
    config.model.image_shape = shape
    check_fits(config, tuple(shape))  # too large for memory: one sentence, not an allocator error
    return run_task(VAETask(config, ds), out, resume, show_bar, log, started)


def run_task(task: Task, out: Path, resume: bool, show_bar: bool | None = None,
             log: Callable[[str], None] = print, started: float | None = None) -> dict[str, Any]:
    """Train `task` (its config validated, its data loaded) into `out`: the directory's rules
    checked, the config of a resumed run compared, the directory locked for the whole run. The
    run's clock (`Progress.train_seconds`, what a time budget counts) runs from `started` (a
    `time.perf_counter()`; default: once the directory is locked)."""
    loop = task.config.train
    w = distributed.world(loop.device)  # None for one process: torch.distributed is not touched
    if w is not None:
        if getattr(loop, "estimator", "reparam") == "score":
            raise ConfigError("--estimator score keeps a baseline of one process's draws; train it with "
                              "one process.")
        distributed.check_batches(task.train_size, loop.batch_size, w)
        if not w.writer:
            log, show_bar = _silent, False
    if resume:
        _check_resume_config(out, task)
    device = resolve_device(loop.device)
    if w is not None and not w.writer:  # rank 0 checks and locks the directory; the others wait
        if not w.agree(True):
            raise ConfigError(f"{out}: rank 0 refused the run; its message says why.")
        return _train(task, out, resume and (out / runs.CHECKPOINT).is_file(), device, show_bar, log, w,
                      started)
    _make_dir(out)
    with runs.locked(out):
        try:
            check_out_dir(out, resume)  # again: another process may have written it meanwhile
        except ConfigError:
            if w is not None:
                w.agree(False)
            raise
        if w is not None and not w.agree(True):
            raise ConfigError(f"{out}: another rank refused the run.")
        return _train(task, out, resume and (out / runs.CHECKPOINT).is_file(), device, show_bar, log, w,
                      started)


def _silent(_: str) -> None:
    pass


def _restore(out: Path, config: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             generator: torch.Generator, model_t: dict, optim_t: dict, state: dict) -> Progress:
    """Load a checkpoint into the model, optimizer and generators, each piece checked first."""
    path = out / runs.CHECKPOINT
    runs.load_weights(model, model_t, path)
    check_optimizer_tensors(model, config.optim, optim_t, state.get("optimizer"), path)
    progress = Progress(**check_progress(state.get("progress"), path, progress_fields(Progress)))
    try:
        optimizer.load_state_dict(runs.optimizer_from_flat(optim_t, state["optimizer"]))
        generator.set_state(runs.decode_bytes(state["rng"]["generator"]))
        torch.set_rng_state(runs.decode_bytes(state["rng"]["torch"]))
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"{path}: the optimizer or RNG state cannot be restored "
                              f"({str(err).rstrip('.')}).") from None
    return progress


def _train(task: Task, out: Path, from_checkpoint: bool, device: torch.device, show_bar: bool | None,
           log: Callable[[str], None], w: distributed.World | None = None,
           started: float | None = None) -> dict[str, Any]:
    """`_epochs` with the task's TensorBoard, if it has one (written by the writer rank only),
    closed at the end and on any error."""
    board = task.board(out) if (w is None or w.writer) and isinstance(task, Boarded) else None
    try:
        with flush_denormals():  # subnormal numbers take a CPU's slow path (`device.flush_denormals`)
            return _epochs(task, out, from_checkpoint, device, show_bar, log, w, board,
                           time.perf_counter() if started is None else started)
    finally:
        if board is not None:
            board.close()


def _epochs(task: Task, out: Path, from_checkpoint: bool, device: torch.device, show_bar: bool | None,
            log: Callable[[str], None], w: distributed.World | None,
            board: tensorboard.Board | None, started: float) -> dict[str, Any]:
    config = task.config
    loop = config.train
    writer = w is None or w.writer  # one process, or rank 0: the one that writes files
    saved = runs.load_checkpoint(out) if from_checkpoint else None
    kept = saved[2].get("threads") if saved is not None and loop.threads == 0 else None
    if w is not None and loop.threads == 0:
        kept = max(1, available_cores() // w.size)  # N processes on C cores: C / N threads each
    threads = set_threads(kept if isinstance(kept, int) and not isinstance(kept, bool) and 0 < kept <= 1024
                          else loop.threads)
    torch.manual_seed(loop.seed)  # the initial weights
    model = task.build().to(device)
    optimizer = make_optimizer(model.parameters(), config.optim)
    generator = torch.Generator(device=device).manual_seed(loop.seed)
    progress = Progress()
    if saved is not None:
        progress = _restore(out, config, model, optimizer, generator, *saved)
        if progress.stopped and progress.stopped.startswith("early stopping") and (
                loop.patience == 0 or progress.bad_epochs < loop.patience):
            log(f"{out}: early stopping at epoch {progress.epoch} lifted by --patience {loop.patience}.")
            progress.stopped = None
        if progress.stopped:
            log(f"{out}: the run already ended at epoch {progress.epoch} ({progress.stopped}).")
            return _summary(task, out, progress, w)
        if progress.epoch >= loop.epochs and not _time_budget(loop):
            log(f"{out}: already trained for {progress.epoch} epochs (--epochs {loop.epochs}); "
                "nothing to do.")
            return _summary(task, out, progress, w)

    data, beta = task.prepare(device)
    engine = task.engine(model, progress.baseline)
    if w is not None:
        engine = DistributedEngine(engine, w)
    capture = bool(getattr(loop, "cuda_graph", False))
    base_seconds = progress.train_seconds  # the earlier sessions' (from the checkpoint)

    def clock() -> float:  # the run's wall time: the earlier sessions' and this one's, all of it
        return base_seconds + time.perf_counter() - started

    progress.train_seconds = clock()
    plan = _plan(task, model, engine, data, beta, progress, log, w, capture) if _time_budget(loop) else None
    stepper = make_step(engine, model, optimizer, config.optim.clip, capture)
    policy = CheckpointPolicy(checkpoint_interval(getattr(loop, "checkpoint_every", "epoch")))
    best_weights = BestWeights()
    checkpointed = progress.epoch  # the epoch of the last checkpoint on disk

    if saved is None:
        if writer:
            runs.write_config(out, config)
            if (out / runs.METRICS).exists():  # a run that never finished an epoch: nothing to keep
                runs.truncate_metrics(out, 0)
    else:
        runs.read_metrics(out)  # a damaged metrics.jsonl is refused before anything is trained
    # A resumed run changes its files only once its first epoch is done: a divergence, a kill or a
    # bad input before that leaves the directory as it was.
    resumed_files_pending = saved is not None
    log(f"{task.header(model)} | {device.type}, {threads} thread{'s' if threads > 1 else ''}"
        + (" (auto: the idle cores)" if loop.threads == 0 and device.type == "cpu" else "") + f" | {out}"
        + (f" | {w.size} processes" if w is not None else "")
        + (f" | resuming after epoch {progress.epoch}" if saved is not None else ""))
    if device.type == "cpu" and flush_incomplete():
        log("note: subnormal floats are not flushed in all of torch's threads (they started before "
            "this run), so epochs can slow down as training goes on; `vaekit train` flushes them all "
            "(vaekit.device.flush_denormals says how).")

    session_epochs, session_start = 0, time.perf_counter()
    logged = loop.epochs  # the plan last said in the log
    epoch = progress.epoch
    while epoch < loop.epochs:  # loop.epochs is re-planned under a time budget
        epoch += 1
        lr = lr_at(epoch - 1, config.optim, loop.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        stats, progress.step = train_epoch(model, optimizer, engine, data, loop.batch_size, loop.epochs,
                                           config.optim, generator, progress.step, epoch, beta, show_bar,
                                           stepper=stepper, checkpointed=checkpointed)
        progress.baseline = engine.baseline
        seconds = time.perf_counter() - t0
        val = task.validate(model)
        progress.epoch = epoch
        score = task.score(val)
        improved = score < progress.best_val
        if improved:
            progress.best_val, progress.best_epoch, progress.bad_epochs = score, epoch, 0
        else:
            progress.bad_epochs += 1
        if loop.patience and progress.bad_epochs >= loop.patience:
            progress.stopped = f"early stopping: no better {task.score_name} for {loop.patience} epochs"
        row = {"epoch": epoch, "step": progress.step, **stats, **val, "epoch_seconds": round(seconds, 4),
               "lr": lr, **task.extra(progress.step)}
        progress.train_seconds = clock()
        session_epochs += 1
        mean_epoch = (time.perf_counter() - session_start) / session_epochs  # writes included
        if plan is not None and _replan(plan, epoch, progress, mean_epoch, w, policy.reserve):
            loop.epochs = plan.epochs
            if writer and not resumed_files_pending:
                runs.write_config(out, config)
            if abs(plan.epochs - logged) >= max(1.0, REPLAN_LOG_SHARE * logged) or plan.epochs == epoch:
                logged = plan.epochs
                log(f"time budget: {format_budget(plan, progress)}; re-planned to {plan.epochs} epochs"
                    + (" (the next epoch would not fit)" if plan.epochs == epoch else "") + ".")
        if resumed_files_pending and writer:
            runs.write_config(out, config)  # the new epochs, patience, threads
            runs.truncate_metrics(out, epoch - 1)  # rows past the checkpoint are redone
        resumed_files_pending = False
        if writer:
            runs.append_metrics(out, row)
            if board is not None and isinstance(task, Boarded):  # before the checkpoint, like the row
                board.epoch(epoch, row, model, task.board_images())
        if policy.due(session_epochs == 1, epoch >= loop.epochs or progress.stopped is not None):
            progress.train_seconds = clock()
            state = {"epoch": epoch, "progress": asdict(progress), "config": config.to_dict(),
                     "threads": threads, "world_size": 1 if w is None else w.size,
                     "rng": {"generator": runs.encode_bytes(generator.get_state()),
                             "torch": runs.encode_bytes(torch.get_rng_state())}}
            best = best_weights.take(model, improved)
            if writer:
                policy.write(_save, out, model, optimizer, state, best)
            checkpointed = epoch
        elif improved:
            best_weights.keep(model)
        log(f"epoch {epoch:3d}/{loop.epochs}  {task.epoch_line(stats, val)}  "
            f"lr {lr:.2e}  {seconds:5.1f} s" + ("  *best" if improved else ""))
        if progress.stopped:
            log(f"stopped after epoch {epoch}: {progress.stopped}.")
            break
    return _summary(task, out, progress, w)  # the seconds of the last checkpoint


def _save(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
          best: dict[str, Tensor] | None) -> None:
    """The best model, if it changed since the last write, then the checkpoint (the commit point)."""
    if best is not None:
        runs.save_tensors(out / runs.MODEL, best)
    runs.save_checkpoint(out, model, optimizer, state)


def _summary(task: Task, out: Path, progress: Progress, w: distributed.World | None = None) -> dict[str, Any]:
    """What a run did; `rank` 0 for one process (only rank 0 reports it under torchrun)."""
    return {"run_dir": str(out), "epochs": progress.epoch, **task.summary(progress.best_val),
            "best_epoch": progress.best_epoch, "stopped": progress.stopped,
            "train_seconds": round(progress.train_seconds, 3),
            "time_budget": _time_budget(task.config.train) or None, "rank": 0 if w is None else w.rank}


def _time_budget(loop: Any) -> float:
    return float(getattr(loop, "time_budget", 0.0) or 0.0)


def format_budget(plan: budget.Plan, progress: Progress) -> str:
    """'12 min 30 s of 60 min 00 s used'."""
    return (f"{format_duration(progress.train_seconds)} of {format_duration(plan.budget)} "
            "used")


def _mean_over_ranks(values: list[float], w: distributed.World | None) -> list[float]:
    """The ranks' mean of each value, so that every rank makes the same plan."""
    if w is None:
        return values
    t = w.all_reduce(torch.tensor(values, dtype=torch.float64))
    return (t / w.size).tolist()


def _plan(task: Task, model: nn.Module, engine: Engine, data: Batches, beta: Beta | None,
          progress: Progress, log: Callable[[str], None], w: distributed.World | None,
          capture: bool = False) -> budget.Plan:
    """Probe the epoch time on copies (`budget.probe`) and plan the run's epochs and warm-up into its
    config (`budget.Plan.first`); ConfigError, before anything is written, if not one epoch fits."""
    loop = task.config.train
    p = budget.probe(model, task.config.optim, engine, data, loop.batch_size, beta, task.validate, capture)
    estimate, seconds, step = _mean_over_ranks([p.epoch_seconds, p.seconds, p.step_seconds], w)
    progress.train_seconds += seconds
    plan = budget.Plan.first(loop.time_budget, progress.train_seconds, estimate, progress.epoch,
                             getattr(loop, "warmup", 0.0), "the probe measured")
    plan.epochs = min(plan.epochs, budget.MAX_EPOCHS)
    warm = getattr(loop, "warmup", 0.0)
    loop.epochs = plan.epochs
    if warm:
        loop.warmup = plan.warmup
    log(f"time budget {format_duration(plan.budget)}: {budget.PROBE_STEPS} steps probed at "
        f"{step * 1000:.1f} ms each and one validation ({format_duration(p.validation_seconds)}): "
        f"about {format_duration(estimate)} an epoch; planned {plan.epochs} epochs in all"
        + (", the cosine decay ending there" if task.config.optim.schedule == "cosine" else "")
        + (f", KL warm-up {plan.warmup:g} epochs (was {warm:g})" if warm and plan.warmup != warm else "")
        + ".")
    return plan


def _replan(plan: budget.Plan, epoch: int, progress: Progress, mean_epoch: float,
            w: distributed.World | None, reserve: float = 0.0) -> bool:
    """Re-plan after `epoch` from the time spent, plus `reserve` kept for the run's last write."""
    spent, mean = _mean_over_ranks([progress.train_seconds + reserve, mean_epoch], w)
    before = plan.epochs
    plan.replan(epoch, spent, mean)
    plan.epochs = min(plan.epochs, budget.MAX_EPOCHS)
    return plan.epochs != before
