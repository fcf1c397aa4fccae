"""A folder of PNG/JPEG/BMP/GIF/WebP images as one uint8 array (N, C, H, W), labels from class
folders (`read_folder`), and as a `Dataset` split 80/10/10 (`load_folder_dataset`).

The rules live with each step:
    image_files.py    which files are read, in which order, and the labels from class folders
    image_decode.py   one image: pixels, channels and size (`ImageOptions`), unreadable files
    folder_cache.py   the decoded set cached on disk, keyed by the files' names, sizes and times,
                      and bounded in size

Memory: pass 1 opens every file lazily (its header: size, mode; a file Pillow cannot identify,
or an image larger than MAX_IMAGE_PIXELS, is found here), then ONE uint8 array of the final shape
is allocated and pass 2 decodes the images into it one by one. What the folder's listing refuses
(a FIFO, a device, a link to nothing: `image_files`), what pass 1 finds, and an image found
truncated or corrupt in pass 2 is refused or, with options.skip_bad, skipped and counted in the
note 'skipped': later images go to the next free row and the result is a prefix view of the same
array. The peak is the final array plus one image plus the file list, one small record a file
(its path, relative path, size, time, shape: about 300 bytes; 30,000 files measured at 9 MiB).

Before that array is allocated its size, N x C x H x W bytes (H x W of --image-size when given),
is held against the memory this process can still take (`memory_room`): a set whose
MEMORY_FACTOR times its size does not fit is refused in one sentence that says both and names
--image-size, and so is an allocation that fails all the same (a small file can hold an
8192x8192 image of one colour: forty of them are 2.6 MB of PNG and 2.5 GB of pixels). A folder
refused or failing anywhere is not cached (the cache is written after the whole set is decoded).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from vaekit.data.dataset import Dataset, three_way_in_place
from vaekit.data.folder_cache import (
    FolderImages,
    agrees,
    cache_file,
    cache_key,
    discard,
    read_cache,
    write_cache,
)
from vaekit.data.image_decode import MAX_IMAGE_PIXELS, ImageOptions, decode, pixel_notes, read_header
from vaekit.data.image_files import (
    NOT_REGULAR,
    TOO_LARGE,
    UNREADABLE,
    BadFile,
    FolderFile,
    Unreadable,
    check_enough,
    list_images,
)
from vaekit.device import address_space_room, format_bytes, host_available_bytes, progress_bar
from vaekit.errors import DataError

# The decoded set is held once as uint8 and, to be trained on or described, its training 80% once
# more as float32 (4 bytes a pixel): 1 + 0.8 x 4 = 4.2 times its size, rounded up.
MEMORY_FACTOR = 5


def memory_room() -> int | None:
    """Bytes this process can still take: the memory available (`host_available_bytes`) or, when
    smaller, its address space left under `ulimit -v`; None when neither can be read."""
    known = [b for b in (host_available_bytes(), address_space_room()) if b is not None]
    return min(known) if known else None


def _out_of_memory(path: Path, n: int, shape: tuple[int, int, int], room: int | None) -> DataError:
    """The sentence for `n` images of `shape` (C, H, W) that do not fit in `room` bytes (None: an
    allocation failed)."""
    size = n * math.prod(shape)
    what = f"{n:,} images of {'x'.join(map(str, shape))} pixels take {format_bytes(size)} decoded"
    there = "this process ran out of memory decoding them" if room is None else \
        f"about {format_bytes(size * MEMORY_FACTOR)} to train on or describe, more than the " \
        f"{format_bytes(room)} of memory this process has available"
    return DataError(f"{path}: {what}, and {there}; pass --image-size (e.g. 64) to decode them "
                     "smaller, or use a folder of fewer images.")


def _allocate(path: Path, n: int, shape: tuple[int, int, int],
              labelled: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The empty arrays of `n` images (n, C, H, W) uint8 and labels (n,) int64 (None: unlabelled),
    refused (DataError) when MEMORY_FACTOR times the images' bytes are more than `memory_room()`
    (no check when it cannot be read), or when they cannot be allocated all the same."""
    room = memory_room()
    if room is not None and n * math.prod(shape) * MEMORY_FACTOR > room:
        raise _out_of_memory(path, n, shape, room)
    try:
        return np.empty((n, *shape), np.uint8), (np.empty(n, np.int64) if labelled else None)
    except MemoryError:
        raise _out_of_memory(path, n, shape, None) from None


def _notes(counts: Counter[str], channels: int, options: ImageOptions) -> dict[str, str]:
    """The notes of a decoded folder, from what `decode` counted."""
    notes = pixel_notes(counts)
    if counts["to grey"]:
        notes["channels"] = f"converted {counts['to grey']} colour images to grey (ITU-R 601-2 luma)"
    if counts["to RGB"]:
        notes["channels"] = f"replicated {counts['to RGB']} grey images into 3 channels"
    if counts["orientation"]:
        notes["orientation"] = (f"turned {counts['orientation']} images upright by their EXIF "
                                "orientation (rotated or mirrored)")
    if counts["resized"] and options.size is not None:
        h, w = options.size
        notes["resized"] = f"resized {counts['resized']} images to {h}x{w} ({options.fit})"
    return notes


def _skipped_note(skipped: list[BadFile]) -> str:
    """'3 unreadable files (1 over 67,108,864 pixels, 1 not a regular file; first: a.png)', the note
    under the key 'skipped': the kinds other than a plain unreadable image said, the first by
    relative path named."""
    kinds = Counter(b.reason for b in skipped)
    said = [f"{kinds[TOO_LARGE]} over {MAX_IMAGE_PIXELS:,} pixels"] if kinds[TOO_LARGE] else []
    if kinds[NOT_REGULAR]:
        said.append(f"{kinds[NOT_REGULAR]} " + ("not a regular file" if kinds[NOT_REGULAR] == 1
                                                else "not regular files"))
    first = min(b.rel for b in skipped)
    files = f"{len(skipped)} unreadable file{'' if len(skipped) == 1 else 's'}"
    return f"{files} ({', '.join(said)}{'; ' if said else ''}first: {first})"


class MixedSizes(DataError):
    """A folder of images of different sizes, read at their own size: `said` names two of them; the
    sentence ends with --image-size, which resizes them, and a command without that flag says
    what it can do instead."""

    def __init__(self, said: str) -> None:
        self.said = said
        super().__init__(f"{said}; pass --image-size S or HxW to resize them all to one size.")


def _shape(path: Path, readable: list[FolderFile], options: ImageOptions) -> tuple[int, int, int]:
    """(channels, height, width) of the array: the options', else 3 channels if any of `readable`
    is in colour, and their one size (different sizes without --image-size: a DataError)."""
    channels = options.channels or (3 if any(f.colour for f in readable) else 1)
    if options.size is not None:
        return channels, *options.size
    first = readable[0]
    for f in readable:
        if f.shape != first.shape:
            raise MixedSizes(f"{path}: images of different sizes ({first.rel} is "
                             f"{first.shape[0]}x{first.shape[1]}, {f.rel} is {f.shape[0]}x{f.shape[1]} "
                             "pixels, HxW)")
    return channels, *first.shape


def _decode_folder(path: Path, files: list[FolderFile], classes: tuple[str, ...] | None,
                   options: ImageOptions, progress: bool | None, bad: list[BadFile]) -> FolderImages:
    """Pass 1 (headers) and pass 2 (pixels into one preallocated array); `bad`: what the listing
    found refused, skipped with options.skip_bad. The array's channels are those of the images
    kept: when a file skipped in pass 2 was what made them 3 (the only colour image), pass 2 is
    done again without it."""
    skipped = list(bad)
    readable: list[FolderFile] = []
    with progress_bar(len(files), "scanning", "img", progress, leave=False) as bar:
        for f in files:
            problem = read_header(f)
            if problem is None:
                readable.append(f)
            elif options.skip_bad:
                skipped.append(problem)
            else:
                raise Unreadable(problem.sentence)
            bar.update()
    index = {id(f): i for i, f in enumerate(files)}  # each file's row in the listing
    while True:
        check_enough(path, len(readable), skipped)
        shape = _shape(path, readable, options)
        images, labels = _allocate(path, len(readable), shape, classes is not None)
        rows = np.empty(len(readable), np.int64)
        counts: Counter[str] = Counter()
        failed: list[FolderFile] = []
        row = 0
        with progress_bar(len(readable), "decoding", "img", progress, leave=False) as bar:
            for f in readable:
                try:
                    images[row] = decode(f, shape[0], options, counts)
                except MemoryError:  # one image's own buffers (up to 8192x8192 RGBA)
                    raise _out_of_memory(path, len(readable), shape, None) from None
                except DataError as err:
                    if not options.skip_bad:
                        raise Unreadable(str(err)) from None
                    skipped.append(BadFile(f.rel, UNREADABLE, str(err)))
                    failed.append(f)
                else:
                    if labels is not None:
                        labels[row] = f.label
                    rows[row] = index[id(f)]
                    row += 1
                bar.update()
        gone = {id(f) for f in failed}
        readable = [f for f in readable if id(f) not in gone]
        if not failed or not readable or _shape(path, readable, options) == shape:
            break
        del images, labels  # the array of the wrong shape, before the next is made
    check_enough(path, row, skipped)
    notes = _notes(counts, shape[0], options)
    if skipped:
        notes["skipped"] = _skipped_note(skipped)
    return FolderImages(images[:row], None if labels is None else labels[:row], classes, notes,
                        rows=rows[:row])


def read_folder(path: Path, options: ImageOptions | None = None, progress: bool | None = None,
                cache: bool = True) -> FolderImages:
    """The images of the folder `path` (and labels when it is a folder of class folders), decoded
    by `options`, from the cache when nothing changed since it was last decoded (the modules named
    in this module's docstring have every rule). `progress`: None shows a bar only on a terminal."""
    options = options or ImageOptions()
    path = Path(path).resolve()
    files, classes, bad, listed = list_images(path)
    if bad and not options.skip_bad:
        raise Unreadable(bad[0].sentence)
    if not cache:
        result = _decode_folder(path, files, classes, options, progress, bad)
        result.notes = {**listed, **result.notes}
        return result
    key = cache_key(path, options, files, bad)
    target = cache_file(path, key)
    loaded = read_cache(target, key)
    if loaded is not None and agrees(loaded, files, classes, options):
        loaded.notes = {**listed, **loaded.notes}  # the listing's notes are never cached
        return loaded
    if loaded is not None:  # an edited or foreign file under this folder's key
        discard(target)
        del loaded
    result = _decode_folder(path, files, classes, options, progress, bad)
    result.notes["cache"] = write_cache(target, result, key)
    result.notes = {**listed, **result.notes}
    result.cache_path = target if target.is_file() else None
    return result


def check_folder(path: str | Path) -> None:
    """What `read_folder` refuses of the folder `path` that its listing shows, decoding nothing: a
    folder that is not there, one with no image files, fewer than MIN_IMAGES of them. For `vaekit
    data fetch`, which says of a user's folder only that it is read where it lies."""
    path = Path(path).resolve()
    files, _, bad, _ = list_images(path)
    check_enough(path, len(files), bad)


def load_folder_dataset(path: str | Path, images: ImageOptions | None = None,
                        progress: bool | None = None) -> Dataset:
    """A folder of images (`read_folder`: decoded once and cached), split 80/10/10 as
    `vaekit.data.arrays.load_array_dataset` splits; classes from class folders, else unlabelled."""
    path = Path(path)
    found = read_folder(path, images or ImageOptions(), progress=progress)
    labels = None if found.labels is None else found.labels
    train, val, test = three_way_in_place(found.images, labels)
    name = path.resolve().name or str(path)
    return Dataset(name, train, val, test, found.classes, str(path), dict(found.notes))
