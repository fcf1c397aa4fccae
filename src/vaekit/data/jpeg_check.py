"""A JPEG's scans, checked around its decoding (`vaekit.data.image_decode.load_checked`): too many
to decode in bounded time (`check_scan_count`, before its pixels), and compressed data cut short
before its end marker (`check_jpeg_scans`, after them; why this finds a cut, and what it cannot
find, is in `vaekit.data.image_decode`'s docstring)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FILLER = b"\x55" * 64  # bytes a whole JPEG's decoder skips, and a cut one's decodes (`check_jpeg_scans`)
END = b"\xff\xd9"  # a JPEG's end-of-image marker


class CutJPEG(OSError):
    """A JPEG whose compressed data ends before its last block (`check_jpeg_scans`)."""


MAX_JPEG_SCANS = 100  # scans of one JPEG; an encoder writes 1, or about 10 progressive (Pillow: 6 to 18)


class ManyScans(OSError):
    """A JPEG of more scans than MAX_JPEG_SCANS (`check_scan_count`)."""


def check_scan_count(data: bytes) -> None:
    """ManyScans when the JPEG file `data` holds more than MAX_JPEG_SCANS scans, before it is
    decoded: each scan of a progressive JPEG is a pass of the decoder over every block of the
    image, however few bytes it has, so a file of 200 KB that repeats a 33-byte scan 5,000 times
    costs 20 s of CPU at 4096 x 4096, and one of 2 MB minutes. Counted as start-of-scan markers
    (FF DA): inside compressed data an FF is followed by 00 or a restart marker, so each is a scan
    (or one of a thumbnail in the file's EXIF, which counts against it too)."""
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise ManyScans(f"has {scans:,} scans, more than the {MAX_JPEG_SCANS} any encoder writes, each a "
                        "pass over the whole image")


def check_jpeg_scans(data: bytes, pixels: np.ndarray) -> None:
    """A CutJPEG when the JPEG file `data`, which decoded to `pixels` (its image as loaded, as an
    array), has compressed data cut short before its end marker: decoded again with FILLER before
    that marker (and the 0xFF fill bytes that may precede it), its pixels change (the module's
    docstring). Nothing is checked in a file that does not end with its end marker."""
    end = len(data) - len(END)
    if end <= 0 or data[end:] != END:
        return
    while end > 0 and data[end - 1] == 0xFF:
        end -= 1
    with Image.open(io.BytesIO(data[:end] + FILLER + data[end:]), formats=["JPEG"]) as again:
        again.load()
        if not np.array_equal(np.asarray(again), pixels):
            raise CutJPEG("its compressed data ends before its last pixels: the file was cut short")
