"""The files of a run directory (the table: `vaekit.runs`): atomic writes, the one-writer lock,
figures and strict JSON (metrics.jsonl: `vaekit.runs.metrics`; safetensors and eval.json:
`vaekit.runs.tensor_files`).

Every file is written to `.NAME.vaekit-PID.tmp` (`temp_path`: a name no user file has, which the
lock's clean-up recognises as vaekit's own, `is_temp`), flushed to disk and renamed over `NAME`
with `os.replace` (atomic on POSIX), so a kill at any moment leaves the previous good version.
JSON is written strict (no NaN or Infinity: `strict_json`). Every file is read only once it is
known to be a regular file (`vaekit.regular`): a FIFO is never waited on, a directory or a
dangling link is one sentence. Nothing is ever read with pickle: tensors come from safetensors
(`vaekit.runs.tensor_files`, with eval.json, tied to the model's weights), the rest from JSON.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vaekit.config import BEYOND_FLOAT
from vaekit.device import format_bytes
from vaekit.errors import CheckpointError, ConfigError, RunBusyError, RunWriteError
from vaekit.regular import cannot_follow, check_directory, kind_of, open_regular, unreachable

CONFIG = "config.json"
MODEL = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
METRICS = "metrics.jsonl"
EVAL = "eval.json"
REPORT = "report.html"
RUN_FILES = (CONFIG, MODEL, CHECKPOINT, CHECKPOINT_JSON, METRICS, EVAL, REPORT)
RESULT_FILES = (MODEL, CHECKPOINT, CHECKPOINT_JSON, METRICS, EVAL, REPORT)  # all but config.json
CHECKPOINT_KEY = "checkpoint"  # checkpoint.safetensors metadata: the state (`weights.save_checkpoint`)
CONFIG_KEY = "vaekit.config"  # model.safetensors metadata: the config.json it was trained with
TMP = ".tmp"  # suffix of a file being written (`temp_path`)
NAME_MAX = 255  # bytes of a file name (Linux's ext4, xfs, btrfs, tmpfs; macOS's APFS)
# the fix for a run file that is damaged, cut or another run's, where vaekit cannot write it again
PUT_BACK = "put back the run's own file, or train the run again into another --out"
_TEMP = re.compile(r"\.(?P<name>.+)\.vaekit-(?P<pid>[0-9]+)\.tmp")  # the names `temp_path` gives
MAX_HEADER = 100_000_000  # the longest safetensors header read (the format's own limit)
JSON_LIMIT = 16 * 2**20  # the largest JSON file of a run read (config.json, checkpoint.json, eval.json)
METRICS_LIMIT = 256 * 2**20  # the largest metrics.jsonl read (a row is some 300 bytes: ~900,000 epochs)


# ----------------------------------------------------------------------------- temporary files


def temp_path(path: Path, pid: int | None = None) -> Path:
    """Where `write_bytes_atomic` writes `path` before its rename: `.NAME.vaekit-PID.tmp` beside it
    (PID: this process's), a name that says whose it is. A NAME too long for that within NAME_MAX
    bytes (a name of 255 bytes is legal, its temporary name would not be) is cut, a character cut in
    two (or a byte that is not UTF-8) left out, and 16 hex digits of its SHA-256 put after the cut,
    so that another long name cut alike gets another file."""
    tail = f".vaekit-{os.getpid() if pid is None else pid}{TMP}"
    name = path.name
    room = NAME_MAX - len(tail) - 1  # the leading dot
    whole = os.fsencode(name)
    if len(whole) > room:
        name = whole[: room - 17].decode("utf-8", "ignore") + "~" + hashlib.sha256(whole).hexdigest()[:16]
    return path.with_name(f".{name}{tail}")


def is_temp(name: str) -> bool:
    """Whether a file name is one `temp_path` gives: a temporary file of vaekit's."""
    return _TEMP.fullmatch(name) is not None


def is_stale_temp(name: str) -> bool:
    """Whether a file name is a temporary file a killed vaekit left of a run's own file: the name
    `temp_path` gives to one of RUN_FILES, whose writer (the PID in the name) is no longer alive.
    A user's `.notes.vaekit-1.tmp` is neither, and a live writer's file is left to it."""
    match = _TEMP.fullmatch(name)
    if match is None or match["name"] not in RUN_FILES:
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or a PID no process can have
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


# ----------------------------------------------------------------------------- bounded reads


def read_run_file(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of a run's JSON or JSONL file at `path` (`open_regular`: FileNotFoundError if
    nothing is there), its size looked at (fstat of what was opened) before a byte is read: one
    larger than `limit` (by default `METRICS_LIMIT` for metrics.jsonl, `JSON_LIMIT` for any other)
    is a CheckpointError naming it, its size and the bound, never read into memory."""
    if limit is None:
        limit = METRICS_LIMIT if Path(path).name == METRICS else JSON_LIMIT
    with open_regular(path, what, CheckpointError) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise CheckpointError(f"{path}: {format_bytes(size)}, more than the {format_bytes(limit)} vaekit "
                                  f"reads of {what}; it is not a file vaekit wrote, so it is left unread.")
        try:
            return fh.read()
        except OSError as err:
            raise CheckpointError(cannot_follow(path, err, what)) from None


# ----------------------------------------------------------------------------- atomic writes


def write_error(path: Path, size: int, err: OSError) -> RunWriteError:
    """One sentence for a write that failed: which file, why, and how much space it needed. A file
    refused in a directory that takes new files (an immutable file) is blamed on the file."""
    if err.errno == errno.ENOSPC:
        try:
            free = shutil.disk_usage(path.parent).free
            room = f", {format_bytes(free, 1)} free"
        except OSError:
            room = ""
        why = f"no space left on the device for its {format_bytes(size, 1)}{room}"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        said = err.strerror.lower() if err.strerror else "not writable"
        if err.errno != errno.EROFS and os.path.lexists(path) and os.access(path.parent, os.W_OK):
            # the directory takes new files: the file itself is what refuses (immutable or
            # append-only, `lsattr`; or not this user's to change)
            why = (f"{said}: the file itself cannot be changed or replaced (immutable or append-only, or "
                   "not writable)")
        else:
            why = f"{said}: the directory is not writable"
    elif err.errno in (errno.ENOTDIR, errno.ENOENT, errno.EEXIST):
        why = f"{path.parent} is not a directory that can hold it"
    else:
        why = (err.strerror or str(err)).rstrip(".")
    return RunWriteError(f"{path}: cannot write it ({why}); the previous version, if any, is kept.")


def check_writable(path: Path) -> None:
    """What `write_bytes_atomic` needs to write `path`, tried before the work that computes its
    bytes: nothing but a regular file there that may be replaced (not immutable or append-only:
    `_check_replaceable`), and a temporary file of vaekit's made and removed beside it (a read-only
    or full file system, a directory that does not take new files); the same `RunWriteError`
    sentence as the write's, nothing left behind and nothing changed."""
    _check_replaceable(path)
    if os.path.isfile(path) and not os.path.islink(path):
        try:  # opened for writing, not truncated, closed at once: an immutable or append-only file
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # is EPERM (root's too)
        except OSError as err:
            if err.errno == errno.EPERM:  # EACCES (a read-only file of this user) is still replaced
                raise write_error(path, 0, err) from None
        else:
            os.close(fd)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as err:
        raise write_error(path, 0, err) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def check_files_writable(run_dir: Path, names: tuple[str, ...]) -> None:
    """`check_writable` of each of `names` in `run_dir` (the files a session will replace or append
    to), before it changes any of them: a refusal leaves the run as it was. A symbolic link there is
    refused too, wherever it leads: vaekit writes a run's files in the run, never through a link
    into a file elsewhere (an append to metrics.jsonl would follow it)."""
    for name in names:
        if os.path.islink(run_dir / name):
            raise RunWriteError(f"{run_dir / name}: cannot write it (it is a symbolic link, and vaekit "
                                "writes a run's files only as regular files in the run directory); it is "
                                "left as it is.")
        check_writable(run_dir / name)


def _check_replaceable(path: Path) -> None:
    """Nothing at `path`, a regular file, or a link to one; else (a directory, a device, a link to
    nothing or to a loop: never replaced) a RunWriteError saying what is there."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if not os.path.islink(path):
            return  # nothing there (the write says why, if it cannot be made)
        what = unreachable(path, err)
    else:
        if stat.S_ISREG(mode):
            return
        what = kind_of(mode)
    raise RunWriteError(f"{path}: cannot write it (it is {what}, not a regular file); it is left as it is.")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `temp_path(path)`, fsync, then rename over `path` (atomic on POSIX). On any
    failure (disk full, read-only, an interrupt) the temporary file is removed and `path` is left
    as it was; an OSError becomes a `RunWriteError` sentence."""
    _check_replaceable(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, RunWriteError):
            raise write_error(path, len(data), err) from None
        raise


# ----------------------------------------------------------------------------- one writer


_HELD: dict[str, list[int]] = {}  # resolved run directory -> [fd, depth] held by this process


@contextlib.contextmanager
def new_run_dir(run_dir: Path) -> Iterator[None]:
    """Create RUN_DIR (and its parents) for the run that runs inside; where it did not exist and the
    run fails while it is still empty (refused once locked: a time budget too short for an epoch),
    remove it again, so that a refusal leaves no empty directory. One that existed is left as it was;
    one that holds anything is kept (rmdir removes only an empty directory)."""
    created = not os.path.lexists(run_dir)
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{run_dir}: cannot create the run directory ({err.strerror or err}).") from None
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(run_dir)
        raise


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for writing: an exclusive, non-blocking flock(2) on the directory
    itself. The kernel releases it when the process ends, however it ends (kill -9 too), so there
    is no lock file to go stale. A second process gets `RunBusyError` at once; the same process may
    nest (a report that evaluates first). The temporary files a killed writer left (`is_temp`: only
    vaekit's own, never a user's `NAME.tmp`) are removed once the lock is held."""
    key = os.path.realpath(run_dir)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    check_directory(Path(run_dir), "a run directory", CheckpointError)
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise CheckpointError(f"{run_dir}: cannot open the run directory ({err.strerror}).") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunBusyError(f"{run_dir} is being written by another vaekit process (a train, eval, "
                           "report or sample of this run); wait for it to end, or use another "
                           "directory.") from None
    _HELD[key] = [fd, 1]
    try:
        stale: list[Path] = []
        with contextlib.suppress(OSError), os.scandir(run_dir) as entries:
            stale = [Path(e.path) for e in entries
                     if is_stale_temp(e.name) and e.is_file(follow_symlinks=False)]
        for path in stale:
            with contextlib.suppress(OSError):
                path.unlink()
        yield
    finally:
        del _HELD[key]
        os.close(fd)  # releases the lock


def held_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds `run_dir` for writing (`locked`) at this moment: a training,
    whose files a reader may find between two of its writes (a new model file, the checkpoint that
    records it not yet). Asked with a shared flock(2) taken and dropped at once; False where this
    process holds it, or the directory cannot be opened."""
    if os.path.realpath(run_dir) in _HELD:
        return False
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def render_figure(fig: Any, path: str | Path, dpi: int = 100, metadata: dict[str, str] | None = None,
                  tight: bool = True) -> bytes:
    """A matplotlib figure rendered in memory, in the format of `path`'s suffix (png by default),
    with `metadata` (matplotlib's: 'Software' of a PNG, 'Creator' of an SVG or a PDF) and, when
    `tight`, the margins cut to what is drawn; the figure is closed, whatever happens."""
    import matplotlib.pyplot as plt  # only when a figure is saved: matplotlib is slow to import

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=dpi,
                    metadata=metadata, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return buffer.getvalue()


FIGURES = "figures"  # a run's folder of figures


def figures_dir(run_dir: str | Path) -> Path:
    """RUN_DIR/figures, checked to be the run's own folder: missing (made when a figure is written)
    or a plain directory; a symbolic link (to a folder of a user's) or anything else is a
    RunWriteError naming it, so that nothing is written outside the run."""
    path = Path(run_dir) / FIGURES
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        what = "a symbolic link" if path.is_symlink() else "not a directory"
        raise RunWriteError(f"{path} is {what}; vaekit writes a run's figures only into a folder of the "
                            "run's own, so move it out of the run (the next report makes the folder).")
    return path


def save_figure(fig: Any, path: str | Path, dpi: int = 100, metadata: dict[str, str] | None = None) -> Path:
    """Render a matplotlib figure in memory (`render_figure`, margins cut), then write it with
    `write_bytes_atomic`, its folder made: a full disk or an unwritable place leaves no partial
    image and gives one sentence (`RunWriteError`)."""
    path = Path(path)
    data = render_figure(fig, path, dpi, metadata)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, len(data), err) from None
    write_bytes_atomic(path, data)
    return path


def _not_finite(obj: Any, where: str = "") -> str | None:
    """The place ('a.b[1]') of the first NaN or infinite float in a JSON-able object, or None."""
    found = _first_not_finite(obj, where)
    return None if found is None else found[0]


def _first_not_finite(obj: Any, where: str = "") -> tuple[str, float] | None:
    """(place, value) of the first NaN or infinite float in a JSON-able object, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value", obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    for key, value in items:
        found = _first_not_finite(value, f"{where}[{key}]" if isinstance(key, int) else
                                  f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


class NotStrictJSON(ValueError):
    """Whole JSON text holding Python's NaN, Infinity or -Infinity, a number beyond any float or a
    key repeated in an object: not cut, not strict."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's pairs as a dict; a key given twice (json.loads keeps the last without a word) is
    NotStrictJSON, as vaekit writes each key once."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise NotStrictJSON(f"the key {json.dumps(key)[:40]} is given twice in one object")
        found[key] = value
    return found


def parse_json(text: str | bytes) -> Any:
    """Strict JSON (RFC 8259), as vaekit writes it: `json.loads` without its NaN, Infinity and
    -Infinity (Python's extensions), numbers beyond any float and keys repeated in an object, and
    with arrays or objects nested too deeply for the parser (a RecursionError) a ValueError as any
    other text that is not JSON, so that every reader's one sentence says it."""
    try:
        value = json.loads(text, parse_float=_JSONFloat.of, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("arrays or objects nested too deeply") from None
    found = _first_not_finite(value)
    if found is not None:  # Python's NaN, Infinity or -Infinity: named with where it is
        place, x = found
        if isinstance(x, _JSONFloat):  # a JSON number, 1e400, that float() reads as inf
            raise NotStrictJSON(f"{place} is {x.written}, {BEYOND_FLOAT}")
        written = "NaN" if math.isnan(x) else "Infinity" if x > 0 else "-Infinity"
        raise NotStrictJSON(f"{place} is {written}, which is not a JSON number")
    return value


class _JSONFloat(float):
    """A JSON number written finite that float() reads as inf, with its text (`written`)."""

    written: str

    @staticmethod
    def of(text: str) -> float:
        value = float(text)
        if not math.isinf(value):
            return value
        kept = _JSONFloat(value)
        kept.written = text[:40]
        return kept


def strict_json(obj: Any, path: Path, indent: int | None = None) -> str:
    """`obj` as strict JSON (RFC 8259: no NaN, no Infinity); a RunWriteError naming the place of a
    value that is not finite, for the file `path` it was going to."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:
        place = _not_finite(obj)
        if place is None:
            raise
        raise RunWriteError(f"{path}: cannot write it ({place} is not a finite number, and vaekit writes "
                            "strict JSON); the previous version, if any, is kept.") from None


def write_json_atomic(path: Path, obj: Any) -> None:
    """`obj` as strict, indented JSON (`strict_json`), written atomically."""
    write_bytes_atomic(path, (strict_json(obj, path, indent=2) + "\n").encode())
