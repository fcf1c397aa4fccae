"""A safetensors file (a run's model.safetensors or checkpoint.safetensors) with bytes after its last
tensor, or padded to gigabytes (`truncate -s 3G`, a sparse file that takes no disk): refused from its
header and its size, in one sentence naming the file and the bytes after its last tensor, before
its tensors are read (a 2 GB file was read whole, 2.3 GB of memory, then called "truncated"). A
truncated file is still called truncated; a whole one still loads."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from hang import deadline
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError

MIB = 2**20
GIB = 2**30
READ_BOUND = MIB  # what a refusal may read: the 8-byte length and the JSON header of a tiny module


class Counted:
    """A file object that counts the bytes read through it."""

    def __init__(self, fh: Any, tally: list[int]) -> None:
        self._fh, self._tally = fh, tally

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._tally.append(len(data))
        return bytes(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the reads from every file vaekit opens for reading (`open_regular` opens its
    file descriptor with os.fdopen) while the test runs."""
    counts: list[int] = []
    real = os.fdopen

    def counted(fd: int, *args: Any, **kwargs: Any) -> Any:
        return Counted(real(fd, *args, **kwargs), counts)

    monkeypatch.setattr(os, "fdopen", counted)
    return counts


def tiny_module_file(path: Path) -> dict[str, torch.Tensor]:
    """A real torch module's weights saved with safetensors itself; its tensors."""
    torch.manual_seed(0)
    tensors = {k: v.contiguous() for k, v in torch.nn.Linear(5, 3).state_dict().items()}
    save_file(tensors, str(path), metadata={"made by": "safetensors.torch.save_file"})
    return tensors


def refusal(call: Any) -> str:
    """The sentence of the CheckpointError `call()` raises, within 2 s."""
    with deadline(2), pytest.raises(CheckpointError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.endswith("."), message
    return message


def test_a_whole_file_loads(tmp_path: Path, tally: list[int]) -> None:
    path = tmp_path / "model.safetensors"
    saved = tiny_module_file(path)
    tensors, metadata = runs.read_tensors(path, "model")
    assert tensors.keys() == saved.keys() and all(torch.equal(tensors[k], saved[k]) for k in saved)
    assert metadata == {"made by": "safetensors.torch.save_file"}
    assert sum(tally) >= path.stat().st_size  # read whole


@pytest.mark.parametrize("extra", [1, 4096])
def test_bytes_after_the_last_tensor_are_named(tmp_path: Path, extra: int) -> None:
    path = tmp_path / "model.safetensors"
    tiny_module_file(path)
    with path.open("ab") as fh:
        fh.write(b"\0" * extra)
    message = refusal(lambda: runs.read_tensors(path, "model"))
    assert str(path) in message and f"{extra:,} bytes" in message and "after its last tensor" in message
    assert "truncated" not in message, message


def test_a_file_padded_to_3_gib_is_refused_unread(tmp_path: Path, tally: list[int]) -> None:
    path = tmp_path / "model.safetensors"
    tiny_module_file(path)
    whole = path.stat().st_size
    os.truncate(path, 3 * GIB)  # sparse: no disk taken
    message = refusal(lambda: runs.read_tensors(path, "model"))
    assert str(path) in message and f"{3 * GIB - whole:,} bytes" in message, message
    assert "after its last tensor" in message and "truncated" not in message, message
    assert 0 < sum(tally) < READ_BOUND, tally


@pytest.mark.parametrize("cut", [1, 8, 20])
def test_a_truncated_file_is_called_truncated(tmp_path: Path, cut: int) -> None:
    """Cut inside its tensors (1, 8 bytes short) or inside its header (20 bytes in)."""
    path = tmp_path / "model.safetensors"
    tiny_module_file(path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut] if cut < 20 else data[:cut])
    message = refusal(lambda: runs.read_tensors(path, "model"))
    assert str(path) in message and "truncated" in message, message


def test_a_header_length_past_the_formats_bound_is_refused_unread(tmp_path: Path, tally: list[int]) -> None:
    """A first 8 bytes that declare a 200 MB header (past safetensors' own 100 MB bound), in a
    file that long: not read."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 200_000_000) + b"{")
    os.truncate(path, 300 * MIB)
    message = refusal(lambda: runs.read_tensors(path, "model"))
    assert str(path) in message and "not a complete safetensors file" in message, message
    assert sum(tally) < READ_BOUND, tally


def test_eval_of_a_run_with_a_padded_model_is_one_sentence(
        run: Path, tally: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    path = run / runs.MODEL
    whole = path.stat().st_size
    os.truncate(path, 3 * GIB)
    with deadline(5):
        status = main(["eval", str(run), "--k", "10", "--limit", "30", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert str(path) in err and f"{3 * GIB - whole:,} bytes" in err and "after its last tensor" in err, err
    assert sum(tally) < 16 * MIB, sum(tally)  # the run's small files, not the model's padding
    assert path.stat().st_size == 3 * GIB  # left as it was


def test_a_padded_checkpoint_is_refused_unread(run: Path, tally: list[int]) -> None:
    path = run / runs.CHECKPOINT
    whole = path.stat().st_size
    os.truncate(path, 3 * GIB)
    message = refusal(lambda: runs.load_checkpoint(run))
    assert str(path) in message and f"{3 * GIB - whole:,} bytes" in message, message
    assert sum(tally) < READ_BOUND, tally
    assert runs.model_fingerprint(run)  # the model beside it, whole, still reads
