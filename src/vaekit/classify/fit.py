"""A classifier run (Ex.1 trained, not only counted): `vaekit.train.fit.run_task` with the
classifier's data, network, engine and validation accuracy, in `runs/NAME/`.

    fit_classifier(config, out_dir)   a whole run, or the rest of one with resume=True
    prepare_config(config, ds)        the config with image_shape and classes filled in, its
                                      layers checked (SpecError before any training)
    run_bytes(rows, batch, images)    the memory estimate of a run, `check_fits` its sentence

Everything else (the directory's rules, the lock, checkpoints with exact resume, early stopping,
NaN stop, metrics.jsonl) is the VAE's, from `vaekit.train.fit`: one loop, one run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaekit import runs
from vaekit.arch.stack import LayerRow
from vaekit.classify import config as ccfg
from vaekit.classify.config import ClassifierConfig
from vaekit.classify.data import Labelled, class_notes, labelled, network_input, num_classes, resize
from vaekit.classify.loss import ClassifierEngine, cross_entropy
from vaekit.classify.metrics import logits
from vaekit.classify.models import build_classifier, layer_rows, layer_texts
from vaekit.config import FILLED_IN
from vaekit.data.load import Dataset, load_configured, note_lines
from vaekit.device import format_bytes, resolve_device
from vaekit.errors import ConfigError, SpecError
from vaekit.train.engines import Engine
from vaekit.train.fit import check_resume_config, run_task, say_notes
from vaekit.train.loop import Batches, Beta
from vaekit.train.memory import COPIES, FLOAT_BYTES, STATE_COPIES, available_bytes
from vaekit.train.run_files import check_out_dir
from vaekit.train.task import LoopOptions


def prepare_config(config: ClassifierConfig, ds: Dataset) -> list[LayerRow]:
    """Fill in model.image_shape (after data.side) and model.classes from the dataset, and return
    the network's rows; a shape that does not fit is a SpecError naming the layer (and, for a layer
    list, model.layers, which a TOML file or --layers sets), and a crop's padding as large as the
    images a ConfigError, before any training. A config that already has them (a resumed run) must
    agree with the data."""
    c, h, w = ds.image_shape
    shape = [c, h, w] if config.data.side == 0 else [c, config.data.side, config.data.side]
    if config.data.crop >= min(shape[1:]):
        raise ConfigError(f"data.crop {config.data.crop} (--crop) pads the {shape[1]}x{shape[2]} images by "
                          "at least their width or height, so a random crop could hold no pixel of the "
                          f"image; give a crop of at most {min(shape[1:]) - 1} (0: off).")
    classes = num_classes(ds, config.data.name)
    m = config.model
    if m.image_shape is not None and list(m.image_shape) != shape:
        raise ConfigError(f"model.image_shape is {list(m.image_shape)}, but {config.data.name} gives images "
                          f"{shape}; {FILLED_IN.format(key='model.image_shape')}")
    if m.classes is not None and m.classes != classes:
        raise ConfigError(f"model.classes is {m.classes}, but {config.data.name} has {classes} classes; "
                          f"{FILLED_IN.format(key='model.classes')}")
    m.image_shape, m.classes = shape, classes
    try:
        return layer_rows(layer_texts(m, shape, classes), shape, classes,
                          "--side" if config.data.side else "--image-size")
    except SpecError as err:  # a layer list is named by its key and flag, wherever it was written
        if not m.layers:
            raise
        raise SpecError(f"model.layers (--layers): {err}") from None


def run_bytes(rows: Sequence[LayerRow], batch: int, dataset_bytes: int) -> tuple[int, int, int]:
    """(total, parameter bytes, activation bytes): each parameter 4 times (weight, gradient, Adam's
    m and v), each layer output COPIES times per image of a batch, float32; plus the dataset's
    uint8 pixels (resized) as the run holds them. An order of magnitude, as train.memory's."""
    params = sum(r.params for r in rows)
    numbers = math.prod(rows[0].input_shape) + sum(math.prod(r.output_shape) for r in rows)
    state = FLOAT_BYTES * STATE_COPIES * params
    acts = FLOAT_BYTES * COPIES * batch * numbers
    return state + acts + dataset_bytes, state, acts


def check_fits(config: ClassifierConfig, rows: Sequence[LayerRow], n_images: int,
               available: int | None = None) -> int:
    """ConfigError (one sentence) if the run's estimate is over the memory available."""
    shape = config.model.image_shape or []
    total, state, acts = run_bytes(rows, config.train.batch_size, n_images * math.prod(shape))
    where = "this machine"
    if available is None:
        available, where = available_bytes(config.train.device)
        if available is None:
            return total
    if total > available:
        raise ConfigError(
            f"this classifier would need about {format_bytes(total)} of memory ({format_bytes(state)} "
            f"for {sum(r.params for r in rows):,} parameters with their gradients and Adam's moments, "
            f"{format_bytes(acts)} of activations in one step on {'x'.join(map(str, shape))} images, "
            f"and the images), but {where} has {format_bytes(available)} available; use a smaller "
            "network, --side or --batch-size.")
    return total


class ClassifierTask:
    """A classifier for `vaekit.train.fit.run_task` (a `vaekit.train.task.Task`): x = pixel / 255
    (resized once, augmented per batch), cross-entropy, the best model by validation accuracy."""

    resumable: tuple[str, ...] = ccfg.RESUMABLE_CHANGES
    kind = ccfg.TASK
    score_name = "validation accuracy"
    # no time budget, no KL warm-up, a checkpoint after every epoch, each step launched op by op
    options = LoopOptions()

    def __init__(self, config: ClassifierConfig, ds: Dataset) -> None:
        self.config, self.ds = config, ds

    @property
    def train_size(self) -> int:
        return len(self.ds.train)

    def budgeted(self, epochs: int, warmup: float) -> None:
        self.config.train.epochs = epochs  # no warm-up to shorten

    def build(self) -> nn.Module:
        return build_classifier(self.config)

    def prepare(self, device: torch.device) -> tuple[Batches, Beta | None]:
        d = self.config.data
        train, val, _ = labelled(self.ds, d.name)
        self.val_x = network_input(val.images, d.side, d.resize).to(device)
        self.val_y = val.labels.to(device)  # type: ignore[union-attr]
        images = resize(train.images, d.side, d.resize).to(device)
        return Labelled(images, train.labels.to(device), d.crop, d.flip), None  # type: ignore[union-attr]

    def engine(self, model: nn.Module, baseline: float | None) -> Engine:
        return ClassifierEngine(self.config.train.label_smoothing)

    def validate(self, model: nn.Module) -> dict[str, float]:
        out = logits(model, self.val_x)
        loss = float(cross_entropy(out, self.val_y).double().mean())
        return {"val_loss": loss, "val_accuracy": float((out.argmax(1) == self.val_y).double().mean())}

    def score(self, val: dict[str, float]) -> float:
        return -val["val_accuracy"]  # lower is better: the best model has the highest accuracy

    def progress_bounds(self, model: nn.Module) -> dict[str, tuple[float, float, str]]:
        return {"best_val": (-1.0, 0.0, "minus a validation accuracy")}  # no baseline: always null

    def header(self, model: nn.Module) -> str:
        n = sum(p.numel() for p in model.parameters())
        shape = "x".join(map(str, self.config.model.image_shape or []))
        side = (f" (resized, {self.config.data.resize})" if self.config.data.side else "")
        aug = [a for a, on in (("crop", self.config.data.crop), ("flip", self.config.data.flip)) if on]
        return (f"classifier {n:,} parameters | {self.ds.name} {len(self.ds.train):,} train / "
                f"{len(self.ds.val):,} val, {shape}{side}, augmentation {'+'.join(aug) or 'off'}")

    def epoch_line(self, stats: dict[str, float], val: dict[str, float]) -> str:
        return (f"train loss {stats['train_loss']:.4f} accuracy {100 * stats['train_accuracy']:6.2f}%  "
                f"val loss {val['val_loss']:.4f} accuracy {100 * val['val_accuracy']:6.2f}%")

    def extra(self, step: int) -> dict[str, float]:
        return {}

    def summary(self, best: float) -> dict[str, Any]:
        return {"best_val_accuracy": -best if best != float("inf") else None}


def fit_classifier(config: ClassifierConfig, out_dir: str | Path, resume: bool = False,
                   show_bar: bool | None = None, log: Callable[[str], None] = print,
                   dataset: Dataset | None = None,
                   on_rows: Callable[[list[LayerRow]], None] | None = None) -> dict[str, Any]:
    """Train a classifier run in `out_dir`, or resume it up to `config.train.epochs`. Config, data
    (a test split none of whose classes has a training image is refused; classes the splits do not
    share are a note on stderr, after the data's own notes: `class_notes`, `say_notes`), layers
    (their shapes: one sentence), memory and the directory are checked before the first byte is
    written, and on a resume so is the eval.json that `vaekit classify` writes once the run is trained
    (`runs.check_eval_replaceable`); `on_rows` is given the network's arch rows then (the CLI prints
    the table).
    Returns a summary: best validation accuracy and its epoch, epochs done, stop reason."""
    ccfg.validate(config)
    resolve_device(config.train.device)  # a device that is not there: refused before the data and the table
    out = Path(out_dir)
    check_out_dir(out, resume, ccfg.TASK)
    if resume:  # before the data is read or fetched
        check_resume_config(out, config, ClassifierTask.kind, ClassifierTask.resumable, loaded=False)
        runs.check_eval_replaceable(out, "vaekit classify eval")  # written once trained: refused before
    ds = dataset if dataset is not None else runs.load_run_data(config.data, out) if resume else \
        load_configured(config.data)
    notes = class_notes(ds, config.data.name)  # refused if no test image's class is trained on
    rows = prepare_config(config, ds)
    check_fits(config, rows, len(ds.train) + len(ds.val))
    say_notes([*note_lines(ds.notes), *notes])  # how the data was read, then what its classes leave out
    if on_rows is not None and resume:  # after the run's files are checked: with the first line it logs
        log = _first_then(lambda: on_rows(rows), log)
    elif on_rows is not None:
        on_rows(rows)
    return run_task(ClassifierTask(config, ds), out, resume, show_bar, log)


def _first_then(first: Callable[[], None], log: Callable[[str], None]) -> Callable[[str], None]:
    """`log` that calls `first` before its first line."""
    pending = [first]

    def logged(line: str) -> None:
        while pending:
            pending.pop()()
        log(line)
    return logged
