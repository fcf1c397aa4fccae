"""Downloads against a local HTTP server on 127.0.0.1: a good file is verified and lands in the
cache; a wrong checksum, a corrupt archive, a cut connection or an HTTP error leave nothing there
(and no .part file), and never touch a file that was already good."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.data.download import RemoteFile, checksum_ok, download_file
from vaekit.data.load import load_dataset
from vaekit.data.registry import checksum_status, fetch
from vaekit.errors import ChecksumError, DataError, DownloadError

ARCHIVES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


@dataclass
class Cut:
    """Announce the whole body in Content-Length, send only `sent` bytes, then hang up."""

    body: bytes
    sent: int


class LocalServer:
    """An HTTP server on 127.0.0.1 (ephemeral port) in a thread that answers at most
    `max_requests` requests, then closes its socket; `routes` maps a path to bytes or a Cut."""

    def __init__(self, max_requests: int = 8) -> None:
        self.routes: dict[str, bytes | Cut] = {}
        self.requests: list[str] = []
        self.max_requests = max_requests
        self._stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                full = body.body if isinstance(body, Cut) else body
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(full)))
                self.end_headers()
                self.wfile.write(body.body[: body.sent] if isinstance(body, Cut) else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.05
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and len(self.requests) < self.max_requests:
                self.httpd.handle_request()
        finally:
            self.httpd.server_close()  # later clients are refused, not left waiting

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.close()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def serve_fake(server: LocalServer, fake_set, **override: bytes | Cut) -> str:
    """Serve the fake set's four archives under /fake/ (with some replaced); return the base URL."""
    roles = ["train_images", "train_labels", "test_images", "test_labels"]
    for role, archive in zip(roles, ARCHIVES, strict=True):
        server.routes[f"/fake/{archive}"] = gz(fake_set.raw[role])
    for archive, body in override.items():
        server.routes[f"/fake/{archive}"] = body
    return server.url + "fake/"


def listing(directory: Path) -> list[str]:
    """Every name in `directory`, hidden ones too ([] when it does not exist)."""
    return sorted(os.listdir(directory)) if directory.exists() else []


def other_fake_archive(fake_set) -> bytes:
    """A valid gzip of a valid IDX file, just not the published one."""
    changed = bytearray(fake_set.raw["train_images"])
    changed[-1] ^= 0xFF
    return gz(bytes(changed))


# ----------------------------------------------------------------------------- good downloads


@pytest.mark.parametrize("checksum_of", ["raw", "archive"])
def test_good_download_is_verified_cached_and_loads(
    places, fake_set, fake_registry, server, checksum_of
):
    fake_registry(checksum_of=checksum_of)
    base = serve_fake(server, fake_set)

    got = fetch("fake", base_url=base)

    cache = places.cache_root / "fake"
    assert got == cache
    assert listing(cache) == sorted(ARCHIVES)  # and no .part file beside them
    assert sorted(server.requests) == sorted(f"/fake/{a}" for a in ARCHIVES)
    for archive in ARCHIVES:
        assert (cache / archive).read_bytes() == server.routes[f"/fake/{archive}"]
    ds = load_dataset("fake", download=False)
    assert ds.source == str(cache)
    assert np.array_equal(ds.test.images[:, 0].numpy(), fake_set.arrays["test_images"])
    assert set(checksum_status("fake", cache).values()) == {"ok"}

    # the second time the cache is found and nothing is downloaded
    assert fetch("fake", base_url=base) == cache
    assert len(server.requests) == 4


def test_load_dataset_downloads_from_the_official_address_when_nothing_is_found(
    places, fake_set, fake_registry, server
):
    fake_registry(base_url=serve_fake(server, fake_set))
    ds = load_dataset("fake")
    assert ds.source == str(places.cache_root / "fake")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 8, 12)
    assert len(server.requests) == 4


def test_cli_fetch_from_a_mirror(places, fake_set, fake_registry, server, capsys):
    fake_registry()
    base = serve_fake(server, fake_set)
    assert main(["data", "fetch", "fake", "--mirror", base]) == 0
    assert capsys.readouterr().out.strip() == f"fake: {places.cache_root / 'fake'}"
    assert listing(places.cache_root / "fake") == sorted(ARCHIVES)


# ----------------------------------------------------------------------------- bad downloads


@pytest.mark.parametrize("checksum_of", ["raw", "archive"])
def test_checksum_mismatch_keeps_nothing(
    places, fake_set, fake_registry, server, one_sentence, checksum_of
):
    fake_registry(checksum_of=checksum_of)
    base = serve_fake(server, fake_set, **{ARCHIVES[0]: other_fake_archive(fake_set)})

    with pytest.raises(ChecksumError) as info:
        fetch("fake", base_url=base)

    one_sentence(str(info.value), base + ARCHIVES[0])
    assert listing(places.cache_root / "fake") == []  # not the bad file, not a .part
    assert not (places.cache_root / "fake").exists()  # not even an empty directory
    assert server.requests == [f"/fake/{ARCHIVES[0]}"]  # stopped at the first bad file


def test_published_sum_is_what_is_checked(places, fake_set, fake_registry, server):
    """The server sends the right file; the registry publishes another sum: refused."""
    fake_registry(sums={"train_labels": hashlib.sha256(b"something else").hexdigest()})
    base = serve_fake(server, fake_set)
    with pytest.raises(ChecksumError, match=ARCHIVES[1]):
        fetch("fake", base_url=base)
    assert listing(places.cache_root / "fake") == [ARCHIVES[0]]  # verified files are kept


@pytest.mark.parametrize(
    "body",
    [
        b"\x1f\x8b" + b"\x00" * 40,  # gzip magic, then garbage
        gz(b"\x00\x00\x08\x01" + bytes(400))[:60],  # a gzip stream cut short
    ],
    ids=["garbage", "cut-stream"],
)
def test_corrupt_archive_is_a_checksum_error(
    places, fake_set, fake_registry, server, one_sentence, body
):
    fake_registry()
    base = serve_fake(server, fake_set, **{ARCHIVES[2]: body})
    with pytest.raises(ChecksumError) as info:
        fetch("fake", base_url=base)
    one_sentence(str(info.value), base + ARCHIVES[2])
    assert listing(places.cache_root / "fake") == sorted(ARCHIVES[:2])


@pytest.mark.parametrize("sent", [0, 1, 0.5, -1])
def test_connection_cut_midway_keeps_no_partial_file(
    places, fake_set, fake_registry, server, one_sentence, sent
):
    fake_registry()
    body = gz(fake_set.raw["train_images"])
    n = {0: 0, 1: 1, 0.5: len(body) // 2, -1: len(body) - 1}[sent]
    base = serve_fake(server, fake_set, **{ARCHIVES[0]: Cut(body, n)})

    with pytest.raises(DownloadError) as info:
        fetch("fake", base_url=base)

    one_sentence(str(info.value), base + ARCHIVES[0])
    assert listing(places.cache_root / "fake") == []


def test_http_error_is_a_download_error(places, fake_set, fake_registry, server, one_sentence):
    fake_registry()
    base = serve_fake(server, fake_set)
    del server.routes[f"/fake/{ARCHIVES[1]}"]
    with pytest.raises(DownloadError) as info:
        fetch("fake", base_url=base)
    one_sentence(str(info.value), base + ARCHIVES[1])
    assert listing(places.cache_root / "fake") == [ARCHIVES[0]]


def test_unreachable_server_is_a_download_error(places, fake_registry, one_sentence):
    fake_registry()
    srv = LocalServer(max_requests=0)  # binds a port, then closes it: nothing listens there
    srv.close()
    with pytest.raises(DownloadError) as info:
        fetch("fake", base_url=srv.url)
    one_sentence(str(info.value), srv.url + ARCHIVES[0])
    assert listing(places.cache_root / "fake") == []


def test_download_errors_are_data_errors():
    assert issubclass(ChecksumError, DataError) and issubclass(DownloadError, DataError)


@pytest.mark.parametrize("failure", ["cut", "mismatch"])
def test_cli_failed_fetch_exits_2(places, fake_set, fake_registry, server, cli_error, failure):
    fake_registry()
    body = gz(fake_set.raw["train_images"])
    bad = Cut(body, len(body) // 3) if failure == "cut" else other_fake_archive(fake_set)
    base = serve_fake(server, fake_set, **{ARCHIVES[0]: bad})
    cli_error(main(["data", "fetch", "fake", "--mirror", base]), base + ARCHIVES[0])
    assert listing(places.cache_root / "fake") == []


# ----------------------------------------------------------------------------- nothing is lost


@pytest.mark.parametrize("failure", ["cut", "mismatch", "missing"])
def test_failed_download_leaves_a_good_file_untouched(fake_set, server, tmp_path, failure):
    good = gz(fake_set.raw["train_images"])
    remote = RemoteFile("train-images-idx3-ubyte", hashlib.sha256(fake_set.raw["train_images"])
                        .hexdigest())
    dest = tmp_path / "cache" / remote.archive_name
    dest.parent.mkdir()
    dest.write_bytes(good)
    os.utime(dest, (1_000_000_000, 1_000_000_000))
    if failure == "cut":
        server.routes["/f.gz"] = Cut(good, len(good) // 2)
    elif failure == "mismatch":
        server.routes["/f.gz"] = other_fake_archive(fake_set)

    with pytest.raises(DownloadError if failure != "mismatch" else ChecksumError):
        download_file(server.url + "f.gz", dest, remote)

    assert dest.read_bytes() == good
    assert dest.stat().st_mtime == 1_000_000_000
    assert listing(dest.parent) == [dest.name]


def test_fetch_keeps_verified_files_and_resumes_with_the_rest(
    places, fake_set, fake_registry, server
):
    fake_registry()
    cache = places.cache_root / "fake"
    cache.mkdir(parents=True)
    first = gz(fake_set.raw["train_images"])
    (cache / ARCHIVES[0]).write_bytes(first)
    os.utime(cache / ARCHIVES[0], (1_000_000_000, 1_000_000_000))
    labels = gz(fake_set.raw["train_labels"])
    base = serve_fake(server, fake_set, **{ARCHIVES[1]: Cut(labels, 10)})

    with pytest.raises(DownloadError):
        fetch("fake", base_url=base)
    assert server.requests == [f"/fake/{ARCHIVES[1]}"]  # the good file was not fetched again
    assert (cache / ARCHIVES[0]).read_bytes() == first
    assert (cache / ARCHIVES[0]).stat().st_mtime == 1_000_000_000
    assert listing(cache) == [ARCHIVES[0]]

    server.routes[f"/fake/{ARCHIVES[1]}"] = labels  # the mirror recovers
    assert fetch("fake", base_url=base) == cache
    assert server.requests[1:] == [f"/fake/{a}" for a in ARCHIVES[1:]]
    assert listing(cache) == sorted(ARCHIVES)
    assert set(checksum_status("fake", cache).values()) == {"ok"}


@pytest.mark.parametrize("damage", ["wrong-content", "cut-gzip"])
def test_fetch_replaces_a_bad_file_left_in_the_cache(
    places, fake_set, fake_registry, server, damage
):
    """A cache that lacks some files is completed; a file there that fails its checksum (or is
    not even a whole gzip stream) is downloaded again rather than trusted or fatal."""
    fake_registry()
    cache = places.cache_root / "fake"
    cache.mkdir(parents=True)
    good = gz(fake_set.raw["train_images"])
    bad = other_fake_archive(fake_set) if damage == "wrong-content" else good[: len(good) // 2]
    (cache / ARCHIVES[0]).write_bytes(bad)
    base = serve_fake(server, fake_set)

    assert fetch("fake", base_url=base) == cache
    assert (cache / ARCHIVES[0]).read_bytes() == good
    assert set(checksum_status("fake", cache).values()) == {"ok"}


def test_checksum_ok_against_hashlib(fake_set, tmp_path):
    raw = fake_set.raw["test_labels"]
    plain, packed = tmp_path / "t10k-labels-idx1-ubyte", tmp_path / "t10k-labels-idx1-ubyte.gz"
    plain.write_bytes(raw)
    packed.write_bytes(gz(raw))
    of_raw = RemoteFile(plain.name, hashlib.sha256(raw).hexdigest(), "raw")
    of_archive = RemoteFile(plain.name, hashlib.sha256(packed.read_bytes()).hexdigest(), "archive")
    assert checksum_ok(plain, of_raw) and checksum_ok(packed, of_raw)
    assert checksum_ok(packed, of_archive) and not checksum_ok(plain, of_archive)
    assert not checksum_ok(packed, RemoteFile(plain.name, hashlib.sha256(b"").hexdigest()))
