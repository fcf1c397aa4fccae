"""The safetensors files of a run (model.safetensors, checkpoint.safetensors) and the fingerprint
that ties an eval.json to the model's weights.

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON (each tensor's
dtype, shape and data_offsets, and a `__metadata__` of strings), then the tensors' bytes, which end
where the header's largest data offset says. That is the one law every reader here holds a file
to (`tensor_bytes`), from its header alone (at most MAX_HEADER bytes, as safetensors itself reads)
and the file's size, before its tensors are read: a file with bytes after its last tensor (padding,
another file appended), a truncated one or one with no such header is one sentence naming it, and
a file padded to gigabytes is never read into memory. `read_metadata` reads the header alone,
held to the same law (`_checked_header`), so that a reader of the header alone refuses what a
reader of the tensors refuses, in the same sentence.
`model_fingerprint` is the SHA-256 that ties an eval.json to its weights.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from vaekit.device import format_bytes
from vaekit.errors import CheckpointError
from vaekit.regular import cannot_follow, open_regular
from vaekit.runs.files import MAX_HEADER, MODEL, PUT_BACK, parse_json, write_bytes_atomic


def save_tensors(path: Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """A safetensors file of CPU, contiguous copies of `tensors`, written atomically."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    write_bytes_atomic(path, st_save(cpu, metadata=metadata))


def read_tensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; CheckpointError if missing, truncated, padded or
    foreign (`tensor_bytes`)."""
    try:
        data = tensor_bytes(path, what)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no {what} file there.") from None
    return parse_tensors(data, path, what)


def incomplete(path: Path, what: str, why: str = "truncated, or another format") -> str:
    """The sentence for a run's file at `path` that is not a whole safetensors file, `why`, and its fix."""
    return f"{path}: not a complete safetensors file ({why}); the {what} cannot be read: {PUT_BACK}."


def parse_tensors(data: bytes, path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of the bytes of a safetensors file read from `path`; a CheckpointError
    naming it if they are not a complete one (empty, truncated, another format)."""
    try:
        tensors = st_load(data)
        header = parse_json(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
    except (SafetensorError, ValueError, struct.error, OverflowError):
        raise CheckpointError(incomplete(path, what)) from None
    return tensors, dict(header.get("__metadata__") or {})


def _header(fh: BinaryIO) -> tuple[Any, int] | None:
    """The header of the safetensors file open in `fh`, read from its start (an 8-byte
    little-endian length, then that many bytes of JSON: at most MAX_HEADER, never more), and the
    byte its tensors start at; None if its first bytes are not such a header."""
    head = fh.read(8)
    n = struct.unpack("<Q", head)[0] if len(head) == 8 else MAX_HEADER + 1
    text = fh.read(n) if n <= MAX_HEADER else b""
    try:
        return (parse_json(text), 8 + n) if len(text) == n else None
    except ValueError:
        return None


def _tensors_end(header: Any) -> int | None:
    """The bytes of tensors a safetensors header declares (the largest end of its data_offsets);
    None if it is not a header's JSON object."""
    if not isinstance(header, dict):
        return None
    ends = [0]
    for key, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if key != "__metadata__":
            if not (isinstance(offsets, list) and len(offsets) == 2
                    and all(type(o) is int and o >= 0 for o in offsets)):
                return None
            ends.append(offsets[1])
    return max(ends)


def _checked_header(fh: BinaryIO, path: Path, what: str) -> Any | None:
    """The header of the safetensors file open in `fh` (read from its start, `_header`), held to
    the file's size (os.fstat): None if its first bytes are not such a header; a CheckpointError
    naming `path` if the file holds more bytes after the header than its tensors take (padding, a
    file appended) or fewer (truncated). The one law of `tensor_bytes` and `read_metadata`."""
    size, found = os.fstat(fh.fileno()).st_size, _header(fh)
    end = None if found is None else _tensors_end(found[0])
    if found is None or end is None:
        return None
    extra = size - found[1] - end
    if extra > 0:
        raise CheckpointError(
            f"{path} has {extra:,} bytes ({format_bytes(extra)}) after its last tensor, where "
            f"a safetensors file ends; the {what} is left unread.")
    if extra < 0:
        raise CheckpointError(incomplete(path, what, f"truncated: its header declares {end:,} "
                                         f"bytes of tensors, {end + extra:,} are there"))
    return found[0]


def tensor_bytes(path: Path, what: str) -> bytes:
    """The bytes of the safetensors file at `path` (`open_regular`: FileNotFoundError if nothing
    is there), read whole only once its header, read alone, declares as many bytes of tensors as
    the file holds after it (`_checked_header`): a file with bytes after its last tensor (padding, a
    file appended), a truncated one or one with no such header is a CheckpointError naming it, its
    tensors unread."""
    named = f"the {what}'s safetensors file"
    with open_regular(path, named, CheckpointError) as fh:
        try:
            if _checked_header(fh, path, what) is None:
                raise CheckpointError(incomplete(path, what))
            fh.seek(0)
            return fh.read()
        except OSError as err:
            raise CheckpointError(cannot_follow(path, err, named)) from None


def read_metadata(path: Path, what: str) -> dict[str, str] | None:
    """The `__metadata__` of the safetensors file of the `what` (model, checkpoint) at `path`, read
    from its header alone (not its tensors), once the header is held to the file's size as
    `tensor_bytes` holds it (`_checked_header`): a padded or truncated file is the same
    CheckpointError, in the same sentence. None if nothing is there, it cannot be read, or the
    header is not that of a safetensors file (its readers say so); a CheckpointError if something
    else than a regular file is there."""
    try:
        with open_regular(path, "a safetensors file", CheckpointError) as fh:
            header = _checked_header(fh, path, what)
    except OSError:  # nothing there (FileNotFoundError), or unreadable
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return None
    return metadata


def model_fingerprint(run_dir: str | Path) -> str:
    """SHA-256 of the run's model.safetensors: which weights an eval.json belongs to. A model file
    that is not a complete safetensors file (empty, truncated) is a CheckpointError naming it, not
    an eval.json "of other weights"."""
    path = Path(run_dir) / MODEL
    try:
        data = tensor_bytes(path, "model")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no model file there; train the run first.") from None
    parse_tensors(data, path, "model")
    return hashlib.sha256(data).hexdigest()
