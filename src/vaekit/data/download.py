"""Download dataset files into the cache, verified by SHA-256, never leaving a partial file.

A file is streamed to a temporary name in the destination directory, its checksum is verified (of
the bytes as downloaded, or of their decompressed content, whichever the registry publishes), and
only then renamed to its final name. A connection cut midway, a short read or a checksum mismatch
deletes the temporary file, so a later run never trusts a partial or wrong download. A destination
that cannot be written (a read-only or full disk, a ~/.cache that is a file) is a DownloadError.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vaekit.data.idx import decompress, read_bytes, read_raw
from vaekit.device import progress_bar
from vaekit.errors import ChecksumError, DownloadError, IDXFormatError

CHUNK = 1 << 16

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


def download_file(url: str, dest: Path, remote: RemoteFile, timeout: float = 30.0) -> Path:
    """Fetch `url` to `dest` (the archive name), verify it, and rename it into place."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as err:  # a read-only cache, a full disk, a ~/.cache that is a file
        raise DownloadError(_unwritable(dest, err)) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    total = resp.headers.get("Content-Length")
                    total_bytes = int(total) if total and total.isdigit() else None
                    got = 0
                    with progress_bar(total_bytes, dest.name, "B", True, unit_scale=True,
                                      leave=False) as bar:
                        while chunk := resp.read(CHUNK):
                            out.write(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                reason = getattr(err, "reason", err)
                raise DownloadError(f"{url}: download failed ({reason}).") from None
            if total_bytes is not None and got != total_bytes:
                raise DownloadError(
                    f"{url}: download cut after {got} of {total_bytes} bytes; nothing was kept."
                )
        if remote.checksum_of == "archive":
            digest = sha256_bytes(tmp.read_bytes())
        else:
            try:
                digest = sha256_bytes(read_bytes(tmp))
            except Exception as err:  # a corrupt archive is a bad download, not a bug
                raise ChecksumError(f"{url}: the downloaded file is corrupt ({err}).") from None
        if digest != remote.sha256:
            raise ChecksumError(
                f"{url}: SHA-256 {digest} does not match the published {remote.sha256}; "
                "the download was deleted."
            )
        try:
            os.replace(tmp, dest)
        except OSError as err:
            raise DownloadError(_unwritable(dest, err)) from None
        return dest
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _unwritable(dest: Path, err: OSError) -> str:
    """The sentence for a download that cannot be written to `dest`."""
    return (f"{dest.parent}: the download cannot be written there ({err.strerror or err}); expected a "
            "folder that can be written, or the dataset's files in a folder named by --data-dir.")
