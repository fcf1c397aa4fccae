"""Where a figure may be written: the file a user names (`arch --plot`, `sample --out`, `sheet
--out`) and the folder of `check --figures DIR`, checked before anything is drawn, so that a bad
path costs one sentence and leaves nothing behind; what may be written over is the law of
`vaekit.report.outputs`. No matplotlib here: the commands import it at once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vaekit.errors import ConfigError
from vaekit.report.outputs import cannot_create, check_output, check_output_dir, quoted

FORMATS = (".png", ".svg", ".pdf")  # what matplotlib's Agg backend writes
CHECK_FIGURES = {"variance": "variance.png", "training": "training.png"}  # `check --figures`: claim -> file


def free_name(directory: Path, stem: str, suffix: str) -> Path:
    """directory/STEM.SUFFIX, or STEM-2.SUFFIX, STEM-3... where that name is taken (a file a refusal
    suggests is one that following it would not find there)."""
    n = 1
    while (candidate := directory / f"{stem}{f'-{n}' if n > 1 else ''}{suffix}").exists() and n < 1000:
        n += 1
    return candidate


def figure_path(text: str, flag: str = "--plot", formats: tuple[str, ...] = FORMATS,
                example: str = "figure") -> Path:
    """The file a figure goes to (`flag` names it in messages), checked before anything is drawn: a
    name ending in one of `formats` (any case), not a directory nor an existing non-regular file
    (/dev/null), in a directory where a file can be created (tried with an anonymous temporary
    file, which leaves nothing), and nothing there but a file vaekit wrote (`outputs.check_output`).
    ConfigError with one sentence otherwise; `example` is the file name suggested for a directory."""
    ends = ", ".join(formats[:-1]) + (" or " if len(formats) > 1 else "") + formats[-1]
    expected = f"a file name ending in {ends}"
    path, name = Path(text), quoted(text)
    try:
        if not text:
            raise ConfigError(f"{flag} is empty; expected {expected}.")
        if path.is_dir():
            raise ConfigError(f"{flag} {name} is a directory; expected {expected} "
                              f"(such as {quoted(str(free_name(path, example, formats[0])))}).")
        if text.endswith(("/", os.sep)):  # nothing there: a file name does not end in a separator
            raise ConfigError(f"{flag} {name} ends in a '/', as a directory's name does; expected "
                              f"{expected} (such as {quoted(str(path / (example + formats[0])))}).")
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
        raise ConfigError(f"{flag} {name}: {cannot_create(parent, err)}; expected a file in "
                          "a writable directory that exists.") from None
    check_output(path, f"{flag} {name}")
    return path


def check_figures_dir(text: str, claims: Sequence[str]) -> Path:
    """The folder of `vaekit check --figures DIR` for the claims that will run: the law of
    `outputs.check_output_dir` for the figures of those claims (`CHECK_FIGURES`). Claims of which
    none draws a figure are a ConfigError: the folder would be made for nothing."""
    names = [CHECK_FIGURES[c] for c in claims if c in CHECK_FIGURES]
    if not names:
        raise ConfigError(f"--figures {quoted(text)}: none of the claims that run "
                          f"({', '.join(claims)}) draws a figure; leave --figures out, or add "
                          f"{' or '.join(CHECK_FIGURES)} to --only.")
    return check_output_dir(text, names)

