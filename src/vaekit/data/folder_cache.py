"""The on-disk cache of decoded folders: a folder decoded once is read back without opening an image.

The decoded set is stored once as cache_dir("folders")/FOLDER-KEY.npz (uint8 images, int64
labels, the class names and the notes as unicode arrays; read back with allow_pickle=False),
written to a temporary name and renamed into place. FOLDER is the first 16 hex digits of the
SHA-256 of the resolved folder path, KEY the SHA-256 of CACHE_VERSION, that path, the options and,
for every file, its relative path, size in bytes and st_mtime_ns: a file changed, added or removed
(or other options) gives another KEY and the set is decoded again; nothing changed, it is read
back without opening an image. A damaged cache file is decoded again. At most CACHE_PER_FOLDER
entries of one folder are kept (the least recently used are removed). A cache that cannot be
written (a full disk, a read-only folder, a ~/.cache that is a file) is no error: the folder is
read uncached, and its note 'cache' says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaekit.data.image_decode import ImageOptions
from vaekit.data.image_files import MIN_IMAGES, BadFile, FolderFile
from vaekit.data.registry import cache_dir

CACHE_VERSION = "vaekit-folder-cache-1"  # part of every key: a new layout never reads an old file
CACHE_PER_FOLDER = 3


@dataclass
class FolderImages:
    """A folder's images (N, C, H, W) uint8 C-contiguous, labels (N,) int64 or None: what
    `vaekit.data.folder.read_folder` returns and this cache stores."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    notes: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False
    cache_path: Path | None = None


def cache_key(path: Path, options: ImageOptions, files: list[FolderFile],
              bad: Sequence[BadFile] = ()) -> str:
    """The SHA-256 of CACHE_VERSION, the folder, the options, every file's relative path, size
    and modification time (ns) and, when there are any, the relative paths of the entries skipped
    from the listing (a FIFO, a link to nothing): any change to one of them is another key."""
    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}\0{path}\0{options!r}\0".encode())
    for f in files:
        h.update(f"{f.rel}\0{f.size}\0{f.mtime_ns}\0".encode("utf-8", "surrogateescape"))
    for b in bad:
        h.update(f"{b.rel}\0bad\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def folder_id(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def cache_file(path: Path, options: ImageOptions, files: list[FolderFile],
               bad: Sequence[BadFile] = ()) -> Path:
    """Where the decoded set of the folder `path` (resolved), its `files` (and `bad` entries) and
    `options` is cached."""
    return cache_dir("folders") / f"{folder_id(path)}-{cache_key(path, options, files, bad)}.npz"


def read_cache(target: Path) -> FolderImages | None:
    """The cached set at `target`, or None when there is none or it is damaged (then removed)."""
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as z:
            images = z["images"]
            labels = z["labels"] if "labels" in z.files else None
            classes = tuple(str(c) for c in z["classes"]) if "classes" in z.files else None
            notes = dict(zip((str(k) for k in z["note_keys"]), (str(v) for v in z["note_values"]),
                             strict=True))
        ok = (images.dtype == np.uint8 and images.ndim == 4 and images.shape[0] >= MIN_IMAGES
              and (labels is None) == (classes is None)
              and (labels is None or (labels.shape == images.shape[:1] and labels.dtype == np.int64
                                      and classes is not None and int(labels.min()) >= 0
                                      and int(labels.max()) < len(classes))))
    except Exception:  # zipfile, zlib, numpy, OSError, KeyError...: a damaged file is decoded again
        ok = False
    if not ok:
        with contextlib.suppress(OSError):  # a read-only cache: decoded again all the same
            target.unlink(missing_ok=True)
        return None
    try:
        os.utime(target)  # most recently used: kept by the pruning of `write_cache`
    except OSError:
        pass
    notes["cache"] = f"read from cache {target}"
    return FolderImages(np.ascontiguousarray(images), labels, classes, notes, True, target)


def _write_npy(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """One .npy member written from the array's own memory (no copy of it, unlike np.savez)."""
    array = np.ascontiguousarray(array)
    with zf.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_2_0(f, np.lib.format.header_data_from_array_1_0(array))
        if array.size:
            f.write(array.reshape(-1).view(np.uint8).data)


def write_cache(target: Path, result: FolderImages) -> str:
    """Store `result` at `target` (a temporary name, then renamed); the note that says where, or
    why not (a cache that cannot be written is no error)."""
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            _write_npy(zf, "images", result.images)
            if result.labels is not None and result.classes is not None:
                _write_npy(zf, "labels", result.labels)
                _write_npy(zf, "classes", np.array(result.classes, dtype=str))
            keys = [k for k in result.notes if k != "cache"]
            _write_npy(zf, "note_keys", np.array(keys, dtype=str).reshape(len(keys)))
            _write_npy(zf, "note_values", np.array([result.notes[k] for k in keys], dtype=str)
                       .reshape(len(keys)))
        os.replace(tmp, target)
    except OSError as err:  # a full disk, a read-only cache, a ~/.cache that is a file
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return f"not cached ({err.filename or target.parent}: {err.strerror or err})"
    _prune(target)
    return f"decoded {len(result.images)} images, cached as {target}"


def _entries(where: Path, prefix: str) -> Iterator[Path]:
    yield from (p for p in where.glob(f"{prefix}-*.npz") if p.is_file())


def _prune(target: Path) -> None:
    """Keep the CACHE_PER_FOLDER most recently used entries of `target`'s folder."""
    prefix = target.name.split("-", 1)[0]
    try:
        entries = sorted(_entries(target.parent, prefix), key=lambda p: p.stat().st_mtime_ns,
                         reverse=True)
        for old in entries[CACHE_PER_FOLDER:]:
            if old != target:
                old.unlink(missing_ok=True)
    except OSError:
        pass
