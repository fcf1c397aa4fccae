"""A folder whose decoded set does not fit in memory: its size N x C x H x W bytes (of --image-size
when given) is held against the memory this process can still take (`folder.memory_room`, made
small here: nothing of the kind is allocated) before the array exists, and refused in one sentence;
an allocation or a decode that runs out of memory all the same is one sentence too; and a folder
refused or interrupted leaves no cache file behind."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vaekit import cli
from vaekit.data import folder as folder_mod
from vaekit.data import folder_cache
from vaekit.data.folder import MEMORY_FACTOR, ImageOptions, read_folder
from vaekit.errors import DataError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path

N = 12


def grey_folder(root: Path, side: int = 5) -> Path:
    root.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (N, side, side), dtype=np.uint8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / f"{i:03d}.png")
    return root


def black_png(width: int, height: int) -> bytes:
    """A grey 8-bit PNG of one colour written by hand: a few KB for millions of pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress(b"\0" * ((width + 1) * height), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def cache_files(places: Any) -> list[Path]:
    where = places.cache_root / "folders"
    return sorted(where.iterdir()) if where.is_dir() else []


def room(monkeypatch: pytest.MonkeyPatch, n: int | None) -> None:
    monkeypatch.setattr(folder_mod, "memory_room", lambda: n)


def test_a_set_larger_than_the_memory_left_is_refused_before_decoding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, places: Any,
        cli_error: Callable[..., str]) -> None:
    """Twelve 2000x2000 PNGs of one colour (a few KB each, under the per-image limit): 48 MB of
    pixels against 100 MB of memory (times MEMORY_FACTOR, 240 MB, does not fit): refused from their
    headers, no image decoded, no cache written; the CLI says it in one sentence, exit 2."""
    root = tmp_path / "bomb"
    root.mkdir()
    data = black_png(2000, 2000)
    for i in range(N):
        (root / f"b{i:02d}.png").write_bytes(data)
    room(monkeypatch, 100 * 10**6)

    def no_decoding(*args: Any) -> np.ndarray:
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(folder_mod, "decode", no_decoding)
    with pytest.raises(DataError) as err:
        read_folder(root, progress=False)
    message = str(err.value)
    assert str(root) in message and "45.8 MiB" in message and "--image-size" in message
    assert cache_files(places) == []
    cli_error(cli.main(["data", "info", str(root)]), str(root), "--image-size")
    assert cache_files(places) == []
    # the size decoded is what counts: 12 images of 32x32 fit
    monkeypatch.setattr(folder_mod, "decode", lambda f, c, o, counts: np.zeros((1, 32, 32), np.uint8))
    assert read_folder(root, ImageOptions(size=(32, 32)), progress=False).images.shape == (N, 1, 32, 32)


def test_the_bound_is_the_factor_times_the_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = grey_folder(tmp_path / "g")
    size = N * 5 * 5
    room(monkeypatch, size * MEMORY_FACTOR - 1)
    with pytest.raises(DataError, match="--image-size"):
        read_folder(root, progress=False, cache=False)
    room(monkeypatch, size * MEMORY_FACTOR)
    assert read_folder(root, progress=False, cache=False).images.shape == (N, 1, 5, 5)
    room(monkeypatch, None)  # cannot be read: no check
    assert read_folder(root, progress=False, cache=False).images.shape == (N, 1, 5, 5)


def test_an_allocation_that_fails_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  places: Any, one_sentence: Callable[..., None]) -> None:
    root = grey_folder(tmp_path / "g")
    room(monkeypatch, None)
    empty = np.empty

    def failing(shape: Any, dtype: Any = float) -> np.ndarray:
        if isinstance(shape, tuple) and len(shape) == 4:
            raise MemoryError
        return empty(shape, dtype)

    monkeypatch.setattr(folder_mod.np, "empty", failing)
    with pytest.raises(DataError) as err:
        read_folder(root, progress=False)
    one_sentence(str(err.value), str(root), "out of memory", "--image-size")
    assert cache_files(places) == []


@pytest.mark.parametrize("skip_bad", [False, True])
def test_running_out_of_memory_while_decoding_is_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, places: Any, skip_bad: bool,
        one_sentence: Callable[..., None]) -> None:
    """A MemoryError from one image's decoding (Pillow's own buffers) is neither a traceback nor,
    with --skip-bad, an unreadable file skipped."""
    root = grey_folder(tmp_path / "g")
    decode = folder_mod.decode

    def failing(f: Any, *args: Any) -> np.ndarray:
        if f.rel == "004.png":
            raise MemoryError
        return decode(f, *args)

    monkeypatch.setattr(folder_mod, "decode", failing)
    with pytest.raises(DataError) as err:
        read_folder(root, ImageOptions(skip_bad=skip_bad), progress=False)
    one_sentence(str(err.value), str(root), "out of memory")
    assert cache_files(places) == []


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, MemoryError])
def test_a_cache_write_interrupted_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  places: Any, interrupt: type[BaseException]) -> None:
    root = grey_folder(tmp_path / "g")
    write = folder_cache._write_npy

    def failing(zf: Any, name: str, array: np.ndarray) -> None:
        if name == "labels" or name == "note_keys":
            raise interrupt
        write(zf, name, array)

    monkeypatch.setattr(folder_cache, "_write_npy", failing)
    with pytest.raises(interrupt):
        read_folder(root, progress=False)
    assert cache_files(places) == []
    monkeypatch.setattr(folder_cache, "_write_npy", write)
    assert not read_folder(root, progress=False).from_cache
    assert read_folder(root, progress=False).from_cache
