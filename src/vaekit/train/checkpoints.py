"""When a run writes its checkpoint and its best model, and how long its clock says it has run.

A checkpoint (`runs.save_checkpoint`: weights, Adam's two moments, the generators, the progress)
is about three times the model's size: 90 MB for configs/fashion-mnist-best.toml. Written after
every epoch, that is most of an epoch of half a second on a GPU. So a run writes one

- after the first epoch of each session (something to resume from, and the write's cost measured),
- after the last epoch (the run's end: planned, early-stopped or at the end of its time budget),
- in between, once `every` seconds of wall time have passed since the last one (0: every epoch;
  the config's `train.checkpoint_every` "epoch" or a duration); `every` None (auto) waits for the
  last write's cost / CHECKPOINT_SHARE, so that writing takes at most that share of the run: every
  epoch where a write is cheap next to an epoch (a CPU), every few dozen where it is not (a GPU).

The best model (model.safetensors) is written with the checkpoint, so the two always agree: a
better epoch between two checkpoints is kept as a copy in memory until the next one. Resume
stays exact: a run resumed from any checkpoint redraws what the uninterrupted run drew after it
(metrics.jsonl rows past the checkpoint are rewritten), so the kill of a run loses at most the
epochs since its last checkpoint.

`Checkpoints` is a session's account of both: the policy, the best weights held, the epoch of the
last checkpoint, and the write itself (by the writer rank: one process, or rank 0 under torchrun).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit import runs
from vaekit.train.resume import Progress

CHECKPOINT_SHARE = 0.05  # auto: the share of the run's wall time that writing checkpoints may take


class CheckpointPolicy:
    """Whether the epoch just done writes its checkpoint (see the module docstring)."""

    def __init__(self, every: float | None = None) -> None:
        self.every = every
        self.last: float | None = None  # perf_counter() at the end of the last write
        self.cost = 0.0  # seconds the last write took

    def due(self, first: bool, last: bool, now: float | None = None) -> bool:
        """A write after this epoch: the session's first, the run's last, or the interval passed."""
        if first or last or self.last is None:
            return True
        interval = self.every if self.every is not None else self.cost / CHECKPOINT_SHARE
        return (time.perf_counter() if now is None else now) - self.last >= interval

    def write(self, save: Callable[..., None], *args: Any) -> None:
        """Run `save(*args)` and remember when it ended and what it cost."""
        start = time.perf_counter()
        save(*args)
        self.last = time.perf_counter()
        self.cost = self.last - start

    @property
    def reserve(self) -> float:
        """Seconds to keep for the run's last write (a time budget plans its epochs without them)."""
        return self.cost


class BestWeights:
    """The best epoch's weights until they are written: none held while the model on disk is the
    best one, a copy on the device after a better epoch that wrote no checkpoint."""

    def __init__(self) -> None:
        self.pending: dict[str, Tensor] | None = None

    def keep(self, model: nn.Module) -> None:
        self.pending = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def take(self, model: nn.Module, improved: bool) -> dict[str, Tensor] | None:
        """The tensors to write as model.safetensors now (the live model's if this epoch is the
        best, the copy if an earlier one was), or None if the file on disk is already the best."""
        tensors = dict(model.state_dict()) if improved else self.pending
        self.pending = None
        return tensors


class Checkpoints:
    """The checkpoints of one session of a run into `out`, the last one on disk after `epoch`: after
    each epoch, `due` says whether this one writes, then `write` or (a better epoch that does not)
    `keep_best`. Every rank keeps the same account; only the `writer` writes."""

    def __init__(self, out: Path, every: float | None, epoch: int, writer: bool, threads: int,
                 world_size: int, data: dict[str, str] | None = None) -> None:
        self.out, self.writer = out, writer
        self.data = data or {}  # the SHA-256s of the data trained on (`resume.data_digests`), recorded
        self.threads, self.world_size = threads, world_size  # as the checkpoint records them
        self.policy = CheckpointPolicy(every)
        self.best = BestWeights()
        self.first = epoch + 1  # the session's first epoch
        self.epoch = epoch  # the epoch of the last checkpoint on disk

    def due(self, epoch: int, last: bool) -> bool:
        """Whether `epoch` writes: the session's first, the run's `last`, or the interval passed."""
        return self.policy.due(epoch == self.first, last)

    def write(self, epoch: int, progress: Progress, config: runs.AnyConfig, generator: torch.Generator,
              model: nn.Module, optimizer: torch.optim.Optimizer, improved: bool) -> None:
        """The checkpoint of `epoch`: the weights, the optimizer, the state to resume exactly from
        (the progress, the config, both generators), and the best model if it changed."""
        state = {"epoch": epoch, "progress": asdict(progress), "config": config.to_dict(),
                 "threads": self.threads, "world_size": self.world_size,
                 "rng": {"generator": runs.encode_bytes(generator.get_state()),
                         "torch": runs.encode_bytes(torch.get_rng_state())},
                 **self.data}
        best = self.best.take(model, improved)
        if self.writer:
            self.policy.write(save, self.out, model, optimizer, state, best)
        self.epoch = epoch

    def keep_best(self, model: nn.Module) -> None:
        """A better epoch that writes no checkpoint: its weights kept until the next one."""
        self.best.keep(model)

    @property
    def reserve(self) -> float:
        """Seconds to keep for the run's last write (`CheckpointPolicy.reserve`)."""
        return self.policy.reserve


def save(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
         best: dict[str, Tensor] | None) -> None:
    """The best model, if it changed since the last write (or has no metadata yet: a run of an
    earlier vaekit, resumed), then the checkpoint (the commit point), which records the SHA-256 of
    the model file's tensors (`runs.MODEL_SHA_KEY`), so that another model file put back is refused."""
    best = runs.unmarked_weights(out) if best is None else best
    epoch = (state.get("progress") or {}).get("best_epoch")
    digest = runs.model_sha256(out) if best is None else runs.save_weights(out, best, state["config"], epoch)
    runs.save_checkpoint(out, model, optimizer, {**state, **({runs.MODEL_SHA_KEY: digest} if digest else {})})
