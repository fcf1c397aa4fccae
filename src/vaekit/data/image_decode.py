"""One image file as uint8 (C, H, W), and the same resizing for arrays that are already decoded.

Which images: an image of more frames (an animated GIF, PNG or WebP, an MPO) gives the frame a
viewer shows first, and is counted in the notes (`vaekit.data.image_frames`). A .webp file is read
when this Pillow has WebP (`PIL.features.check("webp")`), else it is an unreadable file.

Pixels: every image becomes 8-bit grey ("L") or 8-bit RGB:
    "1", "L"                       grey (a 1-bit image as 0 and 255);
    16-bit ("I;16*", "I", "F")     grey, v8 = v16 >> 8 = floor(v16 / 256), with "I" and "F" values
                                   clipped to 0..65535 first: the reduction Pillow itself applies to
                                   16-bit colour PNGs (it keeps their high byte), so one rule holds;
    "P" (palette)                  RGB, through RGBA when the palette has a transparent entry;
                                   grey when every colour of its palette is a grey (R = G = B: a
                                   grey image saved as GIF), the grey it names (`grey_palette`);
    "LA", "RGBA", "PA", ...        the alpha channel dropped (not composited: the colours stay), and
                                   so a transparent colour of a PNG's tRNS chunk or a GIF's;
    "CMYK", "YCbCr", other modes   RGB by Pillow's conversion.
Orientation: an image whose EXIF Orientation tag (or XMP tiff:Orientation, as Pillow reads them)
is 2..8 is turned upright, as Pillow's `ImageOps.exif_transpose` turns it (the EXIF table:
mirrored, rotated 180, flipped, transposed, rotated 270, transversed, rotated 90), so that 5..8
swap its height and width; the tag is read when the file is opened, before its pixels (a PNG's
only from chunks before its pixels, in both passes). An EXIF block Pillow cannot parse is ignored.
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

A folder is read in two passes (`vaekit.data.folder`): `read_header` (pass 1: size and mode, a file
Pillow cannot identify found here) and `decode` (pass 2: the pixels). An image is opened only as a
regular file (`vaekit.regular`). Its size is read from its header before anything is decoded:
more than MAX_IMAGE_PIXELS (8192 x 8192, a 48-megapixel photograph fits) is refused, so that a
small file claiming billions of pixels (an image bomb) is never decoded; Pillow's own
DecompressionBombWarning (above 89 million pixels) is silenced, its DecompressionBombError (above
twice that) refused alike. `resize_images` applies the
same size and channels to the arrays of the other sources (.npy/.npz, the IDX sets).

A JPEG whose compressed data was cut short and given an end marker (the first half of a file and
b'\xff\xd9') is decoded by libjpeg without an error: it fills the missing pixels in, and Pillow
drops libjpeg's warning ("Corrupt JPEG data: premature end of data segment"). `check_jpeg_scans`
finds it by decoding the file once more with bytes inserted before its end marker (`FILLER`): a
decoder that has every block of every scan reads no further and skips them (libjpeg passes
over what lies between a scan's last block and the next marker), so a whole file decodes to the
same pixels; in a cut one the bytes take the place of the missing data, and the pixels change.
So a good JPEG is never refused by it; what it cannot see is a cut that falls exactly on a
boundary the decoder stops at anyway: between two scans of a progressive JPEG (a coarser image
that is a valid file), or, in a JPEG with restart markers, at the end of an interval. A file with
data after its end marker is decoded as it is. A JPEG's compressed data carries no checksum (a
PNG's chunks do): bytes replaced by others that still decode (random data, a frame marker turned
into another coding's) are other pixels to every decoder, and are not found. A JPEG of more
scans than any encoder writes (`check_scan_count`) is refused before it is decoded.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError, features

from vaekit.config import IMAGE_CHANNELS, IMAGE_FITS, parse_image_size
from vaekit.data.image_files import HINT, NOT_REGULAR, TOO_LARGE, UNREADABLE, BadFile, FolderFile
from vaekit.data.image_frames import first_frame, frame_note
from vaekit.data.jpeg_check import END, ManyScans, check_jpeg_scans, check_scan_count
from vaekit.data.png_check import check_png_data
from vaekit.errors import ConfigError, DataError
from vaekit.regular import open_regular

EXPECTED = "a PNG, JPEG, BMP, GIF or WebP image"
RESAMPLE = Image.Resampling.BILINEAR
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})
MAX_IMAGE_PIXELS = 8192 * 8192  # width x height of one image of a folder, read from its header
# EXIF orientation -> the transposition that shows the image upright (1 and others: as stored)
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


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


# ----------------------------------------------------------------------------- one image


def _detail(err: BaseException) -> str:
    """Pillow's message, kept inside one sentence."""
    if isinstance(err, UnidentifiedImageError):  # its message names the file object: said once
        return "cannot identify image file"
    text = str(err).strip().rstrip(".").replace(". ", "; ") or type(err).__name__
    return text.replace("\n", " ")


def _unreadable(f: FolderFile, err: BaseException | None = None) -> str:
    """The sentence for a file that is not an image Pillow can read."""
    if f.rel.lower().endswith(".webp") and not features.check("webp"):
        return f"{f.path}: this Pillow was built without WebP support, so the file cannot be read; " \
               f"convert it to PNG or {HINT}."
    why = "" if err is None else f" ({_detail(err)})"
    return f"{f.path}: not {EXPECTED} that Pillow can read{why}; {HINT}."


def _too_large(f: FolderFile, size: tuple[int, int] | None) -> str:
    """The sentence for an image of more than MAX_IMAGE_PIXELS (`size`: width, height; None: more
    than Pillow opens)."""
    what = "more pixels than Pillow opens" if size is None else f"{size[0]}x{size[1]} pixels"
    return (f"{f.path}: an image of {what}, more than the {MAX_IMAGE_PIXELS:,} (8192x8192) that vaekit "
            f"decodes; expected a smaller image, or {HINT}.")


FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # the Pillow plugins a folder's files are opened with


@contextlib.contextmanager
def _open_image(f: FolderFile) -> Iterator[tuple[Image.Image, Any]]:
    """`f` opened by Pillow, and the file it reads, from a regular file only (else DataError),
    Pillow's DecompressionBombWarning silenced (MAX_IMAGE_PIXELS, below its limit, is checked
    instead)."""
    with (open_regular(f.path, f"{EXPECTED}, or {HINT}", DataError, refuse_missing=True) as fp,
          warnings.catch_warnings()):
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(fp, formats=FORMATS) as im:  # never EPS (Ghostscript), TIFF, PPM... by content
            yield im, fp


def load_checked(im: Image.Image, data: bytes) -> None:
    """Load `im`, opened from the file `data`, refusing a JPEG of too many scans before its pixels
    (`check_scan_count`) and one cut short after them (`check_jpeg_scans`). An MPO (a JPEG that
    holds more frames, as a camera writes one; Pillow opens it from the JPEG plugin) is checked as
    one too: its first frame, the one loaded, is a JPEG stream, and its scans count with the other
    frames'. A PNG whose image data ends before its last row is refused after them
    (`vaekit.data.png_check`)."""
    if im.format not in ("JPEG", "MPO"):
        im.load()
        if im.format == "PNG":
            check_png_data(data)
        return
    check_scan_count(data)
    im.load()
    check_jpeg_scans(_first_frame(im, data), np.asarray(im))


def _first_frame(im: Image.Image, data: bytes) -> bytes:
    """The bytes of an MPO's first frame, up to the end marker after its first scan (none can be in
    compressed data, and a thumbnail's are before it); all of `data` for a JPEG."""
    scan = data.find(b"\xff\xda") if im.format == "MPO" else -1
    end = data.find(END, scan) if scan >= 0 else -1
    return data[:end + len(END)] if end >= 0 else data


def is_16bit(im: Image.Image) -> bool:
    """A 16-bit image: a 16/32-bit grey mode, or one that Pillow unpacks from 16-bit samples."""
    if im.mode in SIXTEEN_BIT_MODES:
        return True
    tile = getattr(im, "tile", None)  # an ImageFile's decoder list: its raw mode tells the sample bits
    raw = tile[0][3] if tile else ""
    raw = raw if isinstance(raw, str) else (raw[0] if raw and isinstance(raw[0], str) else "")
    return ";16" in raw


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation of `im` as opened (1 when it has none, or one Pillow cannot parse), read
    before its pixels: a PNG's from the chunks before them (Pillow's PNG `getexif` would decode the
    image to reach the end of the file)."""
    try:
        with warnings.catch_warnings():  # "Corrupt EXIF data", "Truncated File Read"
            warnings.simplefilter("ignore")
            exif = Image.Image.getexif(im) if im.format == "PNG" else im.getexif()
            value = exif.get(ExifTags.Base.Orientation, 1)
    except Exception:  # Pillow's EXIF parser raises struct.error, ValueError, SyntaxError, OSError...
        return 1
    return value if isinstance(value, int) and value in UPRIGHT else 1


def upright(im: Image.Image, orientation: int, counts: Counter[str]) -> Image.Image:
    """`im` turned upright by its EXIF `orientation` (`exif_orientation`), counted in `counts`."""
    if orientation not in UPRIGHT:
        return im
    counts["orientation"] += 1
    return im.transpose(UPRIGHT[orientation])


def read_header(f: FolderFile) -> BadFile | None:
    """Pass 1: fill in `f`'s size and colour from its header; a `BadFile` when it is unreadable,
    no regular file, or larger than MAX_IMAGE_PIXELS."""
    if f.rel.lower().endswith(".webp") and not features.check("webp"):
        return BadFile(f.rel, UNREADABLE, _unreadable(f))
    try:
        with _open_image(f) as (im, _):
            turned = exif_orientation(im) in (5, 6, 7, 8)  # height and width swapped
            f.shape = (im.width, im.height) if turned else (im.height, im.width)
            f.colour = im.mode not in GREY_MODES and not grey_palette(im)
    except DataError as err:  # not a regular file (any more)
        return BadFile(f.rel, NOT_REGULAR, str(err))
    except Image.DecompressionBombError:
        return BadFile(f.rel, TOO_LARGE, _too_large(f, None))
    except Exception as err:  # Pillow raises many kinds (UnidentifiedImageError, SyntaxError, ...)
        return BadFile(f.rel, UNREADABLE, _unreadable(f, err))
    if f.shape[0] * f.shape[1] > MAX_IMAGE_PIXELS:
        return BadFile(f.rel, TOO_LARGE, _too_large(f, (f.shape[1], f.shape[0])))
    return None


def to_8bit(im: Image.Image, counts: Counter[str]) -> Image.Image:
    """`im` (loaded) as "L" or "RGB" by the pixel rules of the module's docstring, counting what
    was converted in `counts` (16-bit, palette, alpha, MODE)."""
    mode = im.mode
    if mode in ALPHA_MODES or "transparency" in im.info:  # a channel, or a transparent colour/entry
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
    if mode in ("P", "PA") and grey_palette(im):
        counts["grey palette"] += 1
        return im.convert("RGB").convert("L")  # R = G = B: luma is that grey exactly
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


def grey_palette(im: Image.Image) -> bool:
    """Whether `im` is a palette image ("P", "PA") whose palette holds greys only (R = G = B in
    every entry), read from its header (the palette, not the pixels)."""
    palette = im.palette if im.mode in ("P", "PA") else None
    if palette is None or palette.mode != "RGB":
        return False
    data = bytes(palette.palette)
    return len(data) % 3 == 0 and data[0::3] == data[1::3] == data[2::3]


COUNTED = ("16-bit", "palette", "grey palette", "alpha", "to grey", "to RGB", "resized", "orientation",
           "first frame", "hidden default", "frames")  # not modes
def pixel_notes(counts: Counter[str], one: bool = False) -> dict[str, str]:
    """What `first_frame` and `to_8bit` did (with the "16-bit" count of `is_16bit`), by kind, in
    words: of the images counted ('dropped the alpha channel of 3 images'), or of `one` image."""
    notes: dict[str, str] = {}
    if counts["first frame"]:
        notes["frames"] = frame_note(counts, one)
    for key, single, many in (
            ("16-bit", "16-bit values to 8 bits (v >> 8)", "converted {} 16-bit image{} to 8 bits (v >> 8)"),
            ("palette", "palette colours to RGB", "converted {} palette image{} to RGB"),
            ("grey palette", "palette of greys to grey", "converted {} palette image{} of greys to grey"),
            ("alpha", "dropped the alpha channel (its colours kept, not composited)",
             "dropped the alpha channel of {} image{}")):
        if counts[key]:
            notes[key] = single if one else many.format(counts[key], "" if counts[key] == 1 else "s")
    other = {m: n for m, n in counts.items() if m not in COUNTED and n}
    if other:
        notes["modes"] = (", ".join(sorted(other)) + " to RGB") if one else \
            "converted " + ", ".join(f"{n} {m}" for m, n in sorted(other.items())) + \
            (" image" if sum(other.values()) == 1 else " images") + " to RGB"
    return notes


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


def decode(f: FolderFile, channels: int, options: ImageOptions, counts: Counter[str]) -> np.ndarray:
    """Pass 2: the image of `f` as uint8 (C, H, W) (H, W of options.size, else its own), or
    DataError (a truncated or corrupt file)."""
    try:
        with _open_image(f) as (im, fp):
            if im.width * im.height > MAX_IMAGE_PIXELS:  # the file changed since its header was read
                raise DataError(_too_large(f, im.size))
            if is_16bit(im):
                counts["16-bit"] += 1
            orientation = exif_orientation(im)  # before the pixels, as `read_header` reads it
            first_frame(im, counts)
            data = b""
            if im.format in ("JPEG", "MPO", "PNG"):
                fp.seek(0)
                data = fp.read()
            load_checked(im, data)
            out = to_8bit(im, counts)
            out.load()
            out = upright(out, orientation, counts)
    except (DataError, MemoryError):
        raise
    except Image.DecompressionBombError:
        raise DataError(_too_large(f, None)) from None
    except ManyScans as err:
        raise DataError(f"{f.path}: a JPEG that {err}; expected {EXPECTED}, or {HINT}.") from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors...
        raise DataError(f"{f.path}: a truncated or corrupt image ({_detail(err)}); expected "
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
