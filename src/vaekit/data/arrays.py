"""User images from .npy/.npz files: what is accepted, and how it becomes uint8 (N, C, H, W).

`read_array_file` opens the file (a regular file only; never with pickle: a file that is neither
.npy nor .npz by its first bytes, or an object array, is refused; a header declaring more bytes
than the file holds or than memory holds is refused before the array is allocated, and so are
bytes after the declared data, a header that is not a plain dict literal and one longer than
numpy reads (its max_header_size, said as such, not as an array of objects); an .npz member
that is not read, or two members of one name, is refused, never ignored);
`check_images` states and applies the rules of shape (channel-last arrays are converted,
ambiguous or empty ones refused, and so are channels other than grey or RGB) and dtype (uint8,
integers in 0..255, 0/1 integers and bool read as binary images, float in [0, 1]).
Every refusal is one DataError sentence naming the file.
`load_array_dataset` makes the `Dataset` of a file, split 80/10/10.
"""

from __future__ import annotations

import inspect
import math
import os
import struct
import tokenize
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np
import torch

from vaekit.data.dataset import Dataset, Split, three_way
from vaekit.errors import DataError
from vaekit.regular import open_regular

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a .npz is a zip archive (local file, empty)
LAYOUT_CHANNELS = (1, 2, 3, 4)  # what may be a channel dimension: grey, grey + alpha, RGB, RGBA
CHANNELS = (1, 3)  # what vaekit's images have: grey, RGB
MAX_CLASSES = 100_000  # a label is a class number, and a classifier has one output per class
# numpy's words when a .npy header is no dict literal (ast.literal_eval's, and numpy's around it)
NOT_A_LITERAL = ("malformed node or string", "Cannot parse header", "Header is not a dictionary")
NOT_DICT = ("{path}: not a readable .npy/.npz array (the header of {what} is not a plain dict literal "
            "of 'descr', 'fortran_order' and 'shape', as numpy writes it).")
OBJECTS = "{path}: holds an array of Python objects, which vaekit never loads; expected numbers."
# the longest .npy header numpy reads without allow_pickle (its max_header_size, 10,000 characters)
MAX_HEADER = int(inspect.signature(np.load).parameters["max_header_size"].default)
BINARY_NOTE = "every pixel is 0 or 1: read as binary images (1 is white, 255), as a bool array is"
HEADER_LENGTHS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}


def load_array_dataset(path: str | Path) -> Dataset:
    """User images from .npy (images) or .npz (`images` or `x`, optional `labels` or `y`), split
    80/10/10; what is accepted (shapes, dtypes, never pickle) is `read_array_file`'s rule."""
    path = Path(path)
    notes: dict[str, str] = {}
    images, labels = read_array_file(path, notes)  # (N, C, H, W) uint8, (N,) integers or None
    labels_t = None if labels is None else torch.from_numpy(labels.astype(np.int64))
    full = Split(torch.from_numpy(images), labels_t)
    train, val, test = three_way(full)
    # class k is named by its label k: a number no image has (a gap) keeps its place, and its name
    top = int(labels.max()) if labels is not None and labels.size else -1  # of any integer dtype
    classes = None if labels is None else tuple(str(k) for k in range(top + 1))
    return Dataset(path.name, train, val, test, classes, str(path), notes)


def read_array_file(path: Path, notes: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The images, as `check_images` returns them (its notes into `notes`), and the labels (or
    None) of a .npy file (images) or a .npz (`images` or `x`, optional `labels` or `y`, integers of
    shape (N,)).

    Opened only as a regular file (`vaekit.regular`: never a FIFO or a device). Loaded with
    allow_pickle=False: an object array is refused, never unpickled, and a file that is neither
    .npy nor .npz (by its first bytes) is refused before numpy could suggest pickle. Each array's
    header is read first (`_check_declared`): a shape whose bytes the file does not hold, or that
    this machine's memory could not, is refused before numpy allocates it; so are bytes after the
    declared data (numpy would leave them unread) and a header that is no plain dict literal.
    """
    images, labels = _load_arrays(path)
    images = check_images(path, images, notes)
    if labels is not None:
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.dtype.kind not in "iu":
            raise DataError(
                f"{path}: labels must be integers of shape ({images.shape[0]},), "
                f"found {labels.dtype} of shape {labels.shape}."
            )
        used = len(np.unique(labels))
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= MAX_CLASSES):
            top = min(max(2 * used, 100), MAX_CLASSES) - 1  # the bound the next check holds them to
            raise DataError(f"{path}: labels must be class numbers from 0 to {top:,} for the {used:,} "
                            f"classes that occur, found {int(labels.min()):,} to {int(labels.max()):,}.")
        if labels.size and int(labels.max()) + 1 > max(2 * used, 100):  # {0, 1000}: 1,001 outputs for 2
            raise DataError(f"{path}: the labels run to {int(labels.max()):,} but only {used:,} classes "
                            f"occur; number the classes 0 to {used - 1:,} (a classifier has one output "
                            "per number up to the largest).")
        if labels.size and used < int(labels.max()) + 1 and notes is not None:
            gaps = int(labels.max()) + 1 - used
            occur = "1 class occurs" if used == 1 else f"{used:,} classes occur"
            notes["labels"] = (f"{occur}, numbered up to {int(labels.max()):,}: {gaps:,} "
                               f"number{'s' * (gaps > 1)} below it {'have' if gaps > 1 else 'has'} no image "
                               "(a classifier still has one output for each)")
    return images, labels


def check_array_file(path: Path) -> None:
    """What `read_array_file` refuses of `path` that its headers show, reading no array's data: a
    file that is not there or not regular, first bytes of neither kind, a .npy header (or the
    header of an .npz member) that `_check_declared` refuses, .npz members of the wrong names.
    For `vaekit data fetch`, which says of a user's file only that it is read where it lies."""
    _load_arrays(path, headers_only=True)


def _load_arrays(path: Path, headers_only: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The images and labels (or None) of the .npy/.npz file at `path`, opened as a regular file,
    its headers held to `_check_declared` first; `headers_only`: no array's data read (empty
    arrays come back). numpy's, zipfile's and zlib's errors are one sentence (`_unreadable`)."""
    with open_regular(path, "a .npy/.npz array file", DataError, refuse_missing=True) as fp:
        head = fp.read(len(NPY_MAGIC))
        _check_magic(path, head)
        fp.seek(0)
        try:
            if not head.startswith(NPY_MAGIC):
                return _read_npz(path, fp, headers_only=headers_only)
            _check_declared(path, "the array", fp, os.fstat(fp.fileno()).st_size)
            if headers_only:
                return np.empty(0), None
            fp.seek(0)
            return np.load(fp, allow_pickle=False), None
        except DataError:
            raise
        except Exception as err:  # numpy, zipfile, zlib, tokenize... on a cut or corrupt file
            raise _unreadable(path, err) from None


def _unreadable(path: Path, err: Exception) -> DataError:
    """The sentence for a file that numpy, zipfile, zlib or tokenize could not read."""
    if "max_header_size" in str(err):  # a header longer than numpy reads: no objects in it
        return DataError(f"{path}: not a readable .npy/.npz array (a header longer than the "
                         f"{MAX_HEADER:,} characters numpy reads; save it again with np.save or np.savez).")
    if "pickle" in str(err):  # an object array: numpy's message would point at allow_pickle
        return DataError(OBJECTS.format(path=path))
    # a header no dict literal that the readers above left to numpy (a version 3.0 one)
    if isinstance(err, tokenize.TokenError) or str(err).startswith(NOT_A_LITERAL):
        return DataError(NOT_DICT.format(path=path, what="an array"))
    detail = str(err).rstrip(".").replace(". ", "; ")  # keep the message one sentence
    return DataError(f"{path}: not a readable .npy/.npz array ({detail}).")


def _read_npz(path: Path, fp: BinaryIO, headers_only: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (`images` or `x`) and the labels (`labels` or `y`, or None) of an open .npz.

    Every member is read or refused, none ignored: two members of one name (numpy would read
    one of them) and a member other than the one images and the one labels read (an unknown name,
    or `x` beside `images`) are refused, naming them. `headers_only`: the members' headers are
    checked and no array is read (empty arrays come back)."""
    with np.load(fp, allow_pickle=False) as loaded:
        names = loaded.files  # the archive's names less .npy: 'images' and 'images.npy' are one
        twice = sorted({k for k in names if names.count(k) > 1})
        if twice:
            raise DataError(f"{path}: holds more than one member named {', '.join(map(repr, twice))}; "
                            "expected each name once (numpy would read only one of them).")
        keys = set(names)
        key = next((k for k in ("images", "x") if k in keys), None)
        if key is None:
            raise DataError(f"{path}: expected an array named 'images' or 'x'; found {sorted(keys)}.")
        lkey = next((k for k in ("labels", "y") if k in keys), None)
        read = [k for k in (key, lkey) if k]
        unread = sorted(keys - set(read))
        if unread:
            raise DataError(f"{path}: holds members that are not read ({', '.join(map(repr, unread))}) "
                            f"beside those read ({', '.join(map(repr, read))}); expected only the "
                            "images as 'images' or 'x' and optionally the labels as 'labels' or 'y'.")
        if headers_only:
            for k in read:
                _member_header(path, k, loaded, required=True)
            return np.empty(0), None
        images = _member(path, key, loaded)
        return images, _member(path, lkey, loaded) if lkey else None


def _check_magic(path: Path, head: bytes) -> None:
    """Refuse a file whose first bytes `head` start neither a .npy array nor a .npz (zip) archive."""
    if head.startswith(NPY_MAGIC) or head.startswith(ZIP_MAGICS):
        return
    what = "the file is empty" if not head else f"it starts with {head[:4]!r}"
    raise DataError(
        f"{path}: not a readable .npy/.npz array ({what}; a .npy file starts with "
        f"{NPY_MAGIC!r} and a .npz file is a zip archive)."
    )


def _member(path: Path, key: str, loaded: np.lib.npyio.NpzFile) -> np.ndarray:
    """An .npz member as an array, its header checked first: numpy hands back a member that is not
    .npy data as bytes."""
    _member_header(path, key, loaded, required=False)
    value = loaded[key]
    if not isinstance(value, np.ndarray):
        raise DataError(f"{path}: the member {key!r} is not a .npy array.")
    return value


def _member_header(path: Path, key: str, loaded: np.lib.npyio.NpzFile, required: bool) -> None:
    """Check the .npy header of the member `key` (`_check_declared`, `_check_ratio`); a member that
    is no .npy data is refused when `required`, else left to the caller (numpy gives it as bytes)."""
    name, archive = f"{key}.npy", loaded.zip
    if archive is not None and name in archive.namelist():
        with archive.open(name) as member:
            if member.read(len(NPY_MAGIC)) == NPY_MAGIC:
                member.seek(0)
                info = archive.getinfo(name)
                _check_declared(path, f"the member {key!r}", member, info.file_size)
                _check_ratio(path, key, info.file_size, info.compress_size)
                return
    if required:
        raise DataError(f"{path}: the member {key!r} is not a .npy array.")


MAX_RATIO = 200  # uncompressed / compressed bytes of an .npz member larger than RATIO_FROM
RATIO_FROM = 64 * 2**20


def _check_ratio(path: Path, key: str, size: int, compressed: int) -> None:
    """Refuse a large member compressed beyond any image data (a zip bomb: 2 MB that inflate to
    2 GiB, minutes and gigabytes to read); images compress 2 to 20 times, an empty one 1,000."""
    if size > RATIO_FROM and size > MAX_RATIO * max(compressed, 1):
        raise DataError(f"{path}: the member {key!r} inflates {compressed:,} bytes to {size:,} "
                        f"({size // max(compressed, 1):,} times; images compress at most about "
                        f"{MAX_RATIO} times), which is not image data; save it with np.savez.")


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes, None where the system does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_declared(path: Path, what: str, fp: IO[bytes], size: int) -> None:
    """Read the .npy header at `fp` (`size` bytes in all, header included) and refuse what it
    declares before numpy allocates it: a header that is no plain dict literal, an object dtype, a
    negative size, more bytes than follow the header (a cut file) or fewer (bytes after the data),
    more than this machine's memory; before any of these, a header longer than numpy reads
    (`_check_header_length`). Past that, a header version other than 1.0 and 2.0 is left to numpy."""
    version = np.lib.format.read_magic(fp)
    _check_header_length(path, what, fp, version)
    if version not in ((1, 0), (2, 0)):
        return
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, _, dtype = read(fp)
    except (ValueError, SyntaxError, tokenize.TokenError, RecursionError, MemoryError) as err:
        if isinstance(err, ValueError) and not str(err).startswith(NOT_A_LITERAL):
            raise  # a dict with a wrong key or value: numpy's own words say which
        raise DataError(NOT_DICT.format(path=path, what=what)) from None
    if dtype.hasobject:
        raise DataError(OBJECTS.format(path=path))
    if any(n < 0 for n in shape):
        raise DataError(f"{path}: not a readable .npy/.npz array ({what} declares the shape {shape}, "
                        "with a negative size).")
    need = math.prod(shape) * dtype.itemsize
    have = size - fp.tell()
    if have < need:
        raise DataError(f"{path}: not a readable .npy/.npz array ({what} declares {dtype} of shape "
                        f"{shape}, {need:,} bytes, but {have:,} bytes follow its header: a cut or "
                        "damaged file).")
    if have > need:  # numpy would read the array and leave the rest unread, unsaid
        raise DataError(f"{path}: not a readable .npy/.npz array ({what} declares {dtype} of shape "
                        f"{shape}, {need:,} bytes, but {have:,} bytes follow its header: "
                        f"{have - need:,} bytes after the array's data, which numpy does not write).")
    memory = memory_bytes()
    if memory is not None and need > memory:
        raise DataError(f"{path}: {what} ({dtype} of shape {shape}, {need:,} bytes) is larger than "
                        f"this machine's memory ({memory:,} bytes).")


def _check_header_length(path: Path, what: str, fp: IO[bytes], version: tuple[int, int]) -> None:
    """Refuse a .npy header of `version` (at `fp`, just after its magic; left there) longer than
    MAX_HEADER characters, which numpy refuses in words that point at allow_pickle (and so, before
    this, at Python objects that are not there). A header of 3.0 (UTF-8) is decoded to count it,
    unless its bytes alone are too many; an unknown version is left to numpy."""
    if version not in HEADER_LENGTHS:
        return
    where = fp.tell()
    kind, encoding = HEADER_LENGTHS[version]
    field = fp.read(struct.calcsize(kind))
    size = struct.unpack(kind, field)[0] if len(field) == struct.calcsize(kind) else 0
    length, unit = size, "characters"
    if encoding == "utf8" and size > MAX_HEADER:  # 1 to 4 bytes a character
        try:
            length = len(fp.read(size).decode(encoding)) if size <= 4 * MAX_HEADER else size
            unit = "characters" if size <= 4 * MAX_HEADER else "bytes"
        except UnicodeDecodeError:
            length = 0  # numpy's own words on a header that is no text
    fp.seek(where)
    if length > MAX_HEADER:
        raise DataError(f"{path}: not a readable .npy/.npz array (the header of {what} is {length:,} {unit} "
                        f"long, more than the {MAX_HEADER:,} characters numpy reads; save it again "
                        "with np.save or np.savez).")


def check_images(path: Path, images: np.ndarray, notes: dict[str, str] | None = None) -> np.ndarray:
    """`images` as uint8 (N, C, H, W), or one DataError sentence naming `path`.

    Shapes: (N, H, W) is one grey channel; a 4-D array is (N, C, H, W) or channel-last
    (N, H, W, C), with C of 1 (grey) or 3 (RGB), the only images vaekit has. Its layout is decided
    by which of the second and the last dimension could be a channel count (1 to 4: grey, grey +
    alpha, RGB, RGBA): only the second, (N, C, H, W) as it is; only the last, (N, H, W, C),
    transposed to (N, C, H, W); both, the reading whose images are square if only one is (so
    (N, 3, 4, 4) is 3 channels of 4x4), else refused as ambiguous; neither, refused. Then a layout
    of 2 or 4 channels is refused (an alpha channel is dropped by the user, never guessed at here).
    Every dimension must be at least 1 and N at least 10.
    Dtypes: integers (uint8 or any other) with every value in 0..255, as they are, except where
    every value is 0 or 1: binary images, read as 0 and 255 as bool is (an 8-bit image of 0s and 1s
    would be all but black), said in `notes` (`BINARY_NOTE`); bool as 0 and 255; float finite and
    in [0, 1], scaled by 255 and rounded. Anything else is refused. Finiteness is checked before
    any min or max, so no numpy warning escapes. A dtype of no pixel values is named before any
    shape (an array of text or of records is refused for what it holds).
    """
    if images.dtype.kind not in "biuf":
        raise _dtype_refused(path, images.dtype)
    if images.ndim not in (3, 4):
        raise DataError(
            f"{path}: images must have shape (N, H, W), (N, C, H, W) or (N, H, W, C), found "
            f"{images.ndim} dimensions {images.shape}."
        )
    if 0 in images.shape[1:]:
        raise DataError(
            f"{path}: images of shape {images.shape} hold no pixels; every dimension after N "
            "must be at least 1."
        )
    if images.shape[0] < 10:
        n = images.shape[0]
        raise DataError(f"{path}: {n} image{'' if n == 1 else 's'}; need at least 10 to split.")
    if images.ndim == 4:
        first = _channels_first(path, images)
        _check_channels(path, images.shape, first.shape[1], last=first is not images)
        images = first
    out = _as_uint8(path, images, notes)
    if out.ndim == 3:
        out = out[:, None]  # (N, H, W) -> (N, 1, H, W)
    return np.ascontiguousarray(out)


def _channels_first(path: Path, images: np.ndarray) -> np.ndarray:
    """A 4-D array in (N, C, H, W), by the rule of `check_images`."""
    _, second, third, last = images.shape
    if second == third == last == 1:
        return images  # single pixels: both readings are the same array
    first_ok, last_ok = second in LAYOUT_CHANNELS, last in LAYOUT_CHANNELS
    if first_ok and last_ok:
        square_first, square_last = third == last, second == third
        first_ok, last_ok = square_first and not square_last, square_last and not square_first
        if not (first_ok or last_ok):
            raise DataError(
                f"{path}: the layout of images of shape {images.shape} is ambiguous (its second "
                "and its last dimension could each be the channels); accepted are (N, H, W), and "
                "(N, C, H, W) or (N, H, W, C) with C of 1 or 3 where only one of the two is from "
                "1 to 4 or only one reading gives square images."
            )
    if last_ok:
        return images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    if first_ok:
        return images
    raise DataError(
        f"{path}: images of shape {images.shape} have no channel dimension of 1 to 4; expected "
        "(N, C, H, W) or (N, H, W, C) with C of 1 (grey) or 3 (RGB)."
    )


def _check_channels(path: Path, shape: tuple[int, ...], c: int, last: bool) -> None:
    """Refuse images of `shape` read as `c` channels (the last dimension where `last`, else the
    second) unless `c` is 1 or 3: vaekit's images are grey or RGB, and 2 or 4 planes (grey or RGB
    with alpha, or no image at all) are for the user to turn into one of those."""
    if c in CHANNELS:
        return
    keep = ":3" if c == 4 else ":1"
    cut = f"images[..., {keep}]" if last else f"images[:, {keep}]"
    alpha = (f"if they are RGBA, drop the alpha channel first ({cut})" if c == 4 else
             f"if they are grey with alpha, keep the grey channel ({cut})" if c == 2 else "")
    raise DataError(f"{path}: images of shape {shape} have {c} channels (the {'last' if last else 'second'} "
                    "dimension), but vaekit's images are grey (1 channel) or RGB (3 channels); "
                    f"{alpha}, else they are not an image layout.")


def _as_uint8(path: Path, images: np.ndarray, notes: dict[str, str] | None = None) -> np.ndarray:
    """`images` converted to uint8 by the dtype rule of `check_images` (its note in `notes`)."""
    kind = images.dtype.kind
    if kind == "b":
        return images.astype(np.uint8) * np.uint8(255)  # False -> 0, True -> 255
    if kind in "iu":
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"{path}: integer images must lie in 0..255; found {images.dtype} values in "
                f"[{lo}, {hi}]."
            )
        if hi == 1:  # every pixel 0 or 1: binary images, as a bool array holds them (not 8-bit near-black)
            if notes is not None:
                notes["binary"] = BINARY_NOTE
            return images.astype(np.uint8) * np.uint8(255)
        return images if images.dtype == np.uint8 else images.astype(np.uint8)
    if kind == "f":
        finite = np.isfinite(images)
        if not finite.all():
            n_nan = int(np.isnan(images).sum())
            n_inf = int(images.size - finite.sum()) - n_nan
            raise DataError(
                f"{path}: float images must be finite and lie in [0, 1]; found {n_nan} NaN and "
                f"{n_inf} infinite values among {images.size}."
            )
        low, high = images.min(), images.max()  # of the array's dtype: printed with the digits
        if low < 0.0 or high > 1.0:  # that tell it apart from its neighbours (1.0000001, not 1)
            raise DataError(
                f"{path}: float images must lie in [0, 1]; found values in [{low!s}, {high!s}]."
            )
        scaled = images.astype(np.float32) if images.dtype.itemsize < 4 else images
        return np.rint(scaled * 255.0).astype(np.uint8)
    raise _dtype_refused(path, images.dtype)


def _dtype_refused(path: Path, dtype: np.dtype) -> DataError:
    """The refusal of images of `dtype`, one that holds no pixel values (text, records, dates)."""
    return DataError(f"{path}: images must be uint8, other integers in 0..255, bool, or float in [0, 1], "
                     f"found dtype {dtype}.")
