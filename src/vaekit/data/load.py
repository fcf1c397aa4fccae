"""Datasets as tensors: loading into one uint8 tensor and fixed, seeded splits.

Every dataset comes back as a `Dataset` of three `Split`s (train, val, test), each holding one uint8
tensor of images (N, C, H, W) and, when known, int64 labels (N,). The whole of Fashion-MNIST is
47 MB this way: training indexes batches from it, with no per-image Python objects. Where the files
are found is `vaekit.data.registry`'s business; how pixels become x is `vaekit.data.binarize`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data.binarize import prepare
from vaekit.data.idx import read_idx
from vaekit.data.registry import (
    DEFAULT_DATASET,
    REGISTRY,
    IDXDataset,
    candidate_dirs,
    checksum_status,
    fetch,
    find_file,
    locate,
    registry_entry,
)
from vaekit.errors import DataError

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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)



def _read_pair(directory: Path, spec: IDXDataset, part: str) -> Split:
    img_path = find_file(directory, spec.files[f"{part}_images"])
    lab_path = find_file(directory, spec.files[f"{part}_labels"])
    assert img_path is not None and lab_path is not None
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected uint8 images of shape (N, H, W), found {images.dtype} "
            f"of shape {images.shape}."
        )
    if labels.ndim != 1:
        raise DataError(f"{lab_path}: expected labels of shape (N,), found shape {labels.shape}.")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{lab_path}: {labels.shape[0]} labels for {images.shape[0]} images in {img_path.name}."
        )
    return Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))



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



def _take(split: Split, index: torch.Tensor) -> Split:
    return Split(split.images[index], None if split.labels is None else split.labels[index])



def three_way(split: Split, val_frac: float = 0.1, test_frac: float = 0.1) -> tuple[Split, ...]:
    n = len(split)
    n_val, n_test = max(1, round(n * val_frac)), max(1, round(n * test_frac))
    val_idx, test_idx, train_idx = split_indices(n, (n_val, n_test))
    return _take(split, train_idx), _take(split, val_idx), _take(split, test_idx)



def load_idx_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                     val_size: int | None = None) -> Dataset:
    spec = registry_entry(name)
    directory = fetch(name, data_dir) if download else locate(name, data_dir)
    if directory is None:
        raise DataError(f"{name} is not on this machine (looked in {_places(name, data_dir)}).")
    train_full = _read_pair(directory, spec, "train")
    test = _read_pair(directory, spec, "test")
    n_val = spec.val_size if val_size is None else val_size
    val_idx, train_idx = split_indices(len(train_full), (n_val,))
    return Dataset(name, _take(train_full, train_idx), _take(train_full, val_idx), test,
                   spec.classes, str(directory))



def _places(name: str, data_dir: str | Path | None) -> str:
    return ", ".join(str(d) for _, d in candidate_dirs(name, data_dir))



def load_digits_dataset() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16) scaled to uint8 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    full = Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(bunch.target.astype(np.int64)))
    train, val, test = three_way(full)
    return Dataset("digits", train, val, test, tuple(str(d) for d in range(10)), "scikit-learn")



def load_array_dataset(path: str | Path) -> Dataset:
    """User images from .npy (images) or .npz (`images` or `x`, optional `labels` or `y`).

    Images are (N, H, W) or (N, C, H, W), uint8, or float in [0, 1] (scaled and rounded to uint8).
    Loaded with allow_pickle=False: an object array is refused, never unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    labels = None
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = set(loaded.files)
                key = next((k for k in ("images", "x") if k in keys), None)
                if key is None:
                    raise DataError(
                        f"{path}: expected an array named 'images' or 'x'; found {sorted(keys)}."
                    )
                images = loaded[key]
                lkey = next((k for k in ("labels", "y") if k in keys), None)
                labels = loaded[lkey] if lkey else None
        else:
            images = loaded
    except DataError:
        raise
    except Exception as err:  # numpy, zipfile, zlib, tokenize... on a cut or corrupt file
        detail = str(err).rstrip(".").replace(". ", "; ")  # keep the message one sentence
        raise DataError(f"{path}: not a readable .npy/.npz array ({detail}).") from None
    images = _check_images(path, images)
    if labels is not None:
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.dtype.kind not in "iu":
            raise DataError(
                f"{path}: labels must be integers of shape ({images.shape[0]},), "
                f"found {labels.dtype} of shape {labels.shape}."
            )
    labels_t = None if labels is None else torch.from_numpy(labels.astype(np.int64))
    full = Split(torch.from_numpy(images), labels_t)
    train, val, test = three_way(full)
    classes = None if labels is None else tuple(str(c) for c in np.unique(labels))
    return Dataset(path.name, train, val, test, classes, str(path))



def _check_images(path: Path, images: np.ndarray) -> np.ndarray:
    if images.ndim not in (3, 4):
        raise DataError(
            f"{path}: images must have shape (N, H, W) or (N, C, H, W), found {images.ndim} "
            f"dimensions {images.shape}."
        )
    if images.shape[0] < 10:
        raise DataError(f"{path}: {images.shape[0]} images; need at least 10 to split.")
    if images.dtype == np.uint8:
        out = images
    elif images.dtype.kind == "f":
        lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
        if np.isnan(images).any() or lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{path}: float images must lie in [0, 1]; found values in [{lo:g}, {hi:g}]"
                + (" and NaN." if np.isnan(images).any() else ".")
            )
        out = np.rint(images * 255.0).astype(np.uint8)
    else:
        raise DataError(f"{path}: images must be uint8 or float in [0, 1], found dtype {images.dtype}.")
    if out.ndim == 3:
        out = out[:, None]
    return np.ascontiguousarray(out)



def load_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None,
                 download: bool = True) -> Dataset:
    """Load a dataset by registry name ('fashion-mnist', 'mnist', 'kmnist', 'digits') or a path
    to a .npy/.npz array."""
    if name.endswith((".npy", ".npz")):
        return load_array_dataset(name)
    if name == "digits":
        return load_digits_dataset()
    return load_idx_dataset(name, data_dir, download)


def describe(ds: Dataset, binarize: str = "none") -> dict[str, Any]:
    """What `vaekit data info` shows: source, shape, counts, classes, the training pixels' mean
    after `binarize` ('none', 'dynamic' or 'fixed', seed 0) and, for a set with published sums,
    each file's checksum status (None otherwise: the same keys for every set)."""
    return {
        "name": ds.name,
        "source": ds.source,
        "image_shape": list(ds.image_shape),
        "counts": {"train": len(ds.train), "val": len(ds.val), "test": len(ds.test)},
        "classes": list(ds.classes) if ds.classes else None,
        "binarize": binarize,
        "pixel_mean": float(prepare(ds.train.images, binarize, seed=0).mean()),
        "checksums": checksum_status(ds.name, Path(ds.source)) if ds.name in REGISTRY else None,
    }
