"""The plan of `vaekit classify --compare` (`vaekit.classify.compare`), checked before anything
trains: the sides, OUT, the data every network trains on, and each network (MODELS x sides) with its
layers, parameters, MACs and memory estimate, or the sentence that refuses it.

The defaults: EPOCHS per network, the SIDES, a seeded subset of TRAIN_IMAGES training images with
VAL_IMAGES validation images, and EVAL_IMAGES train and test images the accuracies are measured on.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vaekit.arch.stack import LayerRow
from vaekit.classify import config as ccfg
from vaekit.classify.config import MAX_SIDE, ClassifierConfig
from vaekit.classify.fit import check_fits, prepare_config, run_bytes
from vaekit.config import parse_int_list
from vaekit.data.load import Dataset, Split
from vaekit.errors import ConfigError, SpecError

EPOCHS = 2
SIDES = (28, 56, 112)
TRAIN_IMAGES = 10_000  # measured: the default compare takes about 8 minutes on 2 quiet cores
VAL_IMAGES = 1_000  # validation images per epoch (the best model is chosen on them)
EVAL_IMAGES = 5_000  # train and test images the accuracies are measured on (a 112x112 cnn
# forward pass is ~20 ms an image on one core: the 10,000 test images would cost minutes each)
MODELS = ("dense", "cnn")
JSON_NAME, FIGURE_NAME = "compare.json", "compare.png"


def parse_sides(text: str, key: str = "--sides") -> list[int]:
    """'28,56,112' -> [28, 56, 112] as written; empty text (or 'none', a layer list's word for no
    layer) is no side, refused in `check_sides`' sentence."""
    return check_sides([]) if text.strip() in ("", "none") else parse_int_list(text, key)


def check_sides(sides: Sequence[int]) -> list[int]:
    """The sides, sorted; ConfigError (one sentence) for none, a repeat, or one outside 1..MAX_SIDE."""
    if not sides:
        raise ConfigError("--sides is empty; give image sides such as 28,56,112.")
    for side in sides:
        if not 1 <= side <= MAX_SIDE:
            raise ConfigError(f"--sides {side} is not an image side; expected sides from 1 to "
                              f"{MAX_SIDE:,} pixels, such as 28,56,112.")
    if len(set(sides)) < len(sides):
        raise ConfigError(f"--sides {','.join(map(str, sides))} repeats a side; give each once.")
    return sorted(sides)


def check_out(out: Path) -> None:
    """OUT must be new or an empty directory (ConfigError otherwise): nothing is overwritten."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory; --out names the directory that "
                          "--compare writes its runs into.")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; --compare writes its runs, {JSON_NAME} and "
                          f"{FIGURE_NAME} into a new or empty directory and overwrites nothing, so "
                          "choose another --out.")


def check_train_images(n: int | None, ds: Dataset) -> int:
    """The training images each network trains on: `n` (--train-images), at most the training
    split of `ds` holds (else one sentence naming its size); None: TRAIN_IMAGES, or all of them
    where there are fewer."""
    if n is None:
        return min(TRAIN_IMAGES, len(ds.train))
    if n > len(ds.train):
        raise ConfigError(f"--train-images is {n:,}, more than the {len(ds.train):,} training images of "
                          f"{ds.name}; give at most that many.")
    return n


def take(split: Split, n: int, seed: int) -> Split:
    """A seeded sample of n images of `split` (in their order), or all of it if it has no more."""
    if n >= len(split):
        return split
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return Split(split.images[index], None if split.labels is None else split.labels[index])


def subset(ds: Dataset, train_images: int, seed: int) -> Dataset:
    """The data every network of a compare trains on: `train_images` of the training split,
    VAL_IMAGES of the validation split and EVAL_IMAGES of the test split, each a seeded sample."""
    return replace(ds, train=take(ds.train, train_images, seed), val=take(ds.val, VAL_IMAGES, seed),
                   test=take(ds.test, EVAL_IMAGES, seed))


@dataclass
class Network:
    """One network of the compare: its config (preset, side filled in), arch rows, the memory
    estimate in bytes, and the sentence that refused it (None: it fits)."""

    model: str
    side: int
    config: ClassifierConfig
    rows: list[LayerRow]
    estimate: int
    refused: str | None

    @property
    def name(self) -> str:
        return f"{self.model}-{self.side}"


def plan(config: ClassifierConfig, ds: Dataset, sides: Sequence[int], epochs: int,
         threads: int) -> list[Network]:
    """Each network (MODELS x sides), checked before anything trains: its layers on side x side
    images (a SpecError naming the side), and `check_fits` (a network over the memory is refused,
    not an error)."""
    networks = []
    for model in MODELS:
        for side in sides:
            c = copy.deepcopy(config)
            c.model.preset, c.model.layers, c.model.image_shape, c.model.classes = model, [], None, None
            c.data.side, c.train.epochs, c.train.threads = side, epochs, threads
            ccfg.validate(c)
            try:
                rows = prepare_config(c, ds)
            except SpecError as err:
                raise SpecError(f"--sides {side}: the {model} preset does not fit {side}x{side} images "
                                f"({str(err).rstrip('.')}).") from None
            n_images = len(ds.train) + len(ds.val)
            estimate = run_bytes(rows, c.train.batch_size, n_images * math.prod(c.model.image_shape or []))[0]
            try:
                check_fits(c, rows, n_images)
                refused = None
            except ConfigError as err:
                refused = f"{model} at {side}x{side}: {err}"
            networks.append(Network(model, side, c, rows, estimate, refused))
    return networks
