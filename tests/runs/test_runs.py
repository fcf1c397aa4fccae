"""vaekit.runs: load_run round trip and one-sentence CheckpointErrors; atomic writes; checkpoints."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from vaekit import runs
from vaekit.config import TrainConfig
from vaekit.errors import CheckpointError
from vaekit.vae.models import build_model


def make_run(tmp_path: Path) -> tuple[Path, torch.nn.Module, TrainConfig]:
    config = TrainConfig()
    config.model.image_shape, config.model.hidden, config.model.latent = [1, 8, 8], [16], 3
    torch.manual_seed(0)
    model = build_model(config)
    run = tmp_path / "run"
    run.mkdir()
    runs.write_config(run, config)
    runs.save_weights(run, dict(model.state_dict()), config.to_dict())
    return run, model, config


def test_load_run_round_trip(tmp_path: Path) -> None:
    run, model, config = make_run(tmp_path)
    loaded_run = runs.load_run(str(run))
    loaded, loaded_config = loaded_run.model, loaded_run.config
    assert loaded_config == config
    assert not loaded.training
    saved, got = model.state_dict(), loaded.state_dict()
    assert saved.keys() == got.keys()
    assert all(torch.equal(saved[k], got[k]) for k in saved)
    # the file is plain safetensors: an independent reader sees the same tensors
    from safetensors.torch import load_file

    raw = load_file(str(run / runs.MODEL))
    assert all(torch.equal(raw[k], saved[k]) for k in saved)


def test_missing_directory(tmp_path: Path, one_sentence) -> None:
    with pytest.raises(CheckpointError) as err:
        runs.load_run(tmp_path / "nope")
    one_sentence(str(err.value), str(tmp_path / "nope"))


def test_missing_model(tmp_path: Path, one_sentence) -> None:
    run, _, _ = make_run(tmp_path)
    (run / runs.MODEL).unlink()
    with pytest.raises(CheckpointError, match="no model file") as err:
        runs.load_run(run)
    one_sentence(str(err.value), runs.MODEL)


@pytest.mark.parametrize("keep", [0, 7, 100, -10])
def test_truncated_model(tmp_path: Path, keep: int, one_sentence) -> None:
    run, _, _ = make_run(tmp_path)
    data = (run / runs.MODEL).read_bytes()
    (run / runs.MODEL).write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match="not a complete safetensors file") as err:
        runs.load_run(run)
    one_sentence(str(err.value), runs.MODEL)


def test_pickle_is_refused_not_loaded(tmp_path: Path, one_sentence) -> None:
    run, model, _ = make_run(tmp_path)
    torch.save(model.state_dict(), run / runs.MODEL)  # a pickle archive under the safetensors name
    with pytest.raises(CheckpointError) as err:
        runs.load_run(run)
    one_sentence(str(err.value), runs.MODEL)
    (run / runs.MODEL).write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        runs.load_run(run)


def test_other_architecture(tmp_path: Path) -> None:
    run, _, config = make_run(tmp_path)
    config.model.latent = 4
    runs.write_config(run, config)
    with pytest.raises(CheckpointError, match="model.latent: 4 here, 3 in training"):
        runs.load_run(run)


def test_missing_config(tmp_path: Path) -> None:
    run, _, _ = make_run(tmp_path)
    (run / runs.CONFIG).unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        runs.load_run(run)
    (run / runs.CONFIG).write_text(json.dumps({"model": {"colour": 3}}))
    with pytest.raises(CheckpointError, match="unknown key model.colour"):
        runs.load_run(run)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.json"
    runs.write_json_atomic(path, {"v": 1})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("killed")

    monkeypatch.setattr(runs.files.os, "replace", broken_replace)
    with pytest.raises(OSError):
        runs.write_json_atomic(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}


def test_optimizer_state_round_trip() -> None:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    for name, opt in [("adam", torch.optim.Adam(params, lr=0.1)),
                      ("sgd", torch.optim.SGD(params, lr=0.1, momentum=0.9))]:
        for _ in range(2):
            opt.zero_grad()
            (params[0].sum() ** 2 + params[1].pow(3).sum()).backward()
            opt.step()
        tensors, scalars = runs.optimizer_to_flat(opt)
        back = runs.optimizer_from_flat(tensors, json.loads(json.dumps(scalars)))
        ref = opt.state_dict()
        assert back["state"].keys() == ref["state"].keys(), name
        for pid, entries in ref["state"].items():
            for key, value in entries.items():
                assert torch.equal(back["state"][pid][key], value), (name, pid, key)


def test_metrics_line_cut_by_a_kill_is_dropped(tmp_path: Path) -> None:
    runs.append_metrics(tmp_path, {"epoch": 1, "val_neg_elbo": 3.5})
    with open(tmp_path / runs.METRICS, "a") as fh:
        fh.write('{"epoch": 2, "val_ne')
    assert runs.read_metrics(tmp_path) == [{"epoch": 1, "val_neg_elbo": 3.5}]
    runs.truncate_metrics(tmp_path, 1)
    assert (tmp_path / runs.METRICS).read_text() == '{"epoch": 1, "val_neg_elbo": 3.5}\n'
    (tmp_path / runs.METRICS).write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(CheckpointError, match="line 2 is not JSON"):
        runs.read_metrics(tmp_path)


def test_an_atomic_write_never_replaces_a_device_or_a_directory(tmp_path: Path, one_sentence) -> None:
    """/dev/null (as root, os.replace would swap the device node for a regular file) and a directory
    are refused with one sentence, and left as they were."""
    from vaekit.errors import RunWriteError

    for target in (Path("/dev/null"), tmp_path):
        before = target.stat()
        with pytest.raises(RunWriteError) as err:
            runs.write_bytes_atomic(target, b"x")
        one_sentence(str(err.value), str(target))
        after = target.stat()
        assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert not runs.temp_path(Path("/dev/null")).exists()


@pytest.mark.parametrize("pid", [None, 7, 4_194_304])  # the cut falls elsewhere with the PID's digits
@pytest.mark.parametrize("stem", ["a" * 251, "\u00e9" * 125, "x" * 200 + "\u00e9" * 25 + "y", "\u20ac" * 83])
def test_a_name_of_255_bytes_is_written_through_a_temporary_name_that_fits(tmp_path: Path, stem: str,
                                                                          pid: int | None) -> None:
    """A file name of up to 255 bytes is legal; its temporary name (`.NAME.vaekit-PID.tmp`) is cut
    to fit, whole characters of UTF-8, recognised as vaekit's, and another name that shares the cut
    part gets another one."""
    path = tmp_path / f"{stem}.png"
    assert len(path.name.encode()) <= 255
    runs.write_bytes_atomic(path, b"bytes")
    assert path.read_bytes() == b"bytes" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    temp = runs.temp_path(path, pid)
    assert len(temp.name.encode()) <= 255 and runs.is_temp(temp.name)  # .encode(): UTF-8 throughout
    assert temp != runs.temp_path(path.with_name(f"{stem}.svg"), pid)
    assert runs.temp_path(tmp_path / "short.png").name == f".short.png.vaekit-{os.getpid()}.tmp"
