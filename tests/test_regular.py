"""vaekit.regular: the one law of a user's file, with each caller's error. A FIFO, a device, a
directory, a link to nothing or a loop of links is one sentence naming the path, what it is and
what was expected, raised as the error the caller names; a FIFO is never opened (a test that opened
one would hang, so each runs under an alarm)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hang import deadline
from vaekit.errors import CheckpointError, ConfigError, DataError, VaekitError
from vaekit.regular import check_directory, check_regular, kind_of, open_regular, read_regular

SHAPES: dict[str, tuple[Callable[[Path], None], str]] = {  # how to make it, the words naming it
    "fifo": (os.mkfifo, "a FIFO (named pipe)"),
    "device": (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    "directory": (os.mkdir, "a directory"),
    "dangling": (lambda p: p.symlink_to(p.parent / "nowhere"), "a link to nothing"),
    "loop": (lambda p: p.symlink_to(p.name), "a loop of symbolic links"),
    "under a file": (lambda p: None, "is not a directory"),
}


def made(tmp_path: Path, shape: str) -> Path:
    if shape == "under a file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile" / "x.bin"
    path = tmp_path / "x.bin"
    SHAPES[shape][0](path)
    return path


@pytest.mark.parametrize("error", [CheckpointError, DataError, ConfigError])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_what_is_not_a_regular_file_is_one_sentence_of_the_callers_error(
        tmp_path: Path, shape: str, error: type[VaekitError], one_sentence: Callable[..., None]) -> None:
    path = made(tmp_path, shape)
    for read in (check_regular, open_regular, read_regular):
        with deadline(10), pytest.raises(error) as info:
            read(path, "a test file", error)
        assert type(info.value) is error
        one_sentence(str(info.value), str(path), SHAPES[shape][1], "expected a test file")


def test_a_missing_file_is_false_or_file_not_found_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "missing.bin"
    assert check_regular(path, "a test file", DataError) is False
    with pytest.raises(FileNotFoundError):
        open_regular(path, "a test file", DataError)
    with pytest.raises(FileNotFoundError):
        read_regular(path, "a test file", DataError)
    with pytest.raises(DataError, match="no such file; expected a test file"):
        open_regular(path, "a test file", DataError, refuse_missing=True)


def test_a_regular_file_is_read_and_left_blocking(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert check_regular(path, "a test file", DataError) is True
    assert read_regular(path, "a test file", DataError) == b"abc"
    with open_regular(path, "a test file", DataError) as fh:
        assert os.get_blocking(fh.fileno()) and fh.read() == b"abc"


def test_a_directory_is_checked_by_the_same_law(tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    check_directory(tmp_path, "a run directory", CheckpointError)
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    for name, words in (("afile", "a regular file, not a directory"), ("fifo", "a FIFO (named pipe)"),
                        ("missing", "no such directory")):
        with pytest.raises(CheckpointError) as info:
            check_directory(tmp_path / name, "a run directory", CheckpointError)
        one_sentence(str(info.value), str(tmp_path / name), words, "expected a run directory")


def test_every_kind_has_its_words() -> None:
    assert kind_of(os.stat("/dev/null").st_mode) == "a character device"
    assert kind_of(os.stat(__file__).st_mode) == "a regular file"
    assert kind_of(0) == "a special file"
