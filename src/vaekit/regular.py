"""A file read only once it is known to be a regular file: a FIFO blocks whoever opens it for
reading until a writer comes, a device such as /dev/zero never ends, a link may lead nowhere or to
itself. The one law of every file a user hands vaekit (a run's files, an array, an image, a
--config), each caller naming the error a refusal is (`CheckpointError`, `DataError`,
`ConfigError`).

`check_regular` stats the path (its links followed): anything but a regular file is refused
unopened, in one sentence naming the path, what it is (`kind_of`) or why it cannot be followed
(`unreachable`), and what was expected. `open_regular` checks so first, then opens without
blocking (O_NONBLOCK: a FIFO put there meanwhile opens at once) and looks at what was opened
(fstat), so that the check and the read are of the same file; the descriptor is made blocking
again for the reader, and closed on any refusal. `check_directory` is the same law for a
directory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from vaekit.errors import VaekitError

KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISREG, "a regular file"))


def kind_of(mode: int) -> str:
    """What a file of st_mode `mode` is, in words: 'a directory', 'a FIFO (named pipe)', 'a
    socket', 'a character device', 'a block device', 'a regular file', else 'a special file'."""
    return next((words for test, words in KINDS if test(mode)), "a special file")


def unreachable(path: str | Path, err: OSError) -> str:
    """Why `path` could not be followed (`err`, from a stat or an open), in words: 'a link to
    nothing', 'a loop of symbolic links', 'PARENT is not a directory', 'no such file', or the
    OS's reason ('cannot be read (permission denied)')."""
    if err.errno == errno.ENOENT:
        return "a link to nothing" if os.path.islink(path) else "no such file"
    if err.errno == errno.ELOOP:
        return "a loop of symbolic links"
    if err.errno == errno.ENOTDIR:
        return f"{Path(path).parent} is not a directory"
    return f"cannot be read ({(err.strerror or str(err)).rstrip('.').lower()})"


def not_regular(path: str | Path, mode: int, what: str) -> str:
    """The sentence refusing `path`, of st_mode `mode`, where `what` (a regular file, in words) was
    expected."""
    return f"{path}: {kind_of(mode)}, not a regular file; expected {what}."


def cannot_follow(path: str | Path, err: OSError, what: str) -> str:
    """The sentence refusing `path`, which `err` says cannot be followed (`unreachable`), where
    `what` was expected."""
    return f"{path}: {unreachable(path, err)}; expected {what}."


def check_regular(path: str | Path, what: str, error: type[VaekitError]) -> bool:
    """Whether a regular file is at `path` (its links followed): False if nothing is there (not
    even a link); an `error` naming the path if something else is (a directory, a FIFO, a device, a
    dangling or looping link), so that a caller never opens it. `what`: the file expected, in
    words."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        if os.path.islink(path):
            raise error(cannot_follow(path, err, what)) from None
        return False
    except OSError as err:
        raise error(cannot_follow(path, err, what)) from None
    if not stat.S_ISREG(mode):
        raise error(not_regular(path, mode, what))
    return True


def open_regular(path: str | Path, what: str, error: type[VaekitError], *,
                 refuse_missing: bool = False) -> BinaryIO:
    """The regular file at `path` open for reading in binary. Nothing there (not even a link):
    FileNotFoundError, as open() raises it, for a caller that says what a missing file means, or
    with `refuse_missing` an `error` too ('no such file'). Anything else than a regular file: an
    `error` naming the path (`check_regular`), the file never opened or, if it changed between the
    check and the open, closed unread."""
    check_regular(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError as err:
        if refuse_missing or os.path.islink(path):
            raise error(cannot_follow(path, err, what)) from None
        raise
    except OSError as err:
        raise error(cannot_follow(path, err, what)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(not_regular(path, mode, what))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, what: str, error: type[VaekitError]) -> bytes:
    """The bytes of the regular file at `path` (`open_regular`: FileNotFoundError if nothing is
    there); an error while reading is an `error` naming the path."""
    with open_regular(path, what, error) as fh:
        try:
            return fh.read()
        except OSError as err:
            raise error(cannot_follow(path, err, what)) from None


def check_directory(path: str | Path, what: str, error: type[VaekitError]) -> None:
    """An `error` naming `path` unless it is a directory (its links followed): nothing there, a
    link that cannot be followed, or another kind of file. `what`: the directory expected."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        if os.path.islink(path):
            raise error(cannot_follow(path, err, what)) from None
        raise error(f"{path}: no such directory; expected {what}.") from None
    except OSError as err:
        raise error(cannot_follow(path, err, what)) from None
    if not stat.S_ISDIR(mode):
        raise error(f"{path}: {kind_of(mode)}, not a directory; expected {what}.")
