"""What a kind of run brings to `vaekit.train.fit.run_task`: the VAE's `fit.VAETask`, the
classifier's `vaekit.classify.fit.ClassifierTask`. Everything else (the directory's rules, the lock,
checkpoints, exact resume, early stopping, the time budget, metrics.jsonl) is shared.

    Task          the model, data, engine and validation of a kind of run, and its config
    RunConfig     a config as the shared epochs read it: [optim] and the [train] settings that
                  every kind has (`LoopSettings`)
    LoopOptions   what the shared epochs read besides, that only some kinds have: each task builds
                  it from its config (a classifier's are the defaults)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from vaekit.config import OptimConfig
from vaekit.data.dataset import Dataset
from vaekit.train.engines import Engine
from vaekit.train.loop import Batches, Beta


class LoopSettings(Protocol):
    """The [train] settings every kind of run has (`vaekit.config.LoopConfig`, the classifier's
    `ClassifierLoopConfig`)."""

    batch_size: int
    epochs: int  # a time budget re-plans it (`Task.budgeted`)
    patience: int  # early stopping after this many epochs without a better score; 0: never
    seed: int
    device: str
    threads: int  # 0: the idle cores


class DataSettings(Protocol):
    """The [data] settings every kind of run has: here, the name or path of the data (--data)."""

    name: str


class RunConfig(Protocol):
    """A run's config (`vaekit.config.TrainConfig`, `vaekit.classify.config.ClassifierConfig`) as
    the shared epochs read it; `to_dict` is what config.json and each checkpoint hold."""

    @property
    def data(self) -> DataSettings: ...

    @property
    def train(self) -> LoopSettings: ...

    @property
    def optim(self) -> OptimConfig: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LoopOptions:
    """What the shared epochs read of a run that only some kinds configure; the defaults are a run
    without them (the classifier's)."""

    estimator: str = "reparam"  # the gradient estimator; 'score' trains in one process only
    time_budget: float = 0.0  # seconds of training, 0: none (`vaekit.train.budget`)
    warmup: float = 0.0  # the KL warm-up in epochs, which a time budget may shorten
    checkpoint_every: float | None = 0.0  # seconds between checkpoints; 0: every epoch, None: auto
    cuda_graph: bool = False  # on CUDA, each step captured in a CUDA graph (`vaekit.train.step`)


class Task(Protocol):
    """What a kind of run (a VAE, a classifier) brings to `run_task`. Validation scores are
    lower-is-better (`score`)."""

    resumable: tuple[str, ...]  # config keys a resumed run may change
    ds: Dataset  # the data the run trains on (its SHA-256 recorded by each checkpoint)
    kind: str  # runs.read_config's task name: 'vae' or 'classify'
    score_name: str  # what `score` is, as the early-stopping sentence says it

    @property
    def config(self) -> RunConfig: ...

    @property
    def options(self) -> LoopOptions: ...

    @property
    def train_size(self) -> int: ...  # training images

    def budgeted(self, epochs: int, warmup: float) -> None: ...  # a time budget's plan, into the config

    def build(self) -> nn.Module: ...  # the model (the caller seeds torch first)

    def prepare(self, device: torch.device) -> tuple[Batches, Beta | None]: ...  # training data

    def engine(self, model: nn.Module, baseline: float | None) -> Engine: ...

    def validate(self, model: nn.Module) -> dict[str, float]: ...  # val_* metrics of an epoch

    def score(self, val: dict[str, float]) -> float: ...  # lower is better

    # The range of the scores a checkpoint's progress holds, (lowest, highest, what it is), by field:
    # 'best_val' (of `score`), and 'baseline' where the kind keeps one (`resume.check_progress`), of
    # a run of `model`.
    def progress_bounds(self, model: nn.Module) -> dict[str, tuple[float, float, str]]: ...

    def header(self, model: nn.Module) -> str: ...  # what is trained on what

    def epoch_line(self, stats: dict[str, float], val: dict[str, float]) -> str: ...

    def extra(self, step: int) -> dict[str, float]: ...  # more columns of the metrics row

    def summary(self, best: float) -> dict[str, Any]: ...  # the task's summary keys
