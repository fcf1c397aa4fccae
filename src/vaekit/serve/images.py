"""Images in and out of the explorer's API: an image tensor as the JSON the API writes, and an
uploaded PNG or JPEG (base64) as the model's pixels, with what was done to it in words.

An image is {"width", "height", "channels", "pixels"}: floats in [0, 1] rounded to 4 decimals, in
the order (C, H, W) flattened. An upload of more frames (an animated PNG, an MPO) gives the frame
a viewer shows first, as an image folder's file does (`vaekit.data.image_frames.first_frame`: an
APNG's first animation frame, not a default image hidden from its animation). Its pixels become
8-bit by the rules image folders follow (`vaekit.data.image_decode.to_8bit`: 16-bit values v >> 8,
palettes, alpha and transparent colours dropped, CMYK to RGB), turned upright by its EXIF
orientation as they are (`exif_orientation`, `upright`); the answer's note says each of these as an
image folder's notes do (`pixel_notes`: 'read the first of 3 frames')."""

from __future__ import annotations

import base64
import binascii
import io
import threading
import warnings
from collections import Counter
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from vaekit.data.image_decode import (
    ManyScans,
    exif_orientation,
    fit_image,
    is_16bit,
    load_checked,
    pixel_notes,
    to_8bit,
    upright,
)
from vaekit.data.image_frames import first_frame
from vaekit.serve.request import ApiError

DECIMALS = 4  # of every float the API writes from a tensor (pixels, map points)
MAX_UPLOAD = 2 * 2**20  # bytes of an uploaded PNG/JPEG
MAX_UPLOAD_PIXELS = 4096 * 4096
DECODING = threading.BoundedSemaphore(2)  # uploads decoded at once: each may take ~200 MB on the way
MAX_UPLOAD_SIDE = 8192  # pixels of a side: a 1 x 16,777,216 image decodes one row at a time (0.5 GB)

# The answer to an upload says what was done to it; Pillow's warnings about what it repaired in a
# file (palette transparency in bytes, a bad EXIF block) would only print source lines on the
# server's console.
warnings.filterwarnings("ignore", module=r"PIL(\.|$)")


def image_json(t: Tensor) -> dict[str, Any]:
    """One image (C, H, W) as the API writes it, clamped to [0, 1] and rounded to 4 decimals, from a
    CPU copy."""
    c, h, w = t.shape
    pixels = t.detach().to("cpu", torch.float64).clamp(0.0, 1.0).round(decimals=DECIMALS).flatten().tolist()
    return {"width": int(w), "height": int(h), "channels": int(c), "pixels": pixels}


def decode_upload(text: object, shape: tuple[int, int, int], fit: str = "crop") -> tuple[Tensor, list[str]]:
    """A base64 PNG or JPEG -> uint8 (C, H, W) of the model's shape, resized as the run's images were
    (`fit`: its data.image_fit, crop or pad, `fit_image`), and what was done to it."""
    if not isinstance(text, str):
        raise ApiError(400, "the field 'image' must be a base64 string of a PNG or JPEG file.")
    if text.startswith("data:") and "," in text[:100]:  # a data: URL as a browser's FileReader writes it
        text = text.split(",", 1)[1]
    if len(text) > MAX_UPLOAD * 4 // 3 + 8:
        raise ApiError(413, f"the image is larger than {MAX_UPLOAD // 2**20} MB.")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the field 'image' is not valid base64 text.") from None
    if len(data) > MAX_UPLOAD:
        raise ApiError(413, f"the image is larger than {MAX_UPLOAD // 2**20} MB.")
    try:
        with DECODING:
            return _decode(data, shape, fit)
    except ApiError:
        raise
    except MemoryError:
        raise
    except ManyScans as err:
        raise ApiError(413, f"the field 'image' is a JPEG that {err}.") from None
    except Image.DecompressionBombError:  # a header of more pixels than Pillow opens at all
        raise ApiError(413, f"the image has more than {MAX_UPLOAD_PIXELS:,} pixels.") from None
    except Exception:  # Pillow raises many kinds on a corrupt file (OSError, SyntaxError, IndexError...)
        raise ApiError(400, "the field 'image' is not a readable PNG or JPEG file.") from None


def _decode(data: bytes, shape: tuple[int, int, int], fit: str) -> tuple[Tensor, list[str]]:
    """`decode_upload` of the file's bytes, Pillow's errors left to it."""
    with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as probe:
        width, height = probe.size
        if width * height > MAX_UPLOAD_PIXELS:
            raise ApiError(413, f"the image is {width} wide and {height} high, more than "
                           f"{MAX_UPLOAD_PIXELS:,} pixels.")
        if max(width, height) > MAX_UPLOAD_SIDE:
            raise ApiError(413, f"the image is {width} wide and {height} high, a side longer than "
                           f"{MAX_UPLOAD_SIDE:,} pixels.")
        probe.verify()
    with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as im:
        sixteen = is_16bit(im)
        orientation = exif_orientation(im)  # before the pixels, as an image folder reads it
        counts: Counter[str] = Counter({"16-bit": int(sixteen)})
        first_frame(im, counts, frames=True)
        load_checked(im, data)  # a JPEG (or MPO) of thousands of scans or cut short, a PNG of too few rows
        kind = im.format or "image"
        c, h, w = shape
        eight = upright(to_8bit(im, counts), orientation, counts)
        done = [f"read a {kind} {width} wide and {height} high", *pixel_notes(counts, one=True).values()]
        if counts["orientation"]:
            done.append("turned upright by its EXIF orientation")
        target = "L" if c == 1 else "RGB"
        if eight.mode != target:
            converted = eight.convert(target)
            done.append("greyscale" if c == 1 else "RGB")
        else:
            converted = eight.copy()
        if converted.size != (w, h):
            converted = fit_image(converted, (h, w), fit)
            how = "centre-cropped" if fit == "crop" else "padded"
            done.append(f"resized to {w} wide and {h} high ({how} to its aspect, as the run's images)")
        array = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8)
    return array.view(h, w, c).permute(2, 0, 1).contiguous(), done
