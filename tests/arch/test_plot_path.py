"""`vaekit arch --scaling --plot PATH` on paths it cannot use: an unknown
extension, a directory, a read-only directory, /dev/null, a path under a file, /proc; each is one
sentence naming the path and what was expected, exit 2, nothing printed and nothing left behind."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from vaekit.cli import main
from vaekit.errors import ConfigError

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".svg": b"<?xml", ".pdf": b"%PDF-"}


def plot(path: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["arch", "--scaling", "--plot", str(path)])
    return status, out.getvalue(), err.getvalue()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root` (hidden ones included) with a file's bytes."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def assert_refused(one_sentence: Callable[..., None], path: str | Path, *names: str) -> str:
    status, out, err = plot(path)
    assert status == 2, err
    assert out == "" and "Traceback" not in err  # the table is not printed either
    last = err.strip().splitlines()[-1]
    assert last.startswith("vaekit arch: error: "), err
    message = last.removeprefix("vaekit arch: error: ")
    one_sentence(message, repr(str(path)), *names)
    return message


@pytest.mark.parametrize("name", ["x.xyz", "x.jpeg", "x", "x.png.tmp"])
def test_an_unknown_extension_names_the_formats(tmp_path: Path, one_sentence: Callable[..., None],
                                                name: str) -> None:
    assert_refused(one_sentence, tmp_path / name, ".png", ".svg", ".pdf")
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("suffix", ["/", ""])
def test_a_directory_is_not_a_file_name(tmp_path: Path, one_sentence: Callable[..., None],
                                        suffix: str) -> None:
    """`--plot DIR/` used to write a hidden DIR/.png."""
    (tmp_path / "out").mkdir()
    message = assert_refused(one_sentence, f"{tmp_path / 'out'}{suffix}", "directory", ".png")
    assert "scaling.png" in message  # an example of what would do
    assert tree(tmp_path) == {"out": None}


def test_the_file_a_directory_refusal_suggests_is_free(tmp_path: Path) -> None:
    """`sample --out DIR` suggested DIR/samples.png where a user's samples.png was: following the
    advice met a second refusal. The name suggested is one that nothing holds."""
    from vaekit.report.paths import figure_path

    (tmp_path / "scaling.png").write_bytes(b"mine")
    (tmp_path / "scaling-2.png").write_bytes(b"mine too")
    with pytest.raises(ConfigError) as err:
        figure_path(str(tmp_path), example="scaling")
    suggested = str(err.value).split("(such as '")[1].split("')")[0]
    assert suggested == str(tmp_path / "scaling-3.png"), err.value
    assert figure_path(suggested) == Path(suggested)  # the advice, followed, is taken


def test_a_missing_name_ending_in_a_slash_is_not_called_a_directory(tmp_path: Path,
                                                                   one_sentence: Callable[..., None]) -> None:
    """Nothing is at x.png/: the sentence names the trailing '/', not a directory that is not there."""
    message = assert_refused(one_sentence, f"{tmp_path / 'x.png'}/", "ends in a '/'", ".png")
    assert "is a directory" not in message
    assert tree(tmp_path) == {}


def test_an_extension_alone_is_not_a_file_name(tmp_path: Path,
                                               one_sentence: Callable[..., None]) -> None:
    assert_refused(one_sentence, tmp_path / ".png", "no name", ".png")
    assert tree(tmp_path) == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 0o500 directory anyway; "
                    "test_a_path_under_a_file and test_a_refused_write_permission_is_named take "
                    "the same code path")
def test_a_read_only_directory(tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_refused(one_sentence, locked / "scaling.png", "not writable",
                       "writable directory that exists")
        assert tree(locked) == {}
    finally:
        locked.chmod(0o700)


def test_a_refused_write_permission_is_named(tmp_path: Path, one_sentence: Callable[..., None],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What the kernel answers a non-root user in a chmod 0o500 directory (EACCES), given to the
    probe here, since root is not refused: 'not writable', nothing created."""
    import tempfile

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    assert_refused(one_sentence, tmp_path / "scaling.png", "not writable", repr(str(tmp_path)))
    assert tree(tmp_path) == {}


def test_a_path_under_a_file(tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    """The parent cannot take a new file: the probe that also refuses a read-only directory."""
    (tmp_path / "FILE").write_bytes(b"kept")
    assert_refused(one_sentence, tmp_path / "FILE" / "sub.png", "not a directory",
                   "writable directory that exists")
    assert tree(tmp_path) == {"FILE": b"kept"}


def test_a_missing_directory_is_not_created(tmp_path: Path,
                                            one_sentence: Callable[..., None]) -> None:
    assert_refused(one_sentence, tmp_path / "missing" / "scaling.png", "does not exist")
    assert tree(tmp_path) == {}


def test_dev_null_is_not_replaced(one_sentence: Callable[..., None]) -> None:
    assert_refused(one_sentence, "/dev/null", ".png")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_link_to_a_device_is_not_followed(tmp_path: Path,
                                            one_sentence: Callable[..., None]) -> None:
    (tmp_path / "x.png").symlink_to("/dev/null")
    assert_refused(one_sentence, tmp_path / "x.png", "not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and (tmp_path / "x.png").is_symlink()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc on this system")
def test_proc_cannot_hold_a_file(one_sentence: Callable[..., None]) -> None:
    assert_refused(one_sentence, "/proc/x.png", "/proc", "writable directory that exists")
    assert not Path("/proc/x.png").exists()


def test_a_failed_write_leaves_the_old_file_and_nothing_else(
        tmp_path: Path, one_sentence: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills while the image is written (the rename fails): the previous plot is
    intact, no temporary file stays, one sentence. (The previous plot is one vaekit wrote: a file
    of the user's is not even tried, tests/report/test_outputs.py.)"""
    target = tmp_path / "scaling.png"
    assert plot(target)[0] == 0
    previous = target.read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    monkeypatch.setattr(os, "rename", full)
    status, out, err = plot(target)
    assert status == 2 and out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vaekit arch: error: ")
    one_sentence(last.removeprefix("vaekit arch: error: "), str(target))
    assert tree(tmp_path) == {"scaling.png": previous}


@pytest.mark.parametrize("name", ["scaling.png", "scaling.svg", "scaling.pdf", "SCALING.PNG"])
def test_the_extension_picks_the_format(tmp_path: Path, name: str) -> None:
    status, out, err = plot(tmp_path / name)
    assert status == 0, err
    assert out.rstrip().endswith(f"plot written to {tmp_path / name}")
    assert (tmp_path / name).read_bytes().startswith(MAGIC[Path(name).suffix.lower()])
    assert list(tree(tmp_path)) == [name]  # no temporary file left


def test_help_states_the_formats_and_the_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["arch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ".png, .svg or .pdf" in text and "writable directory" in text
    assert "2**31 - 1" in text


def test_scaling_figure_itself_never_replaces_a_device(tmp_path: Path) -> None:
    """The library function, without the command's checks: a link to /dev/null is an OSError."""
    from vaekit.arch.sheet import scaling_table
    from vaekit.report.figures import scaling_figure

    (tmp_path / "x.png").symlink_to("/dev/null")
    with pytest.raises(OSError, match="not a regular file"):
        scaling_figure(scaling_table(), tmp_path / "x.png")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
