"""The dataset layer: lookup order, no silent fall-back, bad input, user arrays, splits,
binarization, the `vaekit data` CLI, and the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.cli import main
from vaekit.data import registry as data
from vaekit.data.arrays import load_array_dataset
from vaekit.data.binarize import binarize, fixed_binarization, prepare
from vaekit.data.dataset import split_indices
from vaekit.data.load import load_dataset
from vaekit.data.registry import REGISTRY, checksum_status, locate
from vaekit.errors import DataError, UnknownDatasetError

KNOWN = ("fashion-mnist", "mnist", "kmnist", "digits")
IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"


def rows(images: torch.Tensor) -> list[bytes]:
    return [img.numpy().tobytes() for img in images]


# ----------------------------------------------------------------------------- lookup order

ORDER = ("--data-dir", "$VAEKIT_DATA", "cache", "system")


@pytest.mark.parametrize(
    "present",
    [tuple(p for i, p in enumerate(ORDER) if mask >> i & 1) for mask in range(16)],
    ids=lambda present: "+".join(present) or "nowhere",
)
def test_lookup_order(places, fake_set, fake_registry, monkeypatch, tmp_path, present):
    """--data-dir beats $VAEKIT_DATA beats ~/.cache/vaekit/NAME beats the system directory."""
    fake_registry()
    where = {
        "--data-dir": tmp_path / "flag",
        "$VAEKIT_DATA": tmp_path / "env",
        "cache": places.cache_root / "fake",
        "system": places.system_root / "fake",
    }
    for origin in present:
        fake_set.write(where[origin])
    if "$VAEKIT_DATA" in present:
        monkeypatch.setenv("VAEKIT_DATA", str(where["$VAEKIT_DATA"]))
    data_dir = where["--data-dir"] if "--data-dir" in present else None

    expected = where[present[0]] if present else None
    assert locate("fake", data_dir) == expected
    if expected is None:
        with pytest.raises(DataError, match="fake is not on this machine"):
            load_dataset("fake", data_dir, download=False)
    else:
        assert load_dataset("fake", data_dir, download=False).source == str(expected)


def test_lookup_ignores_a_cache_that_lacks_a_file(places, fake_set, fake_registry):
    fake_registry()
    cache = fake_set.write(places.cache_root / "fake")
    system = fake_set.write(places.system_root / "fake")
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    assert locate("fake") == system


@pytest.mark.parametrize("how", ["--data-dir", "$VAEKIT_DATA"])
def test_user_directory_may_hold_the_dataset_in_a_subdirectory(
    places, fake_set, fake_registry, monkeypatch, tmp_path, how
):
    fake_registry()
    root = tmp_path / "datasets"
    fake_set.write(root / "fake", gz=False)  # plain, uncompressed files are found too
    if how == "$VAEKIT_DATA":
        monkeypatch.setenv("VAEKIT_DATA", str(root))
    assert locate("fake", root if how == "--data-dir" else None) == root / "fake"


def test_data_dir_beats_the_environment_even_when_both_are_set(
    places, fake_set, fake_registry, monkeypatch, tmp_path
):
    fake_registry()
    flag, env = fake_set.write(tmp_path / "flag"), tmp_path / "env-does-not-exist"
    monkeypatch.setenv("VAEKIT_DATA", str(env))
    assert locate("fake", flag) == flag


# ------------------------------------------------------- a user-named directory is final


@pytest.mark.parametrize("how", ["--data-dir", "$VAEKIT_DATA"])
@pytest.mark.parametrize("state", ["empty", "missing", "one-file-short"])
def test_user_directory_without_data_is_an_error_not_a_fall_back(
    places, fake_set, fake_registry, monkeypatch, tmp_path, one_sentence, how, state
):
    """The cache and the system directory both hold good data; they must not be used."""
    fake_registry()
    fake_set.write(places.cache_root / "fake")
    fake_set.write(places.system_root / "fake")
    named = tmp_path / "mine"
    if state == "empty":
        named.mkdir()
    elif state == "one-file-short":
        fake_set.write(named)
        (named / "train-labels-idx1-ubyte.gz").unlink()
    data_dir = named if how == "--data-dir" else None
    if how == "$VAEKIT_DATA":
        monkeypatch.setenv("VAEKIT_DATA", str(named))

    for call in (lambda: locate("fake", data_dir),
                 lambda: load_dataset("fake", data_dir),
                 lambda: data.fetch("fake", data_dir, base_url="http://127.0.0.1:9/")):
        with pytest.raises(DataError) as info:
            call()
        one_sentence(str(info.value), named)
        assert how in str(info.value)


@pytest.mark.parametrize("how", ["--data-dir", "$VAEKIT_DATA"])
def test_cli_empty_data_dir_exits_2_even_when_fashion_mnist_is_installed(
    tmp_path, monkeypatch, cli_error, how
):
    """With the real cache and /usr/share/datasets in place (whatever they hold)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["data", "info", "fashion-mnist", "--no-download"]
    monkeypatch.delenv("VAEKIT_DATA", raising=False)
    if how == "--data-dir":
        argv += ["--data-dir", str(empty)]
    else:
        monkeypatch.setenv("VAEKIT_DATA", str(empty))
    cli_error(main(argv), empty)


def test_nothing_anywhere_names_every_place_looked(places, fake_registry, one_sentence):
    fake_registry()
    with pytest.raises(DataError) as info:
        load_dataset("fake", download=False)
    one_sentence(str(info.value), places.cache_root / "fake", places.system_root / "fake")


# ----------------------------------------------------------------------------- bad IDX datasets


def _rewrite(directory: Path, name: str, array: np.ndarray, code: int, encode) -> Path:
    path = directory / f"{name}.gz"
    path.write_bytes(gzip.compress(encode(array, code)))
    return path


@pytest.mark.parametrize(
    "case", ["labels-short", "labels-long", "test-labels-short", "labels-2d", "images-2d",
             "images-float"]
)
def test_inconsistent_idx_files_are_a_data_error(
    places, fake_set, fake_registry, encode, one_sentence, cli_error, tmp_path, case
):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    labels, images = fake_set.arrays["train_labels"], fake_set.arrays["train_images"]
    bad = {
        "labels-short": lambda: _rewrite(d, LABELS, labels[:-1], 0x08, encode),
        "labels-long": lambda: _rewrite(d, LABELS, np.r_[labels, labels[:3]], 0x08, encode),
        "test-labels-short": lambda: _rewrite(
            d, "t10k-labels-idx1-ubyte", fake_set.arrays["test_labels"][:-2], 0x08, encode),
        "labels-2d": lambda: _rewrite(d, LABELS, labels.reshape(-1, 2), 0x08, encode),
        "images-2d": lambda: _rewrite(d, IMAGES, images.reshape(len(images), -1), 0x08, encode),
        "images-float": lambda: _rewrite(d, IMAGES, images.astype(np.float32), 0x0D, encode),
    }[case]()
    with pytest.raises(DataError) as info:
        load_dataset("fake", d)
    one_sentence(str(info.value), bad)
    cli_error(main(["data", "info", "fake", "--data-dir", str(d)]), bad)


def test_label_count_message_gives_both_counts(places, fake_set, fake_registry, encode, tmp_path):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    _rewrite(d, LABELS, fake_set.arrays["train_labels"][:-1], 0x08, encode)
    with pytest.raises(DataError, match=r"\b39\b.*\b40\b"):
        load_dataset("fake", d)


# ----------------------------------------------------------------------------- unknown name


@pytest.mark.parametrize("name", ["fashion_mnist", "MNIST", "cifar10", ""])
def test_unknown_dataset_lists_the_known_ones(one_sentence, name):
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset(name)
    one_sentence(str(info.value), repr(name), *KNOWN)


@pytest.mark.parametrize("action", ["info", "fetch"])
def test_cli_unknown_dataset_exits_2(places, cli_error, action):
    cli_error(main(["data", action, "cifar10"]), "'cifar10'", *KNOWN)


# ----------------------------------------------------------------------------- user arrays


def test_npy_uint8_n_h_w(tmp_path):
    n, h, w = 50, 5, 7
    images = np.zeros((n, h, w), np.uint8)
    images[:, 0, 0] = np.arange(n)  # image i is recognizable by its first pixel
    images[:, 1:, :] = np.random.default_rng(0).integers(0, 256, (n, h - 1, w), dtype=np.uint8)
    path = tmp_path / "mine.npy"
    np.save(path, images)

    ds = load_dataset(str(path))

    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 5, 5)
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, h, w)
        assert split.labels is None
        for img in split.images:  # each image arrives whole and unchanged
            assert np.array_equal(img[0].numpy(), images[int(img[0, 0, 0])])
    ids = torch.cat([s.images[:, 0, 0, 0] for s in (ds.train, ds.val, ds.test)])
    assert sorted(ids.tolist()) == list(range(n))
    assert ds.image_shape == (1, h, w) and ds.source == str(path) and ds.classes is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_float_n_c_h_w_in_unit_interval(tmp_path, dtype):
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 256, (30, 3, 4, 4))
    levels[0, 0, 0, :2] = (0, 255)
    path = tmp_path / "float.npy"
    np.save(path, (levels / 255.0).astype(dtype))

    ds = load_array_dataset(path)

    everything = torch.cat([ds.train.images, ds.val.images, ds.test.images])
    assert everything.dtype == torch.uint8 and everything.shape == (30, 3, 4, 4)
    assert sorted(rows(everything)) == sorted(r.astype(np.uint8).tobytes() for r in levels)


def test_float_images_round_to_the_nearest_level(tmp_path):
    values = np.array([0.0, 0.004, 0.25, 0.998, 0.999, 1.0, 1 / 255, 254 / 255])
    expected = [0, 1, 64, 254, 255, 255, 1, 254]  # round(v * 255), no ties among them
    path = tmp_path / "levels.npy"
    np.save(path, np.tile(values, (10, 1, 1)).astype(np.float32))  # (10, 1, 8)
    ds = load_array_dataset(path)
    assert ds.train.images[:, 0, 0].unique(dim=0).tolist() == [expected]


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y")])
def test_npz_with_labels(tmp_path, keys):
    n = 60
    images = np.repeat(np.arange(n, dtype=np.uint8), 16).reshape(n, 4, 4)  # image i is all i
    labels = (np.arange(n) % 7).astype(np.int32)
    path = tmp_path / "labelled.npz"
    np.savez(path, **{keys[0]: images, keys[1]: labels})

    ds = load_dataset(str(path))

    assert (len(ds.train), len(ds.val), len(ds.test)) == (48, 6, 6)
    for split in (ds.train, ds.val, ds.test):
        assert split.labels is not None and split.labels.dtype == torch.int64
        assert torch.equal(split.labels, split.images[:, 0, 0, 0].long() % 7)  # still paired
    assert ds.classes == tuple(str(c) for c in range(7))
    assert ds.image_shape == (1, 4, 4)


class _OpensAFileWhenUnpickled:
    """Unpickling this calls open(path, "w"): the marker file shows whether pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("container", ["npy", "npz"])
def test_object_array_is_refused_without_unpickling(tmp_path, one_sentence, cli_error, container):
    marker = tmp_path / "unpickled"
    armed = np.empty((12, 2, 2), dtype=object)
    armed.fill(_OpensAFileWhenUnpickled(marker))
    path = tmp_path / f"evil.{container}"
    if container == "npy":
        np.save(path, armed, allow_pickle=True)
    else:
        np.savez(path, images=armed)

    with pytest.raises(DataError) as info:
        load_array_dataset(path)
    one_sentence(str(info.value), path)
    cli_error(main(["data", "info", str(path)]), path)
    assert not marker.exists()

    # the file is really armed: loading it with pickle allowed runs the payload
    loaded = np.load(path, allow_pickle=True)
    loaded = loaded if container == "npy" else loaded["images"]
    for f in loaded.flat:
        f.close()
    assert marker.exists()


def _npy(array):
    return lambda path: np.save(path, array)


BAD_ARRAYS = {
    # name: (writer, a word the message must contain)
    "rank-1": (_npy(np.zeros(20, np.uint8)), "shape"),
    "rank-2": (_npy(np.zeros((20, 8), np.uint8)), "shape"),
    "rank-5": (_npy(np.zeros((20, 1, 1, 4, 4), np.uint8)), "shape"),
    # integers other than uint8 are accepted in 0..255 (tests/data/test_arrays.py), refused beyond
    "int32": (_npy(np.full((20, 4, 4), -1, np.int32)), "0..255"),
    "uint16": (_npy(np.full((20, 4, 4), 256, np.uint16)), "0..255"),
    "complex": (_npy(np.zeros((20, 4, 4), np.complex64)), "dtype"),
    "float-above-1": (_npy(np.full((20, 4, 4), 1.5, np.float32)), "[0, 1]"),
    "float-negative": (_npy(np.full((20, 4, 4), -0.01, np.float64)), "[0, 1]"),
    "float-0-255": (_npy(np.arange(20 * 16, dtype=np.float32).reshape(20, 4, 4)), "[0, 1]"),
    "float-nan": (_npy(np.where(np.eye(4) > 0, np.nan, 0.5)[None].repeat(20, 0)), "nan"),
    "too-few-images": (_npy(np.zeros((5, 4, 4), np.uint8)), "5"),
    "npz-without-images": (lambda p: np.savez(p, pixels=np.zeros((20, 4, 4), np.uint8)), "images"),
    "npz-labels-wrong-length": (
        lambda p: np.savez(p, images=np.zeros((20, 4, 4), np.uint8), labels=np.arange(19)),
        "labels",
    ),
    "npz-labels-float": (
        lambda p: np.savez(p, images=np.zeros((20, 4, 4), np.uint8), labels=np.ones(20)),
        "labels",
    ),
    "npy-cut": (lambda p: p.write_bytes(_saved(np.zeros((20, 4, 4), np.uint8))[:200]), "readable"),
    "npz-cut": (lambda p: p.write_bytes(_saved_npz()[:300]), "readable"),
    "not-numpy": (lambda p: p.write_bytes(b"P5\n28 28\n255\n" + bytes(784)), "readable"),
    "empty-file": (lambda p: p.write_bytes(b""), "readable"),
}


def _saved(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _saved_npz() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, images=np.random.default_rng(0).integers(0, 256, (20, 8, 8)))
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_user_array_is_one_clear_data_error(tmp_path, one_sentence, cli_error, case):
    write, word = BAD_ARRAYS[case]
    path = tmp_path / (f"{case}.npz" if case.startswith("npz") else f"{case}.npy")
    write(path)
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    one_sentence(str(info.value), path)
    assert word in str(info.value).lower()
    cli_error(main(["data", "info", str(path)]), path)


def test_missing_user_array_is_a_data_error(tmp_path, one_sentence):
    path = tmp_path / "nowhere.npy"
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    one_sentence(str(info.value), path)


# ----------------------------------------------------------------------------- splits


def test_split_indices_partition_every_index_once():
    parts = split_indices(1000, (100, 250))
    assert [len(p) for p in parts] == [100, 250, 650]
    joined = torch.cat(parts)
    assert sorted(joined.tolist()) == list(range(1000))  # disjoint and covering
    for p in parts:
        assert torch.equal(p, p.sort().values)


def test_split_indices_are_fixed():
    first = split_indices(60000, (5000,))
    torch.manual_seed(12345)  # the global generator must not matter
    torch.rand(7)
    again = split_indices(60000, (5000,))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = split_indices(60000, (5000,), seed=1)
    assert not torch.equal(first[0], other[0])
    # a random-looking draw, not the first or last 5,000
    assert first[0].min() < 100 and first[0].max() > 59900


def test_fashion_mnist_validation_split_never_moves():
    """The 5,000 validation images are part of every reported number: pin them."""
    val, train = split_indices(60000, (REGISTRY["fashion-mnist"].val_size,))
    assert (len(val), len(train)) == (5000, 55000)
    assert val[:8].tolist() == [1, 3, 47, 49, 80, 83, 109, 111]
    digest = hashlib.sha256(val.numpy().astype("<i8").tobytes()).hexdigest()
    assert digest == "e1f4a1de3b6a574559c71f58127c0e23a9a9e561a4af7313a16d3af3810e80a8"


def test_split_that_leaves_nothing_is_a_data_error():
    with pytest.raises(DataError):
        split_indices(10, (5, 5))


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "kmnist"])
def test_28x28_sets_hold_out_5000_for_validation(name):
    assert REGISTRY[name].val_size == 5000


def test_idx_dataset_split_is_deterministic_and_keeps_pairs(places, fake_set, fake_registry):
    fake_registry()
    fake_set.write(places.cache_root / "fake")
    a = load_dataset("fake", download=False)
    b = load_dataset("fake", download=False)

    assert (len(a.train), len(a.val), len(a.test)) == (32, 8, 12)
    for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
    source_images = fake_set.arrays["train_images"]
    label_of = {img.tobytes(): int(lab)
                for img, lab in zip(source_images, fake_set.arrays["train_labels"], strict=True)}
    assert len(label_of) == len(source_images)  # rows are distinct, so they identify images
    seen = rows(torch.cat([a.train.images, a.val.images])[:, 0])
    assert sorted(seen) == sorted(label_of)  # train and validation partition the training file
    for split in (a.train, a.val):
        for img, lab in zip(split.images, split.labels, strict=True):
            assert label_of[img[0].numpy().tobytes()] == int(lab)
    # the official test set is kept whole and in order
    assert torch.equal(a.test.images[:, 0], torch.from_numpy(fake_set.arrays["test_images"]))
    assert a.test.labels.tolist() == fake_set.arrays["test_labels"].tolist()
    assert a.image_shape == (1, 6, 5) and a.classes == tuple("abcdefghij")


def test_val_size_holds_out_a_subset_of_the_default_split(places, fake_set, fake_registry):
    """data.val_size: fewer validation images give the rest to training, and the smaller validation
    split is part of the default one (the same seeded permutation, cut earlier)."""
    fake_registry()  # 40 training images, 8 of them for validation by default
    fake_set.write(places.cache_root / "fake")
    default = load_dataset("fake", download=False)
    small = load_dataset("fake", download=False, val_size=3)
    assert (len(small.train), len(small.val), len(small.test)) == (37, 3, 12)
    val8, val3 = rows(default.val.images[:, 0]), rows(small.val.images[:, 0])
    assert set(val3) < set(val8)
    every = rows(torch.from_numpy(fake_set.arrays["train_images"]))
    assert sorted(val3 + rows(small.train.images[:, 0])) == sorted(every)  # a partition, nothing lost
    assert torch.equal(small.test.images, default.test.images)


@pytest.mark.parametrize("size", [0, 40, 41, -1])
def test_val_size_that_leaves_no_split_is_one_data_error(places, fake_set, fake_registry,
                                                          one_sentence, size):
    fake_registry()
    fake_set.write(places.cache_root / "fake")
    with pytest.raises(DataError) as err:
        load_dataset("fake", download=False, val_size=size)
    one_sentence(str(err.value), "val_size", "1 to 39", str(size))


def test_val_size_of_an_array_is_refused(tmp_path, one_sentence):
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((20, 4, 4), np.uint8))
    with pytest.raises(DataError) as err:
        load_dataset(str(path), val_size=5)
    one_sentence(str(err.value), "val_size", "images.npy", "80/10/10")


@pytest.mark.parametrize("value", ["0", "-3", "x", "1.5", "40"])
def test_cli_bad_val_size_exits_2_and_writes_nothing(places, fake_set, fake_registry, tmp_path, capsys,
                                                     one_sentence, value):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    out = tmp_path / "run"
    status = main(["train", "--data", "fake", "--data-dir", str(d), "--val-size", value, "--out",
                   str(out), "--epochs", "1", "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1].split("\r")[-1]
    assert last.startswith("vaekit train: error: "), err
    one_sentence(last.removeprefix("vaekit train: error: "), "val", value)
    assert not (out / "model.safetensors").exists()


def test_cli_train_with_val_size_records_it_and_validates_on_that_many(places, fake_set, fake_registry,
                                                                       tmp_path, capsys):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    out = tmp_path / "run"
    assert main(["train", "--data", "fake", "--data-dir", str(d), "--val-size", "3", "--out", str(out),
                 "--epochs", "1", "--hidden", "8", "--latent", "2", "--no-progress", "--device",
                 "cpu"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["val_size"] == 3
    from vaekit.runs import load_run

    run = load_run(out, "vae")
    assert run.images("val").shape[0] == 3 and run.images("train").shape[0] == 37
    # resuming on another split would mix the two: refused, the run left as it was
    before = (out / "model.safetensors").read_bytes()
    status = main(["train", "--data", "fake", "--data-dir", str(d), "--val-size", "4", "--out", str(out),
                   "--resume", "--epochs", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "data.val_size" in err.strip().splitlines()[-1], err
    assert (out / "model.safetensors").read_bytes() == before


def test_fit_refuses_a_dataset_of_another_validation_split(places, fake_set, fake_registry, tmp_path,
                                                          one_sentence):
    """A caller that passes its own Dataset (bench/quality.py) cannot train on a split other than the
    config's data.val_size without being told."""
    from vaekit.config import TrainConfig
    from vaekit.errors import ConfigError
    from vaekit.train.fit import fit

    fake_registry()
    fake_set.write(places.cache_root / "fake")
    config = TrainConfig()
    config.data.name, config.data.val_size, config.train.epochs = "fake", 3, 1
    with pytest.raises(ConfigError) as err:
        fit(config, tmp_path / "run", show_bar=False, log=lambda _: None,
            dataset=load_dataset("fake", download=False))
    one_sentence(str(err.value), "val_size", "3", "8")
    assert not (tmp_path / "run").exists()


def test_digits_three_way_split():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ds = load_dataset("digits")
    again = load_dataset("digits")

    n = len(bunch.target)
    assert n == 1797
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1437, 180, 180)
    assert torch.equal(ds.val.images, again.val.images)
    assert torch.equal(ds.test.labels, again.test.labels)
    everything = torch.cat([ds.train.images, ds.val.images, ds.test.images])
    assert everything.dtype == torch.uint8 and everything.shape == (n, 1, 8, 8)
    assert int(everything.max()) == 255 and int(everything.min()) == 0
    # the same images as scikit-learn's, each once, with its own label
    expected = np.rint(bunch.images * 255 / 16).astype(np.uint8)
    pairs = sorted(zip(rows(everything[:, 0]),
                       torch.cat([ds.train.labels, ds.val.labels, ds.test.labels]).tolist(),
                       strict=True))
    assert pairs == sorted(zip([e.tobytes() for e in expected], bunch.target.tolist(),
                               strict=True))
    assert ds.classes == tuple(str(d) for d in range(10))


# ----------------------------------------------------------------------------- binarization


def test_binarize_mean_matches_pixel_over_255():
    """Each of the 256 grey levels, drawn K times: the frequency of ones is within 5 standard
    errors sqrt(p (1 - p) / K) of p = level / 255 (and exact at 0 and 255)."""
    k = 4000
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    draws = binarize(levels.expand(k, 1, 16, 16), generator=torch.Generator().manual_seed(7))
    assert draws.dtype == torch.float32 and draws.shape == (k, 1, 16, 16)
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    p = levels.double() / 255
    freq = draws.double().mean(0, keepdim=True)
    se = (p * (1 - p) / k).sqrt()
    assert torch.all((freq - p).abs() <= 5 * se + 1e-12), (freq - p).abs().max()
    assert freq[0, 0, 0, 0] == 0 and freq[0, 0, -1, -1] == 1
    # and not trivially: the deviations look like sampling noise, not zero
    z = ((freq - p) / se.clamp_min(1e-12))[0, 0].flatten()[1:-1]
    assert 0.7 < float(z.std()) < 1.3


def test_dynamic_binarization_draws_afresh_each_call():
    images = torch.full((64, 1, 28, 28), 128, dtype=torch.uint8)
    before = images.clone()
    first, second = binarize(images), binarize(images)
    assert not torch.equal(first, second)
    assert torch.equal(images, before)  # the uint8 data is not modified
    gen = torch.Generator().manual_seed(3)
    assert not torch.equal(binarize(images, gen), binarize(images, gen))
    assert torch.equal(prepare(images, "dynamic", torch.Generator().manual_seed(3)),
                       binarize(images, torch.Generator().manual_seed(3)))


def test_fixed_binarization_is_the_same_draw_for_a_seed():
    images = torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    a = fixed_binarization(images, seed=0)
    torch.manual_seed(999)  # global RNG state must not matter
    b = fixed_binarization(images, seed=0)
    c = fixed_binarization(images, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(prepare(images, "fixed", seed=1), c)
    # one draw over 156,800 pixels: its mean is that of the probabilities (se ~ 0.0011)
    assert abs(float(a.mean()) - float(images.double().mean() / 255)) < 0.006


def test_prepare_none_scales_and_refuses_unknown_modes(one_sentence):
    images = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)
    scaled = prepare(images, "none")
    assert scaled.dtype == torch.float32
    assert torch.equal(scaled, torch.tensor([[[[0.0, 0.2, 1.0]]]], dtype=torch.float32))
    with pytest.raises(DataError) as info:
        prepare(images, "threshold")
    one_sentence(str(info.value), "'threshold'")


# ----------------------------------------------------------------------------- checksum status


def test_checksum_status_reports_ok_mismatch_and_missing(
    places, fake_set, fake_registry, encode, tmp_path
):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    assert set(checksum_status("fake", d).values()) == {"ok"}
    changed = fake_set.arrays["train_images"].copy()
    changed[0, 0, 0] ^= 1
    _rewrite(d, IMAGES, changed, 0x08, encode)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    assert checksum_status("fake", d) == {
        IMAGES: "MISMATCH",
        LABELS: "ok",
        "t10k-images-idx3-ubyte": "ok",
        "t10k-labels-idx1-ubyte": "missing",
    }


def test_archive_sums_check_the_gz_and_cannot_check_plain_files(
    places, fake_set, fake_registry, tmp_path
):
    fake_registry(checksum_of="archive")
    packed = fake_set.write(tmp_path / "packed")
    plain = fake_set.write(tmp_path / "plain", gz=False)
    assert set(checksum_status("fake", packed).values()) == {"ok"}
    assert all(s.startswith("unchecked") for s in checksum_status("fake", plain).values())


# ----------------------------------------------------------------------------- CLI


def test_cli_list(places, fake_set, capsys, tmp_path):
    fake_set.write(places.system_root / "fashion-mnist")
    fake_set.write(places.cache_root / "mnist", gz=False)

    assert main(["data", "list", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert tuple(listed) == KNOWN
    assert listed["fashion-mnist"]["location"] == str(places.system_root / "fashion-mnist")
    assert listed["mnist"]["location"] == str(places.cache_root / "mnist")
    assert listed["kmnist"]["location"].startswith("missing")
    assert "scikit-learn" in listed["digits"]["location"]
    assert all(r["description"] for r in listed.values())

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"fashion-mnist  {places.system_root / 'fashion-mnist'}" in out
    assert "kmnist" in out and "missing" in out

    mine = fake_set.write(tmp_path / "mine" / "kmnist")
    assert main(["data", "list", "--json", "--data-dir", str(mine.parent)]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert listed["kmnist"]["location"] == str(mine)
    assert listed["mnist"]["location"].startswith("error")  # not the cache: --data-dir is final


INFO_FIELDS = {"name", "source", "image_shape", "counts", "classes", "pixel_mean", "checksums"}


def test_cli_info_digits_json(places, capsys):
    from sklearn.datasets import load_digits

    assert main(["data", "info", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert INFO_FIELDS <= set(info)
    assert info["name"] == "digits" and info["source"] == "scikit-learn"
    assert info["image_shape"] == [1, 8, 8]
    assert info["counts"] == {"train": 1437, "val": 180, "test": 180}
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["checksums"] is None  # nothing published to check
    full_mean = float(load_digits().images.mean() / 16)  # ~0.30 over all 1,797 images
    assert abs(info["pixel_mean"] - full_mean) < 0.01

    assert main(["data", "info", "digits", "--json", "--binarize", "fixed"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["binarize"] == "fixed" and abs(fixed["pixel_mean"] - full_mean) < 0.015
    assert fixed["pixel_mean"] != info["pixel_mean"]

    assert main(["data", "info", "digits"]) == 0
    out = capsys.readouterr().out
    assert "train 1,437  val 180  test 180" in out and "1x8x8" in out


def test_cli_info_fake_idx_json_and_text(places, fake_set, fake_registry, capsys, tmp_path):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    assert main(["data", "info", "fake", "--data-dir", str(d), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert INFO_FIELDS <= set(info)
    assert info["source"] == str(d) and info["image_shape"] == [1, 6, 5]
    assert info["counts"] == {"train": 32, "val": 8, "test": 12}
    assert info["classes"] == list("abcdefghij")
    assert info["checksums"] == {name: "ok" for name in (
        IMAGES, LABELS, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    full = fake_set.arrays["train_images"].astype(np.float64) / 255
    assert abs(info["pixel_mean"] - full.mean()) < 4 * full.std() / math.sqrt(32 * 30)

    assert main(["data", "info", "fake", "--data-dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"sha256       {IMAGES}: ok" in out and "train 32  val 8  test 12" in out


@pytest.mark.parametrize("flags", [["--no-download"], ["--allow-modified"],
                                   ["--no-download", "--allow-modified"]])
def test_cli_info_refuses_download_flags_for_a_set_vaekit_does_not_download(
        places, fake_set, fake_registry, cli_error, capsys, tmp_path, flags):
    """--no-download and --allow-modified act on a downloaded set's files and their published sums:
    for digits (scikit-learn's) or a user's array they would do nothing, so they are refused, naming
    the flag and the set; for a registry set they are taken."""
    array = tmp_path / "mine.npy"
    np.save(array, np.zeros((10, 4, 4), np.uint8))
    for name in ("digits", str(array)):
        message = cli_error(main(["data", "info", name, *flags]), *flags, name)
        assert "leave" in message
    for name in ("", " "):  # no name at all: refused as such, not the flags for a blank name
        message = cli_error(main(["data", "info", name, *flags]), "the dataset name is")
        assert not any(flag in message for flag in flags), message
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    assert main(["data", "info", "fake", "--data-dir", str(d), *flags]) == 0
    assert "train 32" in capsys.readouterr().out


def test_cli_info_user_array_json(tmp_path, capsys):
    path = tmp_path / "mine.npz"
    np.savez(path, images=np.full((20, 3, 2, 2), 51, np.uint8), labels=np.arange(20) % 4)
    assert main(["data", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "mine.npz" and info["image_shape"] == [3, 2, 2]
    assert info["counts"] == {"train": 16, "val": 2, "test": 2}
    assert info["classes"] == ["0", "1", "2", "3"] and info["checksums"] is None
    assert info["pixel_mean"] == pytest.approx(0.2)


def test_cli_fetch_found_and_builtin(places, fake_set, fake_registry, capsys):
    fake_registry()
    d = fake_set.write(places.system_root / "fake")
    assert main(["data", "fetch", "fake"]) == 0
    assert capsys.readouterr().out.strip() == f"fake: {d}"
    assert main(["data", "fetch", "digits"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_cli_fetch_of_a_users_file_or_folder_needs_none(places, tmp_path, capsys, cli_error):
    """A .npy/.npz file or a folder of images is read where it lies: fetch says it needs no fetch,
    as of digits (exit 0); a missing one, or a name no fetch knows, is one sentence that names the
    sets fetch downloads and never offers the refused kind of name as a dataset."""
    array, folder = tmp_path / "mine.npy", tmp_path / "pictures"
    np.save(array, np.zeros((10, 4, 4), np.uint8))
    for i in range(10):  # a folder that `data info` reads: fetch refuses what info refuses
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(folder / f"{i}.png")
    for path in (array, folder):
        assert main(["data", "fetch", str(path)]) == 0
        out = capsys.readouterr().out.strip()
        assert out.startswith(f"{path} is ") and out.endswith("nothing to fetch."), out
    cli_error(main(["data", "fetch", str(tmp_path / "gone.npy")]), str(tmp_path / "gone.npy"), *REGISTRY)
    message = cli_error(main(["data", "fetch", "cifar10"]), "'cifar10'", *REGISTRY)
    assert ".npy" not in message and "folder" not in message


# ----------------------------------------------------------------------------- real data

FASHION_SHA256 = {  # of the decompressed files, from docs/design.md
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}




@pytest.mark.slow
def test_real_fashion_mnist(fashion_dir):
    ds = load_dataset("fashion-mnist", data_dir=fashion_dir, download=False)

    assert (len(ds.train), len(ds.val), len(ds.test)) == (55000, 5000, 10000)
    assert len(ds.train) + len(ds.val) == 60000
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64
    assert ds.image_shape == (1, 28, 28) and len(ds.classes) == 10
    # balanced classes: 6,000 of each in the training file, 1,000 in the test file
    train_labels = torch.cat([ds.train.labels, ds.val.labels])
    assert torch.bincount(train_labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(ds.test.labels, minlength=10).tolist() == [1000] * 10
    # the published mean pixel of the 60,000 training images, 0.2860
    full_mean = float(torch.cat([ds.train.images, ds.val.images]).double().mean() / 255)
    assert abs(full_mean - 0.2860) < 5e-4

    assert checksum_status("fashion-mnist", fashion_dir) == {n: "ok" for n in FASHION_SHA256}
    for name, digest in FASHION_SHA256.items():
        path = next(p for p in (fashion_dir / name, fashion_dir / f"{name}.gz") if p.is_file())
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        assert hashlib.sha256(raw).hexdigest() == digest


@pytest.mark.slow
def test_cli_info_real_fashion_mnist_json(fashion_dir, capsys):
    assert main(["data", "info", "fashion-mnist", "--data-dir", str(fashion_dir), "--json",
                 "--no-download"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert INFO_FIELDS <= set(info)
    assert info["name"] == "fashion-mnist" and info["source"] == str(fashion_dir)
    assert info["image_shape"] == [1, 28, 28]
    assert info["counts"] == {"train": 55000, "val": 5000, "test": 10000}
    assert info["classes"][0] == "T-shirt/top" and info["classes"][9] == "Ankle boot"
    assert abs(info["pixel_mean"] - 0.2860) < 0.003  # the 55,000 training images
    assert info["checksums"] == {n: "ok" for n in FASHION_SHA256}


def test_fixture_helpers_see_no_real_places(places):
    """The isolation the other tests rely on: nothing outside tmp is looked at."""
    dirs = [d for _, d in data.candidate_dirs("fashion-mnist")]
    assert dirs == [places.cache_root / "fashion-mnist", places.system_root / "fashion-mnist"]


def test_an_image_size_past_memory_is_refused_before_any_image_is_resized(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], one_sentence) -> None:
    """--image-size on a built-in set: the images it would make (N x C x H x W bytes, times the
    folders' MEMORY_FACTOR) held against the memory this process can take before the first is
    resized (4096 on digits: 28 GiB, resized one image at a time), one sentence naming both."""
    from vaekit.data import load
    from vaekit.data.image_decode import ImageOptions

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("resized although the images cannot fit")

    ds = load_dataset("digits")
    n = len(ds.train) + len(ds.val) + len(ds.test)
    room = n * 64 * 64 * load.MEMORY_FACTOR  # 64x64 fits exactly; 65x65 does not
    monkeypatch.setattr(load, "memory_room", lambda: room)
    assert load_dataset("digits", images=ImageOptions(size=(64, 64))).image_shape == (1, 64, 64)
    monkeypatch.setattr(load, "resize_images", never)
    assert main(["data", "info", "digits", "--image-size", "65"]) == 2
    message = capsys.readouterr().err.strip().removeprefix("vaekit data: error: ")
    one_sentence(message, "digits", "1x65x65", "--image-size")
