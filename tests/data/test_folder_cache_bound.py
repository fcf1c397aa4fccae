"""The folders cache says each entry's size and stays bounded: held against the files' sizes on
disk (os.stat) and a bound monkeypatched small, with tiny PNGs written by Pillow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.data import folder_cache
from vaekit.data.folder import ImageOptions, read_folder
from vaekit.device import format_bytes

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path


def folder(root: Path, n: int = 10, side: int = 4) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((side, side), i, np.uint8)).save(root / f"{i:02d}.png")
    return root


def test_the_cache_note_says_the_entry_size_on_disk(tmp_path: Path) -> None:
    root = folder(tmp_path / "a")
    got = read_folder(root, progress=False)
    assert got.cache_path is not None
    size = format_bytes(os.stat(got.cache_path).st_size)
    assert got.notes["cache"].endswith(f"cached as {got.cache_path} ({size})")
    again = read_folder(root, progress=False)
    assert again.from_cache and again.notes["cache"] == f"read from cache {got.cache_path} ({size})"


def test_a_set_larger_than_the_bound_is_read_but_not_cached(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = folder(tmp_path / "big")
    decoded = 10 * 64 * 64  # ten grey images at --image-size 64: the uint8 array alone
    monkeypatch.setattr(folder_cache, "CACHE_MAX_BYTES", decoded // 2)
    got = read_folder(root, ImageOptions(size=(64, 64)), progress=False)
    assert got.images.shape == (10, 1, 64, 64) and got.cache_path is None
    assert got.notes["cache"].startswith("not cached (")
    assert f"keeps at most {format_bytes(decoded // 2)}" in got.notes["cache"]
    cache = tmp_path / "home" / ".cache" / "vaekit" / "folders"
    assert not list(cache.glob("*.npz*"))
    monkeypatch.setattr(folder_cache, "CACHE_MAX_BYTES", 100 * decoded)
    monkeypatch.setattr(folder_cache, "free_bytes", lambda where: decoded)  # half is too little
    got = read_folder(root, ImageOptions(size=(64, 64)), progress=False)
    assert got.cache_path is None and "free on the cache's disk" in got.notes["cache"]


def test_the_least_recently_used_entries_beyond_the_bound_are_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three folders' entries of about one size each under a bound of two and a half: writing the
    third removes the one least recently used, which a read (not only a write) makes recent."""
    f0, f1, f2 = (folder(tmp_path / f"f{i}") for i in range(3))
    e0 = read_folder(f0, progress=False).cache_path
    e1 = read_folder(f1, progress=False).cache_path
    assert e0 is not None and e1 is not None
    entry = max(os.stat(e0).st_size, os.stat(e1).st_size)
    monkeypatch.setattr(folder_cache, "CACHE_MAX_BYTES", int(2.5 * entry))
    os.utime(e0, ns=(10**9, 10**9))  # written long ago, f0 before f1
    os.utime(e1, ns=(2 * 10**9, 2 * 10**9))
    assert read_folder(f0, progress=False).from_cache  # f0 read: now the more recently used
    e2 = read_folder(f2, progress=False).cache_path
    assert e2 is not None
    kept = set(e2.parent.glob("*.npz"))
    assert kept == {e0, e2}
    assert sum(os.stat(p).st_size for p in kept) <= int(2.5 * entry)
    assert read_folder(f1, progress=False).from_cache is False  # decoded again, and cached again
