"""Downloads against a local HTTP server on 127.0.0.1: a good file is verified and lands in the
cache; a wrong checksum, a corrupt archive, a cut connection, an HTTP error or a server too slow to
finish leave nothing there (and no .part file), and never touch a file that was already good; the
.part files of killed downloads are cleaned up, a user's files never."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.data import download
from vaekit.data.download import RemoteFile, checksum_ok, download_file, remove_stale_parts
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


@dataclass
class Trickle:
    """Announce `length` bytes, then send `piece` every `every` seconds (None: send nothing) until
    `length` bytes are sent, the client hangs up, the server is closed or `for_at_most` seconds
    have passed (then it hangs up: a client still waiting sees the body cut)."""

    length: int
    piece: bytes = b"x"
    every: float | None = 0.05
    for_at_most: float = 5.0
    announce: bool = True  # False: no Content-Length, the body ends when the server hangs up


class LocalServer:
    """An HTTP server on 127.0.0.1 (ephemeral port) in a thread that answers at most
    `max_requests` requests, then closes its socket; `routes` maps a path to bytes, a Cut or a
    Trickle."""

    def __init__(self, max_requests: int = 8) -> None:
        self.routes: dict[str, bytes | Cut | Trickle] = {}
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
                self.close_connection = True
                if isinstance(body, Trickle):
                    self.trickle(body)
                    return
                full = body.body if isinstance(body, Cut) else body
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(full)))
                self.end_headers()
                self.wfile.write(body.body[: body.sent] if isinstance(body, Cut) else body)
                self.wfile.flush()

            def trickle(self, body: Trickle) -> None:
                self.send_response(200)
                if body.announce:
                    self.send_header("Content-Length", str(body.length))
                self.end_headers()
                self.wfile.flush()
                sent, end = 0, time.monotonic() + body.for_at_most
                try:
                    while (sent < body.length and time.monotonic() < end
                           and not server._stop.wait(body.every or 0.05)):
                        if body.every is not None:
                            self.wfile.write(body.piece[: body.length - sent])
                            self.wfile.flush()
                            sent += len(body.piece[: body.length - sent])
                except OSError:  # the client hung up
                    pass

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


def test_a_mirror_without_its_last_slash_is_read_as_the_folder_it_names(places, fake_set, fake_registry,
                                                                         server) -> None:
    """`--mirror http://host/fake` fetched `/fakefake-train-images...`: the file name glued onto the
    folder's. A mirror is a folder, with or without its last slash."""
    fake_registry()
    base = serve_fake(server, fake_set).rstrip("/")
    assert fetch("fake", base_url=base) == places.cache_root / "fake"
    assert sorted(server.requests) == sorted(f"/fake/{a}" for a in ARCHIVES)


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
    out, err = capsys.readouterr()
    assert out.strip() == f"fake: {places.cache_root / 'fake'}"
    assert "not used" not in err  # the mirror was asked: no note that it went unused
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


# ----------------------------------------------------------------------------- downloads that cannot finish


@pytest.fixture
def slow_limits(monkeypatch) -> None:
    """The limits of a download lowered so that a test waits well under a second for them."""
    monkeypatch.setattr(download, "RATE_WINDOW_SECONDS", 0.4)
    monkeypatch.setattr(download, "STALL_SECONDS", 0.3)
    monkeypatch.setattr(download, "MIN_RATE", 1024)


@pytest.mark.parametrize("how", ["api", "cli"])
def test_a_trickle_is_abandoned_after_the_window(
    places, fake_set, fake_registry, server, slow_limits, one_sentence, cli_error, how
):
    """200, a Content-Length of 100 MB, then a byte every 0.05 s: each read comes well within the
    stall limit, so only the minimum rate over the window stops it."""
    fake_registry()
    base = serve_fake(server, fake_set, **{ARCHIVES[0]: Trickle(100_000_000)})
    start = time.monotonic()
    if how == "api":
        with pytest.raises(DownloadError) as info:
            fetch("fake", base_url=base)
        message = str(info.value)
        one_sentence(message, base + ARCHIVES[0])
    else:
        message = cli_error(main(["data", "fetch", "fake", "--mirror", base]), base + ARCHIVES[0])
    took = time.monotonic() - start
    assert 0.4 <= took < 0.4 + 0.3 + 2.0, took  # the window, a stall at most, a loaded machine
    assert "under the minimum of 1024 bytes/s" in message and "of 100000000 bytes" in message
    assert listing(places.cache_root / "fake") == []  # no .part left


def test_a_silent_server_is_abandoned_after_the_stall_limit(
    places, fake_set, fake_registry, server, slow_limits, one_sentence
):
    fake_registry()
    base = serve_fake(server, fake_set, **{ARCHIVES[1]: Trickle(1000, every=None)})
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch("fake", base_url=base)
    assert time.monotonic() - start < 0.3 + 2.0
    one_sentence(str(info.value), base + ARCHIVES[1], "nothing arrived for 0.3 s")
    assert listing(places.cache_root / "fake") == [ARCHIVES[0]]


def test_a_slow_download_that_keeps_the_pace_finishes(server, slow_limits, monkeypatch, tmp_path):
    """The rate is no deadline: 5 bytes every 0.05 s (100 bytes/s) against a minimum of 20 bytes/s
    over 0.4 s windows takes 1 s, two windows and a half, and is kept."""
    monkeypatch.setattr(download, "MIN_RATE", 20)
    body = b"abcde" * 20
    server.routes["/slow.gz"] = Trickle(len(body), b"abcde")
    remote = RemoteFile("slow", hashlib.sha256(body).hexdigest(), "archive")
    dest = download_file(server.url + "slow.gz", tmp_path / "slow.gz", remote)
    assert dest.read_bytes() == body
    assert listing(tmp_path) == ["slow.gz"]


# ----------------------------------------------------------------------------- killed downloads


def part_name(archive: str, middle: str = "k1ll_9ed") -> str:
    """The name download_file gives the temporary file of `archive` (tempfile's 8 characters)."""
    return f".{archive}.{middle}.part"


def test_stale_part_files_are_removed_at_the_next_download_and_no_other_file(
    places, fake_set, fake_registry, server
):
    fake_registry()
    cache = places.cache_root / "fake"
    cache.mkdir(parents=True)
    stale = [part_name(ARCHIVES[0]), part_name(ARCHIVES[3], "a0b1c2d3")]
    users = ["notes.txt", f".{ARCHIVES[0]}.part", f"{ARCHIVES[0]}.part",  # not vaekit's naming
             part_name(ARCHIVES[0], "TOOLONG__"), part_name(ARCHIVES[0], "UPPERCAS"),
             part_name("other-file.gz"), part_name("train-images-idx3-ubyte")]  # not an archive
    for name in stale + users:
        (cache / name).write_bytes(b"partial")
    (cache / part_name(ARCHIVES[1])).mkdir()  # a folder, and a link, named as vaekit's: kept
    (cache / part_name(ARCHIVES[2])).symlink_to(cache / "notes.txt")
    kept = sorted([*users, part_name(ARCHIVES[1]), part_name(ARCHIVES[2])])

    assert fetch("fake", base_url=serve_fake(server, fake_set)) == cache
    assert listing(cache) == sorted(ARCHIVES + kept)
    assert all((cache / name).is_dir() or (cache / name).read_bytes() == b"partial" for name in kept)


def test_a_part_file_held_by_a_running_download_is_kept(tmp_path):
    """A download holds its .part locked; one that was killed no longer does."""
    live, dead = tmp_path / part_name(ARCHIVES[0]), tmp_path / part_name(ARCHIVES[0], "zzzzzzzz")
    live.write_bytes(b"in progress")
    dead.write_bytes(b"killed")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert remove_stale_parts(tmp_path, [ARCHIVES[0]]) == [dead]
    assert listing(tmp_path) == [live.name]


def test_a_download_in_progress_is_not_taken_for_stale(server, slow_limits, monkeypatch, tmp_path):
    """A second fetch's clean-up, while the first download runs, leaves its .part alone."""
    monkeypatch.setattr(download, "MIN_RATE", 1)
    body = b"x" * 20
    server.routes["/f.gz"] = Trickle(len(body))  # 1 s
    remote = RemoteFile("f", hashlib.sha256(body).hexdigest(), "archive")
    dest = tmp_path / "f.gz"
    done: list[Path] = []
    thread = threading.Thread(target=lambda: done.append(download_file(server.url + "f.gz", dest,
                                                                       remote)))
    thread.start()
    deadline = time.monotonic() + 5
    while not any(n.endswith(".part") for n in listing(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.01)
    (part,) = listing(tmp_path)
    assert remove_stale_parts(tmp_path, ["f.gz"]) == []
    assert listing(tmp_path) == [part]
    thread.join(timeout=5)
    assert done == [dest] and listing(tmp_path) == ["f.gz"] and dest.read_bytes() == body


# ----------------------------------------------------------------------------- data fetch repairs


@pytest.mark.parametrize("mirror", [False, True])
def test_fetch_downloads_again_a_damaged_file_of_the_cache(places, fake_set, fake_registry, server, capsys,
                                                           mirror: bool) -> None:
    """`data fetch` said a set was there when a file of it was garbage; it now holds each file to
    its published sum and downloads a verified copy of that one file alone (from --mirror if given:
    then the mirror was used, and no note says otherwise)."""
    base = serve_fake(server, fake_set)
    fake_registry(base_url="http://127.0.0.1:9/nowhere/" if mirror else base)
    cache = fake_set.write(places.cache_root / "fake")
    (cache / ARCHIVES[1]).write_bytes(b"garbage\n")
    assert main(["data", "fetch", "fake", *(["--mirror", base] if mirror else [])]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"fake: {cache}"
    assert f"note: {ARCHIVES[1]} in {cache} does not match the published SHA-256 of fake" in err, err
    assert "not used" not in err
    assert server.requests == [f"/fake/{ARCHIVES[1]}"]
    assert set(checksum_status("fake", cache).values()) == {"ok"}


def test_fetch_of_a_damaged_system_copy_downloads_into_the_cache(places, fake_set, fake_registry, server,
                                                                 capsys) -> None:
    """/usr/share/datasets is not vaekit's to write: a verified copy goes to the cache, which is
    looked in first, and the system's files are left as they are."""
    fake_registry(base_url=serve_fake(server, fake_set))
    system = fake_set.write(places.system_root / "fake")
    (system / ARCHIVES[2]).write_bytes(gz(b"not the published test images"))
    before = {p.name: p.read_bytes() for p in system.iterdir()}
    assert main(["data", "fetch", "fake"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"fake: {places.cache_root / 'fake'}"
    assert f"{ARCHIVES[2]} in {system} does not match" in err, err
    assert {p.name: p.read_bytes() for p in system.iterdir()} == before
    assert set(checksum_status("fake", places.cache_root / "fake").values()) == {"ok"}
    assert load_dataset("fake").source == str(places.cache_root / "fake")


@pytest.mark.parametrize("where", ["--data-dir", "$VAEKIT_DATA"])
def test_fetch_refuses_a_damaged_file_in_a_directory_the_user_named(places, fake_set, fake_registry,
                                                                     tmp_path, monkeypatch, cli_error,
                                                                     where: str) -> None:
    fake_registry()  # the official address is a closed port: nothing may be downloaded
    mine = fake_set.write(tmp_path / "mine")
    (mine / ARCHIVES[0]).write_bytes(b"garbage\n")
    if where == "$VAEKIT_DATA":
        monkeypatch.setenv("VAEKIT_DATA", str(mine))
    flags = ["--data-dir", str(mine)] if where == "--data-dir" else []
    cli_error(main(["data", "fetch", "fake", *flags]), str(mine / ARCHIVES[0]), "published SHA-256",
              "VAEKIT_ALLOW_MODIFIED_DATA=1")
    assert (mine / ARCHIVES[0]).read_bytes() == b"garbage\n"
    assert not places.cache_root.exists()


def test_fetch_keeps_a_modified_copy_where_modified_data_is_allowed(places, fake_set, fake_registry,
                                                                    monkeypatch, capsys) -> None:
    fake_registry()
    cache = fake_set.write(places.cache_root / "fake")
    (cache / ARCHIVES[3]).write_bytes(gz(b"my own labels"))
    monkeypatch.setenv("VAEKIT_ALLOW_MODIFIED_DATA", "1")
    assert main(["data", "fetch", "fake"]) == 0
    assert capsys.readouterr().out.strip() == f"fake: {cache}"
    assert (cache / ARCHIVES[3]).read_bytes() == gz(b"my own labels")


def test_a_file_of_a_set_that_does_not_parse_points_to_data_fetch(places, fake_set, fake_registry,
                                                                  cli_error) -> None:
    """The files' own error (not IDX, not gzip) came without a way out; it now names the command
    that repairs them."""
    fake_registry()
    cache = fake_set.write(places.cache_root / "fake")
    (cache / ARCHIVES[0]).write_bytes(b"garbage\n")
    cli_error(main(["data", "info", "fake", "--no-download"]), str(cache / ARCHIVES[0]),
              "`vaekit data fetch fake`")


@pytest.mark.parametrize("reason", [
    "The HTTP server returned a redirect error that would lead to an infinite loop.\nThe last 30x error "
    "message was:\nFound",
    "NOT HTTP AT ALL\r\n",
    "bell\x07 and escape\x1b[31m",
])
def test_a_servers_reason_is_quoted_on_one_line(places, fake_set, fake_registry, monkeypatch, cli_error,
                                                one_sentence, reason: str) -> None:
    """urllib's reason for a redirect loop, or the bytes of a server that does not speak HTTP, came
    into the refusal with their line breaks: a refusal of two or three lines."""
    import urllib.error
    import urllib.request

    def fail(*_args: object, **_kwargs: object) -> None:
        raise urllib.error.URLError(reason)

    fake_registry()
    monkeypatch.setattr(urllib.request, "urlopen", fail)
    message = cli_error(main(["data", "fetch", "fake"]), "download failed")
    one_sentence(message, "download failed (")
    assert not any(c in message for c in "\r\n\x07\x1b"), repr(message)
    assert not places.cache_root.exists() or listing(places.cache_root / "fake") == []


def test_a_downloaded_file_is_readable_as_a_plain_write_makes_it(places, fake_set, fake_registry,
                                                                  server) -> None:
    """tempfile makes its files 0600: a set fetched into a shared cache was readable by its owner
    alone, beside files of 0644."""
    fake_registry(base_url=serve_fake(server, fake_set))
    mask = os.umask(0o022)
    try:
        directory = fetch("fake")
    finally:
        os.umask(mask)
    assert {oct(p.stat().st_mode & 0o777) for p in directory.iterdir()} == {oct(0o644)}


@pytest.mark.parametrize("where", ["--data-dir", "$VAEKIT_DATA"])
def test_a_cut_file_in_a_users_directory_is_told_to_be_replaced(places, fake_set, fake_registry, tmp_path,
                                                                 monkeypatch, one_sentence,
                                                                 where: str) -> None:
    """The advice was 'delete the file and fetch it again': `data fetch` fills the cache, never a
    directory the user named, which then lacked the file. Now: replace it, or read the cache."""
    fake_registry()
    mine = fake_set.write(tmp_path / "mine")
    cut = mine / ARCHIVES[3]
    cut.write_bytes(cut.read_bytes()[:20])
    if where == "$VAEKIT_DATA":
        monkeypatch.setenv("VAEKIT_DATA", str(mine))
    with pytest.raises(DataError) as err:
        load_dataset("fake", str(mine) if where == "--data-dir" else None, download=False)
    one_sentence(str(err.value), str(cut), "replace it with a verified copy",
                 "leave --data-dir out" if where == "--data-dir" else "unset $VAEKIT_DATA")
    assert "delete the file" not in str(err.value)
    cut.unlink()  # a user who deletes it anyway is told which file the directory lacks
    with pytest.raises(DataError) as err:
        load_dataset("fake", str(mine) if where == "--data-dir" else None, download=False)
    one_sentence(str(err.value), f"({cut.name.removesuffix('.gz')} missing in {mine})")


@pytest.mark.parametrize("answer", ["announced", "endless", "bomb"])
def test_a_download_past_any_file_of_a_known_set_is_abandoned(places, fake_set, fake_registry, server,
                                                               monkeypatch, cli_error, answer: str) -> None:
    """A mirror that sent bytes without end filled the cache at 400 MB/s until the disk was full,
    and a small gzip of zeros would have been decompressed whole in memory to be hashed: each is
    cut at MAX_BYTES (lowered here), one sentence, nothing kept."""
    monkeypatch.setattr(download, "MAX_BYTES", 64 * 1024)
    body: bytes | Trickle = {"announced": b"x" * (64 * 1024 + 1),
                             "endless": Trickle(10**9, b"x" * 4096, every=0.001, for_at_most=20.0,
                                                announce=False),
                             "bomb": gz(b"\0" * (4 * 2**20))}[answer]
    base = serve_fake(server, fake_set, **{ARCHIVES[0]: body})
    fake_registry(base_url=base)
    words = {"announced": "announces 65,537 bytes", "endless": "sent more than 65,536 bytes",
             "bomb": "corrupt (it holds more bytes than any file of a known set"}[answer]
    started = time.monotonic()
    cli_error(main(["data", "fetch", "fake"]), base + ARCHIVES[0], words)
    assert time.monotonic() - started < 15
    assert listing(places.cache_root / "fake") == []
