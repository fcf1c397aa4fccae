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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

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
