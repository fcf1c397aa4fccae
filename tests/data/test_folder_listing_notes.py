"""What a folder's listing leaves out or reads otherwise than its layout suggests is said in the
notes (`vaekit data info`), held against the files written here with Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit import cli
from vaekit.data.folder import read_folder

pytestmark = pytest.mark.usefixtures("places")  # HOME (and so the cache) under tmp_path


def png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)
    return path


def info(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli.main(["data", "info", str(root), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_hidden_files_and_folders_are_left_out_and_counted(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "h"
    for i in range(10):
        png(root / f"{i:02d}.png", i)
    png(root / ".h.png")
    png(root / ".hdir" / "a.png")
    got = read_folder(root, progress=False)
    assert len(got.images) == 10
    assert got.notes["hidden"] == ("left out 2 hidden files/folders (names starting with '.'; "
                                   "first: .h.png)")
    again = read_folder(root, progress=False)  # read back from the cache: still said
    assert again.from_cache and again.notes["hidden"] == got.notes["hidden"]
    assert "left out 2 hidden" in info(root, capsys)["notes"]["hidden"]


def test_no_note_without_hidden_entries(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    for i in range(10):
        png(root / f"{i:02d}.png", i)
    assert "hidden" not in read_folder(root, progress=False, cache=False).notes
