"""A dataset in memory: `Dataset` of three `Split`s (train, val, test), each one uint8 tensor of
images (N, C, H, W) and, when known, int64 labels (N,); and the fixed, seeded splits every source
shares (SPLIT_SEED: a split never moves).

The IDX sets keep their official test set and cut a validation split from train
(`split_indices`); every other source (scikit-learn's digits, a user's array file or folder) is
cut 80/10/10 by `three_way`, or by `three_way_in_place` into views of the one array it was read into.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vaekit.errors import ConfigError, DataError

SPLIT_SEED = 0  # the seed of every train/validation(/test) split: fixed so splits never move


@dataclass
class Split:
    """Images (N, C, H, W) uint8 in [0, 255] and labels (N,) int64 or None."""

    images: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...] | None = None
    source: str = ""  # where it was read from
    notes: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] | None = None  # file -> 'ok' | 'MISMATCH' | 'unchecked (...)'

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)


def check_limit(limit: int | None, count: int, name: str, split: str = "test") -> None:
    """A ConfigError (one sentence) when --limit, 'the first N images', asks for more than the
    `count` images of a split of `name`: the one refusal of every evaluation, never fewer silently."""
    if limit is not None and limit > count:
        raise ConfigError(f"--limit {limit:,} is more than the {count:,} {split} images of {name}; "
                          f"expected at most {count:,}, or no --limit for all of them.")


def split_indices(n: int, sizes: tuple[int, ...], seed: int = SPLIT_SEED) -> list[torch.Tensor]:
    """A fixed, seeded permutation of range(n) cut into consecutive parts of the given sizes;
    the last part takes the rest."""
    if sum(sizes) >= n:
        raise DataError(f"cannot split {n} images into parts of {sizes} and a non-empty rest.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts, start = [], 0
    for size in sizes:
        parts.append(perm[start : start + size].sort().values)
        start += size
    parts.append(perm[start:].sort().values)
    return parts


def take(split: Split, index: torch.Tensor) -> Split:
    """The rows `index` of `split` (images and labels)."""
    return Split(split.images[index], None if split.labels is None else split.labels[index])


def split_count(n: int, frac: float) -> int:
    """Images of the split that takes `frac` of n images in `three_way` (at least one)."""
    return max(1, round(n * frac))


def three_way(split: Split, val_frac: float = 0.1, test_frac: float = 0.1) -> tuple[Split, ...]:
    """`split` cut into train, val and test (80/10/10 by default, each at least one image), seeded."""
    n = len(split)
    n_val, n_test = split_count(n, val_frac), split_count(n, test_frac)
    val_idx, test_idx, train_idx = split_indices(n, (n_val, n_test))
    return take(split, train_idx), take(split, val_idx), take(split, test_idx)


def three_way_in_place(images: np.ndarray, labels: np.ndarray | None) -> tuple[Split, ...]:
    """The splits of `three_way` (the same images, in the same order), made by permuting the rows
    of `images` (and `labels`) in place so that train, val and test are consecutive: each split is
    a view of the one array, never a second copy of the images (a large folder)."""
    n = images.shape[0]
    n_val, n_test = max(1, round(n * 0.1)), max(1, round(n * 0.1))
    val_idx, test_idx, train_idx = split_indices(n, (n_val, n_test))
    order = torch.cat([train_idx, val_idx, test_idx]).numpy()  # new row k holds old row order[k]
    done = np.zeros(n, bool)
    for start in range(n):  # follow each cycle of the permutation with one row held aside
        if done[start] or order[start] == start:
            continue
        held = images[start].copy()
        held_label = None if labels is None else labels[start]
        k = start
        while True:
            done[k] = True
            src = int(order[k])
            if src == start:
                images[k] = held
                if labels is not None:
                    labels[k] = held_label
                break
            images[k] = images[src]
            if labels is not None:
                labels[k] = labels[src]
            k = src
    images_t = torch.from_numpy(images)
    labels_t = None if labels is None else torch.from_numpy(labels)
    cuts = [(0, len(train_idx)), (len(train_idx), len(train_idx) + n_val),
            (len(train_idx) + n_val, n)]
    return tuple(Split(images_t[a:b], None if labels_t is None else labels_t[a:b]) for a, b in cuts)
