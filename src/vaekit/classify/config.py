"""A classifier run's configuration: four sections, as for the VAE (`vaekit.config`), read and
checked by the same machinery (`config.apply`, `config.check_fields`: types, ranges, unknown keys).

    [data]   which images, their size (upsampled for Ex.1 Q1), augmentation   (ClassifierDataConfig)
    [model]  a preset or a layer list in the language of `vaekit arch`         (ClassifierModelConfig)
    [optim]  optimizer, learning rate and its schedule (the VAE's OptimConfig)
    [train]  batch, epochs, label smoothing, patience, seed, device, threads   (ClassifierLoopConfig)

A run's config.json is `to_dict()`: these sections and `"task": "classify"`, which tells
`vaekit.runs` that the directory holds a classifier (a VAE run's config.json has no "task").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from vaekit import config as cfg
from vaekit.config import BOUNDS, MAX_SIZE, SEED_MAX, Bound, OptimConfig
from vaekit.errors import ConfigError

TASK = "classify"  # config.json's "task" of a classifier run
PRESETS = ("cnn", "dense", "dense-wide")
RESIZES = ("nearest", "bilinear")
MAX_SIDE = 4096  # upsampled image side: 4096 x 4096 images are far past any useful comparison


@dataclass
class ClassifierDataConfig:
    name: str = "fashion-mnist"  # registry name or a .npy/.npz path with labels
    data_dir: str | None = None
    side: int = 0  # 0: the images as they are; else resized to side x side (Ex.1 Q1: large images)
    resize: str = "nearest"  # nearest | bilinear, when side is set
    crop: int = 0  # augmentation: random crop after zero padding by this many pixels; 0 = off
    flip: bool = False  # augmentation: random horizontal flip
    # User images, as for the VAE (`vaekit.config.DataConfig`, `vaekit.data.folder`): decoded size
    # "S" or "HxW", crop or pad, channels 0 (own) / 1 / 3, skip unreadable files of a folder.
    image_size: str | None = None
    image_fit: str = "crop"
    image_channels: int = 0
    skip_bad: bool = False


@dataclass
class ClassifierModelConfig:
    preset: str = "cnn"  # cnn | dense | dense-wide; ignored when layers are given
    layers: list[str] = field(default_factory=list)  # the network in `vaekit arch`'s layer language
    image_shape: list[int] | None = None  # (C, H, W) of the network's input, filled in from the data
    classes: int | None = None  # filled in from the data's labels


@dataclass
class ClassifierLoopConfig:
    batch_size: int = 128
    epochs: int = 8  # the cnn preset: about 4.5 minutes on 2 cores
    label_smoothing: float = 0.0  # cross-entropy target: (1 - s) one-hot + s / classes
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0 = never
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto
    threads: int = 0  # torch CPU threads; 0 = the cores other processes leave idle, at least 1


CLASSIFY_BOUNDS: dict[str, Bound] = {
    **{k: v for k, v in BOUNDS.items() if k.startswith("optim.")},
    **{k: BOUNDS[k] for k in ("train.batch_size", "train.epochs", "train.patience", "train.seed",
                              "train.threads")},
    "data.image_channels": BOUNDS["data.image_channels"],
    "data.side": Bound("the image side to resize to (0 = as they are)", 0, MAX_SIDE),
    "data.crop": Bound("the random crop's padding in pixels", 0, 64),
    "model.image_shape": Bound("each image size of [C, H, W]", 1, MAX_SIZE),
    "model.classes": Bound("the number of classes", 2, MAX_SIZE),
    "train.label_smoothing": Bound("the label smoothing", 0, 1, high_open=True),
}
assert CLASSIFY_BOUNDS["train.seed"].high == SEED_MAX


@dataclass
class ClassifierConfig:
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    # Adam at 2e-3 with a cosine decay to 0 over the epochs: the cnn preset's 92.5% recipe
    # (docs/benchmarks.md, "Classifier accuracy")
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, schedule="cosine"))
    train: ClassifierLoopConfig = field(default_factory=ClassifierLoopConfig)

    BOUNDS: ClassVar[dict[str, Bound]] = CLASSIFY_BOUNDS

    def to_dict(self) -> dict[str, Any]:
        return {"task": TASK, **asdict(self)}


# Settings a resumed run may change: how long it goes on and where it computes.
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.device", "train.threads", "data.data_dir")


def from_dict(d: dict[str, Any], origin: str = "config") -> ClassifierConfig:
    """A ClassifierConfig from `to_dict` output (config.json), every value checked."""
    d = {k: v for k, v in d.items() if k != "task"}
    return cfg.apply(ClassifierConfig(), d, origin)


def validate(config: ClassifierConfig) -> ClassifierConfig:
    """Raise ConfigError (one sentence) for a value a classifier run cannot use; return it."""
    cfg.check_fields(config)
    if not config.model.layers:
        cfg.choice("preset", config.model.preset, PRESETS)
    cfg.choice("resize", config.data.resize, RESIZES)
    cfg.check_data_images(config.data)
    cfg.choice("optimizer", config.optim.name, cfg.OPTIMIZERS)
    cfg.choice("schedule", config.optim.schedule, cfg.SCHEDULES)
    cfg.choice("device", config.train.device, cfg.DEVICES)
    if config.model.image_shape is not None and len(config.model.image_shape) != 3:
        raise ConfigError(f"model.image_shape must be [C, H, W], got {config.model.image_shape}.")
    return config
