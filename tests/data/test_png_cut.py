"""A PNG whose one valid IDAT chunk holds fewer rows than its header says (then a right IEND),
which Pillow decodes without an error, the missing rows black, and libpng refuses ("Not enough
image data"): refused by a folder and by the explorer's upload with the sentence a PNG cut in half
gets. Honest PNGs of every colour type and bit depth Pillow writes, an APNG, and an Adam7
interlaced PNG written here row by row (Pillow writes none) decode to Pillow's pixels; image data
that inflates far past the size is decoded as Pillow decodes it, without inflating all of it."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.data.folder import ImageOptions, read_folder
from vaekit.data.image_decode import decode
from vaekit.data.image_files import FolderFile
from vaekit.errors import DataError
from vaekit.serve.images import decode_upload
from vaekit.serve.request import ApiError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path
N_GOOD = 10  # a folder of fewer images is too few to split
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width: int, height: int, colour: int, raw: bytes, interlace: int = 0) -> bytes:
    """An 8-bit PNG of one IDAT chunk holding `raw` (filtered rows) compressed."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


REPRO = png(12, 12, 2, b"\x00" + b"\x80" * 36)  # one row of the twelve


def interlaced_rows(pixels: np.ndarray) -> bytes:
    """The filtered rows (filter 0) of the seven Adam7 passes of an RGB image (H, W, 3)."""
    return b"".join(b"\x00" + row.tobytes() for x0, y0, dx, dy in ADAM7
                    for row in pixels[y0::dy, x0::dx] if pixels[y0::dy, x0::dx].size)


def saved(image: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **options)
    return buf.getvalue()


def half_cut() -> bytes:
    data = saved(Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 12, 3), np.uint8)))
    return data[:len(data) // 2]


def folder_error(tmp_path: Path, data: bytes, name: str) -> str:
    """The sentence a folder of good PNGs and `data` is refused with (and skipped with --skip-bad)."""
    root = tmp_path / name
    root.mkdir()
    for i in range(N_GOOD):
        Image.new("RGB", (12, 12), (i, 2 * i, 3 * i)).save(root / f"{i:02d}.png")
    (root / "bad.png").write_bytes(data)
    with pytest.raises(DataError) as err:
        read_folder(root, ImageOptions(), progress=False)
    got = read_folder(root, ImageOptions(skip_bad=True), progress=False)
    assert got.images.shape[0] == N_GOOD and "bad.png" in got.notes["skipped"]
    return str(err.value).replace(str(root), "ROOT")


def upload_error(data: bytes) -> tuple[int, str]:
    with pytest.raises(ApiError) as err:
        decode_upload(base64.b64encode(data).decode("ascii"), (3, 12, 12))
    return err.value.status, err.value.args[0]


BLACK = np.zeros((12, 12, 3), np.uint8)
CUT = {"one row of twelve": REPRO,  # the interlaced one without its last pass, 6 rows of 1 + 36 bytes
       "six Adam7 passes of seven": png(12, 12, 2, interlaced_rows(BLACK)[:-6 * 37], 1),
       "eleven rows of twelve": png(12, 12, 2, b"".join(b"\x00" + bytes(36) for _ in range(11)))}


@pytest.mark.parametrize("name", sorted(CUT))
def test_a_png_of_too_few_rows_is_refused_as_a_half_cut_png_is(tmp_path: Path, one_sentence,
                                                                 name: str) -> None:
    data = CUT[name]
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # Pillow itself decodes it, without a word
    sentence = folder_error(tmp_path, data, "cut")
    one_sentence(sentence, "ROOT/bad.png")
    assert sentence == folder_error(tmp_path, half_cut(), "half")
    assert upload_error(data) == upload_error(half_cut()) and upload_error(data)[0] == 400


def pillows(data: bytes) -> np.ndarray:
    """Pillow's pixels of a PNG, as uint8 (C, H, W) by vaekit's rules for the mode Pillow gives."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode == "I;16":
            return (np.asarray(im) >> 8).astype(np.uint8)[None]
        if im.mode in ("1", "L", "LA"):
            return np.asarray(im.convert("L") if im.mode != "LA" else im.getchannel(0))[None]
        rgb = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        if im.mode == "P" and (rgb[0] == rgb[1]).all() and (rgb[1] == rgb[2]).all():
            return rgb[:1]  # a palette of greys (here every colour used is one): grey
        return rgb


def decoded(tmp_path: Path, data: bytes) -> np.ndarray:
    path = tmp_path / "one.png"
    path.write_bytes(data)
    with Image.open(path) as im:
        shape = (im.height, im.width)
    return decode(FolderFile(str(path), "one.png", -1, shape=shape), 0, ImageOptions(), Counter())


NOISE = np.random.default_rng(3).integers(0, 256, (11, 13, 4), np.uint8)  # odd sides: part bytes


def honest() -> dict[str, bytes]:
    grey = Image.fromarray(NOISE[..., 0], "L")
    small = grey.quantize(16)
    return {
        "1-bit": saved(grey.convert("1")), "L": saved(grey),
        "I;16": saved(Image.fromarray(NOISE[..., :2].copy().view(np.uint16)[..., 0])),
        "RGB": saved(Image.fromarray(NOISE[..., :3], "RGB")), "P 8-bit": saved(grey.quantize(200)),
        "P 4-bit": saved(small, bits=4), "LA": saved(Image.fromarray(NOISE[..., :2], "LA")),
        "RGBA": saved(Image.fromarray(NOISE, "RGBA")),
        "APNG": saved(grey, save_all=True, append_images=[small.convert("L")]),
        "Adam7": png(13, 11, 2, interlaced_rows(NOISE[..., :3]), 1),
    }


@pytest.mark.parametrize("name", sorted(honest()))
def test_honest_pngs_decode_to_pillows_pixels(tmp_path: Path, name: str) -> None:
    data = honest()[name]
    assert np.array_equal(decoded(tmp_path, data), pillows(data))
    if name == "Adam7":  # Pillow's pixels are the ones written
        assert np.array_equal(pillows(data), NOISE[..., :3].transpose(2, 0, 1))
    got, _ = decode_upload(base64.b64encode(data).decode("ascii"), (3, 11, 13))
    expected = pillows(data)
    assert np.array_equal(got.numpy(), np.repeat(expected, 3 // expected.shape[0], axis=0))


def test_image_data_that_inflates_far_past_its_size_is_decoded_as_pillow_decodes_it(tmp_path: Path) -> None:
    """Too much data: libpng only warns, and Pillow decodes the rows it needs; the check inflates
    only one byte past the 12 rows, not the 64 MB."""
    rows = b"".join(b"\x00" + bytes([17 * k]) * 36 for k in range(12))
    data = png(12, 12, 2, rows + bytes(64 * 2**20))
    assert len(data) < 2**20
    assert np.array_equal(decoded(tmp_path, data), pillows(data))
    assert np.array_equal(pillows(data)[:, :, 0], np.repeat(np.arange(12)[None] * 17, 3, axis=0))
