"""A PNG whose image data ends before its last row, found from its chunks.

A PNG's pixels are the IDAT chunks, one zlib stream of filtered rows (each row a filter byte and
ceil(width * channels * bit depth / 8) bytes; an interlaced image holds the seven Adam7 passes one
after another, each a smaller image of such rows, an empty pass none). A file whose stream is a
valid one that ends early (a first row and then IEND, every chunk's CRC right) is decoded by
Pillow without an error, the missing rows left black; libpng refuses it ("Not enough image data").
`check_png_data` walks the chunks (4-byte length, 4-byte type, data, CRC), decompresses the first
run of IDAT chunks (the default image; an APNG's fdAT frames are other chunks) and refuses a
stream of fewer bytes than the header's size needs. It decompresses at most one byte more than
that, CHUNK bytes at a time, so a small file that inflates to gigabytes costs no memory; more data
than needed is left alone (libpng only warns of it).
"""

from __future__ import annotations

import math
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
# Adam7: (first column, first row, column step, row step) of each pass
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
CHUNK = 2**20  # bytes decompressed at once


class CutPNG(OSError):
    """A PNG whose image data holds fewer rows than its header says (`check_png_data`)."""


def expected_size(width: int, height: int, depth: int, colour: int, interlace: int) -> int | None:
    """Bytes of the filtered rows of a PNG of this header (None: a header no decoder reads)."""
    if colour not in CHANNELS or width <= 0 or height <= 0:
        return None
    bits = CHANNELS[colour] * depth
    if interlace == 0:
        return height * (1 + math.ceil(width * bits / 8))
    total = 0
    for x0, y0, dx, dy in ADAM7:
        w, h = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if w and h:
            total += h * (1 + math.ceil(w * bits / 8))
    return total


def idat_chunks(data: bytes) -> tuple[bytes, list[memoryview]]:
    """The IHDR chunk's data of the PNG file `data` and its first run of IDAT chunks' data (a chunk
    cut by the file's end as far as it goes)."""
    view, i, header, idat = memoryview(data), len(SIGNATURE), b"", []
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        body = view[i + 8:i + 8 + length]
        if kind == b"IHDR" and not header:
            header = bytes(body)
        elif kind == b"IDAT":
            idat.append(body)
        elif idat or kind == b"IEND":
            break
        i += 12 + length
    return header, idat


def inflated_size(pieces: list[memoryview], limit: int) -> int:
    """Bytes the zlib stream `pieces` decompresses to, counted up to `limit` + 1 (zlib.error on a
    corrupt stream)."""
    stream, total = zlib.decompressobj(), 0
    for piece in pieces:
        rest = bytes(piece)
        while rest and not stream.eof:
            total += len(stream.decompress(rest, min(CHUNK, limit + 1 - total)))
            if total > limit:
                return total
            rest = stream.unconsumed_tail
    return total


def check_png_data(data: bytes) -> None:
    """CutPNG when the PNG file `data` has image data (its first run of IDAT chunks) that
    decompresses to fewer bytes than its header's width, height, bit depth, colour type and
    interlacing need (the module's docstring); nothing for a file that is no PNG."""
    if not data.startswith(SIGNATURE):
        return
    header, idat = idat_chunks(data)
    if len(header) < 13:
        return
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    need = expected_size(width, height, header[8], header[9], header[12])
    if need is not None and inflated_size(idat, need) < need:
        raise CutPNG("image file is truncated")
