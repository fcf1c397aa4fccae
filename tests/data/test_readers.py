"""`vaekit.data.readers`: a user's data is read by the reader that claims its path. The sentences
of `load_dataset` that list the kinds of data are built from the readers, word for word what they
were written as; a reader added to READERS (the one line a new file format adds) is asked for the
paths it claims, gets the image options applied to its arrays, and is named in every sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import readers
from vaekit.data.dataset import Dataset, Split, three_way
from vaekit.data.image_decode import ImageOptions, resize_images
from vaekit.data.load import load_dataset
from vaekit.errors import DataError, UnknownDatasetError


def test_the_sentences_name_the_built_in_readers() -> None:
    assert readers.expected_sources() == "a dataset name, a folder of images, or a .npy/.npz array file"
    assert readers.neither_kind() == "a file that is neither a folder nor a .npy/.npz array"
    assert readers.other_sources() == "or a folder of images, or a path to a .npy/.npz array of images"


def test_load_dataset_says_the_sentences(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not images")
    with pytest.raises(DataError) as err:
        load_dataset(str(text))
    assert str(err.value) == (f"{text}: a file that is neither a folder nor a .npy/.npz array; expected a "
                              "dataset name, a folder of images, or a .npy/.npz array file.")
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "missing"))
    assert str(err.value) == (f"{tmp_path / 'missing'}: no such file or folder; expected a dataset name, "
                              "a folder of images, or a .npy/.npz array file.")
    with pytest.raises(UnknownDatasetError) as unknown:
        load_dataset("no-such-set")
    assert str(unknown.value) == ("unknown dataset 'no-such-set', and no file or folder of that name is "
                                  "here; known datasets are fashion-mnist, mnist, kmnist, digits, or a "
                                  "folder of images, or a path to a .npy/.npz array of images.")


def test_the_first_reader_that_claims_a_path_reads_it(tmp_path: Path) -> None:
    folder, array = readers.READERS
    (tmp_path / "x.npz").mkdir()
    assert readers.reader_for(str(tmp_path / "x.npz")) is folder  # a folder named like an array
    assert readers.reader_for(str(tmp_path / "y.npz")) is array
    assert readers.reader_for(str(tmp_path / "y.npy")) is array
    assert readers.reader_for(str(tmp_path / "y.txt")) is None


def load_csv(path: str, images: ImageOptions | None, progress: bool | None) -> Dataset:
    """A toy file format: one 4x4 grey image a line, its 16 pixels comma-separated."""
    pixels = np.loadtxt(path, delimiter=",", dtype=np.uint8).reshape(-1, 1, 4, 4)  # (N, 1, 4, 4)
    train, val, test = three_way(Split(torch.from_numpy(pixels)))
    return Dataset(Path(path).name, train, val, test, None, path)


def test_a_new_reader_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = readers.Reader(lambda name: name.endswith(".csv"), load_csv, False, "a .csv file of pixels",
                         "a .csv file", "a path to a .csv file of pixels")
    monkeypatch.setattr(readers, "READERS", (*readers.READERS, csv))
    path = tmp_path / "pixels.csv"
    pixels = np.random.default_rng(0).integers(0, 256, (20, 16))
    np.savetxt(path, pixels, fmt="%d", delimiter=",")

    plain = load_dataset(str(path))
    assert plain.image_shape == (1, 4, 4)
    assert (len(plain.train), len(plain.val), len(plain.test)) == (16, 2, 2)
    every = torch.cat([plain.train.images, plain.val.images, plain.test.images]).reshape(20, 16)
    assert sorted(map(tuple, every.tolist())) == sorted(map(tuple, pixels.tolist()))
    options = ImageOptions(size=(2, 3), channels=3)
    resized = load_dataset(str(path), images=options)  # not decodes_images: load_dataset applies them
    expected = resize_images(plain.train.images.numpy(), options)
    assert torch.equal(resized.train.images, torch.from_numpy(expected))
    assert set(resized.notes) == {"resized", "channels"}

    text = tmp_path / "notes.txt"
    text.write_text("not images")
    with pytest.raises(DataError) as err:
        load_dataset(str(text))
    assert str(err.value) == (f"{text}: a file that is neither a folder nor a .npy/.npz array nor a .csv "
                              "file; expected a dataset name, a folder of images, a .npy/.npz array file, "
                              "or a .csv file of pixels.")
    with pytest.raises(UnknownDatasetError) as unknown:
        load_dataset("no-such-set")
    assert str(unknown.value).endswith(", or a folder of images, or a path to a .npy/.npz array of images, "
                                       "or a path to a .csv file of pixels.")
