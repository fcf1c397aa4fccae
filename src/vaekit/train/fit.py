"""A training run (Ex.2 Q6 made real): data, model, optimizer, epochs of `vaekit.train.loop`,
validation, checkpoints, exact resume, early stopping and logging, in `runs/NAME/`.

    fit(config, out_dir)      a whole run, or the rest of one with resume=True

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
from typing import Any

import torch

from vaekit import runs
from vaekit.config import RESUMABLE_CHANGES, TrainConfig, differences
from vaekit.config import validate as validate_config
from vaekit.data.binarize import eval_images, fixed_binarization
from vaekit.data.load import Dataset, load_dataset
from vaekit.device import resolve_device, set_threads
from vaekit.errors import CheckpointError, ConfigError
from vaekit.train.engines import make_engine
from vaekit.train.loop import train_epoch, validate
from vaekit.train.memory import check_fits
from vaekit.train.optim import beta_at, lr_at, make_optimizer
from vaekit.train.resume import check_optimizer_tensors, check_progress, progress_fields
from vaekit.vae.models import build_model


@dataclass
class Progress:
    """What a checkpoint must carry besides tensors to resume exactly."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best validation -ELBO (early stopping)
    baseline: float | None = None  # score estimator's moving-average baseline
    stopped: str | None = None  # why the run ended early, if it did


def _check_out_dir(out: Path, resume: bool) -> None:
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


def _check_resume_config(out: Path, config: TrainConfig) -> None:
    old = runs.read_config(out)
    changed = [d for d in differences(old, config) if d not in RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(
            f"{out} was trained with a different config ({', '.join(changed)} differ); --resume only "
            f"allows changing {', '.join(RESUMABLE_CHANGES)}."
        )


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the run directory ({err.strerror or err}).") from None


def fit(config: TrainConfig, out_dir: str | Path, resume: bool = False, show_bar: bool | None = None,
        log: Callable[[str], None] = print, dataset: Dataset | None = None) -> dict[str, Any]:
    """Train a run in `out_dir` (runs/NAME/), or resume it up to `config.train.epochs`.

    Everything that can fail on user input (config, data, checkpoint, the directory) is checked
    before the first byte is written, and the directory is held for writing (`runs.locked`) for the
    whole run: a second train, eval or report of it is refused. Returns a summary: best validation
    -ELBO and its epoch, epochs done, stop reason.
    """
    validate_config(config)
    out = Path(out_dir)
    _check_out_dir(out, resume)
    ds = dataset if dataset is not None else load_dataset(config.data.name, config.data.data_dir)
    shape = list(ds.image_shape)
    if config.model.image_shape is not None and list(config.model.image_shape) != shape:
        raise ConfigError(f"the model was built for images {config.model.image_shape}, but "
                          f"{config.data.name} has images {shape}.")
    config.model.image_shape = shape
    check_fits(config, tuple(shape))  # too large for memory: one sentence, not an allocator error
    if resume:
        _check_resume_config(out, config)
    device = resolve_device(config.train.device)
    _make_dir(out)
    with runs.locked(out):
        _check_out_dir(out, resume)  # again: another process may have written it meanwhile
        return _train(config, out, resume and (out / runs.CHECKPOINT).is_file(), ds, device, show_bar,
                      log)


def _restore(out: Path, config: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
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


def _train(config: TrainConfig, out: Path, from_checkpoint: bool, ds: Dataset, device: torch.device,
           show_bar: bool | None, log: Callable[[str], None]) -> dict[str, Any]:
    loop = config.train
    saved = runs.load_checkpoint(out) if from_checkpoint else None
    kept = saved[2].get("threads") if saved is not None and loop.threads == 0 else None
    threads = set_threads(kept if isinstance(kept, int) and not isinstance(kept, bool) and 0 < kept <= 1024
                          else loop.threads)
    torch.manual_seed(loop.seed)  # the initial weights
    model = build_model(config).to(device)
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
            return _summary(out, progress)
        if progress.epoch >= loop.epochs:
            log(f"{out}: already trained for {progress.epoch} epochs (--epochs {loop.epochs}); "
                "nothing to do.")
            return _summary(out, progress)

    mode = config.resolved_binarize()
    train_images = ds.train.images.to(device)
    if mode == "fixed":  # one draw for the whole run, kept as uint8 {0, 255}
        train_images = (fixed_binarization(ds.train.images, loop.seed) * 255).to(torch.uint8).to(device)
        mode = "none"
    val_x = eval_images(ds.val.images, config.resolved_binarize()).to(device)
    engine = make_engine(model, loop, baseline=progress.baseline)

    if saved is None:
        runs.write_config(out, config)
        if (out / runs.METRICS).exists():  # a run that never finished an epoch: nothing to keep
            runs.truncate_metrics(out, 0)
    else:
        runs.read_metrics(out)  # a damaged metrics.jsonl is refused before anything is trained
    # A resumed run changes its files only once its first epoch is done: a divergence, a kill or a
    # bad input before that leaves the directory as it was.
    resumed_files_pending = saved is not None
    log(f"{type(model).__name__} {model.num_parameters():,} parameters | {ds.name} "
        f"{len(ds.train):,} train / {len(ds.val):,} val, x: {config.resolved_binarize()} | "
        f"{device.type}, {threads} thread{'s' if threads > 1 else ''}"
        + (" (auto: the idle cores)" if loop.threads == 0 and device.type == "cpu" else "") + f" | {out}"
        + (f" | resuming after epoch {progress.epoch}" if saved is not None else ""))

    for epoch in range(progress.epoch + 1, loop.epochs + 1):
        lr = lr_at(epoch - 1, config.optim, loop.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        stats, progress.step = train_epoch(model, optimizer, engine, train_images, mode, config, generator,
                                           progress.step, epoch, show_bar)
        progress.baseline = engine.baseline
        seconds = time.perf_counter() - t0
        val = validate(model, val_x)
        progress.epoch = epoch
        improved = val["neg_elbo"] < progress.best_val
        if improved:
            progress.best_val, progress.best_epoch, progress.bad_epochs = val["neg_elbo"], epoch, 0
            runs.save_model(out / runs.MODEL, model)
        else:
            progress.bad_epochs += 1
        if loop.patience and progress.bad_epochs >= loop.patience:
            progress.stopped = f"early stopping: no better validation -ELBO for {loop.patience} epochs"
        row = {"epoch": epoch, "step": progress.step, **stats, "val_neg_elbo": val["neg_elbo"],
               "val_recon": val["recon"], "val_kl": val["kl"], "epoch_seconds": round(seconds, 4),
               "lr": lr, "beta": beta_at(progress.step - 1, math.ceil(len(ds.train) / loop.batch_size),
                                         loop)}
        if resumed_files_pending:
            runs.write_config(out, config)  # the new epochs, patience, threads
            runs.truncate_metrics(out, epoch - 1)  # rows past the checkpoint are redone
            resumed_files_pending = False
        runs.append_metrics(out, row)
        state = {"epoch": epoch, "progress": asdict(progress), "config": config.to_dict(),
                 "threads": threads,
                 "rng": {"generator": runs.encode_bytes(generator.get_state()),
                         "torch": runs.encode_bytes(torch.get_rng_state())}}
        runs.save_checkpoint(out, model, optimizer, state)
        log(f"epoch {epoch:3d}/{loop.epochs}  train -ELBO {stats['train_neg_elbo']:8.2f}  "
            f"val -ELBO {val['neg_elbo']:8.2f} (recon {val['recon']:7.2f}, KL {val['kl']:6.2f})  "
            f"lr {lr:.2e}  {seconds:5.1f} s" + ("  *best" if improved else ""))
        if progress.stopped:
            log(f"stopped after epoch {epoch}: {progress.stopped}.")
            break
    return _summary(out, progress)


def _summary(out: Path, progress: Progress) -> dict[str, Any]:
    return {"run_dir": str(out), "epochs": progress.epoch, "best_val_neg_elbo": progress.best_val,
            "best_epoch": progress.best_epoch, "stopped": progress.stopped}
