"""Checked downloads: a known dataset whose file does not match its published SHA-256 is an error
wherever it is loaded (ChecksumError, one sentence, exit 2), unless the user opts in for a modified
copy ($VAEKIT_ALLOW_MODIFIED_DATA=1, `vaekit data info --allow-modified`); the sum is taken of the
bytes that are parsed, so each file is read once per load. Held against hashlib digests and the
numpy arrays the fake files were built from."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.data import download
from vaekit.data.download import MISMATCH, OK, UNCHECKED, RemoteFile, checksum_ok, read_checked
from vaekit.data.load import allow_modified_data, describe, load_dataset, load_idx_dataset
from vaekit.data.registry import checksum_status
from vaekit.errors import ChecksumError, ConfigError, DataError

ENV = "VAEKIT_ALLOW_MODIFIED_DATA"
ROLES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def modify(fake_set, directory: Path, role: str, encode, gz: bool = True) -> tuple[Path, np.ndarray]:
    """Rewrite the file of `role` in `directory` as a valid IDX file of the same shape with one
    value changed (a corrupted copy that still parses); return its path and the new array."""
    changed = fake_set.arrays[role].copy()
    changed.flat[0] = (int(changed.flat[0]) + 1) % (10 if role.endswith("labels") else 256)
    data = encode(changed, 0x08)
    path = directory / (ROLES[role] + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path, changed


def all_images(ds) -> torch.Tensor:
    return torch.cat([ds.train.images, ds.val.images])


@pytest.fixture(autouse=True)
def no_opt_in(monkeypatch):
    """Whatever the shell running the tests has set, start without the opt-in."""
    monkeypatch.delenv(ENV, raising=False)


# ----------------------------------------------------------------------------- refused


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("role", list(ROLES))
def test_a_modified_file_is_a_checksum_error(
    places, fake_set, fake_registry, encode, one_sentence, tmp_path, role, gz
):
    spec = fake_registry()
    d = fake_set.write(tmp_path / "d", gz=gz)
    bad, changed = modify(fake_set, d, role, encode, gz)
    # independently: the copy parses, and its content's digest is not the published one
    assert hashlib.sha256(encode(changed, 0x08)).hexdigest() != spec.files[role].sha256

    for load in (lambda: load_dataset("fake", d), lambda: load_idx_dataset("fake", d),
                 lambda: vaekit.load_dataset("fake", d, download=False)):
        with pytest.raises(ChecksumError) as info:
            load()
        message = str(info.value)
        one_sentence(message, bad, "published SHA-256", "vaekit data fetch fake",
                     f"{ENV}=1")
        assert isinstance(info.value, DataError)


def test_every_place_in_the_lookup_order_is_checked(places, fake_set, fake_registry, encode):
    """A corrupted cache is an error, not a silent fall-back to the good system copy."""
    fake_registry()
    cache = fake_set.write(places.cache_root / "fake")
    fake_set.write(places.system_root / "fake")
    bad, _ = modify(fake_set, cache, "test_images", encode)
    with pytest.raises(ChecksumError, match=str(bad)):
        load_dataset("fake", download=False)
    bad.unlink()  # what the sentence says to do; then the good copy is found and verified
    ds = load_dataset("fake", download=False)
    assert ds.source == str(places.system_root / "fake")
    assert set(ds.checksums.values()) == {OK}


@pytest.mark.parametrize("value", ["", "0"])
def test_only_exactly_1_opts_in(places, fake_set, fake_registry, encode, tmp_path, monkeypatch,
                                value):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    modify(fake_set, d, "train_labels", encode)
    monkeypatch.setenv(ENV, value)
    assert allow_modified_data() is False
    with pytest.raises(ChecksumError):
        load_dataset("fake", d)


@pytest.mark.parametrize("value", ["true", "yes", " 1", "2", "١"])
def test_another_value_is_refused_naming_the_two(monkeypatch, value):
    """'true' and 'yes' were silently off: a value that is not documented is one sentence."""
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ConfigError, match=f'{ENV} must be "1" or "0" \\(or unset\\), got'):
        allow_modified_data()


def test_the_explicit_argument_beats_the_environment(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    assert allow_modified_data() is True and allow_modified_data(False) is False
    monkeypatch.delenv(ENV)
    assert allow_modified_data() is False and allow_modified_data(True) is True


# ----------------------------------------------------------------------------- opted in


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_opting_in_uses_the_modified_copy_and_says_so(
    places, fake_set, fake_registry, encode, tmp_path, monkeypatch, how
):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    _, changed = modify(fake_set, d, "test_images", encode)
    if how == "environment":
        monkeypatch.setenv(ENV, "1")
        ds = load_dataset("fake", d)
    else:
        ds = load_dataset("fake", d, allow_modified=True)
    # the modified values are what is used (the official test set is kept whole and in order)
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(changed))
    assert not torch.equal(ds.test.images[:, 0], torch.from_numpy(fake_set.arrays["test_images"]))
    expected = {name: OK for name in ROLES.values()} | {ROLES["test_images"]: MISMATCH}
    assert ds.checksums == expected
    assert checksum_status("fake", d) == expected  # the same from the independent path
    assert describe(ds)["checksums"] == expected
    assert ROLES["test_images"] in ds.notes["modified"]
    # the explicit False refuses even when the environment opts in
    monkeypatch.setenv(ENV, "1")
    with pytest.raises(ChecksumError):
        load_dataset("fake", d, allow_modified=False)


def test_an_unmodified_set_loads_the_same_with_or_without_the_opt_in(
    places, fake_set, fake_registry, tmp_path, monkeypatch
):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    plain = load_dataset("fake", d)
    monkeypatch.setenv(ENV, "1")
    opted = load_dataset("fake", d)
    assert torch.equal(all_images(plain), all_images(opted))
    assert plain.checksums == opted.checksums == {name: OK for name in ROLES.values()}
    assert plain.notes == {}


# ----------------------------------------------------------------------------- archive sums


def test_archive_sums_check_the_gz_and_leave_plain_copies_unchecked(
    places, fake_set, fake_registry, encode, tmp_path, one_sentence
):
    """MNIST and KMNIST publish the sums of their .gz files: a modified .gz is an error; a
    decompressed copy cannot be checked and is loaded, marked unchecked (not an error)."""
    fake_registry(checksum_of="archive")
    packed = fake_set.write(tmp_path / "packed")
    assert set(load_dataset("fake", packed).checksums.values()) == {OK}
    bad, _ = modify(fake_set, packed, "train_images", encode)
    with pytest.raises(ChecksumError) as info:
        load_dataset("fake", packed)
    one_sentence(str(info.value), bad)

    plain = fake_set.write(tmp_path / "plain", gz=False)
    _, changed = modify(fake_set, plain, "test_images", encode, gz=False)
    ds = load_dataset("fake", plain)  # unchecked, even though it was changed
    assert set(ds.checksums.values()) == {UNCHECKED}
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(changed))


def test_a_regzipped_archive_is_not_the_published_archive(
    places, fake_set, fake_registry, tmp_path
):
    """The same content gzipped again (another mtime in the header) has another archive sum."""
    fake_registry(checksum_of="archive")
    d = fake_set.write(tmp_path / "d")
    path = d / (ROLES["train_labels"] + ".gz")
    path.write_bytes(gzip.compress(fake_set.raw["train_labels"], mtime=12345))
    assert gzip.decompress(path.read_bytes()) == fake_set.raw["train_labels"]
    with pytest.raises(ChecksumError, match=str(path)):
        load_dataset("fake", d)


# ----------------------------------------------------------------------------- read once


@pytest.mark.parametrize("checksum_of", ["raw", "archive"])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_read_checked_against_hashlib(fake_set, tmp_path, checksum_of, gz):
    for role, name in ROLES.items():
        raw = fake_set.raw[role]
        on_disk = gzip.compress(raw, mtime=0) if gz else raw
        path = tmp_path / (name + (".gz" if gz else ""))
        path.write_bytes(on_disk)
        published = hashlib.sha256(raw if checksum_of == "raw" else gzip.compress(raw, mtime=0))
        for digest, expected in ((published.hexdigest(), OK),
                                 (hashlib.sha256(b"other").hexdigest(), MISMATCH)):
            remote = RemoteFile(name, digest, checksum_of)
            content, status = read_checked(path, remote)
            assert content == raw
            if checksum_of == "archive" and not gz:
                assert status == UNCHECKED
            else:
                assert status == expected
                assert checksum_ok(path, remote) == (expected == OK)


def test_each_file_is_read_once_per_load_and_info(
    places, fake_set, fake_registry, tmp_path, monkeypatch, capsys
):
    """The sum is of the bytes that are parsed (no second pass to verify, none for `data info`)."""
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    reads: list[str] = []
    real = download.read_raw

    def counting(path):
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(download, "read_raw", counting)
    load_dataset("fake", d)
    assert sorted(reads) == sorted(name + ".gz" for name in ROLES.values())
    reads.clear()
    assert main(["data", "info", "fake", "--data-dir", str(d), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checksums"] == {n: OK for n in ROLES.values()}
    assert sorted(reads) == sorted(name + ".gz" for name in ROLES.values())


# ----------------------------------------------------------------------------- the CLI


def test_cli_info_on_a_modified_copy_exits_2(places, fake_set, fake_registry, encode, tmp_path,
                                            cli_error):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    bad, _ = modify(fake_set, d, "test_images", encode)
    cli_error(main(["data", "info", "fake", "--data-dir", str(d)]), bad, "vaekit data fetch fake")
    cli_error(main(["data", "info", "fake", "--data-dir", str(d), "--json"]), bad)


@pytest.mark.parametrize("how", ["--allow-modified", "environment"])
def test_cli_info_opted_in_exits_0_and_shows_each_status(
    places, fake_set, fake_registry, encode, tmp_path, monkeypatch, capsys, how
):
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    modify(fake_set, d, "test_images", encode)
    (d / (ROLES["train_labels"] + ".gz")).unlink()
    (d / ROLES["train_labels"]).write_bytes(fake_set.raw["train_labels"])  # plain, still ok
    argv = ["data", "info", "fake", "--data-dir", str(d)]
    if how == "environment":
        monkeypatch.setenv(ENV, "1")
    else:
        argv.append("--allow-modified")

    assert main([*argv, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checksums"] == {name: OK for name in ROLES.values()} | {
        ROLES["test_images"]: MISMATCH}
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"sha256       {ROLES['test_images']}: MISMATCH" in out
    assert f"sha256       {ROLES['train_labels']}: ok" in out


def test_cli_info_opted_in_shows_unchecked(places, fake_set, fake_registry, tmp_path, capsys):
    fake_registry(checksum_of="archive")
    d = fake_set.write(tmp_path / "d", gz=False)
    assert main(["data", "info", "fake", "--data-dir", str(d), "--allow-modified"]) == 0
    assert f"sha256       {ROLES['test_images']}: unchecked" in capsys.readouterr().out


def test_cli_train_on_a_modified_copy_exits_2(places, fake_set, fake_registry, encode, tmp_path,
                                             capsys, one_sentence):
    """The issue's symptom: a corrupted file trained (and evaluated) with exit 0."""
    fake_registry()
    d = fake_set.write(tmp_path / "d")
    bad, _ = modify(fake_set, d, "train_images", encode)
    out = tmp_path / "run"
    status = main(["train", "--data", "fake", "--data-dir", str(d), "--out", str(out),
                   "--epochs", "1", "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vaekit train: error: ")
    one_sentence(last.removeprefix("vaekit train: error: "), bad)
    assert not (out / "model.safetensors").exists()


# ----------------------------------------------------------------------------- re-fetch


class _Directory(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving a directory: (base URL, the directory)."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_Directory, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_the_advice_in_the_sentence_repairs_the_cache(
    places, fake_set, fake_registry, encode, mirror, capsys
):
    """Run `vaekit data fetch NAME`, as the sentence says, the named file left where it is: the set
    loads, verified."""
    fake_registry()
    base, root = mirror
    fake_set.write(root)
    cache = fake_set.write(places.cache_root / "fake")
    bad, _ = modify(fake_set, cache, "test_images", encode)
    with pytest.raises(ChecksumError) as info:
        load_dataset("fake", download=False)
    assert str(bad) in str(info.value) and "`vaekit data fetch fake`" in str(info.value)

    assert main(["data", "fetch", "fake", "--mirror", base]) == 0
    ds = load_dataset("fake", download=False)
    assert ds.source == str(cache) and set(ds.checksums.values()) == {OK}
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(fake_set.arrays["test_images"]))


# ----------------------------------------------------------------------------- real data




def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.slow
def test_real_fashion_mnist_with_a_corrupted_test_file(fashion_dir, tmp_path, capsys,
                                                       one_sentence):
    """The issue's case: one flipped pixel in a copy of the real t10k images (the installed files
    are only read)."""
    before = _digests(fashion_dir)
    copy = tmp_path / "fashion-mnist"
    shutil.copytree(fashion_dir, copy)
    name = "t10k-images-idx3-ubyte"
    path = next(p for p in (copy / name, copy / f"{name}.gz") if p.is_file())
    content = bytearray(gzip.decompress(path.read_bytes()) if path.suffix == ".gz"
                        else path.read_bytes())
    content[16 + 28 * 14 + 14] ^= 0x01  # one pixel of the first image
    path.write_bytes(gzip.compress(bytes(content)) if path.suffix == ".gz" else bytes(content))

    with pytest.raises(ChecksumError) as info:
        load_dataset("fashion-mnist", copy, download=False)
    one_sentence(str(info.value), path, "vaekit data fetch fashion-mnist")
    argv = ["data", "info", "fashion-mnist", "--data-dir", str(copy), "--no-download", "--json"]
    assert main(argv) == 2
    assert str(path) in capsys.readouterr().err
    assert main([*argv, "--allow-modified"]) == 0
    checksums = json.loads(capsys.readouterr().out)["checksums"]
    assert checksums[name] == MISMATCH
    assert [s for n, s in checksums.items() if n != name] == [OK] * 3
    assert _digests(fashion_dir) == before
