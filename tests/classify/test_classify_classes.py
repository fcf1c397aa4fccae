"""A classifier's splits and their classes: a test split none of whose classes has a training image
is refused in one sentence before anything is written; classes the splits do not share are one note
on stderr, its counts held against the folder's splits counted here with sets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from vaekit.classify.data import class_notes
from vaekit.cli import main
from vaekit.data.load import Dataset, Split, load_dataset
from vaekit.errors import DataError

TINY = ["--epochs", "1", "--no-progress", "--threads", "1", "--batch-size", "8",
        "--layers", "Flatten()", "Linear(10)"]


def folder_of(root: Path, counts: dict[str, int]) -> Path:
    """A folder of class folders, `counts[name]` tiny grey PNG images in each."""
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (6, 6), (37 * k + 11 * i) % 256).save(root / name / f"{i:02d}.png")
    return root


def labels(*values: int) -> Split:
    return Split(torch.zeros(len(values), 1, 2, 2, dtype=torch.uint8), torch.tensor(values))


def test_splits_sharing_every_class_have_no_note() -> None:
    ds = Dataset("d", labels(0, 1, 2, 0), labels(2, 1), labels(0, 1, 2))
    assert class_notes(ds, "d") == []


def test_untrained_and_untested_classes_are_counted() -> None:
    # trained {0, 1, 2}; test {0, 3, 4, 4}: 3 and 4 untrained (3 images); validation {1, 3}: 3
    ds = Dataset("d", labels(0, 0, 1, 1, 2), labels(1, 3), labels(0, 3, 4, 4))
    first, second = class_notes(ds, "d")
    assert "2 of the test split's 3 classes (3 of its 4 images)" in first
    assert "1 of the validation split's 2 classes (1 of its 2 images)" in first
    assert "2 of the 3 classes of the training split have no test image" in second


def test_a_test_split_of_untrained_classes_only_is_refused(one_sentence: Any) -> None:
    ds = Dataset("d", labels(0, 1), labels(0), labels(2, 3, 3))
    with pytest.raises(DataError) as err:
        class_notes(ds, "d")
    one_sentence(str(err.value), "--data d", "several images per class")


def test_one_image_per_class_is_refused_and_writes_nothing(tmp_path: Path, places: Any, one_sentence: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = folder_of(tmp_path / "wide", {f"c{i:02d}": 1 for i in range(30)})
    out = tmp_path / "run"
    status = main(["classify", "--data", str(folder), "--out", str(out), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("vaekit classify: error: "), err
    message = err[0].removeprefix("vaekit classify: error: ")
    one_sentence(message, f"--data {folder}", "several images per class")
    assert not out.exists()


def _untrained(split: Split, trained: set[int]) -> tuple[int, int, int, int]:
    values = split.labels.tolist()  # type: ignore[union-attr]
    missing = [v for v in values if v not in trained]
    return len(set(missing)), len(set(values)), len(missing), len(values)


def test_classes_the_splits_do_not_share_are_one_note(tmp_path: Path, places: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    counts = {f"big{i}": 12 for i in range(4)} | {f"one{i}": 1 for i in range(6)}
    folder = folder_of(tmp_path / "mixed", counts)
    ds: Dataset = load_dataset(str(folder))
    trained = set(ds.train.labels.tolist())  # type: ignore[union-attr]
    test = _untrained(ds.test, trained)
    untested = len(trained - set(ds.test.labels.tolist()))  # type: ignore[union-attr]
    assert test[0] and untested  # the folder shows both edges
    status = main(["classify", "--data", str(folder), "--out", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err
    assert status == 0, err
    notes = [line for line in err.splitlines()  # the folder's own notes aside: its cache
             if line.startswith("note: ") and not line.startswith("note: cache:")]
    assert len(notes) == 2, err
    assert f"{test[0]} of the test split's {test[1]} classes ({test[2]} of its {test[3]} images)" in notes[0]
    assert "chance" in notes[0]
    assert re.search(rf"\b{untested} of the {len(trained)} classes of the training split", notes[1]), notes[1]
