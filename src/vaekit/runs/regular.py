"""Regular files only: every file of a run is read once it is known to be one, so that a FIFO put
where a file was expected is never opened the blocking way (it would hang), and a directory, a
socket, a device, a dangling or looping symbolic link, or a run directory that is a file, is one
sentence naming the path and what was expected (`CheckpointError`), not a misleading "missing".
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from vaekit.errors import CheckpointError


def kind_of_file(mode: int) -> str:
    """What a stat mode is, in words ('a directory', 'a FIFO (named pipe)', ...)."""
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device")):
        if test(mode):
            return words
    return "something else"


def _unreadable(path: Path, what: str, err: OSError) -> CheckpointError:
    if err.errno == errno.ELOOP:
        why = "a loop of symbolic links"
    elif err.errno == errno.ENOTDIR:
        why = f"{path.parent} is not a directory"
    else:
        why = (err.strerror or str(err)).rstrip(".").lower()
    return CheckpointError(f"{path}: cannot read it ({why}); expected {what}.")


def check_regular(path: Path, what: str) -> bool:
    """Whether a regular file is at `path` (following symbolic links): False if nothing is there; a
    CheckpointError naming the path if something else is (a directory, a FIFO, a dangling or looping
    symbolic link), so that a caller never opens it. `what`: the file expected, in words."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise CheckpointError(f"{path}: a symbolic link to a missing file; expected {what}.") from None
        return False
    except OSError as err:
        raise _unreadable(path, what, err) from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: {kind_of_file(mode)}, not a regular file; expected {what}.")
    return True


def open_regular(path: Path, what: str) -> BinaryIO:
    """A regular file opened for reading. FileNotFoundError if nothing is there; a CheckpointError
    naming the path for anything else (`check_regular`). The file is opened without blocking and
    checked on its open descriptor, so that a FIFO put there meanwhile is refused too, never waited
    on."""
    check_regular(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise _unreadable(path, what, err) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CheckpointError(f"{path}: {kind_of_file(mode)}, not a regular file; expected {what}.")
    return os.fdopen(fd, "rb")


def read_regular(path: Path, what: str) -> bytes:
    """The bytes of a regular file (`open_regular`); FileNotFoundError if nothing is there."""
    with open_regular(path, what) as fh:
        try:
            return fh.read()
        except OSError as err:
            raise _unreadable(path, what, err) from None


def check_directory(run_dir: Path) -> None:
    """A CheckpointError naming `run_dir` unless it is a directory: missing, or something else."""
    try:
        mode = os.stat(run_dir).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: no such run directory.") from None
    except OSError as err:
        raise _unreadable(run_dir, "a run directory", err) from None
    if not stat.S_ISDIR(mode):
        what = "a regular file" if stat.S_ISREG(mode) else kind_of_file(mode)
        raise CheckpointError(f"{run_dir}: not a directory ({what}); expected a run directory.")
