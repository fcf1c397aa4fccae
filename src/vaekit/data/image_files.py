"""The image files of a user's folder: which files are read, in which order, with which labels.

Files: every file under the folder, recursively, whose extension (any case) is one of
IMAGE_EXTENSIONS, in the order of their relative paths (compared part by part); hidden files and
folders (a name starting with ".") are skipped and other files ignored.

Labels (torchvision's ImageFolder layout): when the folder holds no image directly and every image
lies in a direct sub-folder (ROOT/CLASS/NAME.png), the classes are the sub-folders' names sorted,
and an image's label is the index of its folder; a sub-folder without images is then an error.
Any other layout is unlabelled (labels None): all the images below the folder.

Each file is kept as one small record (`FolderFile`: its path, relative path, size, time, shape:
about 300 bytes), stat'ed as it is found; its shape and colour come from its header later
(`vaekit.data.image_decode.read_header`). A folder needs MIN_IMAGES readable images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vaekit.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MIN_IMAGES = 10  # the 80/10/10 split needs one image in each of validation and test, and more


@dataclass(slots=True)
class FolderFile:
    path: str
    rel: str  # relative path, "/"-separated
    label: int  # index of its class folder, -1 when unlabelled
    size: int = 0  # bytes
    mtime_ns: int = 0
    shape: tuple[int, int] = (0, 0)  # (height, width), from the header in pass 1
    colour: bool = False


def _walk(directory: str, prefix: str, seen: set[tuple[int, int]], out: list[FolderFile],
          dirs: list[str]) -> None:
    """Append to `out` the image files below `directory` (rel = `prefix` + name), in the order of
    their relative paths (each folder's entries sorted by name, depth first: the same order as
    sorting the paths part by part), and to `dirs` the names of the top's direct sub-folders.
    Each file is stat'ed as it is found and kept as one small record (no DirEntry, no Path)."""
    try:
        with os.scandir(directory) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"{directory}: cannot be listed ({err.strerror or err}).") from None
    for entry in entries:
        if entry.is_dir():
            st = entry.stat()
            if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
                continue
            seen.add((st.st_dev, st.st_ino))
            if not prefix:
                dirs.append(entry.name)
            _walk(entry.path, f"{prefix}{entry.name}/", seen, out, dirs)
        elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
            st = entry.stat()
            out.append(FolderFile(entry.path, prefix + entry.name, -1, st.st_size, st.st_mtime_ns))
    del entries


def list_images(path: Path) -> tuple[list[FolderFile], tuple[str, ...] | None]:
    """The image files below `path` in order, and the classes (None: unlabelled), by the rules of
    the module's docstring."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; expected a folder of image files.")
    files: list[FolderFile] = []
    dirs: list[str] = []
    st = path.stat()
    _walk(str(path), "", {(st.st_dev, st.st_ino)}, files, dirs)
    if not files:
        raise DataError(f"{path}: no image files in this folder or below; expected files ending in "
                        f"{', '.join(IMAGE_EXTENSIONS)}.")
    labelled = all(f.rel.count("/") == 1 for f in files)
    classes = tuple(sorted(dirs)) if labelled else None
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
    return files, classes


def check_enough(path: Path, n: int, skipped: list[FolderFile]) -> None:
    """DataError unless `n` (the readable images of `path`) is at least MIN_IMAGES."""
    if n >= MIN_IMAGES:
        return
    if skipped:
        raise DataError(f"{path}: {n} readable images ({len(skipped)} unreadable files skipped); "
                        f"need at least {MIN_IMAGES} to split.")
    raise DataError(f"{path}: {n} images; need at least {MIN_IMAGES} to split.")
