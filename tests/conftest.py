"""Shared fixtures for the data-layer tests: an IDX encoder independent of vaekit's writer, tiny
fake IDX datasets, an isolated home/cache/system tree, and a check for one-sentence errors."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not flake); set
# HYPOTHESIS_PROFILE=explore to search with fresh random examples.
settings.register_profile("vaekit", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=600)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vaekit"))

# IDX element type code -> big-endian numpy dtype (LeCun's "THE IDX FILE FORMAT"), written out here
# rather than imported so that the tests do not share vaekit's table.
IDX_CODES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def encode_idx(array: np.ndarray, code: int) -> bytes:
    """IDX bytes of `array`: two zero bytes, the type code, the dimension count, the sizes as
    big-endian uint32, then the elements big-endian in row-major order."""
    header = bytes([0, 0, code, array.ndim])
    header += b"".join(struct.pack(">I", size) for size in array.shape)
    return header + np.ascontiguousarray(array).astype(IDX_CODES[code]).tobytes(order="C")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_one_sentence(message: str, *names: str) -> None:
    """`message` is one line, one sentence (ends with a period, no sentence break before it) and
    names each of `names` (a file, a directory or a URL)."""
    message = message.strip()
    assert message, "empty error message"
    assert "\n" not in message, f"more than one line: {message!r}"
    assert message.endswith("."), f"not a sentence: {message!r}"
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message!r}"
    for name in names:
        assert str(name) in message, f"{name} is not named in {message!r}"


def assert_cli_error(capsys: pytest.CaptureFixture[str], status: int, *names: str) -> str:
    """The CLI exited 2, printed no traceback and ended with one error sentence naming `names`."""
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    # tqdm may have drawn (and erased) a progress bar on the same stream before the error
    last = last.split("\r")[-1]
    assert last.startswith("vaekit data: error: "), err
    assert_one_sentence(last.removeprefix("vaekit data: error: "), *names)
    return last


@dataclass
class FakeIDXSet:
    """A tiny dataset in MNIST's four-file layout: 10 classes, images 6x5 uint8."""

    arrays: dict[str, np.ndarray]  # role -> array
    raw: dict[str, bytes]  # role -> IDX bytes (uncompressed)

    def write(self, directory: Path, gz: bool = True) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for role, data in self.raw.items():
            name = IDX_NAMES[role] + (".gz" if gz else "")
            (directory / name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
        return directory

    def sha256s(self) -> dict[str, str]:
        return {role: sha256(data) for role, data in self.raw.items()}


def make_fake_set(n_train: int = 40, n_test: int = 12, shape: tuple[int, int] = (6, 5),
                  seed: int = 0) -> FakeIDXSet:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    raw = {role: encode_idx(a, 0x08) for role, a in arrays.items()}
    return FakeIDXSet(arrays, raw)


@pytest.fixture
def fake_set() -> FakeIDXSet:
    return make_fake_set()


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch, fake_set: FakeIDXSet) -> Callable[..., object]:
    """Register a dataset named NAME (default "fake") whose published sums are those of
    `fake_set`; `sums` overrides some of them, `checksum_of="archive"` publishes the .gz sums.
    The default official address is a closed port: a test that downloads names its server."""
    from vaekit.data import registry as data
    from vaekit.data.download import RemoteFile

    def register(name: str = "fake", sums: dict[str, str] | None = None,
                 checksum_of: str = "raw", val_size: int = 8,
                 base_url: str = "http://127.0.0.1:9/nowhere/") -> object:
        if checksum_of == "raw":
            published = fake_set.sha256s()
        else:
            published = {r: sha256(gzip.compress(b, mtime=0)) for r, b in fake_set.raw.items()}
        published.update(sums or {})
        files = {role: RemoteFile(IDX_NAMES[role], published[role], checksum_of)
                 for role in IDX_NAMES}
        spec = data.IDXDataset(name, "a tiny fake dataset for tests",
                               base_url, files,
                               tuple("abcdefghij"), val_size=val_size)
        monkeypatch.setitem(data.REGISTRY, name, spec)
        return spec

    return register


@dataclass
class DataPlaces:
    home: Path
    cache_root: Path  # ~/.cache/vaekit
    system_root: Path  # stands for /usr/share/datasets


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataPlaces:
    """An isolated lookup tree: HOME, the cache and the system root all under tmp_path, and no
    $VAEKIT_DATA, so that nothing on the machine is read or written."""
    from vaekit.data import registry as data

    home = tmp_path / "home"
    home.mkdir()
    system_root = tmp_path / "system"
    system_root.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("VAEKIT_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # else the cache is there, not under HOME
    monkeypatch.setattr(data, "SYSTEM_DATA_ROOT", system_root)
    return DataPlaces(home, home / ".cache" / "vaekit", system_root)


# The helpers above, as fixtures (test modules do not import conftest).


@pytest.fixture
def encode() -> Callable[[np.ndarray, int], bytes]:
    return encode_idx


@pytest.fixture
def one_sentence() -> Callable[..., None]:
    return assert_one_sentence


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    def check(status: int, *names: str) -> str:
        return assert_cli_error(capsys, status, *names)

    return check


@pytest.fixture(scope="module")
def fashion_dir() -> Path:
    """The installed Fashion-MNIST (cache or /usr/share/datasets; `make data` puts it there)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("VAEKIT_DATA", raising=False)
        from vaekit.data.registry import locate  # as the other fixtures: vaekit loads on use

        found = locate("fashion-mnist")
    if found is None:
        pytest.skip("Fashion-MNIST is in neither ~/.cache/vaekit nor /usr/share/datasets "
                    "(run `make data`)")
    return found


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for tests of small tensors (no waiting on a busy second core), restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
