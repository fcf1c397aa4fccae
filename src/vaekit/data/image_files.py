"""The image files of a user's folder: which files are read, in which order, with which labels.

Files: every file under the folder, recursively, whose extension (any case) is one of
IMAGE_EXTENSIONS, in the order of their relative paths (compared part by part); other files (a
.tif, a README) are left out, and the note 'other' counts them and names the first. Hidden files
and folders (a name starting with ".": .DS_Store, .git, .ipynb_checkpoints) are left out, and the
note 'hidden' counts them and names the first.

Labels (torchvision's ImageFolder layout): when the folder holds no image directly and every image
lies in a direct sub-folder (ROOT/CLASS/NAME.png), the classes are the sub-folders' names sorted,
and an image's label is the index of its folder; a sub-folder without images is then an error.
Any other layout is unlabelled (labels None): all the images below the folder; when sub-folders
of images stand beside images at the top, or images lie deeper than directly in a sub-folder
(ROOT/CLASS/SUB/NAME.png), the note 'labels' says those loose or nested images are why.

Each file is kept as one small record (`FolderFile`: its path, relative path, size, time, shape:
about 300 bytes), stat'ed as it is found (its links followed); its shape and colour come from its
header later (`vaekit.data.image_decode.read_header`). A folder needs MIN_IMAGES readable images.

What is not a regular file is never opened (a FIFO blocks its reader, /dev/zero never ends): an
entry named as an image that is a FIFO, a device or a socket, and an entry of any name that leads
nowhere (a link to nothing or a loop of links: it may be a folder of images that is gone), is a
`BadFile`, refused or, with --skip-bad, skipped and counted like an unreadable image. Other
special files are left out like any other file. A link to a folder is followed like a link to a
file: a folder reached by two paths (a link beside it to it) is read under each, as a file link's
image is; only a link to a folder the path already passes through (a loop back up the tree) is
left out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path

from vaekit.errors import DataError
from vaekit.regular import cannot_follow, not_regular

MAX_FOLDER_VISITS = 100_000  # folders a listing enters (one folder reached by several paths: each)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MIN_IMAGES = 10  # the 80/10/10 split needs one image in each of validation and test, and more
HINT = "pass --skip-bad to skip unreadable files"
# why a file is a BadFile, as the note of a folder read with --skip-bad counts them
UNREADABLE, TOO_LARGE, NOT_REGULAR = "unreadable", "too large", "not regular"


class Unreadable(DataError):
    """A file of a folder of images refused, its sentence ending with HINT (--skip-bad skips it);
    `advising(fix)`: the same sentence with `fix` for a command that has no --skip-bad."""

    def advising(self, fix: str) -> DataError:
        return DataError(str(self).replace(HINT, fix))


@dataclass(slots=True)
class FolderFile:
    path: str
    rel: str  # relative path, "/"-separated
    label: int  # index of its class folder, -1 when unlabelled
    size: int = 0  # bytes
    mtime_ns: int = 0
    ctime_ns: int = 0  # the inode's change time: set by every write or rename, never by utime
    shape: tuple[int, int] = (0, 0)  # (height, width), from the header in pass 1
    colour: bool = False


@dataclass(frozen=True, slots=True)
class BadFile:
    """A file that is refused, or with --skip-bad skipped and counted: its relative path, why
    (UNREADABLE, TOO_LARGE, NOT_REGULAR) and the sentence that refuses it."""

    rel: str
    reason: str
    sentence: str


def _walk(directory: str, top: tuple[int, int], out: list[FolderFile], dirs: list[str],
          bad: list[BadFile], hidden: list[str], other: list[str]) -> None:
    """Append to `out` the image files below `directory` (rel: the path below it), in the order of
    their relative paths (each folder's entries sorted by name, depth first: the same order as
    sorting the paths part by part), to `dirs` the names of the top's direct sub-folders, to
    `bad` what the module's docstring refuses, to `hidden` the relative paths of the hidden
    entries left out (not looked into) and to `other` those of the files of other kinds left
    out. `top` is the (device, inode) of `directory`; a sub-folder that is one of the folders on
    the path down to it is a loop and is left out; any other is read, however often it is
    reached, up to MAX_FOLDER_VISITS folders entered in all: links that double the paths at each
    level would otherwise take 2^depth walks. The folders being read are a stack of their sorted
    entries, not calls, so that no depth of nesting runs out of Python's recursion. Each entry is
    stat'ed as it is found (its links followed) and a file kept as one small record (no DirEntry
    kept, no Path)."""
    above = {top}  # the folders on the path down to the one being read
    stack = [(iter(_listing(directory, "", hidden)), "", top)]  # (entries left, prefix, its key)
    entered = 1
    while stack:
        entries, prefix, key = stack[-1]
        entry = next(entries, None)
        if entry is None:  # this folder is done: back to its parent
            stack.pop()
            above.discard(key)
            continue
        try:
            st = entry.stat()
        except OSError as err:  # a link to nothing, a loop of links
            bad.append(BadFile(prefix + entry.name, NOT_REGULAR, cannot_follow(
                entry.path, err, f"an image file or a folder of images, or {HINT}")))
            continue
        if stat.S_ISDIR(st.st_mode):
            sub = (st.st_dev, st.st_ino)
            if sub in above:  # a link back up the tree: a loop
                continue
            entered += 1
            if entered > MAX_FOLDER_VISITS:
                raise DataError(f"{entry.path}: reached after more than {MAX_FOLDER_VISITS:,} folders "
                                "entered (links to folders reach some by many paths); expected a folder "
                                "of images with fewer sub-folders.")
            if not prefix:
                dirs.append(entry.name)
            name = f"{prefix}{entry.name}/"
            stack.append((iter(_listing(entry.path, name, hidden)), name, sub))
            above.add(sub)
        elif os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
            other.append(prefix + entry.name)
        elif stat.S_ISREG(st.st_mode):
            out.append(FolderFile(entry.path, prefix + entry.name, -1, st.st_size, st.st_mtime_ns,
                                  st.st_ctime_ns))
        else:  # a FIFO, a device, a socket: never opened
            bad.append(BadFile(prefix + entry.name, NOT_REGULAR, not_regular(
                entry.path, st.st_mode, f"an image file, or {HINT}")))


def _listing(directory: str, prefix: str, hidden: list[str]) -> list[os.DirEntry[str]]:
    """The entries of `directory` sorted by name, less the hidden ones, whose relative paths
    (`prefix` + name) are appended to `hidden`."""
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"{directory}: cannot be listed ({err.strerror or err}).") from None
    hidden += [prefix + e.name for e in entries if e.name.startswith(".")]
    return [e for e in entries if not e.name.startswith(".")]


def _not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a byte that is not UTF-8, kept by the file system as a surrogate
        return True
    return False


def _hidden_note(hidden: list[str]) -> str:
    """'left out 2 hidden files/folders (names starting with '.'; first: .h.png)'."""
    return (f"left out {len(hidden)} hidden files/folders (names starting with '.'; "
            f"first: {min(hidden)})")


def _other_note(other: list[str]) -> str:
    """'left out 2 files of other kinds (names not ending in .png, ...; first: a.tif)'."""
    return (f"left out {_count(other, 'file')} of other kinds (names not ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}; first: {min(other)})")


def _count(items: Sized, noun: str) -> str:
    """'1 image', '3 images'."""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _labels_note(files: list[FolderFile]) -> str | None:
    """Why a folder with sub-folders of images is unlabelled: the images at its top level beside
    them, and the images nested below a sub-folder rather than directly in it, each counted with
    the first named (None when neither: a flat folder)."""
    loose = [f.rel for f in files if "/" not in f.rel]
    nested = [f.rel for f in files if f.rel.count("/") > 1]
    folders = {f.rel.split("/", 1)[0] for f in files if "/" in f.rel}
    why = []
    if loose and folders:
        why.append(f"the {_count(loose, 'image')} at its top level beside its "
                   f"{_count(folders, 'sub-folder')} of images (first: {loose[0]})")
    if nested:
        why.append(f"the {_count(nested, 'image')} nested below a sub-folder rather than directly in it "
                   f"(first: {nested[0]})")
    if not why:
        return None
    fix = "move them into a class folder" if not nested else "move each directly into a class folder"
    return f"read unlabelled because of {' and '.join(why)}; {fix} to label every image by its sub-folder"


def list_images(path: Path) -> tuple[list[FolderFile], tuple[str, ...] | None, list[BadFile],
                                     dict[str, str]]:
    """The image files below `path` in order, the classes (None: unlabelled), the entries that
    are refused (`BadFile`) and the listing's notes ('hidden', 'other', 'labels'), by the rules of
    the module's docstring."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; expected a folder of image files.")
    files: list[FolderFile] = []
    dirs: list[str] = []
    bad: list[BadFile] = []
    hidden: list[str] = []
    other: list[str] = []
    st = path.stat()
    _walk(str(path), (st.st_dev, st.st_ino), files, dirs, bad, hidden, other)
    notes = {"hidden": _hidden_note(hidden)} if hidden else {}
    if other:
        notes["other"] = _other_note(other)
    if not files and not bad:
        left = f" ({notes['hidden']})" if hidden else ""
        raise DataError(f"{path}: no image files in this folder or below{left}; expected files "
                        f"ending in {', '.join(IMAGE_EXTENSIONS)}.")
    labelled = bool(files) and all(f.rel.count("/") == 1 for f in files)
    classes = tuple(sorted(dirs)) if labelled else None
    why = None if labelled else _labels_note(files)
    if why:
        notes["labels"] = why
    for name in classes or ():
        if not name.isprintable() or _not_utf8(name):  # a class name is shown in reports and tables
            raise DataError(f"{path}: the class folder {name!r} has a name that is not printable UTF-8 "
                            "text; rename it, since its name is the class's in every table and figure.")
    if classes is not None:
        index = {name: i for i, name in enumerate(classes)}
        used = set()
        for f in files:
            top = f.rel.split("/", 1)[0]
            f.label = index[top]
            used.add(top)
        for name in classes:
            if name not in used:
                raise DataError(f"{path / name}: a class folder with no images; in a folder of class "
                                f"folders each sub-folder is a class and needs at least one image.")
    return files, classes, bad, notes


def check_enough(path: Path, n: int, skipped: Sized) -> None:
    """DataError unless `n` (the readable images of `path`) is at least MIN_IMAGES."""
    if n >= MIN_IMAGES:
        return
    images = f"{n} {'readable ' if skipped else ''}image{'' if n == 1 else 's'}"
    if skipped:
        files = f"{len(skipped)} unreadable file{'' if len(skipped) == 1 else 's'}"
        raise DataError(f"{path}: {images} ({files} skipped); need at least {MIN_IMAGES} to split.")
    raise DataError(f"{path}: {images}; need at least {MIN_IMAGES} to split.")
