"""Resuming a run exactly, or not at all: every piece of a checkpoint is held against the model and
the optimizer built from config.json before any of it is used.

    Progress                                       what a checkpoint carries besides tensors
    restore(path, cfg, model, optimizer, ...)      a checkpoint loaded into the model, the optimizer
                                                   and the generators, each piece checked first
    check_optimizer_tensors(model, cfg, ...)       the optimizer state a step of this optimizer
                                                   makes, tensor by tensor, and its scalars
    check_progress(state, path)                    epoch, step, best -ELBO, ... of the right types,
                                                   within what a run can reach

A checkpoint whose Adam moments have the wrong shape would otherwise reach the fused kernel (a
segfault), one whose optimizer state is missing would resume with fresh moments (no longer the
uninterrupted run). Each is refused with one sentence naming the file (`CheckpointError`); the
weights themselves are checked by `vaekit.runs.load_weights` (names, dtypes, shapes, finite).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit import runs
from vaekit.config import MAX_SIZE, OptimConfig, is_int, is_number
from vaekit.errors import CheckpointError
from vaekit.train.optim import make_optimizer


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


def restore(path: Path, cfg: OptimConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator, model_t: dict[str, Tensor], optim_t: dict[str, Tensor],
            state: dict[str, Any]) -> Progress:
    """Load the checkpoint at `path` (`runs.load_checkpoint`: its model and optimizer tensors and its
    state) into the model, the optimizer, the run's generator and torch's global one, each piece
    checked first (one sentence naming the file); returns its progress record."""
    runs.load_weights(model, model_t, path)
    check_optimizer_tensors(model, cfg, optim_t, state.get("optimizer"), path)
    progress = Progress(**check_progress(state.get("progress"), path, progress_fields(Progress)))
    try:
        optimizer.load_state_dict(runs.optimizer_from_flat(optim_t, state["optimizer"]))
        generator.set_state(runs.decode_bytes(state["rng"]["generator"]))
        torch.set_rng_state(runs.decode_bytes(state["rng"]["torch"]))
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"{path}: the optimizer or RNG state cannot be restored "
                              f"({str(err).rstrip('.')}).") from None
    return progress


def _finite(t: Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def expected_optimizer_state(model: nn.Module, cfg: OptimConfig) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The flat tensors and scalars (`runs.optimizer_to_flat`) that this optimizer holds after a
    step: made by one step with zero gradients on a copy of the model (nothing of `model` moves)."""
    shadow = copy.deepcopy(model).cpu()
    for p in shadow.parameters():
        p.grad = torch.zeros_like(p)
    opt = make_optimizer(shadow.parameters(), cfg)
    opt.step()
    return runs.optimizer_to_flat(opt)


def check_optimizer_tensors(model: nn.Module, cfg: OptimConfig, tensors: dict[str, Tensor],
                            scalars: Any, path: Path) -> None:
    """A checkpoint's optimizer state is the one this optimizer keeps for this model: every tensor
    present, none extra, each of the expected dtype and shape and finite; the same parameter
    groups and per-parameter scalar keys."""
    ref_t, ref_s = expected_optimizer_state(model, cfg)
    missing, extra = sorted(set(ref_t) - set(tensors)), sorted(set(tensors) - set(ref_t))
    if missing or extra:
        raise CheckpointError(f"{path}: the optimizer state does not match a {cfg.name} optimizer of "
                              f"this model (missing {missing[:3]}, unexpected {extra[:3]}), so the run "
                              "cannot resume exactly.")
    for name, ref in ref_t.items():
        t = tensors[name]
        if t.dtype != ref.dtype or t.shape != ref.shape:
            raise CheckpointError(f"{path}: {name} is {t.dtype} of shape {tuple(t.shape)}, but a "
                                  f"{cfg.name} optimizer of this model keeps {ref.dtype} of shape "
                                  f"{tuple(ref.shape)}.")
        if not _finite(t):
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values; the optimizer state is "
                                  "damaged.")
    groups, state = (scalars.get("param_groups"), scalars.get("state")) if isinstance(scalars, dict) else (
        None, None)
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(
            ref_s["param_groups"]) or any(not isinstance(g, dict) or g.get("params") != r["params"]
                                          for g, r in zip(groups, ref_s["param_groups"], strict=False)):
        raise CheckpointError(f"{path}: the optimizer's parameter groups do not match this model.")
    for pid, entries in ref_s["state"].items():
        if not isinstance(state.get(pid), dict) or set(state[pid]) != set(entries):
            raise CheckpointError(f"{path}: the optimizer state of parameter {pid} does not match a "
                                  f"{cfg.name} optimizer.")


OPTIONAL_PROGRESS = ("train_seconds",)  # fields a checkpoint of an earlier vaekit may lack
MAX_STEPS = 2**53  # optimizer steps: every count below is exact as a float (the lr and beta schedules)
MAX_SECONDS = 1e10  # seconds of training (three centuries; a time budget is at most 1e8)


def check_progress(progress: Any, path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The checkpoint's progress record: exactly the fields `names` (of `Progress`), counts as
    non-negative integers within what a run reaches (epochs up to the config's bound, the best and
    bad epochs not past the epoch, steps up to MAX_STEPS), its seconds up to MAX_SECONDS, the best
    -ELBO and the baseline as numbers, the stop reason as text."""
    required = set(names) - set(OPTIONAL_PROGRESS)
    if not isinstance(progress, dict) or not required <= set(progress) or not set(progress) <= set(names):
        raise CheckpointError(f"{path}: the progress record must have the fields {', '.join(names)}.")
    seconds = progress.get("train_seconds", 0.0)
    if not is_number(seconds) or not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise CheckpointError(f"{path}: progress.train_seconds must be a number of seconds between 0 and "
                              f"{MAX_SECONDS:.0e}, got {str(seconds)[:40]}.")
    for key in ("epoch", "step", "best_epoch", "bad_epochs"):
        v = progress[key]
        if not is_int(v) or v < 0:
            raise CheckpointError(f"{path}: progress.{key} must be a non-negative integer, got {v!r}.")
    for key, most, what in (("epoch", MAX_SIZE, f"{MAX_SIZE:,}"), ("step", MAX_STEPS, "2**53"),
                            ("best_epoch", progress["epoch"], "progress.epoch"),
                            ("bad_epochs", progress["epoch"], "progress.epoch")):
        if progress[key] > most:
            raise CheckpointError(f"{path}: progress.{key} is {str(progress[key])[:40]}, beyond {what}; the "
                                  "state is damaged.")
    best = progress["best_val"]
    if not is_number(best) or math.isnan(best):
        raise CheckpointError(f"{path}: progress.best_val must be a number, got {best!r}.")
    base = progress["baseline"]
    if base is not None and (not is_number(base) or not math.isfinite(base)):
        raise CheckpointError(f"{path}: progress.baseline must be a finite number or null, got {base!r}.")
    if progress["stopped"] is not None and not isinstance(progress["stopped"], str):
        raise CheckpointError(f"{path}: progress.stopped must be text or null.")
    return progress


def progress_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
