""".npy/.npz files against hostile input: a FIFO or a link to a device named like an array (never
opened: a FIFO blocks its reader, /dev/zero never ends), headers that declare more data than the
file holds or than the machine has memory for (refused from the header, before numpy allocates
it), a negative shape, a cut file, a header longer than numpy reads (not an array of objects).
Each is one sentence naming the file; the bytes are written here by numpy's own writer
(`np.lib.format`) or by hand."""

from __future__ import annotations

import inspect
import io
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vaekit.cli import main
from vaekit.data import arrays
from vaekit.data.arrays import load_array_dataset
from vaekit.data.load import load_dataset
from vaekit.errors import DataError


@pytest.fixture
def refused(one_sentence: Callable[..., None], cli_error: Callable[..., str],
            deadline: Callable[[float], Any]) -> Callable[..., str]:
    """`path` is refused by the library and by `vaekit data info` (exit 2), in one sentence naming
    it and `words`, within 20 s; the sentence."""
    def check(path: Path, *words: str) -> str:
        with deadline(20):
            with pytest.raises(DataError) as info:
                load_dataset(str(path))
            status = main(["data", "info", str(path)])
        one_sentence(str(info.value), path, *words)
        cli_error(status, path)
        return str(info.value)

    return check


def header_then(path: Path, shape: tuple[int, ...], payload: bytes, descr: str = "|u1") -> Path:
    """A .npy file: numpy's version 1.0 header declaring `shape` and `descr`, then `payload`."""
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(payload)
    return path


def images(n: int = 20) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 5, 5), dtype=np.uint8)


# ----------------------------------------------------------------------------- no regular file


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_fifo_named_like_an_array_is_refused_without_opening_it(tmp_path, refused, suffix):
    path = tmp_path / f"pipe{suffix}"
    os.mkfifo(path)
    refused(path, "FIFO", "not a regular file")


def test_a_link_to_a_device_named_like_an_array_is_refused(tmp_path, refused):
    path = tmp_path / "zeros.npy"
    path.symlink_to("/dev/zero")
    refused(path, "device", "not a regular file")


@pytest.mark.parametrize("case", ["dangling", "loop"])
def test_a_link_that_leads_nowhere_is_refused(tmp_path, refused, case):
    path = tmp_path / "gone.npy"
    path.symlink_to(tmp_path / "absent.npy" if case == "dangling" else path.name)
    refused(path)


def test_a_folder_named_like_an_array_is_a_folder(tmp_path):
    root = tmp_path / "x.npy"
    root.mkdir()
    for i, image in enumerate(images(12)):
        Image.fromarray(image).save(root / f"{i:02d}.png")
    ds = load_dataset(str(root))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12


def test_a_link_to_a_good_array_is_read(tmp_path):
    np.save(tmp_path / "real.npy", images())
    (tmp_path / "link.npy").symlink_to(tmp_path / "real.npy")
    assert load_array_dataset(tmp_path / "link.npy").image_shape == (1, 5, 5)


# ----------------------------------------------------------------------------- what the header declares


def test_a_huge_shape_is_refused_from_the_header(tmp_path, refused):
    path = header_then(tmp_path / "huge.npy", (10**12, 28, 28), b"\0" * 100)
    message = refused(path, "(1000000000000, 28, 28)")
    assert "allocate" not in message and "100 bytes" in message


def test_a_cut_array_says_how_much_is_missing(tmp_path, refused):
    path = tmp_path / "cut.npy"
    np.save(path, images())
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    message = refused(path, "(20, 5, 5)", "470 bytes", "500")
    assert "Failed to read" not in message


def test_bytes_after_the_data_are_refused_with_the_sizes(tmp_path, refused):
    path = tmp_path / "extra.npy"
    np.save(path, images())  # 20 x 5 x 5 bytes of data, as numpy writes them
    exact = np.load(path)
    path.write_bytes(path.read_bytes() + b"\0" * 1000)
    assert np.array_equal(np.load(path), exact)  # numpy itself reads it and says nothing
    refused(path, "(20, 5, 5)", "500 bytes", "1,500 bytes", "1,000 bytes after")


def test_bytes_after_an_npz_member_are_refused(tmp_path, refused):
    path = tmp_path / "extra.npz"
    raw = io.BytesIO()
    np.save(raw, images())
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", raw.getvalue() + b"\0" * 7)
    refused(path, "'images'", "500 bytes", "507 bytes", "7 bytes after")


@pytest.mark.parametrize("value", ["__import__('os')", "print(1)", "[1, 2"])
def test_a_header_that_is_no_dict_literal_is_one_plain_sentence(tmp_path, refused, value):
    path = tmp_path / "code.npy"
    with path.open("wb") as f:  # the version 1.0 layout, by hand: numpy's writer makes only literals
        text = f"{{'descr': {value}, 'fortran_order': False, 'shape': (20, 5, 5), }}".encode()
        text += b" " * (118 - len(text)) + b"\n"
        f.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(500))
    message = refused(path, "header", "not a plain dict literal")
    assert "ast." not in message and "0x" not in message and "malformed" not in message


def test_a_negative_shape_is_refused(tmp_path, refused):
    path = tmp_path / "neg.npy"
    with path.open("wb") as f:  # numpy's writer refuses to write it: by hand, as version 1.0
        text = b"{'descr': '|u1', 'fortran_order': False, 'shape': (-5, 28, 28), }"
        text += b" " * (118 - len(text)) + b"\n"
        f.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text)
    refused(path, "(-5, 28, 28)")


def test_a_huge_npz_member_is_refused_from_its_header(tmp_path, refused):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z, z.open("images.npy", "w") as m:
        np.lib.format.write_array_header_1_0(m, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (10**12, 28, 28)})
        m.write(b"\0" * 100)
    message = refused(path, "'images'", "(1000000000000, 28, 28)")
    assert "allocate" not in message


def test_more_than_the_memory_of_the_machine_is_refused(tmp_path, refused, monkeypatch):
    """A compressed member may declare (and hold) more than fits in memory: a zip of zeros."""
    path = tmp_path / "big.npz"
    np.savez_compressed(path, images=images())
    monkeypatch.setattr(arrays, "memory_bytes", lambda: 400)
    message = refused(path, "500 bytes", "memory")
    assert "'images'" in message


def test_an_object_array_is_never_unpickled(tmp_path, refused, monkeypatch):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)

    def no_pickle(*_a: object, **_k: object) -> None:
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    assert "objects" in refused(path)


@pytest.mark.parametrize("labels, words", [
    ([-3] * 20, ["-3", "from 0"]),
    ([0] * 19 + [10**9], ["1,000,000,000", "from 0 to 99 for the 2 classes"]),
    (list(range(19)) + [10**6], ["1,000,000", "from 0 to 99 for the 20 classes"]),
    (list(range(59)) + [10**6], ["1,000,000", "from 0 to 119 for the 60 classes"]),
])
def test_labels_that_are_no_class_number_are_refused(tmp_path, refused, labels, words):
    """A label is a class number: -3 is none (it used to read as 'every label is 0'), and 10^9
    would make a classifier of 10^9 outputs. The range named is the one labels are held to (it
    named 0 to 99,999, and {0, 99,999} was then refused as too sparse), and labels in it are read."""
    path = tmp_path / "labelled.npz"
    n = len(labels)
    np.savez(path, images=images(n), labels=np.array(labels, dtype=np.int64))
    message = refused(path, *words)
    top = int(message.split("from 0 to ")[1].split()[0].replace(",", ""))
    inside = [min(max(v, 0), top) for v in labels]  # the range named, followed: read
    np.savez(path, images=images(n), labels=np.array(inside, dtype=np.int64))
    assert int(arrays.read_array_file(path)[1].max()) == max(inside)


def test_a_zip_bomb_npz_is_refused_before_it_inflates(tmp_path, refused):
    """A 200 KB .npz whose member inflates to 128 MiB of zeros (1,000 times more): the declared
    size fits in memory and the file holds it, but reading it took minutes and 4x its size."""
    import zipfile

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                          "shape": (128, 1024, 1024)})
            for _ in range(128):
                member.write(b"\0" * 2**20)
    assert path.stat().st_size < 2**20
    refused(path, "'images'", "times")


def test_sparse_labels_are_refused_not_read_as_a_class_count(tmp_path, refused):
    """Labels {0, 1000}: a classifier of 1,001 outputs for 2 classes (a report OOM-killed)."""
    path = tmp_path / "sparse.npz"
    np.savez(path, images=images(), labels=(np.arange(20) % 2) * 1000)
    refused(path, "1,000", "2 classes")


# ----------------------------------------------------------------------------- the members of an .npz


@pytest.mark.parametrize("names", [("images.npy", "images.npy"), ("images", "images.npy")])
def test_two_members_of_one_name_are_refused(tmp_path, refused, names):
    path = tmp_path / "twice.npz"
    first, second = io.BytesIO(), io.BytesIO()
    np.save(first, images())
    np.save(second, np.zeros((20, 5, 5), np.uint8))  # which one numpy reads, the file does not say
    with zipfile.ZipFile(path, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile's 'Duplicate name': the point of the file
        z.writestr(names[0], first.getvalue())
        z.writestr(names[1], second.getvalue())
    assert len(zipfile.ZipFile(path).namelist()) == 2
    refused(path, "'images'", "more than one member")


@pytest.mark.parametrize("members, unread", [
    ({"images": images(), "x": images()}, "'x'"),
    ({"images": images(), "x2": images(), "labels": np.arange(20) % 2}, "'x2'"),
    ({"x": images(), "y": np.arange(20) % 2, "extra": np.zeros(3), "images2": images()},
     "'extra', 'images2'"),
])
def test_members_that_are_not_read_are_refused_by_name(tmp_path, refused, members, unread):
    path = tmp_path / "more.npz"
    np.savez(path, **members)
    read = [k for k in ("images", "x") if k in members][:1] + [k for k in ("labels", "y") if k in members]
    refused(path, unread, ", ".join(map(repr, read)))


# ----------------------------------------------------------------------------- long headers


NUMPY_BOUND = inspect.signature(np.load).parameters["max_header_size"].default  # 10,000 characters


def padded_npy(version: int, length: int, pad: str = " ") -> bytes:
    """A .npy of images() as float32 in [0, 1] (the array data numpy writes) whose header of
    `version` is padded to `length` characters with `pad`, by hand (numpy's writer pads to 64)."""
    data = (images() / 255).astype("<f4")
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {data.shape}, }}"
    text += " " if pad == " " else " #"  # any other padding in a comment
    text += pad * (length - len(text) - 2) + " \n"
    raw = text.encode("utf8" if version == 3 else "latin1")
    size = len(raw).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + raw + data.tobytes()


@pytest.mark.parametrize("version, length, unit", [(1, 20_000, "characters"), (2, 200_000, "characters"),
                                                   (3, 12_000, "characters"), (3, 200_000, "bytes")])
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_header_longer_than_numpy_reads_is_named_not_objects(tmp_path, refused, version, length,
                                                                unit, suffix):
    """numpy refuses such a header by default in words that point at allow_pickle, and reads the
    same bytes as a plain float32 array with a larger max_header_size: the file holds no object,
    its header is too long; the sentence gives its length and numpy's bound."""
    raw = padded_npy(version, length)
    path = tmp_path / f"long{suffix}"
    if suffix == ".npy":
        path.write_bytes(raw)
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("images.npy", raw)
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(io.BytesIO(raw))
    assert np.load(io.BytesIO(raw), max_header_size=length).dtype == np.float32
    message = refused(path, f"{length:,} {unit}", f"{NUMPY_BOUND:,}", "header",
                      *(["'images'"] if suffix == ".npz" else []))
    assert "object" not in message
    assert main(["data", "fetch", str(path)]) == 2  # the check of the headers alone says the same


@pytest.mark.parametrize("version, pad", [(1, " "), (3, "\u00e9")])
def test_a_header_of_numpys_bound_is_read(tmp_path, version, pad):
    """The longest header numpy reads by default (10,000 characters; in a 3.0 header, of 2-byte
    UTF-8 'é's in a comment, about 20,000 bytes) is read, the pixels those numpy reads."""
    raw = padded_npy(version, NUMPY_BOUND, pad)
    path = tmp_path / "bound.npy"
    path.write_bytes(raw)
    expected = np.rint(np.load(io.BytesIO(raw)) * 255).astype(np.uint8)  # numpy's own bound
    ds = load_array_dataset(path)
    got = np.concatenate([ds.train.images, ds.val.images, ds.test.images])[:, 0]
    assert sorted(map(bytes, got)) == sorted(map(bytes, expected))
