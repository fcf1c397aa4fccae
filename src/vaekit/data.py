"""Datasets: registry, lookup order, loading into one uint8 tensor, splits and binarization.

Every dataset comes back as a `Dataset` of three `Split`s (train, val, test), each holding one uint8
tensor of images (N, C, H, W) and, when known, int64 labels (N,). The whole of Fashion-MNIST is
47 MB this way: training indexes batches from it, with no per-image Python objects.

Lookup order for the IDX sets (design.md): `--data-dir`, `$VAEKIT_DATA`, `~/.cache/vaekit/NAME`,
`/usr/share/datasets/NAME` (Debian's dataset-fashion-mnist package); else download into the cache.
A directory named by `--data-dir` or `$VAEKIT_DATA` is used as it is: bad files there are an error,
never a silent fall-back elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaekit.download import RemoteFile, checksum_ok, download_file
from vaekit.errors import DataError, UnknownDatasetError
from vaekit.idx import read_idx

SPLIT_SEED = 0  # the seed of every train/validation(/test) split: fixed so splits never move
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")  # last place looked in (Debian's dataset packages)


@dataclass(frozen=True)
class IDXDataset:
    """A dataset published as four IDX files (MNIST's format)."""

    name: str
    description: str
    base_url: str
    files: dict[str, RemoteFile]  # role -> file; roles: train_images, train_labels, test_...
    classes: tuple[str, ...]
    val_size: int = 5000


def _files(sums: dict[str, str], checksum_of: str) -> dict[str, RemoteFile]:
    names = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    return {role: RemoteFile(names[role], sums[role], checksum_of) for role in names}


REGISTRY: dict[str, IDXDataset] = {
    "fashion-mnist": IDXDataset(
        "fashion-mnist",
        "Zalando's article images, 28x28 grey, 10 classes (Xiao et al. 2017)",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        _files(
            {  # SHA-256 of the decompressed files (design.md)
                "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
            "raw",
        ),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "mnist": IDXDataset(
        "mnist",
        "handwritten digits, 28x28 grey, 10 classes (LeCun et al. 1998)",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        _files(
            {  # SHA-256 of the .gz archives
                "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            },
            "archive",
        ),
        tuple(str(d) for d in range(10)),
    ),
    "kmnist": IDXDataset(
        "kmnist",
        "Kuzushiji-MNIST, cursive Japanese characters, 28x28 grey, 10 classes (Clanuwat et al. 2018)",
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        _files(
            {  # SHA-256 of the .gz archives
                "train_images": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                "train_labels": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                "test_images": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                "test_labels": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            },
            "archive",
        ),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}
BUILTIN = ("digits",)  # scikit-learn's bundled 8x8 digits: no download
DEFAULT_DATASET = "fashion-mnist"


def known_datasets() -> list[str]:
    return [*REGISTRY, *BUILTIN]


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


# ----------------------------------------------------------------------------- lookup


def _find_file(directory: Path, remote: RemoteFile) -> Path | None:
    for candidate in (directory / remote.name, directory / remote.archive_name):
        if candidate.is_file():
            return candidate
    return None


def _has_all(directory: Path, spec: IDXDataset) -> bool:
    return all(_find_file(directory, f) is not None for f in spec.files.values())


def cache_dir(name: str) -> Path:
    return Path(os.path.expanduser("~")) / ".cache" / "vaekit" / name


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places searched for dataset `name`, in order, labelled by where they come from."""
    out: list[tuple[str, Path]] = []
    if data_dir is not None:
        out.append(("--data-dir", Path(data_dir)))
    elif os.environ.get("VAEKIT_DATA"):
        out.append(("$VAEKIT_DATA", Path(os.environ["VAEKIT_DATA"])))
    out.append(("cache", cache_dir(name)))
    out.append(("system", SYSTEM_DATA_ROOT / name))
    return out


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The directory holding the IDX files of `name`, or None if no place has them.

    A user-named directory (`data_dir` or $VAEKIT_DATA) is final: it is used as it is, or as its
    subdirectory NAME, and if neither holds the files that is an error, not a fall-back.
    """
    spec = registry_entry(name)
    for origin, directory in candidate_dirs(name, data_dir):
        if origin in ("--data-dir", "$VAEKIT_DATA"):
            for d in (directory, directory / name):
                if d.is_dir() and _has_all(d, spec):
                    return d
            if not directory.is_dir():
                raise DataError(f"{directory} (from {origin}): no such directory.")
            expected = ", ".join(f.name + "[.gz]" for f in spec.files.values())
            raise DataError(
                f"{directory} (from {origin}): no {name} data there; expected the files {expected}."
            )
        if directory.is_dir() and _has_all(directory, spec):
            return directory
    return None


def registry_entry(name: str) -> IDXDataset:
    if name not in REGISTRY:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets are {', '.join(known_datasets())}, "
            "or a path to a .npy/.npz array of images."
        )
    return REGISTRY[name]


def fetch(name: str, data_dir: str | Path | None = None, base_url: str | None = None) -> Path:
    """Return the directory of `name`, downloading it into the cache if no place has it."""
    found = locate(name, data_dir)
    if found is not None:
        return found
    spec = registry_entry(name)
    target = cache_dir(name)
    base = base_url or spec.base_url
    existed = target.exists()
    try:
        for remote in spec.files.values():
            dest = target / remote.archive_name
            if dest.is_file() and checksum_ok(dest, remote):
                continue
            download_file(base + remote.archive_name, dest, remote)
    except DataError:
        if not existed and target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # leave no empty cache directory behind a failed download
        raise
    return target


def checksum_status(name: str, directory: Path) -> dict[str, str]:
    """For each file of `name` in `directory`: 'ok', 'MISMATCH' or 'missing'."""
    spec = registry_entry(name)
    status = {}
    for remote in spec.files.values():
        path = _find_file(directory, remote)
        if path is None:
            status[remote.name] = "missing"
        elif remote.checksum_of == "archive" and not path.name.endswith(remote.archive_suffix):
            status[remote.name] = "unchecked (published sum is of the .gz archive)"
        else:
            status[remote.name] = "ok" if checksum_ok(path, remote) else "MISMATCH"
    return status


# ----------------------------------------------------------------------------- loading


def _read_pair(directory: Path, spec: IDXDataset, part: str) -> Split:
    img_path = _find_file(directory, spec.files[f"{part}_images"])
    lab_path = _find_file(directory, spec.files[f"{part}_labels"])
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


# ----------------------------------------------------------------------------- binarization


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: x ~ Bernoulli(pixel / 255), a fresh draw at each call (training).

    uint8 (.., H, W) in, float32 {0, 1} of the same shape out.
    """
    probs = images.to(torch.float32).div_(255.0)
    return torch.bernoulli(probs, generator=generator)


def fixed_binarization(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Fixed binarization: one seeded draw x ~ Bernoulli(pixel / 255), the same every time
    (test-set evaluation, as in Burda et al. 2015 and the Exemplar-VAE protocol)."""
    return binarize(images, torch.Generator().manual_seed(seed))


def prepare(images: torch.Tensor, mode: str, generator: torch.Generator | None = None,
            seed: int = 0) -> torch.Tensor:
    """uint8 images -> float32: mode 'dynamic' or 'fixed' binarization, or 'none' (scale to [0,1])."""
    if mode == "dynamic":
        return binarize(images, generator)
    if mode == "fixed":
        return fixed_binarization(images, seed)
    if mode == "none":
        return images.to(torch.float32).div_(255.0)
    raise DataError(f"binarization {mode!r} is not one of dynamic, fixed, none.")
