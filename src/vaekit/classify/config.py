"""A classifier run's configuration: four sections, as for the VAE (`vaekit.config`), read and
checked by the same machinery (`config.apply`, `config.check_fields`: types, ranges, unknown keys).
Its fields declare themselves as the VAE's do (`config.setting`); the settings it shares with the VAE
(the dataset, its user images, the batch, epochs, patience, seed, device, threads) are the VAE's own
(`config.shared`), with the classifier's defaults and help where they differ.

    [data]   which images, their size (upsampled for Ex.1 Q1), augmentation   (ClassifierDataConfig)
    [model]  a preset or a layer list in the language of `vaekit arch`         (ClassifierModelConfig)
    [optim]  optimizer, learning rate and its schedule (the VAE's OptimConfig)
    [train]  batch, epochs, label smoothing, patience, seed, device, threads   (ClassifierLoopConfig)

A run's config.json is `to_dict()`: these sections and `"task": "classify"`, which tells
`vaekit.runs` that the directory holds a classifier (a VAE run's config.json has no "task").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vaekit import config as cfg
from vaekit.config import MAX_SIZE, Bound, DataConfig, LoopConfig, ModelConfig, OptimConfig, setting, shared
from vaekit.errors import ConfigError

TASK = "classify"  # config.json's "task" of a classifier run
PRESETS = ("cnn", "dense", "dense-wide")
RESIZES = ("nearest", "bilinear")
MAX_SIDE = 4096  # upsampled image side: 4096 x 4096 images are far past any useful comparison


@dataclass
class ClassifierDataConfig:
    # registry name or a .npy/.npz path with labels
    name: str = shared(DataConfig, "name", help="dataset name, .npz with labels, or a folder of images in "
                       "class sub-folders (class/xxx.png) (default: {default})")
    data_dir: str | None = shared(DataConfig, "data_dir")
    # 0: the images as they are; else resized to side x side (Ex.1 Q1: large images)
    side: int = setting(0, kind="positive", bound=Bound("the image side to resize to", 0, MAX_SIDE),
                        help="resize the images to SIDE x SIDE pixels (Ex.1 Q1: large images) (default: as "
                        "they are)")
    resize: str = setting("nearest", choices=RESIZES,  # when side is set
                          help="{choices} (default: {default})")
    # augmentation: random crop after zero padding by this many pixels; 0 = off
    crop: int = setting(0, bound=Bound("the random crop's padding in pixels", 0, 64),
                        help="augmentation: random crop after padding by this many pixels, 0 = off "
                        "(default: {default})")
    flip: bool = setting(False, help="augmentation: random horizontal flip (default: off)")
    # User images, as for the VAE (`vaekit.config.DataConfig`, `vaekit.data.folder`): decoded size
    # "S" or "HxW", crop or pad, channels 0 (own) / 1 / 3, skip unreadable files of a folder.
    image_size: str | None = shared(DataConfig, "image_size")
    image_fit: str = shared(DataConfig, "image_fit")
    image_channels: int = shared(DataConfig, "image_channels")
    skip_bad: bool = shared(DataConfig, "skip_bad")


@dataclass
class ClassifierModelConfig:
    # ignored when layers are given
    preset: str = setting("cnn", choices=PRESETS, help="{choices} (default: {default})")
    layers: list[str] = setting([], kind="layers",  # the network in `vaekit arch`'s layer language
                                help="the network in the layer language of `vaekit arch`, e.g. "
                                "\"Conv2d(32, 3, padding=1)\" \"ReLU()\" ... \"Flatten()\" \"Linear(10)\" "
                                "(replaces --preset)")
    # (C, H, W) of the network's input, filled in from the data
    image_shape: list[int] | None = shared(ModelConfig, "image_shape")
    classes: int | None = setting(None, bound=Bound("the number of classes", 2, MAX_SIZE))  # from the labels


@dataclass
class ClassifierLoopConfig:
    batch_size: int = shared(LoopConfig, "batch_size")
    # the cnn preset: about 4.5 minutes on 2 cores; {compare_epochs}: `vaekit.classify.compare.EPOCHS`
    epochs: int = shared(LoopConfig, "epochs", default=8,
                         help="epochs in all (default: {default}; --compare: {compare_epochs})")
    # cross-entropy target: (1 - s) one-hot + s / classes
    label_smoothing: float = setting(0.0, bound=Bound("the label smoothing", 0, 1, high_open=True),
                                     help="cross-entropy label smoothing in [0, 1) (default: 0)")
    # stop after this many epochs without a better validation accuracy; 0 = never
    patience: int = shared(LoopConfig, "patience", help="early stopping after this many epochs without a "
                           "better validation accuracy, 0 = off")
    seed: int = shared(LoopConfig, "seed", help="seed (default: {default})")
    device: str = shared(LoopConfig, "device")  # cpu | cuda | auto
    threads: int = shared(LoopConfig, "threads")  # torch CPU threads; 0 = the idle cores, at least 1


@dataclass
class ClassifierConfig:
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    # Adam at 2e-3 with a cosine decay to 0 over the epochs: the cnn preset's 92.5% recipe
    # (docs/benchmarks.md, "Classifier accuracy")
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, schedule="cosine"))
    train: ClassifierLoopConfig = field(default_factory=ClassifierLoopConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"task": TASK, **asdict(self)}


# The ranges of the classifier's numbers, and the settings a resumed run may change (how long it
# goes on and where it computes), from its settings.
CLASSIFY_BOUNDS = cfg.bounds_of(ClassifierConfig())
RESUMABLE_CHANGES = cfg.resumable_of(ClassifierConfig())


# Settings a classifier run uses only with another (`config.check_used`): the VAE's that it shares
# (data.image_fit), the resize with a side, the preset without a layer list. Under --compare, which
# resizes to each of --sides, the resize is used without --side.
_RESIZE = ("data.resize", lambda c: c.data.side > 0, "a resize to --side")
_PRESET = ("model.preset", lambda c: not c.model.layers, "a network named by its preset (not a layer list, "
           "--layers, which replaces it)")


def used_with(compare: bool = False) -> tuple[tuple[str, Any, str], ...]:
    """The rules of `config.check_used` for a classifier run, or for `--compare`."""
    return (*cfg.USED_WITH, _PRESET) if compare else (*cfg.USED_WITH, _RESIZE, _PRESET)


def from_dict(d: dict[str, Any], origin: str = "config") -> ClassifierConfig:
    """A ClassifierConfig from `to_dict` output (config.json), every value checked."""
    d = {k: v for k, v in d.items() if k != "task"}
    return cfg.apply(ClassifierConfig(), d, origin)


def validate(config: ClassifierConfig) -> ClassifierConfig:
    """Raise ConfigError (one sentence) for a value a classifier run cannot use; return it."""
    cfg.check_fields(config)
    cfg.check_choices(config, skip=("model.preset",) if config.model.layers else ())  # layers replace it
    cfg.check_data_images(config.data)
    if config.data.side and config.data.image_size is not None:  # one resize, not two in a row
        raise ConfigError(f"data.side ({config.data.side}) and data.image_size ({config.data.image_size}) "
                          "would both resize the images, one after the other (data.side is --side, or "
                          "each of --compare's --sides); leave --image-size out, or give it without --side "
                          "for one run.")
    if config.model.image_shape is not None and len(config.model.image_shape) != 3:
        raise ConfigError(f"model.image_shape must be [C, H, W], got {cfg.spell(config.model.image_shape)}.")
    return config
