"""A training run (Ex.2 Q6 made real): data, model, optimizer, epochs of `vaekit.train.loop`,
validation, checkpoints, exact resume, early stopping and logging, in `runs/NAME/`.

    fit(config, out_dir)           a whole VAE run, or the rest of one with resume=True
    run_task(task, out_dir)        any kind of run (`vaekit.train.task.Task`: the VAE's `VAETask`,
                                   the classifier's `vaekit.classify.fit.ClassifierTask`), in one
                                   process or under torchrun (`vaekit.distributed`: rank 0 locks
                                   and writes)

A session of a run (`_epochs`) is a short loop over its epochs around these pieces:

    restore (`resume`)             the checkpoint into the model, optimizer and generators
    TimeBudget (`budget`)          the epochs planned from a probe, re-planned after each epoch
    set_lr (`optim`)               the learning rate of each epoch
    EarlyStopping                  the best score, the epochs without a better one, the stop
    (`early_stopping`)
    RunFiles (`run_files`)         config.json and the metrics.jsonl rows
    RunBoard (`tensorboard`)       with --tensorboard, an event log in runs/NAME/tensorboard/
    Checkpoints (`checkpoints`)    when a checkpoint and the best model are written, and the write

Everything that can fail on user input (config, data, checkpoint) is checked before the first
byte is written. Every random draw of training (permutation, binarization, eps) comes from one
`torch.Generator` seeded with the run's seed, whose state goes into each checkpoint: a resumed run
redraws exactly what an uninterrupted one would, and ends with the same weights (same seed, CPU).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit import distributed, runs
from vaekit.config import (
    FILLED_IN,
    RESUMABLE_CHANGES,
    TrainConfig,
    check_with_data,
    checkpoint_interval,
    differences,
    flag_of,
    settings_of,
    spell,
)
from vaekit.config import validate as validate_config
from vaekit.data.binarize import eval_images, fixed_binarization
from vaekit.data.load import Dataset, load_configured, note_lines
from vaekit.device import ThreadGovernor, flush_denormals, flush_incomplete, resolve_device
from vaekit.errors import CheckpointError, ConfigError
from vaekit.train import budget, tensorboard
from vaekit.train.checkpoints import Checkpoints
from vaekit.train.early_stopping import EarlyStopping, left_to_train
from vaekit.train.engines import DistributedEngine, Engine, make_engine
from vaekit.train.loop import Batches, Beta, Pixels, check_finite_state, kl_weight, train_epoch, validate
from vaekit.train.memory import check_fits
from vaekit.train.optim import beta_at, make_optimizer, set_lr
from vaekit.train.resume import DATA_KEY, Progress, check_same_data, data_digests, restore
from vaekit.train.run_files import RunFiles, check_out_dir
from vaekit.train.step import make_step
from vaekit.train.task import LoopOptions, Task
from vaekit.train.tensorboard import RunBoard
from vaekit.train.threads import governor_for, session_threads, threads_moved
from vaekit.vae.models import build_model

# A checkpoint as `runs.load_checkpoint` reads it: model tensors, optimizer tensors, state.
# The files a session replaces or appends to (eval.json and report.html it leaves as they are)
SESSION_FILES = (runs.CONFIG, runs.MODEL, runs.CHECKPOINT, runs.CHECKPOINT_JSON, runs.METRICS)
Saved = tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Any]]


def check_resume_config(out: Path, config: Any, kind: str, resumable: tuple[str, ...],
                        loaded: bool = True) -> None:
    """The config of a resumed run against the one in `out`: only the `resumable` keys may change.
    Before the data is loaded (`loaded` False) the keys still unset (None, filled from the data)
    are left to the second check, so that a changed dataset is refused before it is fetched. So is
    a config.json edited since its model file was trained (`runs.check_trained_config`)."""
    old = runs.read_config(out, kind)
    runs.check_trained_config(out, old)
    changed = [d for d in differences(old, config) if d not in resumable
               and (loaded or _value(config, d) is not None)]
    if changed:
        settings = settings_of(config)
        named = {key: f"{flag} ({key})" if (flag := flag_of(settings[key])) else key for key in settings}
        shown = [f"{named[d]} is {spell(_value(config, d))} here, {spell(_value(old, d))} in the run"
                 for d in changed[:3]] + [f"{len(changed) - 3} more"] * (len(changed) > 3)
        raise ConfigError(f"{out} was trained with another config: {'; '.join(shown)}; --resume may "
                          f"change only {', '.join(flag_of(settings[k]) or k for k in resumable)}; "
                          "train a new run into another --out (without --resume) to change the rest.")


def _value(config: Any, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


class VAETask:
    """The sheet's VAE (Ex.2 Q6): x binarized as the run says, the ELBO engine, the validation
    -ELBO; a `Task`, and `tensorboard.Boarded`."""

    resumable: tuple[str, ...] = RESUMABLE_CHANGES
    kind = "vae"
    score_name = "validation -ELBO"

    def __init__(self, config: TrainConfig, ds: Dataset) -> None:
        self.config, self.ds = config, ds

    @property
    def options(self) -> LoopOptions:
        loop = self.config.train
        return LoopOptions(loop.estimator, float(loop.time_budget or 0.0), loop.warmup,
                           checkpoint_interval(loop.checkpoint_every), bool(loop.cuda_graph))

    @property
    def train_size(self) -> int:
        return len(self.ds.train)

    def budgeted(self, epochs: int, warmup: float) -> None:
        loop = self.config.train
        loop.epochs = epochs
        if loop.warmup:  # a run without a warm-up keeps none
            loop.warmup = warmup

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

    def progress_bounds(self, model: nn.Module) -> dict[str, tuple[float, float, str]]:
        """A Bernoulli likelihood's -log p(x|z) is >= 0 for any x in [0, 1] (the reconstruction, and
        so the score estimator's baseline, its running mean), and so is the closed-form KL(q || p):
        a -ELBO of at least 0 nats. A model whose KL is a one-sample estimate (`closed_form_kl`
        False) and a Gaussian density have no such floor: any finite number."""
        bernoulli = self.config.model.likelihood == "bernoulli"
        low = 0.0 if bernoulli and getattr(model, "closed_form_kl", True) else -math.inf
        return {"best_val": (low, math.inf, "a validation -ELBO in nats"),
                "baseline": (0.0 if bernoulli else -math.inf, math.inf, "a mean reconstruction in nats")}

    def header(self, model: nn.Module) -> str:
        n = model.num_parameters()  # type: ignore[operator]
        m = self.config.model
        parts = [f"{m.stochastic_layers} stochastic layers"] if m.stochastic_layers > 1 else []
        parts += ["gated layers"] if m.gated else []
        parts += [f"VampPrior of {m.pseudo_inputs} pseudo-inputs"] if m.prior == "vamp" else []
        window = f" over the {m.autoregressive_window} pixels before each" if m.autoregressive_window else ""
        units = f"{m.autoregressive} unit" + ("" if m.autoregressive == 1 else "s")
        parts += [f"autoregressive decoder of {units}{window}"] if m.autoregressive else []
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
    check_out_dir(out, resume, "vae")
    if resume:  # before the data is read or fetched
        check_resume_config(out, config, VAETask.kind, VAETask.resumable, loaded=False)
    ds = dataset if dataset is not None else runs.load_run_data(config.data, out) if resume else \
        load_configured(config.data)
    if config.data.val_size is not None and len(ds.val) != config.data.val_size:
        raise ConfigError(f"data.val_size is {config.data.val_size}, but the dataset given holds "
                          f"{len(ds.val)} validation images; load it with that split, or leave val_size out.")
    shape = list(ds.image_shape)
    if config.model.image_shape is not None and list(config.model.image_shape) != shape:
        raise ConfigError(f"model.image_shape is {list(config.model.image_shape)}, but {config.data.name} "
                          f"has images {shape}; {FILLED_IN.format(key='model.image_shape')}")
    config.model.image_shape = shape
    check_with_data(config, config.data.name, math.prod(shape), len(ds.train))
    one_step = copy.deepcopy(config)  # a step holds at most the training images
    one_step.train.batch_size = min(config.train.batch_size, len(ds.train))
    check_fits(one_step, tuple(shape))  # too large for memory: one sentence, not an allocator error
    say_notes(note_lines(ds.notes))  # how the data was read: files skipped, channels converted, ...
    return run_task(VAETask(config, ds), out, resume, show_bar, log, started)


def say_notes(notes: list[str]) -> None:
    """Each note of a run's start ('note: ...', on stderr: a --json output stays JSON) once, by
    rank 0 under torchrun."""
    place = distributed.place()
    for note in notes if place is None or place[0] == 0 else ():
        print(f"note: {note}", file=sys.stderr, flush=True)


def run_task(task: Task, out: Path, resume: bool, show_bar: bool | None = None,
             log: Callable[[str], None] = print, started: float | None = None) -> dict[str, Any]:
    """Train `task` (its config validated, its data loaded) into `out`: the directory's rules
    checked, the config of a resumed run compared, the directory locked for the whole run. The
    run's clock (`Progress.train_seconds`, what a time budget counts) runs from `started` (a
    `time.perf_counter()`; default: once the directory is locked)."""
    loop = task.config.train
    w = distributed.world(loop.device)  # None for one process: torch.distributed is not touched
    if w is not None:
        distributed.check_estimator(task.options.estimator)
        distributed.check_batches(task.train_size, loop.batch_size, w)
        if not w.writer:
            log, show_bar = _silent, False
    if resume:
        check_resume_config(out, task.config, task.kind, task.resumable)
    device = resolve_device(loop.device)
    if w is not None and not w.writer:  # rank 0 checks and locks the directory; the others wait
        if not w.agree(True):
            raise ConfigError(f"{out}: rank 0 refused the run; its message says why.")
        return _train(task, out, resume and (out / runs.CHECKPOINT).is_file(), device, show_bar, log, w,
                      started)
    with runs.new_run_dir(out), runs.locked(out):  # refused before its first file: no empty directory
        try:
            check_out_dir(out, resume, "vae")  # again: another process may have written it meanwhile
            runs.check_files_writable(out, SESSION_FILES)  # an immutable file: refused before any change
        except (ConfigError, CheckpointError):
            if w is not None:
                w.agree(False)
            raise
        if w is not None and not w.agree(True):
            raise ConfigError(f"{out}: another rank refused the run.")
        return _train(task, out, resume and (out / runs.CHECKPOINT).is_file(), device, show_bar, log, w,
                      started)


def _silent(_: str) -> None: ...


def _train(task: Task, out: Path, from_checkpoint: bool, device: torch.device, show_bar: bool | None,
           log: Callable[[str], None], w: distributed.World | None = None,
           started: float | None = None) -> dict[str, Any]:
    """`_epochs` with the task's TensorBoard, if it has one (written by the writer rank only),
    closed at the end and on any error."""
    board = RunBoard(task, out, w is None or w.writer)
    try:
        with flush_denormals():  # subnormal numbers take a CPU's slow path (`device.flush_denormals`)
            return _epochs(task, out, from_checkpoint, device, show_bar, log, w, board,
                           time.perf_counter() if started is None else started)
    finally:
        board.close()


def _epochs(task: Task, out: Path, from_checkpoint: bool, device: torch.device, show_bar: bool | None,
            log: Callable[[str], None], w: distributed.World | None, board: RunBoard,
            started: float) -> dict[str, Any]:
    """This session's epochs of the run: the model built or restored, the time budget planned, then
    each epoch trained, validated, written (row, board, checkpoint as due) and logged."""
    loop, optim, options = task.config.train, task.config.optim, task.options
    writer = w is None or w.writer  # one process, or rank 0: the one that writes files
    saved = runs.load_checkpoint(out) if from_checkpoint else None
    digests = data_digests(task.ds)  # what each checkpoint records, and a resume holds against it
    if saved is not None:
        check_same_data(saved[2], digests[DATA_KEY], out / runs.CHECKPOINT, task.config.data.name)
    threads = session_threads(None if saved is None else saved[2], loop.threads, w)
    governor = governor_for(loop.threads, device, w)
    model, optimizer, generator, progress = _build(task, device, out, saved)
    stopping = EarlyStopping(loop.patience, task.score_name)
    if saved is not None:  # damaged rows or model file, or another run's: refused before a word or an epoch
        runs.read_metrics(out)
        runs.check_model_file(out, task.config)
    if saved is not None and not left_to_train(task, progress, stopping, out, log):
        return _summary(task, out, progress, w)
    data, beta = task.prepare(device)
    engine = _engine(task, model, progress.baseline, w)
    before = progress.train_seconds  # the earlier sessions' wall time, from the checkpoint
    clock = _clock(before, started)  # the run's wall time, all its sessions
    progress.train_seconds = clock()
    plan = _plan(task, model, engine, data, beta, progress, log, w, governor, before)
    stepper = make_step(engine, model, optimizer, optim.clip, options.cuda_graph)
    checkpoints = Checkpoints(out, options.checkpoint_every, progress.epoch, writer, threads,
                              1 if w is None else w.size, digests)
    files = RunFiles(out, task.config, writer, resumed=saved is not None)
    _log_start(task, model, device, threads, out, w, None if saved is None else progress.epoch, log)
    if plan is not None:
        plan.begin(progress.epoch)
    epoch = progress.epoch
    while epoch < loop.epochs:  # loop.epochs is re-planned under a time budget
        epoch += 1
        lr = set_lr(optimizer, epoch - 1, optim, loop.epochs)
        t0 = time.perf_counter()
        stats, progress.step = train_epoch(model, optimizer, engine, data, loop.batch_size, loop.epochs,
                                           optim, generator, progress.step, epoch, beta, show_bar,
                                           stepper=stepper, checkpointed=checkpoints.epoch,
                                           on_step=None if governor is None else governor.on_step)
        progress.baseline = engine.baseline
        seconds = time.perf_counter() - t0
        val = task.validate(model)
        check_finite_state(model, optimizer, val, epoch, checkpoints.epoch)  # before any file of it
        progress.epoch = epoch
        improved = stopping.record(progress, task.score(val))
        row = {"epoch": epoch, "step": progress.step, **stats, **val, "epoch_seconds": round(seconds, 4),
               "lr": lr, **task.extra(progress.step)}
        progress.train_seconds = clock()
        if plan is not None and plan.replan(epoch, progress.train_seconds, checkpoints.reserve):
            task.budgeted(plan.plan.epochs, plan.plan.warmup)
            files.replanned()
            plan.say(epoch, progress.train_seconds)
            _note_idle(task, plan)
        files.row(epoch, row)
        board.epoch(epoch, row, model)  # before the checkpoint, like the row
        if checkpoints.due(epoch, epoch >= loop.epochs or progress.stopped is not None):
            progress.train_seconds = clock()
            checkpoints.write(epoch, progress, task.config, generator, model, optimizer, improved)
        elif improved:
            checkpoints.keep_best(model)
        log(f"epoch {epoch:3d}/{loop.epochs}  {task.epoch_line(stats, val)}  "
            f"lr {lr:.2e}  {seconds:5.1f} s" + ("  *best" if improved else "") + threads_moved(governor))
        if progress.stopped:
            log(f"stopped after epoch {epoch}: {progress.stopped}.")
            break
    return _summary(task, out, progress, w)  # the seconds of the last checkpoint


def _build(task: Task, device: torch.device, out: Path,
           saved: Saved | None) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator, Progress]:
    """The model (torch seeded with the run's seed first: the initial weights), its optimizer, the
    generator of every draw of training (seeded alike) and the progress record: new, or restored
    from the `saved` checkpoint of `out` (`resume.restore`)."""
    seed = task.config.train.seed
    torch.manual_seed(seed)
    model = task.build().to(device)
    optimizer = make_optimizer(model.parameters(), task.config.optim)
    generator = torch.Generator(device=device).manual_seed(seed)
    if saved is None:
        return model, optimizer, generator, Progress()
    progress = restore(out / runs.CHECKPOINT, task, model, optimizer, generator, *saved)
    return model, optimizer, generator, progress


def _engine(task: Task, model: nn.Module, baseline: float | None, w: distributed.World | None) -> Engine:
    """The task's engine (a score estimator's `baseline` from the checkpoint), over the ranks under
    torchrun (`engines.DistributedEngine`)."""
    engine = task.engine(model, baseline)
    return engine if w is None else DistributedEngine(engine, w)


def _clock(before: float, started: float) -> Callable[[], float]:
    """The run's wall time: `before` (the earlier sessions', from the checkpoint) and this session's
    since `started` (a `time.perf_counter()`)."""
    return lambda: before + time.perf_counter() - started


def _plan(task: Task, model: nn.Module, engine: Engine, data: Batches, beta: Beta | None,
          progress: Progress, log: Callable[[str], None], w: distributed.World | None,
          governor: ThreadGovernor | None = None, before: float = 0.0) -> budget.TimeBudget | None:
    """The session's time budget, if the run has one: the epoch time probed on copies
    (`budget.probe`), the run's epochs and warm-up planned (`budget.TimeBudget.first`) into its
    config; ConfigError, before anything is written, if not one epoch fits; a note if the plan
    leaves the patience or the step schedule nothing to do (`budget.idle_note`)."""
    options, optim = task.options, task.config.optim
    if not options.time_budget:
        return None
    probed = budget.probe(model, optim, engine, data, task.config.train.batch_size, beta, task.validate,
                          options.cuda_graph, None if governor is None else governor.tick)
    plan = budget.TimeBudget.first(options.time_budget, probed, progress, options.warmup,
                                   optim.schedule == "cosine", log, w, before)
    task.budgeted(plan.plan.epochs, plan.plan.warmup)
    _note_idle(task, plan)
    return plan


def _note_idle(task: Task, plan: budget.TimeBudget) -> None:
    """The note of a plan that leaves the patience or the step schedule nothing to do, once a run."""
    note = None if plan.idle_noted else budget.idle_note(task.config, plan.plan)
    if note is not None:
        plan.idle_noted = True
        say_notes([note])


def _log_start(task: Task, model: nn.Module, device: torch.device, threads: int, out: Path,
               w: distributed.World | None, resumed: int | None, log: Callable[[str], None]) -> None:
    """The session's first line: what is trained on what, where, in how many threads and processes,
    and after which epoch of a `resumed` run; and a note when subnormals slow a CPU down."""
    log(f"{task.header(model)} | {device.type}, {threads} thread{'s' if threads > 1 else ''}"
        + (" (auto: the idle cores)" if task.config.train.threads == 0 and device.type == "cpu" else "")
        + f" | {out}" + (f" | {w.size} processes" if w is not None else "")
        + (f" | resuming after epoch {resumed}" if resumed is not None else ""))
    if device.type == "cpu" and flush_incomplete():
        log("note: subnormal floats are not flushed in all of torch's threads (they started before "
            "this run), so epochs can slow down as training goes on; `vaekit train` flushes them all "
            "(vaekit.device.flush_denormals says how).")


def _summary(task: Task, out: Path, progress: Progress, w: distributed.World | None = None) -> dict[str, Any]:
    """What a run did; `rank` 0 for one process (only rank 0 reports it under torchrun)."""
    return {"run_dir": str(out), "epochs": progress.epoch, **task.summary(progress.best_val),
            "best_epoch": progress.best_epoch, "stopped": progress.stopped,
            "train_seconds": round(progress.train_seconds, 3),
            "time_budget": task.options.time_budget or None, "rank": 0 if w is None else w.rank}
