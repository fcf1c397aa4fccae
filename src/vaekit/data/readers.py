"""The readers of a user's own data, by path: the kinds of file (or folder) that `load_dataset`
reads besides the sets it knows by name, in the order they are asked, and the sentences that
name them.

A reader is a module that makes a `Dataset` of a path (split 80/10/10, `vaekit.data.dataset`),
and one `Reader` in READERS: which paths are its own (`claims`, asked only of a name that is no
known dataset), how to read one (`load`), whether it applies the `ImageOptions` itself while it
decodes (else `load_dataset` resizes and converts the arrays it returns), how the error
sentences of `load_dataset` name it, and what of `load`'s refusals it finds cheaply (`check`: a
header, a listing; `vaekit data fetch` asks it). A new file format is a new module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vaekit.data import arrays, folder
from vaekit.data.dataset import Dataset
from vaekit.data.image_decode import ImageOptions


@dataclass(frozen=True)
class Reader:
    """One kind of user data, read by its path."""

    claims: Callable[[str], bool]  # whether the path (a name that is no known dataset) is this reader's
    load: Callable[[str, ImageOptions | None, bool | None], Dataset]  # (path, images, progress)
    decodes_images: bool  # True: `load` applies the ImageOptions; False: `load_dataset` does, after it
    source: str  # in "expected a dataset name, SOURCE, or SOURCE"
    kind: str  # in "a file that is neither KIND nor KIND"
    hint: str  # in "known datasets are NAMES, or HINT, or HINT."
    check: Callable[[str], None] = lambda _name: None  # what `load` refuses that a header or a
    # listing shows, found without decoding (default: nothing is checked before `load`)


READERS: tuple[Reader, ...] = (  # asked in this order: a folder named x.npz is a folder
    Reader(lambda name: _is_dir(name), folder.load_folder_dataset, True,
           "a folder of images", "a folder", "a folder of images", folder.check_folder),
    Reader(lambda name: name.endswith((".npy", ".npz")), lambda path, _images, _progress:
           arrays.load_array_dataset(path), False,
           "a .npy/.npz array file", "a .npy/.npz array", "a path to a .npy/.npz array of images",
           lambda path: arrays.check_array_file(Path(path))),
)


def _is_dir(name: str) -> bool:
    """Whether `name` is a folder; a path no file system can hold (a name over 255 bytes) is none."""
    try:
        return Path(name).is_dir()
    except OSError:
        return False


def reader_for(name: str) -> Reader | None:
    """The first reader that claims the path `name`, or None."""
    return next((r for r in READERS if r.claims(name)), None)


def expected_sources() -> str:
    """What a data name may be: 'a dataset name, a folder of images, or a .npy/.npz array file'."""
    *first, last = ["a dataset name", *(r.source for r in READERS)]
    return f"{', '.join(first)}, or {last}"


def neither_kind() -> str:
    """A file no reader claims: 'a file that is neither a folder nor a .npy/.npz array'."""
    return "a file that is neither " + " nor ".join(r.kind for r in READERS)


def other_sources() -> str:
    """The readers after the known names: 'or a folder of images, or a path to a .npy/.npz array
    of images'."""
    return ", ".join(f"or {r.hint}" for r in READERS)
