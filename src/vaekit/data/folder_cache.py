"""The on-disk cache of decoded folders: a folder decoded once is read back opening one image's header.

The decoded set is stored once as cache_dir("folders")/FOLDER-KEY.npz (KEY itself, uint8 images,
int64 labels, int64 rows: each image's index in the folder's listing, the class names and the notes as
unicode arrays; read back with allow_pickle=False), written to a temporary name and renamed into
place once the whole set is decoded (a write that fails or is interrupted leaves no file).
FOLDER is the first 16 hex digits of the SHA-256 of the resolved folder path, KEY the SHA-256 of
CACHE_VERSION, that path, the options and, for every file, its relative path, size in bytes,
st_mtime_ns and st_ctime_ns (which no utime sets back): a file changed, added or removed (or other
options) gives another KEY and the set is decoded again; nothing changed, it is read back opening
only the header of its first image's file. A cache file whose stored KEY is not its name's (another
folder's file copied over it) is a miss, decoded again, and so is a damaged cache file, and so is
one that disagrees with the folder (`agrees`: the classes, the images' rows in the listing, their
labels, size and channels).

Size: the note 'cache' says each entry's size on disk. At most CACHE_PER_FOLDER entries of one
folder are kept, and at most CACHE_MAX_BYTES in all the folders' entries together: after each
write the least recently used (written or read) are removed beyond either. A set larger than
CACHE_MAX_BYTES, or than half the space free on the cache's disk, is not written (an --image-size
far above the images' own makes a few small files gigabytes of pixels): the folder is read
uncached, as it is when the cache cannot be written (a full disk, a read-only folder, a ~/.cache
that is a file), and the note 'cache' says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaekit.data.image_decode import ImageOptions, read_header
from vaekit.data.image_files import MIN_IMAGES, BadFile, FolderFile
from vaekit.data.registry import cache_dir
from vaekit.device import format_bytes

CACHE_VERSION = "vaekit-folder-cache-5"  # in every key: a new layout or decoding law never reads an old file
CACHE_PER_FOLDER = 3
CACHE_MAX_BYTES = 8 * 2**30  # all the folders' entries together (that much decoded needs ~40 GiB)


@dataclass
class FolderImages:
    """A folder's images (N, C, H, W) uint8 C-contiguous, labels (N,) int64 or None, rows (N,)
    int64: each image's index in the folder's listing (`list_images`; increasing, all of them
    unless files were skipped): what `vaekit.data.folder.read_folder` returns and this cache
    stores."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    notes: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False
    cache_path: Path | None = None
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


def cache_key(path: Path, options: ImageOptions, files: list[FolderFile],
              bad: Sequence[BadFile] = ()) -> str:
    """The SHA-256 of CACHE_VERSION, the folder, the options, every file's relative path, size,
    modification time and inode change time (ns: a file rewritten with its old size and mtime put
    back, as `cp -p` or `rsync -t` do, has a new ctime) and, when there are any, the relative paths
    of the entries skipped from the listing (a FIFO, a link to nothing): any change to one of them
    is another key."""
    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}\0{path}\0{options!r}\0".encode("utf-8", "surrogateescape"))
    for f in files:
        h.update(f"{f.rel}\0{f.size}\0{f.mtime_ns}\0{f.ctime_ns}\0".encode("utf-8", "surrogateescape"))
    for b in bad:
        h.update(f"{b.rel}\0bad\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def folder_id(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def cache_file(path: Path, key: str) -> Path:
    """Where the decoded set of the folder `path` (resolved) under `key` (`cache_key`) is cached."""
    return cache_dir("folders") / f"{folder_id(path)}-{key}.npz"


def discard(target: Path) -> None:
    """Remove the cache file `target` (a damaged or disagreeing one: decoded again)."""
    with contextlib.suppress(OSError):  # a read-only cache: decoded again all the same
        target.unlink(missing_ok=True)


def read_cache(target: Path, key: str) -> FolderImages | None:
    """The cached set at `target`, or None when there is none, it is damaged, or the key stored in
    it is not `key` (another folder's file copied under this name: a miss, decoded again); such a
    file is removed."""
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as z:
            if "key" not in z.files or z["key"].tolist() != [key]:
                raise KeyError("key")  # written for other files, or by an older vaekit
            images = z["images"]
            rows = z["rows"]
            labels = z["labels"] if "labels" in z.files else None
            classes = tuple(str(c) for c in z["classes"]) if "classes" in z.files else None
            notes = dict(zip((str(k) for k in z["note_keys"]), (str(v) for v in z["note_values"]),
                             strict=True))
        ok = (images.dtype == np.uint8 and images.ndim == 4 and images.shape[0] >= MIN_IMAGES
              and rows.dtype == np.int64 and rows.shape == images.shape[:1]
              and (labels is None) == (classes is None)
              and (labels is None or (labels.shape == images.shape[:1] and labels.dtype == np.int64
                                      and classes is not None and int(labels.min()) >= 0
                                      and int(labels.max()) < len(classes))))
    except Exception:  # zipfile, zlib, numpy, OSError, KeyError...: a damaged file is decoded again
        ok = False
    if not ok:
        discard(target)
        return None
    try:
        os.utime(target)  # most recently used: kept by the pruning of `write_cache`
    except OSError:
        pass
    notes["cache"] = f"read from cache {target} ({_size_of(target)})"
    return FolderImages(np.ascontiguousarray(images), labels, classes, notes, True, target, rows)


def agrees(found: FolderImages, files: list[FolderFile], classes: tuple[str, ...] | None,
           options: ImageOptions) -> bool:
    """Whether a cached set can be the decoding of the folder listed as `files` and `classes` by
    `options`, by what is cheap to check: the same classes; rows increasing within the listing
    (every file's when unreadable files are not skipped); each image's label its file's; the
    images' height and width options.size, else those of the header of the first image's file
    (every image of a folder has one size); channels options.channels, else 1 when that file is
    grey and 3 when it is in colour or grey images were replicated (the note 'channels')."""
    images, rows = found.images, found.rows
    if found.classes != classes or not len(rows) or int(rows[0]) < 0 or int(rows[-1]) >= len(files):
        return False
    if bool((np.diff(rows) <= 0).any()) or (not options.skip_bad and len(rows) != len(files)):
        return False
    if found.labels is not None and not np.array_equal(
            found.labels, np.fromiter((files[i].label for i in rows.tolist()), np.int64, len(rows))):
        return False
    first = files[int(rows[0])]
    if read_header(first) is not None:  # unreadable now: decoded again, and refused there
        return False
    c, h, w = images.shape[1:]
    if (h, w) != (options.size or first.shape):
        return False
    if options.channels:
        return c == options.channels
    if c == 1:  # the data's own: 1 when every image is grey
        return not first.colour
    # 3 when that file is in colour, or grey images were replicated beside colour ones (the note
    # 'channels' says how many)
    return c == 3 and (first.colour or "channels" in found.notes)


def _write_npy(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """One .npy member written from the array's own memory (no copy of it, unlike np.savez)."""
    array = np.ascontiguousarray(array)
    with zf.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_2_0(f, np.lib.format.header_data_from_array_1_0(array))
        if array.size:
            f.write(array.reshape(-1).view(np.uint8).data)


def _size_of(path: Path) -> str:
    try:
        return format_bytes(path.stat().st_size)
    except OSError:  # removed meanwhile by another process's pruning
        return "size unknown"


def free_bytes(where: Path) -> int:
    """The bytes free on the disk of the folder `where` (OSError when it cannot be read)."""
    return shutil.disk_usage(where).free


def _too_large(where: Path, size: int) -> str | None:
    """Why a set of `size` bytes is not cached in the folder `where`, None when it may be."""
    if size > CACHE_MAX_BYTES:
        return f"the folders cache keeps at most {format_bytes(CACHE_MAX_BYTES)}"
    free = free_bytes(where)
    if size > free // 2:
        return f"more than half the {format_bytes(free)} free on the cache's disk"
    return None


def write_cache(target: Path, result: FolderImages, key: str) -> str:
    """Store `result` and its `key` (`cache_key`, checked by `read_cache`) at `target` (a
    temporary name, then renamed) unless it is too large (`_too_large`); the note that says where
    and its size, or why not (a cache that cannot be written is no error)."""
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        size = result.images.nbytes + result.rows.nbytes
        why = _too_large(target.parent, size)
        if why is not None:
            return f"not cached ({format_bytes(size)} decoded; {why})"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            _write_npy(zf, "key", np.array([key], dtype=str))
            _write_npy(zf, "images", result.images)
            _write_npy(zf, "rows", result.rows)
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
    except BaseException:  # MemoryError, KeyboardInterrupt: no partial file left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _prune(target)
    return f"decoded {len(result.images)} images, cached as {target} ({_size_of(target)})"


def _newest_first(where: Path, prefix: str) -> list[tuple[Path, os.stat_result]]:
    """The entries of the folders whose id is `prefix` ("*": all), most recently used first."""
    found = []
    for p in where.glob(f"{prefix}-*.npz"):
        with contextlib.suppress(OSError):  # removed meanwhile by another process
            st = p.stat()
            if stat.S_ISREG(st.st_mode):
                found.append((p, st))
    return sorted(found, key=lambda e: e[1].st_mtime_ns, reverse=True)


def _prune(target: Path) -> None:
    """Keep the CACHE_PER_FOLDER most recently used entries of `target`'s folder, and of all the
    folders' entries the most recently used that together take at most CACHE_MAX_BYTES (`target`
    itself is always kept)."""
    prefix = target.name.split("-", 1)[0]
    try:
        for old, _ in _newest_first(target.parent, prefix)[CACHE_PER_FOLDER:]:
            if old != target:
                old.unlink(missing_ok=True)
        total = 0
        for entry, st in _newest_first(target.parent, "*"):
            total += st.st_size
            if total > CACHE_MAX_BYTES and entry != target:
                entry.unlink(missing_ok=True)
    except OSError:
        pass
