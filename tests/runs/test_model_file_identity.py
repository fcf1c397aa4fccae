"""Which model file a run's checkpoint goes with: model.safetensors carries the run's id (and the
epoch of its weights), the checkpoint the SHA-256 of the model file's tensors, so that a model file
copied from another run of the same config, or an older model file of the same run put back, is
refused by every reader and by --resume in one sentence (exit 2), nothing in the run changed; a
model file newer than the checkpoint (a kill between the two writes), and the files of an earlier
vaekit without these fields, stay readable."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_run_identity import TRAIN, every_reader_refuses, refused, snapshot

from vaekit import runs
from vaekit.cli import main
from vaekit.runs.identity import CHECKPOINT_KEY, CONFIG_KEY

RESUME = [*TRAIN, "--epochs", "4", "--resume", "--out"]


def train(out: Path, epochs: int) -> Path:
    assert main([*TRAIN, "--epochs", str(epochs), "--out", str(out)]) == 0
    return out


def best_epoch(run: Path) -> int:
    return int(json.loads((run / runs.CHECKPOINT_JSON).read_text())["progress"]["best_epoch"])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs of the very same flags (the same config and seed): two run ids."""
    root = tmp_path_factory.mktemp("pair")
    return train(root / "a", 1), train(root / "b", 1)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run trained 2 epochs (its files kept in a copy), then resumed to 4, a later epoch its best."""
    root = tmp_path_factory.mktemp("resumed")
    run = train(root / "run", 2)
    early = Path(shutil.copytree(run, root / "early"))
    assert main([*RESUME, str(run)]) == 0
    assert best_epoch(early) == 2 and best_epoch(run) > 2  # digits improves in 4 epochs
    return run, early


def test_a_model_file_copied_from_another_run_of_the_same_config_is_refused(
        pair: tuple[Path, Path], tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    a, b = (Path(shutil.copytree(r, tmp_path / r.name)) for r in pair)
    assert runs.load_run(a).model is not None
    shutil.copy(b / runs.MODEL, a / runs.MODEL)
    every_reader_refuses(a, capsys, one_sentence, str(a / runs.MODEL))
    before = snapshot(a)
    err = refused(capsys, one_sentence, [*RESUME, str(a)], str(a / runs.MODEL))
    assert "another run" in err and runs.run_id(b) in err
    assert snapshot(a) == before


def test_an_older_model_file_of_the_same_run_is_refused(resumed: tuple[Path, Path], tmp_path: Path,
                                                       capsys: Any, one_sentence: Any) -> None:
    run = Path(shutil.copytree(resumed[0], tmp_path / "run"))
    shutil.copy(resumed[1] / runs.MODEL, run / runs.MODEL)  # epoch 2's best, put back
    every_reader_refuses(run, capsys, one_sentence, str(run / runs.MODEL), str(run / runs.CHECKPOINT))
    before = snapshot(run)
    resume = [*TRAIN, "--epochs", "6", "--resume", "--out", str(run)]  # past the run's 4
    err = refused(capsys, one_sentence, resume, str(run / runs.MODEL))
    assert "older or other model file" in err and f"epoch {best_epoch(run)}" in err
    assert snapshot(run) == before


def test_the_checkpoint_records_the_sha256_of_its_model_files_tensors(resumed: tuple[Path, Path]) -> None:
    """Computed here from safetensors' own reading of the file, independently of vaekit."""
    for run in resumed:
        tensors = load_file(str(run / runs.MODEL))
        digest = hashlib.sha256()
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            digest.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode() + b"\0")
            digest.update(t.numpy().tobytes())
        state = json.loads((run / runs.CHECKPOINT_JSON).read_text())
        assert state[runs.MODEL_SHA_KEY] == digest.hexdigest()
        metadata = runs.read_metadata(run / runs.MODEL, "model") or {}
        assert metadata["vaekit.run_id"] == runs.run_id(run)
        assert metadata["vaekit.epoch"] == str(best_epoch(run))


def test_a_model_file_newer_than_its_checkpoint_is_read(resumed: tuple[Path, Path], tmp_path: Path) -> None:
    """A kill after the best model's write and before its checkpoint's: the run's best, read and
    resumed."""
    run = Path(shutil.copytree(resumed[0], tmp_path / "run"))
    for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):
        shutil.copy(resumed[1] / name, run / name)  # the checkpoint of epoch 2, the model of a later epoch
    assert runs.load_run(run).model is not None
    assert main([*RESUME, str(run)]) == 0
    assert runs.load_run(run).model is not None


def _as_earlier_vaekit(run: Path) -> None:
    """The model file and checkpoint as a vaekit before run ids in model files wrote them."""
    tensors, metadata = runs.read_tensors(run / runs.MODEL, "test")
    save_file(tensors, str(run / runs.MODEL), metadata={CONFIG_KEY: metadata[CONFIG_KEY]})
    tensors, metadata = runs.read_tensors(run / runs.CHECKPOINT, "test")
    state = json.loads(metadata[CHECKPOINT_KEY])
    del state[runs.MODEL_SHA_KEY]
    save_file(tensors, str(run / runs.CHECKPOINT), metadata={CHECKPOINT_KEY: json.dumps(state)})
    (run / runs.CHECKPOINT_JSON).write_text(json.dumps(state))


def test_files_of_an_earlier_vaekit_stay_readable(resumed: tuple[Path, Path], tmp_path: Path) -> None:
    run = Path(shutil.copytree(resumed[0], tmp_path / "run"))
    _as_earlier_vaekit(run)
    loaded, written = runs.load_run(run).model.state_dict(), load_file(str(resumed[0] / runs.MODEL))
    assert set(loaded) == set(written) and all(torch.equal(loaded[k], v) for k, v in written.items())
    assert main([*TRAIN, "--epochs", "5", "--resume", "--out", str(run)]) == 0
    assert runs.load_run(run).model is not None
