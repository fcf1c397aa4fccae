"""Where a figure may be written: the file a user names (`arch --plot`, `sample --out`), checked
before anything is drawn, so that a bad path costs one sentence and leaves nothing behind. No
matplotlib here: the commands import it at once."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from vaekit.errors import ConfigError

FORMATS = (".png", ".svg", ".pdf")  # what matplotlib's Agg backend writes


def figure_path(text: str, flag: str = "--plot", formats: tuple[str, ...] = FORMATS,
                example: str = "figure") -> Path:
    """The file a figure goes to (`flag` names it in messages), checked before anything is drawn: a
    name ending in one of `formats` (any case), not a directory nor an existing non-regular file
    (/dev/null), in a directory where a file can be created (tried with an anonymous temporary
    file, which leaves nothing). ConfigError with one sentence otherwise; `example` is the file
    name suggested for a directory."""
    ends = ", ".join(formats[:-1]) + (" or " if len(formats) > 1 else "") + formats[-1]
    expected = f"a file name ending in {ends}"
    path, name = Path(text), quoted(text)
    try:
        if not text:
            raise ConfigError(f"{flag} is empty; expected {expected}.")
        if text.endswith(("/", os.sep)) or path.is_dir():
            raise ConfigError(f"{flag} {name} is a directory; expected {expected} "
                              f"(such as {quoted(str(path / (example + formats[0])))}).")
        if path.name.lower() in formats:
            raise ConfigError(f"{flag} {name} has no name before its extension; expected "
                              f"{expected} (such as {quoted(str(path.with_name(example + formats[0])))}).")
        if path.suffix.lower() not in formats:
            raise ConfigError(f"{flag} {name} does not end in {ends}; expected "
                              f"{expected}.")
        if path.exists() and not path.is_file():
            raise ConfigError(f"{flag} {name} exists and is not a regular file; expected "
                              f"{expected} to write or replace.")
    except OSError as err:  # a name too long, a loop of links
        raise ConfigError(f"{flag} {name} cannot be used ({err.strerror or err}); expected "
                          f"{expected}.") from None
    parent = str(path.parent)
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:  # one path for a missing, read-only or non-directory parent
        raise ConfigError(f"{flag} {name}: {_cannot_create(parent, err)}; expected a file in "
                          "a writable directory that exists.") from None
    return path


def quoted(text: str, limit: int = 200) -> str:
    """A path as a message quotes it: repr, or for a long one its start and its length."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def _cannot_create(parent: str, err: OSError) -> str:
    """Why no file can be created in `parent`, from the error of trying."""
    if err.errno == errno.ENOTDIR:
        return f"{quoted(parent)} is not a directory"
    if err.errno == errno.ENOENT and not os.path.lexists(parent):
        return f"the directory {quoted(parent)} does not exist"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the directory {quoted(parent)} is not writable ({err.strerror})"
    return f"no file can be created in {quoted(parent)} ({err.strerror or err})"
