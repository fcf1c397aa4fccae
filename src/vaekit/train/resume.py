"""Resuming a run exactly, or not at all: every piece of a checkpoint is held against the model and
the optimizer built from config.json before any of it is used.

    Progress                                       what a checkpoint carries besides tensors
    restore(path, task, model, optimizer, ...)     a checkpoint loaded into the model, the optimizer
                                                   and the generators, each piece checked first
    check_optimizer_tensors(model, cfg, ...)       the optimizer state a step of this optimizer
                                                   makes, tensor by tensor, its settings those of
                                                   config.json, its numbers what the state means
    check_progress(state, path, names, bounds)     epoch, step, best score, ... of the right types,
                                                   within what a run of its kind can reach

A checkpoint whose Adam moments have the wrong shape would otherwise reach the fused kernel (a
segfault), one whose optimizer state is missing would resume with fresh moments (no longer the
uninterrupted run), one whose optimizer settings differ from config.json's (amsgrad, maximize,
eps, ...) would train another run than config.json says, and a negative second moment, a step count
beyond the run's steps or a best score no run reaches would fail epochs later, blamed on the
learning rate or on the write. Each is refused with one sentence naming the file
(`CheckpointError`) before anything trains; the weights themselves are checked by
`vaekit.runs.load_weights` (names, dtypes, shapes, finite) and `vaekit.runs.check_outputs` (what
they compute of a grey image is finite).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit import runs
from vaekit.config import MAX_SIZE, OptimConfig, is_int, is_number
from vaekit.data.dataset import Dataset, Split
from vaekit.errors import CheckpointError
from vaekit.train.optim import make_optimizer
from vaekit.train.task import Task


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


def restore(path: Path, task: Task, model: nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator, model_t: dict[str, Tensor], optim_t: dict[str, Tensor],
            state: dict[str, Any]) -> Progress:
    """Load the checkpoint at `path` (`runs.load_checkpoint`: its model and optimizer tensors and its
    state) of a run of `task` into the model, the optimizer, the run's generator and torch's global
    one, each piece checked first (one sentence naming the file), then checkpoint.json held against
    the state (`runs.check_readable_copy`); returns its progress record."""
    progress = Progress(**check_progress(state.get("progress"), path, progress_fields(Progress),
                                         task.progress_bounds(model)))
    runs.load_weights(model, model_t, path)
    runs.check_outputs(runs.task_for(task.config), model, path)
    check_optimizer_tensors(model, task.config.optim, optim_t, state.get("optimizer"), path, progress.step)
    try:
        optimizer.load_state_dict(runs.optimizer_from_flat(optim_t, state["optimizer"]))
        generator.set_state(runs.decode_bytes(state["rng"]["generator"]))
        torch.set_rng_state(runs.decode_bytes(state["rng"]["torch"]))
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"{path}: the optimizer or RNG state cannot be restored "
                              f"({str(err).rstrip('.')}).") from None
    runs.check_readable_copy(path.parent, state)  # checkpoint.json: the same state, for people
    return progress


DATA_KEY = "data_sha256"  # the checkpoint state's SHA-256 of the data trained on (`data_sha256`)
TEST_KEY = "test_sha256"  # and of its test split alone, what an evaluation reads (`data_digests`)


def _update(h: Any, splits: tuple[Split, ...]) -> str:
    for split in splits:
        for t in (split.images, split.labels):
            if t is None:
                h.update(b"none;")
                continue
            array = t.detach().to("cpu").contiguous().numpy()
            h.update(f"{array.dtype.str}{tuple(array.shape)};".encode())
            h.update(array.data)
    return str(h.hexdigest())


def data_sha256(ds: Dataset) -> str:
    """SHA-256 of what a run trains and validates on: the images (shape, dtype, bytes) and labels
    of each split of `ds`, in the order train, val, test."""
    return _update(hashlib.sha256(), (ds.train, ds.val, ds.test))


def data_digests(ds: Dataset) -> dict[str, str]:
    """What each checkpoint records of its data: `data_sha256` of every split (a resume holds the
    data against it) and the same of the test split alone (an evaluation reads only that split, so
    a run trained on fewer training images than its set's is still evaluated on the set)."""
    return {DATA_KEY: data_sha256(ds), TEST_KEY: sha256_of_test(ds)}


def sha256_of_test(ds: Dataset) -> str:
    """SHA-256 of the test split of `ds` alone (images and labels, as `data_sha256` hashes a split):
    what an evaluation reads, recorded by each checkpoint (`TEST_KEY`) and by eval.json."""
    return _update(hashlib.sha256(), (ds.test,))


def check_same_data(state: dict[str, Any], digest: str, path: Path, data: str,
                    remedy: str = "train into another --out") -> None:
    """The data a resumed run is given (`digest`, its `data_sha256`; `data`: its name or path) is
    the data the checkpoint at `path` was trained on, when the checkpoint records it (one of an
    earlier vaekit does not): an .npy, .npz or folder changed since is a CheckpointError naming
    both, before anything trains, so that a run never goes on training on other data. `remedy`:
    what else to do than put the data back."""
    recorded = state.get(DATA_KEY)
    if recorded is not None and recorded != digest:
        raise CheckpointError(f"{data} is not the data {path} was trained on (the SHA-256 of its images "
                              f"and labels is not the {DATA_KEY} the checkpoint records): it changed "
                              f"since, so put back that data, or {remedy}.")


def check_trained_data(run_dir: Path, ds: Dataset, data: str, remedy: str) -> None:
    """The test split of `ds` (`data`: its name or path) is the one RUN_DIR/checkpoint.safetensors
    records (`TEST_KEY`), read from its header alone: an .npy, .npz or folder changed since training
    is a CheckpointError naming both. Nothing to hold it against (no checkpoint, an unreadable state,
    none recorded) is no check: `--resume` judges the file."""
    path = run_dir / runs.CHECKPOINT
    metadata = runs.read_metadata(path, "checkpoint") or {}
    try:
        state = runs.parse_json(metadata.get(runs.files.CHECKPOINT_KEY, "null"))
    except ValueError:
        return
    recorded = state.get(TEST_KEY) if isinstance(state, dict) else None
    if isinstance(recorded, str) and recorded != sha256_of_test(ds):
        raise CheckpointError(f"{data} is not the data {path} was trained on (the SHA-256 of its test "
                              f"images and labels is not the {TEST_KEY} the checkpoint records): it "
                              f"changed since, so put back that data, or {remedy}.")


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
                            scalars: Any, path: Path, steps: int) -> None:
    """A checkpoint's optimizer state is the one this optimizer keeps for this model: every tensor
    present, none extra, each of the expected dtype and shape and finite, and of what it means
    (`check_state_tensor`; `steps`: the optimizer steps the run has taken); the same parameter
    groups with config.json's settings (`check_groups`) and the same per-parameter scalar keys."""
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
        check_state_tensor(name, t, steps, path)
    groups, state = (scalars.get("param_groups"), scalars.get("state")) if isinstance(scalars, dict) else (
        None, None)
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(
            ref_s["param_groups"]) or any(not isinstance(g, dict) or g.get("params") != r["params"]
                                          for g, r in zip(groups, ref_s["param_groups"], strict=False)):
        raise CheckpointError(f"{path}: the optimizer's parameter groups do not match this model.")
    check_groups(groups, ref_s["param_groups"], cfg, path)
    for pid, entries in ref_s["state"].items():
        if not isinstance(state.get(pid), dict) or set(state[pid]) != set(entries):
            raise CheckpointError(f"{path}: the optimizer state of parameter {pid} does not match a "
                                  f"{cfg.name} optimizer.")


SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq", "square_avg")  # means of squared gradients: >= 0


def check_state_tensor(name: str, t: Tensor, steps: int, path: Path) -> None:
    """An optimizer state tensor ('optim.<param>.<key>', finite) holds what its key means: a step
    count is a whole number between 0 and `steps` (the run's optimizer steps; a parameter without a
    gradient in a step is not counted), a second moment (`SECOND_MOMENTS`) is never negative."""
    key = name.rsplit(".", 1)[-1]
    if key == "step" and not (bool((t >= 0).all()) and bool((t <= steps).all())
                              and bool((t == t.round()).all())):
        raise CheckpointError(f"{path}: {name} must be a whole number of optimizer steps between 0 and "
                              f"the {steps} steps of progress.step, got {t.flatten()[0].item():.6g}; the "
                              "optimizer state is damaged.")
    if key in SECOND_MOMENTS and not bool((t >= 0).all()):
        raise CheckpointError(f"{path}: {name} holds negative values, but a mean of squared gradients "
                              "is never negative; the optimizer state is damaged.")


LR_KEYS = ("lr", "initial_lr")  # a group's learning rate: the schedule's, not config.json's optim.lr


def check_groups(groups: list[Any], ref_groups: list[dict[str, Any]], cfg: OptimConfig, path: Path) -> None:
    """Each of a checkpoint's parameter groups has the settings of the optimizer config.json builds
    (`ref_groups`: amsgrad, maximize, eps, betas, weight_decay, momentum, ...), field for field and
    of the same type; its learning rate, which the schedule sets for each epoch (`optim.lr_at`), is
    a number between 0 and config.json's optim.lr (optim.lr itself with no schedule), and not 0
    unless the step schedule's decay can underflow to 0 within the longest run."""
    low = cfg.lr if cfg.schedule == "none" else 0.0
    zero = cfg.schedule == "step" and cfg.lr * cfg.gamma ** (MAX_SIZE // cfg.step_size) == 0.0
    for i, (group, ref) in enumerate(zip(groups, ref_groups, strict=True)):
        ref = json.loads(json.dumps(ref))  # tuples as lists: the checkpoint's JSON
        for key in sorted((set(group) | set(ref)) - {"params"}):
            where, found, wanted = f"param_groups[{i}].{key}", group.get(key, ABSENT), ref.get(key, ABSENT)
            if key in LR_KEYS and key in group:
                if not (is_number(found) and math.isfinite(found) and low <= found <= cfg.lr
                        and (found > 0 or zero)):
                    shown = repr(cfg.lr) if low == cfg.lr else (
                        f"between 0 and {cfg.lr!r}" if zero else f"above 0 and at most {cfg.lr!r}")
                    raise CheckpointError(f"{path}: the optimizer's {where} is {_shown(found)}, but "
                                          f"config.json's {cfg.name} optimizer with the {cfg.schedule!r} "
                                          f"schedule has a learning rate of {shown}.")
            elif not _same(found, wanted):
                raise CheckpointError(f"{path}: the optimizer's {where} is {_shown(found)}, but "
                                      f"config.json's {cfg.name} optimizer has {_shown(wanted, 'none')}; the "
                                      "checkpoint is not of this config, so the run cannot resume.")


ABSENT = object()  # a field one parameter group has and the other does not


def _same(a: Any, b: Any) -> bool:
    """Equal JSON values, a bool equal only to a bool (Python's True == 1)."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _shown(value: Any, absent: str = "absent") -> str:
    return absent if value is ABSENT else json.dumps(value)[:40]


OPTIONAL_PROGRESS = ("train_seconds",)  # fields a checkpoint of an earlier vaekit may lack
MAX_STEPS = 2**53  # optimizer steps: every count below is exact as a float (the lr and beta schedules)
MAX_SECONDS = 1e10  # seconds of training (three centuries; a time budget is at most 1e9)


# The range of a score a progress record holds: (lowest, highest, what it is), by field
# (`Task.progress_bounds`).
Bounds = dict[str, tuple[float, float, str]]
ANY_SCORE: Bounds = {"best_val": (-math.inf, math.inf, "a validation score"),
                     "baseline": (-math.inf, math.inf, "a running mean")}


def check_progress(progress: Any, path: Path, names: tuple[str, ...],
                   bounds: Bounds = ANY_SCORE) -> dict[str, Any]:
    """The checkpoint's progress record: exactly the fields `names` (of `Progress`), counts as
    non-negative integers within what a run reaches (epochs up to the config's bound, the best
    epoch not past the epoch, the bad epochs those since it, steps up to MAX_STEPS), its seconds up
    to MAX_SECONDS, the stop reason as text, and its scores (`check_scores`) within `bounds`."""
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
    epoch, best_epoch = progress["epoch"], progress["best_epoch"]
    if epoch > 0 and best_epoch == 0:
        raise CheckpointError(f"{path}: progress.best_epoch is 0, but {epoch} epochs were scored; the state "
                              "is damaged.")
    if progress["bad_epochs"] != epoch - best_epoch:
        raise CheckpointError(f"{path}: progress.bad_epochs is {progress['bad_epochs']}, but the epochs "
                              f"since the best one (progress.best_epoch {best_epoch}) are "
                              f"{epoch - best_epoch}; the state is damaged.")
    check_scores(progress, path, bounds)
    if progress["stopped"] is not None and not isinstance(progress["stopped"], str):
        raise CheckpointError(f"{path}: progress.stopped must be text or null.")
    return progress


def check_scores(progress: dict[str, Any], path: Path, bounds: Bounds) -> None:
    """The best validation score: +inf before any epoch was scored (best_epoch 0), then a finite
    number within `bounds["best_val"]`; the estimator's baseline: null, or a finite number within
    `bounds["baseline"]` (null only, for a kind that keeps none)."""
    best, base = progress["best_val"], progress["baseline"]
    if progress["best_epoch"] == 0:
        if best != math.inf or not is_number(best):
            raise CheckpointError(f"{path}: progress.best_val must be Infinity before any epoch is scored "
                                  f"(progress.best_epoch 0), got {str(best)[:40]}; the state is damaged.")
    elif not is_number(best) or not math.isfinite(best):
        raise CheckpointError(f"{path}: progress.best_val must be a finite number, got {str(best)[:40]}.")
    else:
        _within(best, "best_val", bounds, path)
    if base is None:
        return
    if "baseline" not in bounds:
        raise CheckpointError(f"{path}: progress.baseline must be null: this kind of run keeps no "
                              f"baseline, got {str(base)[:40]}.")
    if not is_number(base) or not math.isfinite(base):
        raise CheckpointError(f"{path}: progress.baseline must be a finite number or null, got {base!r}.")
    _within(base, "baseline", bounds, path)


def _within(value: float, key: str, bounds: Bounds, path: Path) -> None:
    low, high, what = bounds[key]
    if not low <= value <= high:
        span = (f"at least {low:g}" if high == math.inf else f"at most {high:g}" if low == -math.inf
                else f"between {low:g} and {high:g}")
        raise CheckpointError(f"{path}: progress.{key} must be {what}, {span}, got {value:.6g}; the state "
                              "is damaged.")


def progress_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
