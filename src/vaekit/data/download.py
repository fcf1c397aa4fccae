"""Download dataset files into the cache, verified by SHA-256, never leaving a partial file.

A file is streamed to a temporary name in the destination directory, its checksum is verified (of
the bytes as downloaded, or of their decompressed content, whichever the registry publishes), and
only then renamed to its final name. A connection cut midway, a short read or a checksum mismatch
deletes the temporary file, so a later run never trusts a partial or wrong download. A destination
that cannot be written (a read-only or full disk, a ~/.cache that is a file) is a DownloadError.

A download that cannot finish is abandoned, its temporary file deleted: nothing for STALL_SECONDS,
or under MIN_RATE over RATE_WINDOW_SECONDS (a server that trickles a byte every few seconds).
The temporary file is locked while its download runs; one left by a download that was killed
(kill -9 cannot clean up) is deleted by the next download of its dataset (`remove_stale_parts`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import http.client
import os
import re
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from vaekit.arch.values import excerpt
from vaekit.data.idx import GZIP_MAGIC, decompress, read_bytes, read_raw
from vaekit.device import progress_bar
from vaekit.errors import ChecksumError, ConfigError, DownloadError, IDXFormatError

CHUNK = 1 << 16

# A download that cannot finish is abandoned (tests lower these): nothing for STALL_SECONDS, or
# fewer than MIN_RATE bytes/s over a window of RATE_WINDOW_SECONDS.
STALL_SECONDS = 30.0
RATE_WINDOW_SECONDS = 30.0
MIN_RATE = 1024  # bytes per second

# No file of a known set is larger (Fashion-MNIST's training images: 26 MB as .gz, 47 MB raw): a
# download, or its content decompressed to be hashed, past MAX_BYTES is abandoned (tests lower it).
MAX_BYTES = 256 * 2**20

# The temporary file of a download: .NAME.XXXXXXXX.part (tempfile.mkstemp's 8 characters).
PART_SUFFIX = ".part"
_PART_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(PART_SUFFIX))

# How a file on disk compares with its published SHA-256 (`vaekit data info` prints these).
OK = "ok"
MISMATCH = "MISMATCH"
MISSING = "missing"
UNCHECKED = "unchecked (published sum is of the .gz archive)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, where it comes from and its published SHA-256.

    `checksum_of` says which bytes the published sum is of: "raw" for the decompressed IDX
    content (Fashion-MNIST publishes those), "archive" for the .gz file as downloaded (MNIST, KMNIST).
    """

    name: str  # the IDX file name without .gz, e.g. "train-images-idx3-ubyte"
    sha256: str
    checksum_of: str = "raw"
    archive_suffix: str = ".gz"

    @property
    def archive_name(self) -> str:
        return self.name + self.archive_suffix


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checksum_ok(path: Path, remote: RemoteFile) -> bool:
    """True when the file at `path` (plain or gzip) has the published checksum."""
    if remote.checksum_of == "archive":
        if path.name.endswith(remote.archive_suffix):
            return sha256_bytes(path.read_bytes()) == remote.sha256
        return False  # a plain copy cannot be checked against an archive's sum
    try:
        return sha256_bytes(read_bytes(path)) == remote.sha256
    except IDXFormatError:  # a cut or corrupt gzip does not have the published sum either
        return False


def read_checked(path: Path, remote: RemoteFile) -> tuple[bytes, str]:
    """Read `path` once: its IDX bytes (decompressed when it is gzip) and their checksum status.

    The status is OK or MISMATCH against the published sum, taken of the very bytes returned
    (or, for an "archive" sum, of the .gz file as read), so a loader that parses these bytes uses
    what was verified; UNCHECKED for a plain copy of a file whose published sum is of its .gz
    archive (it cannot be checked, and is not an error). Hashing Fashion-MNIST's 47 MB this way
    adds about 0.05 s to a load, so no cache of verified files is kept. A file that cannot be
    read or decompressed raises IDXFormatError.
    """
    raw = read_raw(path)
    content = decompress(raw, path)
    if remote.checksum_of == "archive":
        if not path.name.endswith(remote.archive_suffix):
            return content, UNCHECKED
        digest = sha256_bytes(raw)
    else:
        digest = sha256_bytes(content)
    return content, OK if digest == remote.sha256 else MISMATCH


def download_file(url: str, dest: Path, remote: RemoteFile, timeout: float | None = None) -> Path:
    """Fetch `url` to `dest` (the archive name), verify it, and rename it into place.

    `timeout`: the seconds without a byte after which the download is abandoned (None:
    STALL_SECONDS); one slower than MIN_RATE over RATE_WINDOW_SECONDS is abandoned too.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_part(dest)
    except OSError as err:  # a read-only cache, a full disk, a ~/.cache that is a file
        raise DownloadError(_unwritable(dest, err)) from None
    try:
        with os.fdopen(os.dup(fd), "wb") as out:  # `fd` keeps the lock until the end
            _stream(url, out, dest.name, STALL_SECONDS if timeout is None else timeout)
        try:
            digest = _digest(tmp, remote.checksum_of != "archive")
        except Exception as err:  # a corrupt archive, or a bomb, is a bad download, not a bug
            raise ChecksumError(f"{url}: the downloaded file is corrupt ({err}).") from None
        if digest != remote.sha256:
            raise ChecksumError(
                f"{url}: SHA-256 {digest} does not match the published {remote.sha256}; "
                "the download was deleted."
            )
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # as a plain open() makes it, not tempfile's 0600
            os.replace(tmp, dest)
        except OSError as err:
            raise DownloadError(_unwritable(dest, err)) from None
        return dest
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        os.close(fd)  # releases the lock once the file has its final name or is gone


def _stream(url: str, out: BinaryIO, label: str, stall: float) -> None:
    """Copy the body at `url` into `out` under a progress bar; a DownloadError when the request
    fails, the body is cut short, nothing arrives for `stall` seconds, or `_Pace` says it is too slow.
    """
    pace = _Pace(url)
    try:
        with urllib.request.urlopen(url, timeout=stall) as resp:
            total = resp.headers.get("Content-Length")
            total_bytes = int(total) if total and total.isdigit() else None
            if total_bytes is not None and total_bytes > MAX_BYTES:
                raise DownloadError(f"{url}: announces {total_bytes:,} bytes, {_PAST}; nothing was "
                                    "downloaded.")
            read = getattr(resp, "read1", resp.read)  # at most one read of the socket: a trickle
            got = 0  # is seen byte by byte, not after CHUNK bytes
            with progress_bar(total_bytes, label, "B", True, unit_scale=True, leave=False) as bar:
                pace.check(got, total_bytes)
                while chunk := read(CHUNK):
                    got += len(chunk)
                    if got > MAX_BYTES:  # an endless answer would fill the disk
                        raise DownloadError(f"{url}: sent more than {MAX_BYTES:,} bytes, {_PAST}; the "
                                            "download was abandoned and nothing was kept.")
                    out.write(chunk)
                    bar.update(len(chunk))
                    pace.check(got, total_bytes)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):  # connecting, or waiting for the next byte
            raise DownloadError(f"{url}: nothing arrived for {stall:g} s, so the download was "
                                "abandoned and nothing was kept.") from None
        said = excerpt(_first_sentence(str(reason)), 200)  # a server's text: one line, its first sentence
        raise DownloadError(f"{url}: download failed ({said}).") from None
    if total_bytes is not None and got != total_bytes:
        raise DownloadError(f"{url}: download cut after {got} of {total_bytes} bytes; nothing was kept.")


@dataclass
class _Pace:
    """The minimum rate of a download: fewer than MIN_RATE bytes/s over a window of
    RATE_WINDOW_SECONDS (windows back to back from the request on, checked as bytes arrive) is a
    DownloadError. A download that has all its announced bytes is never stopped."""

    url: str
    start: float = field(default_factory=time.monotonic)
    got_at_start: int = 0

    def check(self, got: int, total: int | None) -> None:
        elapsed = time.monotonic() - self.start
        if elapsed < RATE_WINDOW_SECONDS or elapsed <= 0 or (total is not None and got >= total):
            return
        rate = (got - self.got_at_start) / elapsed
        if rate < MIN_RATE:
            of = str(got) if total is None else f"{got} of {total}"
            raise DownloadError(
                f"{self.url}: only {got - self.got_at_start} bytes arrived in {elapsed:.3g} s, under "
                f"the minimum of {MIN_RATE} bytes/s, so the download was abandoned after {of} bytes "
                "and nothing was kept."
            )
        self.start, self.got_at_start = self.start + elapsed, got


_PAST = f"more than any file of a known set ({MAX_BYTES // 2**20} MiB at most)"


def _digest(path: Path, content: bool) -> str:
    """The SHA-256 of the file at `path`, or of its `content` (decompressed where it is gzip), read
    a chunk at a time: content past MAX_BYTES is an IDXFormatError, not a compression bomb in memory."""
    digest, seen = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        gz = content and fh.read(2) == GZIP_MAGIC
        fh.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=fh) if gz else fh  # type: ignore[assignment]
        while chunk := stream.read(CHUNK):
            seen += len(chunk)
            if seen > MAX_BYTES:
                raise IDXFormatError(f"it holds {_PAST.replace('more than', 'more bytes than')}")
            digest.update(chunk)
    return digest.hexdigest()


def _first_sentence(text: str) -> str:
    """The first sentence of `text` (urllib's reason, or what a server sent), its whitespace runs as
    single spaces and without its final stop; `text` itself where it has none."""
    words = " ".join(text.split())
    return re.split(r"(?<=[.!?]) ", words)[0].rstrip(".") or words


def _umask() -> int:
    """The process's file creation mask (read by setting it, then set back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_part(dest: Path) -> tuple[int, Path]:
    """A new temporary file beside `dest` (.NAME.XXXXXXXX.part), open and locked (flock) until the
    download ends, so that `remove_stale_parts` leaves it alone. A clean-up that took the file for
    stale in the instant before it was locked has removed it: then another one is made."""
    for _ in range(5):
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=PART_SUFFIX, dir=dest.parent)
        with contextlib.suppress(OSError):  # no locks on this file system: no clean-up either
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _is_named(name, fd):
            return fd, Path(name)
        os.close(fd)
    raise OSError(errno.EAGAIN, "its temporary files were removed as they were made")


def _is_named(path: str, fd: int) -> bool:
    """Whether `path` names the open file `fd` (not another file, not nothing)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def remove_stale_parts(directory: Path, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that downloads of `names` (archive names) left in `directory`
    when they were killed (kill -9, a power cut): regular files named as `download_file` names
    them (.NAME.XXXXXXXX.part, XXXXXXXX from tempfile's alphabet) that no running download holds
    locked. Any other file is left alone; so is everything when the lock cannot be taken."""
    wanted = set(names)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:  # no such directory (yet), or not one
        return removed
    for entry in entries:
        match = _PART_NAME.fullmatch(entry.name)
        if match is None or match["name"] not in wanted or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a download holds it
            if stat.S_ISREG(os.fstat(fd).st_mode) and _is_named(entry.path, fd):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def check_mirror_url(url: str) -> None:
    """ConfigError unless `url` (a --mirror) is an http:// or https:// URL with a host: an empty or
    blank one is refused, not read as 'not given'; nothing is sent over the network to find out."""
    problem = _mirror_problem(url)
    if problem is not None:
        raise ConfigError(f"--mirror {url!r} {problem}; expected the http:// or https:// URL of a "
                          "folder holding the dataset's .gz files, such as https://example.org/mnist/.")


def _mirror_problem(url: str) -> str | None:
    """What is wrong with the mirror URL `url`, in a few words (None: nothing)."""
    if not url.strip():
        return "is blank" if url else "is empty"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "holds a space or a control character"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # a bracketed host that is not closed, say
        return "is not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "does not start with http:// or https://"
    if not parts.hostname:
        return "names no host"
    if parts.query or parts.fragment or "?" in url or "#" in url:  # the file names go after its path
        return "has a query (?) or a fragment (#), after which no file name could follow"
    if "@" in parts.netloc:
        return "holds a user name or password (user@host), which vaekit does not send"
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = 0
    return "has a port that is not a number from 1 to 65535" if port == 0 else None


def _unwritable(dest: Path, err: OSError) -> str:
    """The sentence for a download that cannot be written to `dest`."""
    return (f"{dest.parent}: the download cannot be written there ({err.strerror or err}); expected a "
            "folder that can be written, or the dataset's files in a folder named by --data-dir.")
