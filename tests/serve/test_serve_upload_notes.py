"""The `converted` note of an uploaded image to POST /api/encode, over HTTP on 127.0.0.1 against the
tiny digits run (8x8 grey): every conversion of its mode says itself (the alpha channel or a
transparent colour dropped, a palette, 16-bit values, CMYK), as an image folder's notes do, and the
pixels encoded are those of Pillow's own conversion of the image without its transparency."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serve_client import Client, serve


@pytest.fixture(scope="module")
def client(run_dir: Path) -> Iterator[Client]:
    yield from serve(run_dir)


def saved(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def encode(client: Client, data: bytes) -> dict[str, Any]:
    return client.post("/api/encode", {"image": base64.b64encode(data).decode()})


def palette() -> Image.Image:
    im = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, "L").convert("P")
    im.putpalette([(i * 37) % 256 for i in range(768)])
    return im


def cmyk_jpeg() -> tuple[bytes, Image.Image, tuple[str, ...]]:
    """A CMYK JPEG, and Pillow's RGB conversion of it as decoded."""
    data = saved(Image.fromarray(NOISE, "CMYK"), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "CMYK"
        return data, im.convert("RGB"), ("CMYK to RGB", "greyscale")


NOISE = np.random.default_rng(7).integers(0, 256, (8, 8, 4), dtype=np.uint8)

# name -> (the file's bytes, the same pixels as a plain L or RGB image by Pillow, words the note holds)
CASES: dict[str, Callable[[], tuple[bytes, Image.Image, tuple[str, ...]]]] = {
    "transparent white RGBA": lambda: (saved(Image.new("RGBA", (8, 8), (255, 255, 255, 0))),
                                       Image.new("RGB", (8, 8), (255, 255, 255)),
                                       ("alpha channel", "greyscale")),
    "RGBA": lambda: (saved(Image.fromarray(NOISE, "RGBA")), Image.fromarray(NOISE[..., :3], "RGB"),
                     ("alpha channel", "greyscale")),
    "LA": lambda: (saved(Image.fromarray(NOISE[..., :2], "LA")), Image.fromarray(NOISE[..., 0], "L"),
                   ("alpha channel",)),
    "P with a transparent entry": lambda: (saved(palette(), transparency=5), palette().convert("RGB"),
                                           ("alpha channel", "palette", "greyscale")),
    "L with a transparent grey": lambda: (saved(Image.fromarray(NOISE[..., 0], "L"), transparency=3),
                                          Image.fromarray(NOISE[..., 0], "L"), ("alpha channel",)),
    "I;16": lambda: (saved(Image.fromarray(NOISE[..., :2].copy().view(np.uint16)[..., 0])),
                     Image.fromarray((NOISE[..., :2].copy().view(np.uint16)[..., 0] >> 8).astype(np.uint8)),
                     ("16-bit", "8 bits")),
    "CMYK JPEG": lambda: cmyk_jpeg(),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_uploads_conversions_are_said(client: Client, name: str) -> None:
    data, plain, words = CASES[name]()
    out = encode(client, data)
    for word in words:
        assert word in out["converted"], (word, out["converted"])
    assert out["input"] == encode(client, saved(plain))["input"]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_an_opaque_upload_says_no_alpha(client: Client, mode: str) -> None:
    out = encode(client, saved(Image.fromarray(NOISE[..., :3] if mode == "RGB" else NOISE[..., 0], mode)))
    assert "alpha" not in out["converted"] and "palette" not in out["converted"]


def pillows_frame(data: bytes, frame: int) -> Image.Image:
    """Pillow's own frame `frame` of the file, as a still image."""
    with Image.open(io.BytesIO(data)) as im:
        im.seek(frame)
        return im.convert("L")


@pytest.mark.parametrize("hidden", [True, False])
def test_an_apng_gives_its_first_animation_frame_and_says_so(client: Client, hidden: bool) -> None:
    frames = [Image.fromarray(NOISE[..., k], "L") for k in range(3)]
    data = saved(frames[0], save_all=True, append_images=frames[1:], default_image=hidden)
    out = encode(client, data)
    first = pillows_frame(data, 1 if hidden else 0)  # with a hidden default image: frame 0 is that image
    assert out["input"] == encode(client, saved(first))["input"]
    assert out["input"] != encode(client, saved(pillows_frame(data, 1 - hidden)))["input"]
    if hidden:
        assert "read the first of 2 animation frames, not the default image" in out["converted"]
    else:
        assert "read the first of 3 frames" in out["converted"] and "default" not in out["converted"]


def test_a_still_upload_says_nothing_of_frames(client: Client) -> None:
    assert "frame" not in encode(client, saved(Image.fromarray(NOISE[..., 0], "L")))["converted"]


def png_of_rows(rows: int) -> bytes:
    """A 12x12 RGB PNG whose one IDAT chunk (CRC right, then IEND) holds its first `rows` rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    idat = zlib.compress((b"\x00" + b"\x80" * 36) * rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12, 12, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_png_of_one_row_of_twelve_is_refused_as_a_half_cut_png_is(client: Client) -> None:
    whole = png_of_rows(12)
    encode(client, whole)  # 200
    refused = client.call("POST", "/api/encode", {"image": base64.b64encode(png_of_rows(1)).decode()})
    half = client.call("POST", "/api/encode", {"image": base64.b64encode(whole[:len(whole) // 2]).decode()})
    assert refused[0] == 400 and refused == half
