"""A folder of PNG/JPEG/BMP/GIF/WebP images as one uint8 array (N, C, H, W), labels from class folders.

Files: every file under the folder, recursively, whose extension (any case) is one of
IMAGE_EXTENSIONS, in the order of their relative paths (compared part by part); hidden files and
folders (a name starting with ".") are skipped and other files ignored. A GIF gives its first frame.
A .webp file is read when this Pillow has WebP (`PIL.features.check("webp")`), else it is an
unreadable file.

Labels (torchvision's ImageFolder layout): when the folder holds no image directly and every image
lies in a direct sub-folder (ROOT/CLASS/NAME.png), the classes are the sub-folders' names sorted,
and an image's label is the index of its folder; a sub-folder without images is then an error.
Any other layout is unlabelled (labels None): all the images below the folder.

Pixels: every image becomes 8-bit grey ("L") or 8-bit RGB:
    "1", "L"                       grey (a 1-bit image as 0 and 255);
    16-bit ("I;16*", "I", "F")     grey, v8 = v16 >> 8 = floor(v16 / 256), with "I" and "F" values
                                   clipped to 0..65535 first: the reduction Pillow itself applies to
                                   16-bit colour PNGs (it keeps their high byte), so one rule holds;
    "P" (palette)                  RGB, through RGBA when the palette has a transparent entry;
    "LA", "RGBA", "PA", ...        the alpha channel dropped (not composited: the colours stay);
    "CMYK", "YCbCr", other modes   RGB by Pillow's conversion.
Channels: options.channels 0 keeps the data's own, 3 if any image is colour else 1 (grey stays
grey, colour stays colour); 1 converts colour with Pillow's "L" (ITU-R 601-2 luma,
L = R * 299/1000 + G * 587/1000 + B * 114/1000); 3 replicates grey into R, G and B.

Size: without options.size every image must have the same size. With a size (H, W) each image of
another size (h, w) is resampled with Pillow's BILINEAR filter (antialiased when it shrinks: the
filter widens with the scale), keeping its aspect:
    crop   scale s = max(H/h, W/w) (the image covers the target, its shorter side fits), and the
           centred H/s x W/s region of the image is resampled to H x W;
    pad    scale s = min(H/h, W/w) (the image fits inside), resampled to round(h s) x round(w s)
           (each at least 1) and placed at ((H - h')//2, (W - w')//2) on black.
An image already H x W is kept exactly as it is.

Memory: pass 1 opens every file lazily (its header: size, mode; a file Pillow cannot identify is
found here), then ONE uint8 array of the final shape is allocated and pass 2 decodes the images
into it one by one. An image found truncated or corrupt in pass 2 is refused or, with
options.skip_bad, skipped: later images go to the next free row and the result is a prefix view of
the same array. The peak is the final array plus one image plus the file list, one small record a
file (its path, relative path, size, time, shape: about 300 bytes; 30,000 files measured at 9 MiB).

Cache: the decoded set is stored once as cache_dir("folders")/FOLDER-KEY.npz (uint8 images, int64
labels, the class names and the notes as unicode arrays; read back with allow_pickle=False),
written to a temporary name and renamed into place. FOLDER is the first 16 hex digits of the
SHA-256 of the resolved folder path, KEY the SHA-256 of CACHE_VERSION, that path, the options and,
for every file, its relative path, size in bytes and st_mtime_ns: a file changed, added or removed
(or other options) gives another KEY and the set is decoded again; nothing changed, it is read
back without opening an image. A damaged cache file is decoded again. At most CACHE_PER_FOLDER
entries of one folder are kept (the least recently used are removed).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features

from vaekit.config import IMAGE_CHANNELS, IMAGE_FITS, parse_image_size
from vaekit.data.registry import cache_dir
from vaekit.device import progress_bar
from vaekit.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
EXPECTED = "a PNG, JPEG, BMP, GIF or WebP image"
MIN_IMAGES = 10  # the 80/10/10 split needs one image in each of validation and test, and more
RESAMPLE = Image.Resampling.BILINEAR
CACHE_VERSION = "vaekit-folder-cache-1"  # part of every key: a new layout never reads an old file
CACHE_PER_FOLDER = 3
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})
HINT = "pass --skip-bad to skip unreadable files"


@dataclass(frozen=True)
class ImageOptions:
    """How the images are decoded: size (H, W) or None (their own), channels 0 (their own), 1 or
    3, fit "crop" or "pad" (only with a size), and whether unreadable files are skipped."""

    size: tuple[int, int] | None = None
    channels: int = 0
    fit: str = "crop"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.channels not in IMAGE_CHANNELS:
            raise ConfigError(f"image channels must be 0 (the data's own), 1 (grey) or 3 (RGB), "
                              f"got {self.channels!r}.")
        if self.fit not in IMAGE_FITS:
            raise ConfigError(f"image fit must be one of {', '.join(IMAGE_FITS)}, got {self.fit!r}.")

    @classmethod
    def of(cls, d: Any) -> ImageOptions:
        """The options of a data section (a DataConfig or a ClassifierDataConfig)."""
        size = None if d.image_size is None else parse_image_size(str(d.image_size), "--image-size")
        return cls(size, int(d.image_channels), str(d.image_fit), bool(d.skip_bad))

    @property
    def changes_pixels(self) -> bool:
        """Whether these options resize or convert decoded arrays (`resize_images`)."""
        return self.size is not None or self.channels != 0


@dataclass
class FolderImages:
    """A folder's images (N, C, H, W) uint8 C-contiguous, labels (N,) int64 or None."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    notes: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False
    cache_path: Path | None = None


@dataclass(slots=True)
class _File:
    path: str
    rel: str  # relative path, "/"-separated
    label: int  # index of its class folder, -1 when unlabelled
    size: int = 0  # bytes
    mtime_ns: int = 0
    shape: tuple[int, int] = (0, 0)  # (height, width), from the header in pass 1
    colour: bool = False


# ----------------------------------------------------------------------------- the files


def _walk(directory: str, prefix: str, seen: set[tuple[int, int]], out: list[_File], dirs: list[str]) -> None:
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
            out.append(_File(entry.path, prefix + entry.name, -1, st.st_size, st.st_mtime_ns))
    del entries


def list_images(path: Path) -> tuple[list[_File], tuple[str, ...] | None]:
    """The image files below `path` in order, and the classes (None: unlabelled), by the rules of
    the module's docstring."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; expected a folder of image files.")
    files: list[_File] = []
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


def cache_key(path: Path, options: ImageOptions, files: list[_File]) -> str:
    """The SHA-256 of CACHE_VERSION, the folder, the options and every file's relative path, size
    and modification time (ns): any change to one of them is another key."""
    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}\0{path}\0{options!r}\0".encode())
    for f in files:
        h.update(f"{f.rel}\0{f.size}\0{f.mtime_ns}\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def folder_id(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


# ----------------------------------------------------------------------------- one image


def _detail(err: BaseException) -> str:
    """Pillow's message, kept inside one sentence."""
    text = str(err).strip().rstrip(".").replace(". ", "; ") or type(err).__name__
    return text.replace("\n", " ")


def _unreadable(f: _File, err: BaseException | None = None) -> str:
    """The sentence for a file that is not an image Pillow can read."""
    if f.rel.lower().endswith(".webp") and not features.check("webp"):
        return f"{f.path}: this Pillow was built without WebP support, so the file cannot be read; " \
               f"convert it to PNG or {HINT}."
    why = "" if err is None else f" ({_detail(err)})"
    return f"{f.path}: not {EXPECTED} that Pillow can read{why}; {HINT}."


def _is_16bit(im: Image.Image) -> bool:
    """A 16-bit image: a 16/32-bit grey mode, or one that Pillow unpacks from 16-bit samples."""
    if im.mode in SIXTEEN_BIT_MODES:
        return True
    tile = getattr(im, "tile", None)  # an ImageFile's decoder list: its raw mode tells the sample bits
    raw = tile[0][3] if tile else ""
    raw = raw if isinstance(raw, str) else (raw[0] if raw and isinstance(raw[0], str) else "")
    return ";16" in raw


def _header(f: _File) -> str | None:
    """Pass 1: fill in `f`'s size and colour from its header; a sentence when it is unreadable."""
    if f.rel.lower().endswith(".webp") and not features.check("webp"):
        return _unreadable(f)
    try:
        with Image.open(f.path) as im:
            f.shape = (im.height, im.width)
            f.colour = im.mode not in GREY_MODES
    except Exception as err:  # Pillow raises many kinds (UnidentifiedImageError, SyntaxError, ...)
        return _unreadable(f, err)
    return None


def to_8bit(im: Image.Image, counts: Counter[str]) -> Image.Image:
    """`im` (loaded) as "L" or "RGB" by the pixel rules of the module's docstring, counting what
    was converted in `counts` (16-bit, palette, alpha, MODE)."""
    mode = im.mode
    if mode in ALPHA_MODES:
        counts["alpha"] += 1
    if mode == "L":
        return im
    if mode == "RGB":
        return im
    if mode == "1":
        return im.convert("L")
    if mode in SIXTEEN_BIT_MODES:
        values = np.asarray(im)
        if mode in ("I", "F"):
            values = np.clip(values, 0, 65535)
        return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), "L")
    if mode in ("LA", "La"):
        return im.getchannel(0)
    if mode in ("P", "PA"):
        counts["palette"] += 1
        with warnings.catch_warnings():  # "Palette images with Transparency expressed in bytes..."
            warnings.simplefilter("ignore")
            if mode == "P" and "transparency" in im.info:
                return im.convert("RGBA").convert("RGB")
            return im.convert("RGB")
    if mode not in ("RGBA", "RGBa", "RGBX"):
        counts[mode] += 1
    return im.convert("RGB")


def fit_image(im: Image.Image, size: tuple[int, int], fit: str) -> Image.Image:
    """`im` ("L" or "RGB") resampled to size (H, W) by `fit` ("crop" or "pad"), as the module's
    docstring says; returned as it is when it already has that size."""
    target_h, target_w = size
    w, h = im.size
    if (h, w) == size:
        return im
    if fit == "crop":
        scale = max(target_h / h, target_w / w)
        box_w, box_h = target_w / scale, target_h / scale
        x0, y0 = (w - box_w) / 2, (h - box_h) / 2
        return im.resize((target_w, target_h), RESAMPLE, box=(x0, y0, x0 + box_w, y0 + box_h))
    scale = min(target_h / h, target_w / w)
    new_w = max(1, min(target_w, round(w * scale)))
    new_h = max(1, min(target_h, round(h * scale)))
    resized = im if (new_w, new_h) == (w, h) else im.resize((new_w, new_h), RESAMPLE)
    canvas = Image.new(im.mode, (target_w, target_h), 0)
    canvas.paste(resized, ((target_w - new_w) // 2, (target_h - new_h) // 2))
    return canvas


def _set_channels(im: Image.Image, channels: int, counts: Counter[str]) -> Image.Image:
    if channels == 1 and im.mode == "RGB":
        counts["to grey"] += 1
        return im.convert("L")  # ITU-R 601-2 luma
    if channels == 3 and im.mode == "L":
        counts["to RGB"] += 1
        return im.convert("RGB")  # grey replicated
    return im


def decode(f: _File, channels: int, options: ImageOptions, counts: Counter[str]) -> np.ndarray:
    """Pass 2: the image of `f` as uint8 (C, H, W) (H, W of options.size, else its own), or
    DataError (a truncated or corrupt file)."""
    try:
        with Image.open(f.path) as im:
            if _is_16bit(im):
                counts["16-bit"] += 1
            im.load()  # a GIF: its first frame
            out = to_8bit(im, counts)
            out.load()
    except DataError:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors...
        raise DataError(f"{f.path}: a truncated or corrupt image ({_detail(err)}); expected a complete "
                        f"{EXPECTED}, or {HINT}.") from None
    out = _set_channels(out, channels, counts)
    if options.size is not None:
        if (out.height, out.width) != options.size:
            counts["resized"] += 1
        out = fit_image(out, options.size, options.fit)
    array = np.asarray(out)
    if (out.height, out.width) != f.shape and options.size is None:
        raise DataError(f"{f.path}: changed while being read ({out.height}x{out.width} pixels, its header "
                        f"said {f.shape[0]}x{f.shape[1]}); expected the folder to stay as it is.")
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


# ----------------------------------------------------------------------------- the folder


def _notes(counts: Counter[str], channels: int, options: ImageOptions) -> dict[str, str]:
    """The notes of a decoded folder, from what `decode` counted."""
    notes: dict[str, str] = {}
    if counts["16-bit"]:
        notes["16-bit"] = f"converted {counts['16-bit']} 16-bit images to 8 bits (v >> 8)"
    if counts["palette"]:
        notes["palette"] = f"converted {counts['palette']} palette images to RGB"
    if counts["alpha"]:
        notes["alpha"] = f"dropped the alpha channel of {counts['alpha']} images"
    other = {m: n for m, n in counts.items() if m not in
             ("16-bit", "palette", "alpha", "to grey", "to RGB", "resized")}
    if other:
        notes["modes"] = "converted " + ", ".join(f"{n} {m}" for m, n in sorted(other.items())) + \
            " images to RGB"
    if counts["to grey"]:
        notes["channels"] = f"converted {counts['to grey']} colour images to grey (ITU-R 601-2 luma)"
    if counts["to RGB"]:
        notes["channels"] = f"replicated {counts['to RGB']} grey images into 3 channels"
    if counts["resized"] and options.size is not None:
        h, w = options.size
        notes["resized"] = f"resized {counts['resized']} images to {h}x{w} ({options.fit})"
    return notes


def _skipped_note(skipped: list[_File]) -> str:
    return f"skipped {len(skipped)} unreadable files (first: {skipped[0].rel})"


def _decode_folder(path: Path, files: list[_File], classes: tuple[str, ...] | None,
                   options: ImageOptions, progress: bool | None) -> FolderImages:
    """Pass 1 (headers) and pass 2 (pixels into one preallocated array)."""
    skipped: list[_File] = []
    readable: list[_File] = []
    with progress_bar(len(files), "scanning", "img", progress, leave=False) as bar:
        for f in files:
            problem = _header(f)
            if problem is None:
                readable.append(f)
            elif options.skip_bad:
                skipped.append(f)
            else:
                raise DataError(problem)
            bar.update()
    _enough(path, len(readable), skipped)
    channels = options.channels or (3 if any(f.colour for f in readable) else 1)
    if options.size is None:
        first = readable[0]
        for f in readable:
            if f.shape != first.shape:
                raise DataError(
                    f"{path}: images of different sizes ({first.rel} is {first.shape[0]}x{first.shape[1]}, "
                    f"{f.rel} is {f.shape[0]}x{f.shape[1]} pixels, HxW); pass --image-size S or HxW to "
                    "resize them all to one size."
                )
        height, width = first.shape
    else:
        height, width = options.size
    images = np.empty((len(readable), channels, height, width), np.uint8)
    labels = None if classes is None else np.empty(len(readable), np.int64)
    counts: Counter[str] = Counter()
    row = 0
    with progress_bar(len(readable), "decoding", "img", progress, leave=False) as bar:
        for f in readable:
            try:
                images[row] = decode(f, channels, options, counts)
            except DataError:
                if not options.skip_bad:
                    raise
                skipped.append(f)
            else:
                if labels is not None:
                    labels[row] = f.label
                row += 1
            bar.update()
    _enough(path, row, skipped)
    notes = _notes(counts, channels, options)
    if skipped:
        skipped.sort(key=lambda f: f.rel)
        notes["skipped"] = _skipped_note(skipped)
    return FolderImages(images[:row], None if labels is None else labels[:row], classes, notes)


def _enough(path: Path, n: int, skipped: list[_File]) -> None:
    if n >= MIN_IMAGES:
        return
    if skipped:
        raise DataError(f"{path}: {n} readable images ({len(skipped)} unreadable files skipped); "
                        f"need at least {MIN_IMAGES} to split.")
    raise DataError(f"{path}: {n} images; need at least {MIN_IMAGES} to split.")


def read_folder(path: Path, options: ImageOptions | None = None, progress: bool | None = None,
                cache: bool = True) -> FolderImages:
    """The images of the folder `path` (and labels when it is a folder of class folders), decoded
    by `options`, from the cache when nothing changed since it was last decoded (the module's
    docstring has every rule). `progress`: None shows a bar only on a terminal."""
    options = options or ImageOptions()
    path = Path(path).resolve()
    files, classes = list_images(path)
    if not cache:
        return _decode_folder(path, files, classes, options, progress)
    where = cache_dir("folders")
    target = where / f"{folder_id(path)}-{cache_key(path, options, files)}.npz"
    loaded = _read_cache(target)
    if loaded is not None:
        return loaded
    result = _decode_folder(path, files, classes, options, progress)
    result.notes["cache"] = _write_cache(target, result)
    result.cache_path = target if target.is_file() else None
    return result


# ----------------------------------------------------------------------------- the cache


def _read_cache(target: Path) -> FolderImages | None:
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
        target.unlink(missing_ok=True)
        return None
    try:
        os.utime(target)  # most recently used: kept by the pruning of `_write_cache`
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


def _write_cache(target: Path, result: FolderImages) -> str:
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
    except OSError as err:
        tmp.unlink(missing_ok=True)
        return f"not cached ({err.strerror or err})"
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


# ----------------------------------------------------------------------------- decoded arrays


def _array_channels(chw: np.ndarray, channels: int) -> list[Image.Image]:
    """One image (C, H, W) as single-channel "L" images: C of 2 or 4 loses its alpha when
    `channels` is 1 or 3; 3 -> 1 by ITU-R 601-2 luma; 1 -> 3 replicated; 0 keeps them all."""
    c = chw.shape[0]
    if channels == 0:
        return [Image.fromarray(np.ascontiguousarray(plane), "L") for plane in chw]
    colour = chw[:3] if c >= 3 else chw[:1]
    if channels == 1:
        if colour.shape[0] == 3:
            rgb = Image.fromarray(np.ascontiguousarray(colour.transpose(1, 2, 0)), "RGB")
            return [rgb.convert("L")]
        return [Image.fromarray(np.ascontiguousarray(colour[0]), "L")]
    if colour.shape[0] == 1:
        grey = Image.fromarray(np.ascontiguousarray(colour[0]), "L")
        return [grey, grey, grey]
    return [Image.fromarray(np.ascontiguousarray(plane), "L") for plane in colour]


def resize_images(images: np.ndarray, options: ImageOptions) -> np.ndarray:
    """Decoded uint8 images (N, C, H, W) with options.size and options.channels applied image by
    image (into one new array, channel by channel: the same BILINEAR crop/pad as a folder's), so
    that --image-size and --image-channels work for every source; `images` itself when the options
    change nothing."""
    n, c, h, w = images.shape
    channels = options.channels or c
    height, width = options.size or (h, w)
    if (channels, height, width) == (c, h, w):
        return images
    out = np.empty((n, channels, height, width), np.uint8)
    for i in range(n):
        planes = _array_channels(images[i], options.channels)
        for k, plane in enumerate(planes):
            if options.size is not None:
                plane = fit_image(plane, options.size, options.fit)
            out[i, k] = np.asarray(plane)
    return out
