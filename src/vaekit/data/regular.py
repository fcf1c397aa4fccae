"""A user's file opened only when it is a regular file: a FIFO blocks whoever opens it for reading
until a writer comes, a device such as /dev/zero never ends, a link may lead nowhere or to itself.

`open_regular` opens without blocking (O_NONBLOCK: a FIFO opens at once) and looks at what was
opened (fstat, after the links were followed), so the check and the read are of the same file;
anything but a regular file is closed unread and refused in one sentence. `what_is` says in words
what a path is when it is not a regular file (the same words for a folder's entries).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from vaekit.errors import DataError


def kind_of(mode: int) -> str:
    """What a file of st_mode `mode` is, in words: 'a FIFO', 'a character device', ..."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def unreachable(err: OSError) -> str:
    """Why a path could not be followed, in words: 'a link to nothing', 'a loop of links', ..."""
    if err.errno == errno.ENOENT:
        return "a link to nothing" if err.filename and os.path.islink(err.filename) else "no such file"
    if err.errno == errno.ELOOP:
        return "a loop of links"
    return f"cannot be read ({err.strerror or err})"


def what_is(path: str | Path) -> str | None:
    """None when `path` (its links followed) is a regular file, else what it is in words."""
    try:
        st = os.stat(path)
    except OSError as err:
        return unreachable(err)
    return None if stat.S_ISREG(st.st_mode) else kind_of(st.st_mode)


def open_regular(path: str | Path, expected: str) -> BinaryIO:
    """`path` open for reading in binary, or DataError naming it when it is anything but a regular
    file (`expected`: what it should have been, 'a .npy/.npz array file')."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as err:
        raise DataError(f"{path}: {unreachable(err)}; expected {expected}.") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DataError(f"{path}: not a regular file ({kind_of(mode)}); expected {expected}.")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
