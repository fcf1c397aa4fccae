"""What a folder's listing leaves out or reads otherwise than its layout suggests is said in the
notes (`vaekit data info`), held against the files written here with Pillow."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def test_files_of_other_kinds_are_left_out_and_counted(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "o"
    for i in range(10):
        png(root / f"{i:02d}.png", i)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "b.tif")  # an image, of a kind not read
    (root / "sub").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "sub" / "a.tiff")
    (root / "README.txt").write_text("my pictures\n")
    got = read_folder(root, progress=False)
    assert len(got.images) == 10
    note = got.notes["other"]
    assert note.startswith("left out 3 files of other kinds (names not ending in .png, .jpg")
    assert note.endswith("; first: README.txt)")
    again = read_folder(root, progress=False)  # read back from the cache: still said
    assert again.from_cache and again.notes["other"] == note
    assert info(root, capsys)["notes"]["other"] == note
    (root / "README.txt").unlink()
    (root / "sub" / "a.tiff").unlink()
    assert read_folder(root, progress=False, cache=False).notes["other"].startswith("left out 1 file of ")


def test_no_other_note_when_every_file_is_read(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    for i in range(10):
        png(root / f"{i:02d}.png", i)
    assert "other" not in read_folder(root, progress=False, cache=False).notes


def mixed(root: Path) -> Path:
    """Two class folders of 6 images each and 3 loose images at the top."""
    for c in ("cat", "dog"):
        for i in range(6):
            png(root / c / f"{i}.png", i)
    for name in ("x1.png", "x2.png", "x3.png"):
        png(root / name)
    return root


def test_loose_images_beside_class_folders_are_why_it_is_unlabelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = mixed(tmp_path / "mixed")
    got = read_folder(root, progress=False)
    assert got.labels is None and len(got.images) == 15
    note = got.notes["labels"]
    assert note.startswith("read unlabelled because of the 3 images at its top level beside its 2 "
                           "sub-folders of images (first: x1.png)")
    assert read_folder(root, progress=False).notes["labels"] == note  # from the cache
    assert info(root, capsys)["notes"]["labels"] == note


def test_no_labels_note_for_a_flat_or_a_class_folder(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for i in range(10):
        png(flat / f"{i}.png", i)
    classes = tmp_path / "classes"
    for i in range(10):
        png(classes / f"c{i % 2}" / f"{i}.png", i)
    assert "labels" not in read_folder(flat, progress=False, cache=False).notes
    got = read_folder(classes, progress=False, cache=False)
    assert got.classes == ("c0", "c1") and "labels" not in got.notes


def nested(root: Path) -> Path:
    """Two class folders of 10 images each, and 10 images more in a sub-folder of the second."""
    for where in ("a", "b", "b/sub"):
        for i in range(10):
            png(root / where / f"{i}.png", i)
    return root


def test_images_nested_below_a_class_folder_are_why_it_is_unlabelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = nested(tmp_path / "f4")
    got = read_folder(root, progress=False)
    assert got.labels is None and got.classes is None and len(got.images) == 30
    note = got.notes["labels"]
    assert note.startswith("read unlabelled because of the 10 images nested below a sub-folder rather "
                           "than directly in it (first: b/sub/0.png)")
    assert read_folder(root, progress=False).notes["labels"] == note  # from the cache
    assert info(root, capsys)["notes"]["labels"] == note
    both = mixed(tmp_path / "both")
    png(both / "cat" / "deep" / "z.png")
    said = read_folder(both, progress=False, cache=False).notes["labels"]
    assert "the 3 images at its top level" in said and "the 1 image nested" in said
    assert "(first: cat/deep/z.png)" in said


def one_folder(root: Path) -> Path:
    """One class folder, 'only', of 10 images: labelled, all of one class."""
    for i in range(10):
        png(root / "only" / f"{i}.png", i)
    return root


def one_label(root: Path) -> Path:
    """An .npz of 30 images whose labels are all 3: of one class, which is not class 0."""
    path = root.with_suffix(".npz")
    np.savez(path, images=np.zeros((30, 4, 4), np.uint8), labels=np.full(30, 3))
    return path


@pytest.mark.parametrize(("make", "said"), [
    (mixed, ("no labels", "3 images at its top level", "x1.png")),
    (nested, ("no labels", "10 images nested", "b/sub/0.png")),
    (one_folder, ('holds one class, "only",', "at least 2")),
    (one_label, ("holds one class, label 3,", "at least 2")),
], ids=["loose", "nested", "one-class-folder", "one-label"])
def test_classify_names_why_there_are_no_labels(
        make: Callable[[Path], Path], said: tuple[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    root = make(tmp_path / "folder")
    status = cli.main(["classify", "--data", str(root), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2, err
    last = err.strip().splitlines()[-1].split("\r")[-1]
    assert "Traceback" not in err and ": error: " in last
    one_sentence(last.split(": error: ", 1)[1], str(root), *said)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
