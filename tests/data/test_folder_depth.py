"""A folder of images nested deeper than Python's recursion limit (1,100 levels of `d/`, made with
dir_fd since os.makedirs recurses): listed, in the order of the relative paths compared part by
part, and read like any folder; the bound of folders entered still stops a listing, in one
sentence. Held against the names written here and the pixels of the PNG files written here."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.cli import main
from vaekit.data import image_files
from vaekit.data.folder import read_folder
from vaekit.errors import DataError

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path

DEPTH = 1100  # levels of d/ below the top: past sys.getrecursionlimit() (1,000)
TOP = ["a0.png", "a1.png", "b2.png", "b3.png", "c4.png", "e5.png", "e6.png", "f7.png", "g8.png", "h9.png"]


def png(fd: int, name: str, value: int) -> None:
    """An 8x8 grey PNG of `value` named `name` in the folder open as `fd`."""
    data = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(data, "PNG")
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
    try:
        os.write(out, data.getvalue())
    finally:
        os.close(out)


def remove_chain(root: Path) -> None:
    """Remove root/d/d/... without recursing (shutil.rmtree would): root/d/d is moved up to the top
    and the emptied root/d removed, one level at a time."""
    while (root / "d" / "d").is_dir():
        os.rename(root / "d" / "d", root / "t")
        shutil.rmtree(root / "d")
        os.rename(root / "t", root / "d")
    shutil.rmtree(root)


@pytest.fixture
def deep(tmp_path: Path) -> Iterator[Path]:
    """TOP's PNGs (value 10 i) at the top, then DEPTH levels of d/, z.png (value 255) at the bottom."""
    root = tmp_path / "deep"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    try:
        for i, name in enumerate(TOP):
            png(fd, name, 10 * i)
        for _ in range(DEPTH):
            os.mkdir("d", dir_fd=fd)
            below = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = below
        png(fd, "z.png", 255)
    finally:
        os.close(fd)
    yield root
    remove_chain(root)


def test_a_folder_deeper_than_the_recursion_limit_is_listed_in_order(deep: Path) -> None:
    files, classes, bad, _notes = image_files.list_images(deep)
    bottom = "d/" * DEPTH + "z.png"
    # part by part: the folder 'd' sorts between 'c4.png' and 'e5.png'
    assert [f.rel for f in files] == [*TOP[:5], bottom, *TOP[5:]]
    assert classes is None and bad == []
    ds = read_folder(deep)
    assert sorted(int(v) for v in ds.images[:, 0, 0, 0]) == sorted([10 * i for i in range(len(TOP))] + [255])


def test_data_info_reads_it(deep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(deep)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_the_bound_of_folders_entered_still_stops_it(deep: Path, monkeypatch: pytest.MonkeyPatch,
                                                      one_sentence) -> None:
    monkeypatch.setattr(image_files, "MAX_FOLDER_VISITS", 500)
    with pytest.raises(DataError) as refused:
        image_files.list_images(deep)
    one_sentence(str(refused.value), deep / ("d/" * 499 + "d"), "500 folders entered")
