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
from vaekit.train.optim import beta_at, lr_at, make_optimizer
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
    if resume:
        if not out.is_dir():
            raise CheckpointError(f"{out}: no such run directory to resume.")
        return
    if (out / runs.CHECKPOINT).exists():
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or another --out.")
    if (out / runs.CONFIG).exists():
        raise ConfigError(f"{out} holds a run that never finished an epoch (no checkpoint to resume); "
                          "delete it or choose another --out.")


def _load_resume_state(out: Path, config: TrainConfig) -> tuple[dict, dict, dict]:
    old = runs.read_config(out)
    changed = [d for d in differences(old, config) if d not in RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(
            f"{out} was trained with a different config ({', '.join(changed)} differ); --resume only "
            f"allows changing {', '.join(RESUMABLE_CHANGES)}."
        )
    return runs.load_checkpoint(out)


def fit(config: TrainConfig, out_dir: str | Path, resume: bool = False, show_bar: bool | None = None,
        log: Callable[[str], None] = print, dataset: Dataset | None = None) -> dict[str, Any]:
    """Train a run in `out_dir` (runs/NAME/), or resume it up to `config.train.epochs`.

    Everything that can fail on user input (config, data, checkpoint) is checked before the first
    byte is written. Returns a summary: best validation -ELBO and its epoch, epochs done, stop reason.
    """
    validate_config(config)
    out = Path(out_dir)
    _check_out_dir(out, resume)
    loop = config.train
    ds = dataset if dataset is not None else load_dataset(config.data.name, config.data.data_dir)
    shape = list(ds.image_shape)
    if config.model.image_shape is not None and list(config.model.image_shape) != shape:
        raise ConfigError(f"the model was built for images {config.model.image_shape}, but "
                          f"{config.data.name} has images {shape}.")
    config.model.image_shape = shape
    saved = _load_resume_state(out, config) if resume else None

    device = resolve_device(loop.device)
    kept = saved[2].get("threads") if saved is not None and loop.threads == 0 else None
    threads = set_threads(kept if isinstance(kept, int) and kept > 0 else loop.threads)
    torch.manual_seed(loop.seed)  # the initial weights
    model = build_model(config).to(device)
    optimizer = make_optimizer(model.parameters(), config.optim)
    generator = torch.Generator(device=device).manual_seed(loop.seed)
    progress = Progress()
    if saved is not None:
        model_t, optim_t, state = saved
        runs.load_weights(model, model_t, out / runs.CHECKPOINT)
        try:
            optimizer.load_state_dict(runs.optimizer_from_flat(optim_t, state["optimizer"]))
            generator.set_state(runs.decode_bytes(state["rng"]["generator"]))
            torch.set_rng_state(runs.decode_bytes(state["rng"]["torch"]))
            progress = Progress(**state["progress"])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{out / runs.CHECKPOINT}: the optimizer or RNG state cannot be "
                                  f"restored ({err}).") from None
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

    out.mkdir(parents=True, exist_ok=True)
    runs.write_config(out, config)
    if saved is not None:
        runs.truncate_metrics(out, progress.epoch)
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
