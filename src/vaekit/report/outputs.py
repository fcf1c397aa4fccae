"""The files vaekit writes where a user names them, outside a run directory (`vaekit sample --out`,
`arch --scaling --plot`, `sheet --out`, `check --figures DIR`): one law, so that nothing of the
user's is ever written over.

    a file     is written where nothing is, or over a regular file vaekit wrote (its mark, below);
               anything else there (a user's file, a directory, a FIFO, a device, a symbolic link)
               is refused in one sentence naming it, and left as it is
    a folder   is written into when it is missing (only its last part is made: a missing parent
               is refused, as for a file), or when each file vaekit would write there is missing
               or vaekit's own (an empty folder, say); a path that is no directory is refused

The commands apply the law before any work (a refusal costs nothing), and `write_output` again at
the moment of writing, which is whole or not at all (`runs.write_bytes_atomic`: a temporary
`.NAME.vaekit-PID.tmp` renamed over the file). Run directories have their own law, the same in
spirit (`runs.check_run_dir`).

vaekit knows its own files without keeping any state, by the mark it writes into each, `MARK`
("vaekit VERSION"): a PNG's tEXt chunk 'Software', an SVG's and a PDF's 'Creator' (matplotlib's
`savefig(metadata=...)`: `figure_metadata`), an HTML page's `<meta name='generator'>`
(`HTML_GENERATOR`). `made_by_vaekit` looks for it where each writer puts it, in the first or the
last `WINDOW` bytes, the file opened only once it is known to be a regular file (`vaekit.regular`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vaekit.errors import ConfigError, VaekitError
from vaekit.regular import kind_of, open_regular, unreachable
from vaekit.runs import REPORT, check_writable, write_bytes_atomic
from vaekit.runs.files import FIGURES
from vaekit.version import __version__

MARK = f"vaekit {__version__}"  # what vaekit writes into a file to know it again
HTML_GENERATOR = f"<meta name='generator' content='{MARK}'>"
_METADATA = {".png": "Software", ".svg": "Creator", ".pdf": "Creator"}  # matplotlib's key of a format
# The mark as each writer puts it in the bytes: Pillow's tEXt chunk (keyword, NUL, text), matplotlib's
# SVG creator (<cc:Agent><dc:title>), its PDF info dictionary, the page's meta tag.
_SIGNS = (b"tEXtSoftware\x00vaekit ", b"<dc:title>vaekit ", b"/Creator (vaekit ",
          b"<meta name='generator' content='vaekit ")
# How every report.html of an earlier vaekit began, before its pages carried the mark: one of those
# is vaekit's too (`check_run_report`).
EARLIER_REPORT = b"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>vaekit report: "
WINDOW = 65_536  # bytes read at each end of a file (a PDF's mark is at its end, the others' at the start)


def figure_metadata(path: str | Path) -> dict[str, str] | None:
    """matplotlib's `savefig(metadata=...)` that marks a figure of `path`'s format (png when it has
    no suffix) as vaekit's; None for a format that takes none."""
    key = _METADATA.get(Path(path).suffix.lower() or ".png")
    return None if key is None else {key: MARK}


def made_by_vaekit(path: str | Path) -> bool:
    """Whether a regular file at `path` carries vaekit's mark; False for anything else (nothing
    there, a FIFO or a device, never opened; a file that cannot be read)."""
    try:
        with open_regular(path, "a file of vaekit's", ConfigError) as fh:
            head = fh.read(WINDOW)
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - WINDOW))
            tail = fh.read(WINDOW)
    except (OSError, VaekitError):
        return False
    return any(sign in head or sign in tail for sign in _SIGNS)


def check_output(path: str | Path, where: str | None = None, fix: str | None = None) -> None:
    """The law for one file: nothing at `path`, or a regular file vaekit wrote; else a ConfigError,
    one sentence naming it as `where` (the flag and the path, say "--out 'mine.png'") and saying how
    to go on (`fix`, where no other path can be chosen: a run's own folder). A symbolic link is
    refused whatever it leads to: it is not vaekit's."""
    where = where or quoted(str(path))
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there, or a place no file can go (the write says why)
        return
    if stat.S_ISLNK(mode):
        raise ConfigError(f"{where} is a symbolic link, which vaekit does not write over; "
                          f"{fix or 'choose another path or remove the link'}.")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{where} is {kind_of(mode)}, which vaekit does not write over; "
                          f"{fix or 'choose another path or remove it'}.")
    if not made_by_vaekit(path):
        raise ConfigError(f"{where} is a file vaekit did not write, and vaekit writes over only its own; "
                          f"{fix or 'choose another path or remove the file'}.")


def check_run_report(run_dir: Path) -> None:
    """The law for RUN_DIR/report.html: replaced only when it is missing or vaekit's own, a page
    with the mark (`HTML_GENERATOR`) or a report of an earlier vaekit, whose pages had no mark but
    all began with `EARLIER_REPORT` (byte for byte; a page of the user's that begins so is taken
    for vaekit's, the price of keeping the reports of existing runs regenerable). Anything else (a
    page of the user's, a link, a directory) is a ConfigError naming it."""
    path = run_dir / REPORT
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there (the write says why, if it cannot be made)
        return
    if stat.S_ISREG(mode):
        if made_by_vaekit(path):
            return
        with contextlib.suppress(OSError, VaekitError), open_regular(path, "a report", ConfigError) as fh:
            if fh.read(len(EARLIER_REPORT)) == EARLIER_REPORT:
                return
        what = "a file vaekit did not write (it has no vaekit mark)"
    else:
        what = "a symbolic link" if stat.S_ISLNK(mode) else kind_of(mode)
    raise ConfigError(f"{quoted(str(path))} is {what}, and `vaekit report` replaces only the report.html "
                      "it wrote; move it out of the run directory or remove it, then run the report "
                      "again.")


def write_run_report(run_dir: Path, page: str) -> Path:
    """RUN_DIR/report.html: `page`, the law of `check_run_report` held again at the moment of
    writing, then whole or not at all (`runs.write_bytes_atomic`)."""
    check_run_report(run_dir)
    write_bytes_atomic(run_dir / REPORT, page_bytes(page))
    return run_dir / REPORT


def page_bytes(page: str) -> bytes:
    """`page` as UTF-8, a byte of a path that is not UTF-8 (kept by Python as a lone surrogate)
    shown as U+FFFD, as a browser shows such a name: the file is UTF-8 throughout, as it says."""
    return page.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode("utf-8")


def check_run_outputs(run_dir: Path) -> None:
    """The law for what a report writes into its run: RUN_DIR/report.html (`check_run_report`) and
    every file already in RUN_DIR/figures is vaekit's own (`check_output`), checked before anything
    is drawn; so is a run directory that takes no new file (read-only, immutable, full), named by
    the report's path as its write would name it (`runs.check_writable`)."""
    check_run_report(run_dir)
    check_writable(run_dir / REPORT)
    figures = run_dir / FIGURES
    if figures.is_dir() and not figures.is_symlink():
        for entry in sorted(figures.iterdir()):
            if entry.suffix.lower() in (".png", ".svg", ".pdf", ".html"):
                check_output(entry, f"{quoted(str(entry))} in the run's figures folder",
                             f"move it out of {figures}, whose files the report replaces (only its own)")


def write_output(path: Path, data: bytes, where: str | None = None) -> Path:
    """`data` to `path`, the law held again at the moment of writing (`check_output`), then whole
    or not at all (`runs.write_bytes_atomic`)."""
    check_output(path, where)
    write_bytes_atomic(path, data)
    return path


def check_output_dir(text: str, names: Sequence[str], flag: str = "--figures") -> Path:
    """The law for a folder that `flag` names (`text`) and vaekit writes `names` into: missing, its
    parent a directory where one can be made; or a writable directory where each of `names` is
    missing or vaekit's own (`check_output`). Anything else is a ConfigError naming it."""
    path, where = Path(text), f"{flag} {quoted(text)}"
    expected = "expected a directory, or a new one in a directory that exists"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        if os.path.islink(path):
            raise ConfigError(f"{where} is {unreachable(path, err)}; {expected}.") from None
        _probe(path.parent, where, expected)  # only the last part is made
        return path
    except OSError as err:
        raise ConfigError(f"{where}: {unreachable(path, err)}; {expected}.") from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"{where} is {kind_of(mode)}, not a directory; {expected}.")
    _probe(path, where, expected)
    for name in names:
        check_output(path / name, f"{quoted(str(path / name))} in {where}")
    return path


def make_output_dir(text: str, names: Sequence[str], flag: str = "--figures") -> Path:
    """`check_output_dir`, then the folder made if it is missing (its last part only)."""
    path = check_output_dir(text, names, flag)
    with contextlib.suppress(FileExistsError):  # there already, and checked
        path.mkdir()
    return path


def _probe(directory: Path, where: str, expected: str) -> None:
    """A ConfigError unless a file can be created in `directory` (tried with an anonymous
    temporary file, which leaves nothing)."""
    try:
        with tempfile.TemporaryFile(dir=str(directory)):
            pass
    except OSError as err:  # one path for a missing, read-only or non-directory place
        raise ConfigError(f"{where}: {cannot_create(str(directory), err)}; {expected}.") from None


def quoted(text: str, limit: int = 200) -> str:
    """A path as a message quotes it: repr, or for a long one its start and its length."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def cannot_create(parent: str, err: OSError) -> str:
    """Why no file can be created in `parent`, from the error of trying."""
    if err.errno == errno.ENOTDIR:
        return f"{quoted(parent)} is not a directory"
    if err.errno == errno.ENOENT and not os.path.lexists(parent):
        return f"the directory {quoted(parent)} does not exist"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the directory {quoted(parent)} is not writable ({err.strerror})"
    return f"no file can be created in {quoted(parent)} ({err.strerror or err})"
