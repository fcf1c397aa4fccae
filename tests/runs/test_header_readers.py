"""A run's checkpoint.safetensors or model.safetensors with bytes after its last tensor (`head -c 100
/dev/zero >> RUN/checkpoint.safetensors`) or cut short: every command that reads the run refuses it
with the sentence of the reader of its tensors (`runs.read_tensors`), the one that `train --resume`
gives, though eval, sample and report read only the checkpoint's header (`runs.read_metadata`); and
the run's files are left as they were."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_refusal import cli_bad, snapshot
from vaekit import runs
from vaekit.errors import CheckpointError

COMMANDS = {
    "eval": ["eval", "{run}", "--k", "5", "--limit", "20", "--no-progress"],
    "sample": ["sample", "{run}", "--out", "{out}"],
    "report": ["report", "{run}"],
    "train --resume": ["train", "--resume", "--out", "{run}", "--no-progress"],
}
FILES = {runs.CHECKPOINT: "checkpoint", runs.MODEL: "model"}


def tensors_span(path: Path) -> tuple[int, int]:
    """The bytes a safetensors file's tensors start and end at, by its header's data offsets (read
    here, from the format: an 8-byte little-endian length, then that much JSON)."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    return 8 + n, 8 + n + max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")


def padded(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(b"\0" * 100)


def cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-5])


@pytest.mark.parametrize("damage", [padded, cut], ids=["padded", "truncated"])
@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_damaged_safetensors_file_alike(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None], damage: Callable[[Path], None], name: str, command: str) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    path = run / name
    start, end = tensors_span(path)
    assert end == path.stat().st_size  # whole, as vaekit wrote it
    damage(path)
    size = path.stat().st_size
    with pytest.raises(CheckpointError) as caught:
        runs.read_tensors(path, FILES[name])
    expected = str(caught.value)
    assert (f"has {size - end:,} bytes" if size > end else
            f"declares {end - start:,} bytes of tensors, {size - start:,} are there") in expected, expected
    before = snapshot(run)
    argv = [a.format(run=run, out=tmp_path / "sample.png") for a in COMMANDS[command]]
    err = cli_bad(capsys, one_sentence, argv, str(path))
    assert err.endswith(f": error: {expected}"), err
    assert snapshot(run) == before  # nothing written, nothing lost
    assert not (tmp_path / "sample.png").exists()


@pytest.mark.parametrize("name", list(FILES))
def test_the_header_reader_holds_the_size_law(trained: Path, tmp_path: Path, name: str) -> None:
    """`read_metadata` of a whole file is its metadata; of a padded one, the tensor reader's refusal."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    path = run / name
    whole = runs.read_metadata(path, FILES[name])
    assert whole == runs.read_tensors(path, FILES[name])[1]
    padded(path)
    with pytest.raises(CheckpointError) as tensors:
        runs.read_tensors(path, FILES[name])
    with pytest.raises(CheckpointError) as header:
        runs.read_metadata(path, FILES[name])
    assert str(header.value) == str(tensors.value)
