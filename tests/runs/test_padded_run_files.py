"""A run's JSON files padded far past anything vaekit writes (`truncate -s 4G`, a sparse file that
takes no disk): refused from their size, in one sentence naming the file, its size and the bound,
before a byte is read (reading 4 GB took 10-40 s and 8.6 GB of memory, to refuse it after)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from eval_runs import make_run
from hang import deadline
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError

MIB = 2**20
GIB = 2**30
TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
         "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("runs") / "run")
    (run / runs.EVAL).write_text("{}\n")  # read_eval reads it before checking its fields
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def pad(path: Path, size: int) -> None:
    """`truncate -s SIZE PATH`: the file made `size` bytes long, the rest holes (zero bytes)."""
    os.truncate(path, size)
    assert path.stat().st_size == size and path.stat().st_blocks * 512 < 64 * MIB  # sparse


def refused(call: Any, path: Path, bound: str) -> None:
    """`call()` raises one CheckpointError naming `path`, its size and `bound`, within 2 s."""
    with deadline(2), pytest.raises(CheckpointError) as caught:
        call()
    message = str(caught.value)
    assert str(path) in message and bound in message, message
    assert "\n" not in message and message.endswith("."), message


# The bound each file is held to, as the sentence writes it (16 MiB: JSON; 256 MiB: metrics.jsonl,
# some 900,000 rows of ~300 bytes), and a reader of it.
READERS = {
    runs.CONFIG: ("16 MiB", lambda run: runs.read_config(run)),
    runs.EVAL: ("16 MiB", lambda run: runs.read_eval(run, lambda *_: None, "vaekit eval")),
    runs.CHECKPOINT_JSON: ("16 MiB", lambda run: runs.check_readable_copy(run, {})),
    runs.METRICS: ("256 MiB", lambda run: runs.read_metrics(run)),
}


@pytest.mark.parametrize("name", list(READERS))
def test_a_file_just_past_its_bound_is_refused_from_its_size(run: Path, name: str) -> None:
    bound, reader = READERS[name]
    limit = (256 if name == runs.METRICS else 16) * MIB
    pad(run / name, limit + 1)
    refused(lambda: reader(run), run / name, bound)


@pytest.mark.parametrize("name", list(READERS))
def test_a_file_padded_to_4_gib_is_refused_unread(run: Path, name: str) -> None:
    bound, reader = READERS[name]
    pad(run / name, 4 * GIB)
    refused(lambda: reader(run), run / name, "4 GiB")


def test_a_file_at_its_bound_is_read(run: Path) -> None:
    """The bound itself is allowed: a config.json of 16 MiB (JSON, then spaces) reads as JSON."""
    path = run / runs.CONFIG
    text = path.read_bytes().rstrip()
    path.write_bytes(text + b" " * (16 * MIB - len(text)))
    assert path.stat().st_size == 16 * MIB
    assert runs.read_config(run) is not None


def test_resume_of_a_run_with_a_padded_config_is_one_sentence(
        run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pad(run / runs.CONFIG, 4 * GIB)
    with deadline(5):
        status = main([*TRAIN, "--epochs", "3", "--out", str(run), "--resume"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and str(run / runs.CONFIG) in err, err
    assert run.joinpath(runs.CONFIG).stat().st_size == 4 * GIB  # left as it was
