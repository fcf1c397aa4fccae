"""Datasets as tensors: loading any source into a `Dataset` (`vaekit.data.dataset`) by its name.

Every dataset comes back as a `Dataset` of three `Split`s (train, val, test), each holding one uint8
tensor of images (N, C, H, W) and, when known, int64 labels (N,). The whole of Fashion-MNIST is
47 MB this way: training indexes batches from it, with no per-image Python objects. Where the files
are found is `vaekit.data.registry`'s business; how pixels become x is `vaekit.data.binarize`'s.

A known dataset is checked against its published SHA-256 on every load (the sum is taken of the
bytes being parsed, see `vaekit.data.download.read_checked`): a file that does not match is a
ChecksumError, for train, eval, report, check and `vaekit data info` alike. To use a modified copy
on purpose, set the environment variable VAEKIT_ALLOW_MODIFIED_DATA=1 ("0" or unset: no; another
value is refused; `vaekit data info` also takes --allow-modified); the files' status stays in
`Dataset.checksums`. A plain copy of a file whose published sum is of its .gz archive (MNIST,
KMNIST) is "unchecked", not an error.

A user's own data is read by the reader that claims its path (`vaekit.data.readers`: a folder of
PNG/JPEG/... images, `vaekit.data.folder`; a .npy/.npz array, `vaekit.data.arrays`), split 80/10/10;
`ImageOptions` (--image-size, --image-channels, --image-fit, --skip-bad) decide how a folder is
decoded, and their size and channels are applied to the other sources' arrays too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.config import check_path_length
from vaekit.data.binarize import prepare
from vaekit.data.dataset import Dataset, Split, split_count, split_indices, take, three_way
from vaekit.data.download import MISMATCH, check_mirror_url, read_checked
from vaekit.data.folder import MEMORY_FACTOR, memory_room
from vaekit.data.idx import parse_idx
from vaekit.data.image_decode import ImageOptions, resize_images
from vaekit.data.readers import Reader, expected_sources, neither_kind, other_sources, reader_for
from vaekit.data.registry import (
    ALLOW_MODIFIED_ENV,
    BUILTIN,
    DATA_DIR,
    DEFAULT_DATASET,
    REGISTRY,
    IDXDataset,
    allow_modified_data,
    candidate_dirs,
    check_name,
    check_not_url,
    check_val_size,
    checksum_status,
    fetch,
    find_file,
    known_datasets,
    locate,
    registry_entry,
    repair_advice,
)
from vaekit.device import format_bytes
from vaekit.errors import ChecksumError, ConfigError, DataError, UnknownDatasetError
from vaekit.regular import cannot_follow


def _read_pair(directory: Path, spec: IDXDataset, part: str,
               checked: dict[str, tuple[Path, str]]) -> Split:
    """The images and labels of `part` ('train' or 'test'); each file's (path, checksum status)
    is added to `checked` (the caller decides what a mismatch means)."""
    arrays = []
    for role in (f"{part}_images", f"{part}_labels"):
        remote = spec.files[role]
        path = find_file(directory, remote)
        assert path is not None  # locate() found all four files
        content, status = read_checked(path, remote)
        checked[remote.name] = (path, status)
        arrays.append((path, parse_idx(content, str(path))))
    (img_path, images), (lab_path, labels) = arrays
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


def _refuse_modified(name: str, checked: dict[str, tuple[Path, str]], allow: bool, advice: str) -> None:
    """Raise ChecksumError for the first file that does not match its published SHA-256, unless
    `allow`. Called after every file was parsed, so a file that is not even valid IDX gets its own
    (more precise) error first."""
    for path, status in checked.values():
        if status == MISMATCH and not allow:
            raise ChecksumError(
                f"{path} does not match the published SHA-256 of {name}; {advice}, "
                f"or set {ALLOW_MODIFIED_ENV}=1 to use a modified copy on purpose."
            )


def load_idx_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                     val_size: int | None = None, allow_modified: bool | None = None) -> Dataset:
    """The IDX dataset `name`: train minus a fixed validation split (`val_size` images, default the
    registry's; a seeded subset, so a smaller split is a subset of a larger one), val, and the
    official test set. Each file is checked against its published SHA-256 as it is read; a mismatch is a
    ChecksumError unless `allow_modified` (default: $VAEKIT_ALLOW_MODIFIED_DATA is "1")."""
    spec = registry_entry(name)
    directory = fetch(name, data_dir) if download else locate(name, data_dir)
    if directory is None:
        raise not_on_machine(name, data_dir)
    checked: dict[str, tuple[Path, str]] = {}
    try:
        train_full = _read_pair(directory, spec, "train", checked)
        test = _read_pair(directory, spec, "test", checked)
    except DataError as err:  # a file cut or replaced: `data fetch` holds each to its published sum
        raise DataError(f"{str(err).rstrip('.')}; {repair_advice(name, data_dir)}.") from None
    _refuse_modified(name, checked, allow_modified_data(allow_modified), repair_advice(name, data_dir))
    n_val = spec.val_size if val_size is None else val_size
    if not 1 <= n_val < len(train_full):
        raise DataError(f"data.val_size of {name} must be 1 to {len(train_full) - 1} (its training file "
                        f"holds {len(train_full)} images), got {n_val}.")
    val_idx, train_idx = split_indices(len(train_full), (n_val,))
    checksums = {fname: status for fname, (_, status) in checked.items()}
    modified = [fname for fname, status in checksums.items() if status == MISMATCH]
    notes = {"modified": f"used as they are: {', '.join(modified)}"} if modified else {}
    return Dataset(name, take(train_full, train_idx), take(train_full, val_idx), test,
                   spec.classes, str(directory), notes, checksums)


def not_on_machine(name: str, data_dir: str | Path | None) -> DataError:
    """The sentence for the registry set `name` in none of the places looked in, without a download."""
    places = ", ".join(str(d) for _, d in candidate_dirs(name, data_dir))
    return DataError(f"{name} is not on this machine (looked in {places}).")


DIGITS_IMAGES = 1797  # scikit-learn's bundled 8x8 digits
DIGITS_SHAPE = (1, 8, 8)  # their (C, H, W)
DIGIT_NAMES = tuple(str(d) for d in range(10))  # their classes' names


def known_test_images(name: str) -> int | None:
    """The images of the test split of a set known by name, without reading a file: a registry set's
    published test set (None where files failing their checksum are allowed: `allow_modified_data`),
    digits' tenth of its images (`three_way`); None for a user's file or folder."""
    if name in REGISTRY:
        return None if allow_modified_data() else REGISTRY[name].test_size
    return split_count(DIGITS_IMAGES, 0.1) if name == "digits" else None


def known_train_images(name: str) -> int | None:
    """The images of the training split of a set known by name, without reading a file: digits' (all
    less the tenths `three_way` takes for validation and test); None for a registry set (its training
    file less the run's data.val_size) and for a user's file or folder."""
    return DIGITS_IMAGES - 2 * split_count(DIGITS_IMAGES, 0.1) if name == "digits" else None


def known_class_names(name: str) -> tuple[str, ...] | None:
    """The class names of a set known by name, without reading a file: a registry set's, digits' '0'
    to '9'; None for a user's file or folder (its folders' names, read from it)."""
    if name in REGISTRY:
        return REGISTRY[name].classes
    return DIGIT_NAMES if name == "digits" else None


def known_image_shape(name: str) -> tuple[int, int, int] | None:
    """The (C, H, W) of the images of a set known by name, without reading a file: a registry set's
    (None where files failing their checksum are allowed: `allow_modified_data`), digits' 1x8x8;
    None for a user's file or folder."""
    if name in REGISTRY:
        return None if allow_modified_data() else REGISTRY[name].image_shape
    return DIGITS_SHAPE if name == "digits" else None


def load_digits_dataset() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16) scaled to uint8 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    full = Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(bunch.target.astype(np.int64)))
    train, val, test = three_way(full)
    return Dataset("digits", train, val, test, DIGIT_NAMES, "scikit-learn")


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.startswith((".", "~")) or Path(name).exists()


def load_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None,
                 download: bool = True, allow_modified: bool | None = None,
                 images: ImageOptions | None = None, val_size: int | None = None,
                 progress: bool | None = None) -> Dataset:
    """Load a dataset by registry name ('fashion-mnist', 'mnist', 'kmnist', 'digits') or by the
    path a reader claims (`vaekit.data.readers`: a folder of images, a .npy/.npz array). A
    registry set whose file fails its published SHA-256 is a ChecksumError unless `allow_modified`
    (default: $VAEKIT_ALLOW_MODIFIED_DATA is "1"). `images`: how a folder is decoded; its size and
    channels also resize and convert the arrays of the other sources
    (`vaekit.data.image_decode.resize_images`, noted in `Dataset.notes`).
    `val_size`: the validation images of a registry set (None: its own split); other sources refuse it,
    and a `data_dir` too (`check_data_dir`). `progress`: a bar while a folder is decoded (None: on a
    terminal)."""
    for text, what in ((name, "the dataset name or path"), (data_dir, "the data directory")):
        if text:
            check_path_length(str(text), what)
    check_val_size(name, val_size)
    reader = check_source(name, data_dir)
    if images is not None and images.skip_bad and (reader is None or not reader.decodes_images):
        raise DataError(f"--skip-bad (data.skip_bad) skips the unreadable files of a folder of images, but "
                        f"{name} is {'a built-in set' if reader is None else 'an array file'}; leave it out.")
    if reader is not None:
        ds = reader.load(name, images, progress)
        if reader.decodes_images:
            return ds
    elif name == "digits":
        ds = load_digits_dataset()
    else:
        ds = load_idx_dataset(name, data_dir, download, val_size, allow_modified=allow_modified)
    if images is not None and images.changes_pixels:
        apply_image_options(ds, images)
    return ds


def check_source(name: str, data_dir: str | Path | None = None) -> Reader | None:
    """What `load_dataset` refuses of a name and a data directory before it reads a file (an
    unknown name, a path that is neither kind, a data directory that would be ignored); the reader
    of a user's path, None for a built-in or registry set. `vaekit train --nproc` asks it first."""
    for text, what in ((name, "the dataset name or path"), (data_dir, "the data directory")):
        if text:
            check_path_length(str(text), what)
    check_not_url(name)
    reader = reader_for(name) if name and name not in REGISTRY and name not in BUILTIN else None
    if reader is not None or name in BUILTIN:
        check_data_dir(name, data_dir)
    elif name and name not in REGISTRY and _looks_like_path(name):
        what = neither_kind() if Path(name).exists() else "no such file or folder"
        raise DataError(f"{name}: {what}; expected {expected_sources()}.")
    elif name not in REGISTRY:  # no file or folder of that name either (a folder since removed, say)
        raise UnknownDatasetError(
            f"unknown dataset {name!r}, and no file or folder of that name is here; known datasets are "
            f"{', '.join(known_datasets())}, {other_sources()}."
        )
    return reader


def same_source(a: str, b: str) -> bool:
    """Whether two dataset names read the same data: one name, or two paths of one file or folder
    (`u.npz`, `./u.npz`, its absolute path). A reader of a run's own data holds it against what the
    run trained on, whichever way the path is written."""
    if a == b:
        return True
    if {a, b} & (set(REGISTRY) | set(BUILTIN)):
        return False
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one is not there (or no path at all): not the same data
        return False


def user_data_path(name: str) -> str | None:
    """The absolute path of the user's folder or array file that `load_dataset` reads for `name`
    (as given, relative to the working directory), None for a set known by name."""
    if name in REGISTRY or name in BUILTIN:
        return None
    return os.path.abspath(name)


def fetch_note(name: str, data_dir: str | Path | None = None) -> str | None:
    """What `vaekit data fetch NAME` says of a set it need not fetch (digits, bundled; a user's
    folder or array file, read where it lies), None for a set it downloads (`registry.fetch`); for
    any other name an UnknownDatasetError naming the sets it downloads, or a DataError for an
    empty name, a path that is not there or of neither kind, or one its reader refuses by what a
    header or a listing shows (`Reader.check`: as `vaekit data info` would, nothing decoded)."""
    if name in REGISTRY:
        return None
    check_name(name)
    sets = f"`vaekit data fetch` downloads {', '.join(REGISTRY)}"
    if name in BUILTIN:
        check_data_dir(name, data_dir)
        return f"{name} is bundled with scikit-learn; nothing to fetch."
    check_not_url(name)
    reader = reader_for(name)
    if reader is not None and Path(name).exists():
        check_data_dir(name, data_dir)
        reader.check(name)
        return f"{name} is {reader.source}, read where it lies; nothing to fetch."
    if reader is not None or _looks_like_path(name):
        what = neither_kind() if Path(name).exists() else "no such file or folder"
        raise DataError(f"{name}: {what}; {sets}, and a folder of images or a .npy/.npz array file "
                        "is read where it lies.")
    raise UnknownDatasetError(f"unknown dataset {name!r}; {sets} (and digits comes with scikit-learn).")


def check_findable(name: str, data_dir: str | Path | None = None, missing_ok: bool = True) -> None:
    """What `load_dataset(name, data_dir)` refuses of where the set is, found without reading a file:
    `check_source`'s refusals (an unknown name, a path that is neither kind, a data directory that
    would be ignored), a data directory or $VAEKIT_DATA that does not hold a registry set (`locate`:
    a directory the user named is final), a user's path that is not there, and, unless `missing_ok` (a
    download or a fall-back stands in), a registry set in no place. For the commands that read a set
    only after other work (`vaekit check`, `vaekit sheet`)."""
    reader = check_source(name, data_dir)
    if reader is not None:  # claimed by its name ('x.npy'): there, or the reader's own sentence
        try:
            os.stat(name)
        except OSError as err:
            raise DataError(cannot_follow(name, err, reader.source)) from None
    if name in REGISTRY and locate(name, data_dir) is None and not missing_ok:
        raise not_on_machine(name, data_dir)


def uses_data_dir(name: str) -> bool:
    """Whether the set `name` is looked up in a data directory (the IDX sets; not digits, not a
    user's array or folder, which are read from their own path)."""
    return name in REGISTRY


def check_data_dir(name: str, data_dir: str | Path | None) -> None:
    """ConfigError when a data directory is given for a set that does not use one: it would be
    ignored, and a --data-dir that names nothing would pass unseen."""
    if data_dir is None or uses_data_dir(name):
        return
    what = "bundled with scikit-learn" if name in BUILTIN else "read from its own path"
    raise ConfigError(f"the data directory {data_dir} ({DATA_DIR}) applies only to the IDX sets "
                      f"({', '.join(REGISTRY)}); {name} is {what}, so leave it out.")


def check_mirror(name: str, mirror: str | None, data_dir: str | Path | None) -> None:
    """ConfigError when `mirror` (--mirror) is not an http(s) URL, or is given where nothing would
    be downloaded from it: a set that is not downloaded (digits, a folder, an array), or a set
    looked up in --data-dir or $VAEKIT_DATA alone. An unknown name is left to `fetch` to refuse."""
    if mirror is None:
        return
    check_mirror_url(mirror)
    if name not in REGISTRY:
        if name in BUILTIN or reader_for(name) is not None or _looks_like_path(name):
            what = "bundled with scikit-learn" if name in BUILTIN else "read from its own path"
            also = " and --data-dir" if data_dir is not None else ""  # refused for it too: both named
            raise ConfigError(f"--mirror {mirror}{also} {'apply' if also else 'applies'} only to the sets "
                              f"vaekit downloads ({', '.join(REGISTRY)}); {name} is {what}, so leave "
                              f"--mirror{also} out.")
        return
    origin, directory = candidate_dirs(name, data_dir)[0]
    if origin == DATA_DIR:
        raise ConfigError(f"--mirror {mirror} is used only to download into the cache, and the data "
                          f"directory {data_dir} ({DATA_DIR}) is looked in alone; leave one of them out.")
    if origin == "$VAEKIT_DATA":
        raise ConfigError(f"--mirror {mirror} is used only to download into the cache, and "
                          f"$VAEKIT_DATA ({directory}) is looked in alone; unset $VAEKIT_DATA or "
                          "leave --mirror out.")


def check_downloaded_only(name: str, flags: Sequence[str]) -> None:
    """ConfigError when `flags` (--no-download, --allow-modified: given, by name) act only on the sets
    vaekit downloads and checks against their published SHA-256, and `name` is not one: digits, a
    user's folder or array would be read as they are. An empty name is refused (`check_name`), an
    unknown one left to the loader."""
    check_name(name)
    if not flags or name in REGISTRY:
        return
    if name in BUILTIN or reader_for(name) is not None or _looks_like_path(name):
        what = "bundled with scikit-learn" if name in BUILTIN else "read from its own path"
        verb, them = ("apply", "them") if len(flags) > 1 else ("applies", "it")
        raise ConfigError(f"{' and '.join(flags)} {verb} only to the sets vaekit downloads and checks "
                          f"({', '.join(REGISTRY)}); {name} is {what}, so leave {them} out.")


def apply_image_options(ds: Dataset, options: ImageOptions) -> None:
    """Resize / convert every split of `ds` in place by `options` (size, channels), with notes.
    The images it would make are held first against the memory this process can take, as a
    folder's are (`folder.memory_room`, MEMORY_FACTOR times their bytes): a size past it is a
    DataError saying both, before any image is resized (an --image-size of 4096 on 8x8 digits
    would take 30 GB, resized one image at a time)."""
    before = ds.image_shape
    shape = (options.channels or before[0], *(options.size or before[1:]))
    n = len(ds.train) + len(ds.val) + len(ds.test)
    room, size = memory_room(), n * math.prod(shape)
    if room is not None and size * MEMORY_FACTOR > room:
        raise DataError(f"{ds.name}: {n:,} images of {'x'.join(map(str, shape))} pixels take "
                        f"{format_bytes(size)} resized, about {format_bytes(size * MEMORY_FACTOR)} to train "
                        f"on or describe, more than the {format_bytes(room)} of memory this process has "
                        "available; give a smaller --image-size.")
    for split in (ds.train, ds.val, ds.test):
        split.images = torch.from_numpy(resize_images(split.images.numpy(), options))
    c, h, w = ds.image_shape
    if (h, w) != before[1:]:
        ds.notes["resized"] = f"resized every image from {before[1]}x{before[2]} to {h}x{w} ({options.fit})"
    if c != before[0]:
        how = "ITU-R 601-2 luma" if c == 1 else "grey replicated" if before[0] == 1 else "alpha dropped"
        ds.notes["channels"] = f"converted every image from {before[0]} to {c} channels ({how})"


def describe(ds: Dataset, binarize: str = "none") -> dict[str, Any]:
    """What `vaekit data info` shows: source, shape, counts, classes, the training pixels' mean
    after `binarize` ('none', 'dynamic' or 'fixed', seed 0) and, for a set with published sums,
    each file's checksum status (None otherwise: the same keys for every set), the channels and
    the notes (how the data was read: a folder's conversions, its cache; resizing)."""
    checksums = ds.checksums
    if checksums is None and ds.name in REGISTRY:  # a Dataset not built by load_idx_dataset
        checksums = checksum_status(ds.name, Path(ds.source))
    return {
        "name": ds.name,
        "source": ds.source,
        "image_shape": list(ds.image_shape),
        "channels": ds.image_shape[0],
        "counts": {"train": len(ds.train), "val": len(ds.val), "test": len(ds.test)},
        "classes": list(ds.classes) if ds.classes else None,
        "binarize": binarize,
        "pixel_mean": float(prepare(ds.train.images, binarize, seed=0).mean()),
        "checksums": checksums,
        "notes": dict(ds.notes),
    }


def describe_text(info: dict[str, Any]) -> str:
    """The `describe` object as `vaekit data info` prints it, a line per field."""
    c, h, w = info["image_shape"]
    n = info["counts"]
    lines = [f"dataset      {info['name']}", f"source       {info['source']}",
             f"images       {c}x{h}x{w} uint8",
             f"split        train {n['train']:,}  val {n['val']:,}  test {n['test']:,}"]
    if info["classes"]:
        lines.append(f"classes      {len(info['classes'])}: {', '.join(info['classes'])}")
    lines.append(f"pixel mean   {info['pixel_mean']:.4f} (train, in [0,1], binarize={info['binarize']})")
    lines += [f"sha256       {fname}: {status}" for fname, status in (info["checksums"] or {}).items()]
    lines += [f"note         {line}" for line in note_lines(info["notes"])]
    return "\n".join(lines)


def note_lines(notes: dict[str, str]) -> list[str]:
    """A dataset's notes (`Dataset.notes`: files skipped, channels converted, the cache, ...) as
    `vaekit data info`, `vaekit train` and `vaekit classify` print them: 'key: what was done'."""
    return [f"{key}: {note}" for key, note in notes.items()]


def load_configured(d: Any, progress: bool | None = None) -> Dataset:
    """The dataset of a data section (a DataConfig or a ClassifierDataConfig): its name, data
    directory, image options (`ImageOptions.of`) and validation size (`val_size`, where it has one)."""
    return load_dataset(d.name, d.data_dir, images=ImageOptions.of(d), val_size=getattr(d, "val_size", None),
                        progress=progress)
