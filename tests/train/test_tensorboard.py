"""vaekit.train.tensorboard (`vaekit train --tensorboard`) on the 8x8 digits: the event log read back
with TensorBoard's own EventAccumulator (scalars equal to metrics.jsonl, image grids of the right
size and content), the grid against hand-built ones, the missing package (exit 2, nothing written)
and a resume that continues the log, redone epochs replacing theirs."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit import runs
from vaekit.classify.fit import ClassifierTask
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.data.load import Dataset
from vaekit.report import visualize
from vaekit.train import tensorboard
from vaekit.train.fit import VAETask, fit
from vaekit.train.tensorboard import Boarded
from vaekit.vae.models import build_model

pytest.importorskip("tensorboard")  # the dev extra installs it: CI runs the real path

from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402


def small(epochs: int = 2, board: bool = True) -> TrainConfig:
    c = TrainConfig()
    c.data.name = "digits"
    c.model.hidden, c.model.latent = [32], 4
    c.optim.lr = 3e-3
    c.train.batch_size, c.train.epochs, c.train.threads = 64, epochs, 1
    c.train.tensorboard = board
    return c


def quiet(_: str) -> None:
    pass


def events(run: Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(str(run / tensorboard.DIR), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


def png(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))


def next_second() -> None:
    """Event files sort by the second they were opened in: a session after this one sorts later."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.02)


def assert_scalars_are_the_metrics(run: Path) -> list[dict[str, Any]]:
    rows = runs.read_metrics(run)
    acc = events(run)
    keys = [k for k in rows[0] if k != "epoch"]
    assert sorted(acc.Tags()["scalars"]) == sorted(tensorboard.tag(k) for k in keys)
    named = {"train/neg_elbo", "val/neg_elbo", "val/recon", "val/kl", "lr", "beta", "step", "epoch_seconds"}
    assert named <= set(acc.Tags()["scalars"])
    for key in keys:
        got = acc.Scalars(tensorboard.tag(key))
        assert [e.step for e in got] == [r["epoch"] for r in rows], key  # one per epoch, none twice
        assert [e.value for e in got] == [float(np.float32(r[key])) for r in rows], key
    return rows


# ----------------------------------------------------------------------------- pieces


def test_grid_against_hand_built_ones() -> None:
    two = torch.tensor([0.2, 0.8]).reshape(2, 1, 1, 1)
    expected = torch.tensor([[[0.5, 0.5, 0.5, 0.5, 0.5],
                              [0.5, 0.2, 0.5, 0.8, 0.5],
                              [0.5, 0.5, 0.5, 0.5, 0.5]]])
    assert torch.equal(tensorboard.grid(two, nrow=2), expected)
    assert torch.equal(tensorboard.grid(two, nrow=5), expected)  # fewer images than a row: N columns
    # 3 RGB images 2x1, 2 a row, no padding: the 4th cell is `value`
    imgs = torch.arange(18, dtype=torch.float32).reshape(3, 3, 2, 1) / 20
    g = tensorboard.grid(imgs, nrow=2, pad=0, value=1.0)
    assert g.shape == (3, 4, 2)
    for ch in range(3):
        want = torch.tensor([[imgs[0, ch, 0, 0], imgs[1, ch, 0, 0]],
                             [imgs[0, ch, 1, 0], imgs[1, ch, 1, 0]],
                             [imgs[2, ch, 0, 0], 1.0],
                             [imgs[2, ch, 1, 0], 1.0]])
        assert torch.equal(g[ch], want), ch
    # sizes: R (H + pad) + pad by nrow (W + pad) + pad
    assert tensorboard.grid(torch.rand(64, 1, 8, 8), 8).shape == (1, 73, 73)
    assert tensorboard.grid(torch.rand(10, 3, 5, 7), 4, pad=2).shape == (3, 3 * 7 + 2, 4 * 9 + 2)
    with pytest.raises(ValueError):
        tensorboard.grid(torch.rand(0, 1, 2, 2), 2)


def test_reconstruction_grid_puts_each_row_of_originals_above_its_reconstructions() -> None:
    x, r = torch.zeros(4, 1, 1, 1), torch.ones(4, 1, 1, 1)
    g = tensorboard.reconstruction_grid(x, r, nrow=2)[0]  # rows: x0 x1 / r0 r1 / x2 x3 / r2 r3
    assert g[1::2, 1::2].tolist() == [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]


def test_scalar_tags_and_what_is_left_out() -> None:
    row = {"epoch": 3, "step": 30, "train_neg_elbo": 80.5, "val_neg_elbo": 82.0, "val_kl": 4.0,
           "lr": 1e-3, "beta": 1, "epoch_seconds": 0.5, "flag": True, "bad": float("nan"),
           "inf": float("inf"), "name": "x"}
    assert tensorboard.scalars(row) == {"step": 30.0, "train/neg_elbo": 80.5, "val/neg_elbo": 82.0,
                                        "val/kl": 4.0, "lr": 1e-3, "beta": 1.0, "epoch_seconds": 0.5}
    assert tensorboard.tag("train_") == "train_"


def test_only_the_vae_task_has_a_board() -> None:
    assert issubclass(VAETask, Boarded)
    assert not issubclass(ClassifierTask, Boarded)


# ----------------------------------------------------------------------------- a run


def test_run_writes_the_metrics_and_the_grids(tmp_path: Path, digits: Dataset) -> None:
    run = tmp_path / "run"
    fit(small(3), run, show_bar=False, log=quiet, dataset=digits)
    rows = assert_scalars_are_the_metrics(run)
    assert len(rows) == 3
    acc = events(run)
    assert sorted(acc.Tags()["images"]) == ["images/reconstructions", "images/samples"]
    recon, samples = acc.Images("images/reconstructions"), acc.Images("images/samples")
    assert [e.step for e in recon] == [e.step for e in samples] == [1, 2, 3]
    # 16 digits of 8x8 in rows of 8, originals above reconstructions: 4 rows; 64 samples: 8 rows
    assert {(e.height, e.width) for e in recon} == {(4 * 9 + 1, 8 * 9 + 1)}
    assert {(e.height, e.width) for e in samples} == {(8 * 9 + 1, 8 * 9 + 1)}
    # the last grids are the final weights' (checkpoint.safetensors) on the first validation digits
    config = runs.read_config(run, "vae")
    model = build_model(config)
    runs.load_weights(model, runs.load_checkpoint(run)[0], run / runs.CHECKPOINT)
    model.eval()
    task = VAETask(config, digits)
    task.prepare(torch.device("cpu"))
    x = task.board_images()[:16]
    want = tensorboard.reconstruction_grid(x, visualize.reconstruct(model, x).clamp(0, 1))
    got = png(recon[-1].encoded_image_string)
    assert got.shape == (37, 73, 3)
    assert np.abs(got[..., 0].astype(int) - (want[0].numpy() * 255).astype(int)).max() <= 1
    want_s = tensorboard.grid(visualize.sample_prior(model, 64, tensorboard.SAMPLE_SEED).clamp(0, 1), 8)
    assert np.abs(png(samples[-1].encoded_image_string)[..., 0].astype(int)
                  - (want_s[0].numpy() * 255).astype(int)).max() <= 1
    assert not np.array_equal(png(samples[0].encoded_image_string), png(samples[-1].encoded_image_string))
    # the board changes nothing of the training: the same run without one ends with the same weights
    plain = tmp_path / "plain"
    fit(small(3, board=False), plain, show_bar=False, log=quiet, dataset=digits)
    assert not (plain / tensorboard.DIR).exists()
    a, b = (runs.read_tensors(r / runs.CHECKPOINT, "test")[0] for r in (run, plain))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in runs.read_metrics(plain)] == \
        [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]


def test_resume_continues_the_log_and_redone_epochs_replace_theirs(tmp_path: Path, digits: Dataset) -> None:
    run, saved = tmp_path / "run", tmp_path / "epoch1"
    fit(small(1), run, show_bar=False, log=quiet, dataset=digits)
    saved.mkdir()
    for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):
        shutil.copy2(run / name, saved / name)
    next_second()
    fit(small(2), run, resume=True, show_bar=False, log=quiet, dataset=digits)
    assert [e.step for e in events(run).Scalars("val/neg_elbo")] == [1, 2]
    # as if killed after epoch 2's row and events but before its checkpoint: epoch 2 is redone
    for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):
        shutil.copy2(saved / name, run / name)
    next_second()
    fit(small(3), run, resume=True, show_bar=False, log=quiet, dataset=digits)
    assert len(list((run / tensorboard.DIR).iterdir())) == 3  # one event file per session, one directory
    rows = assert_scalars_are_the_metrics(run)  # steps 1, 2, 3: the first epoch 2 hidden
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [e.step for e in events(run).Images("images/samples")] == [1, 2, 3]


def test_resume_with_a_board_of_a_run_trained_without(tmp_path: Path, digits: Dataset) -> None:
    run = tmp_path / "run"
    fit(small(1, board=False), run, show_bar=False, log=quiet, dataset=digits)
    fit(small(2), run, resume=True, show_bar=False, log=quiet, dataset=digits)
    acc = events(run)
    assert [e.step for e in acc.Scalars("train/neg_elbo")] == [2]
    row = runs.read_metrics(run)[1]
    assert acc.Scalars("train/neg_elbo")[0].value == float(np.float32(row["train_neg_elbo"]))


# ----------------------------------------------------------------------------- without the package


def test_without_the_package_one_sentence_and_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["train", "--data", "digits", "--hidden", "16", "--latent", "4", "--batch-size", "128",
            "--threads", "1", "--no-progress"]  # --epochs given once each: a flag twice is refused
    trained = tmp_path / "trained"
    assert main(base + ["--epochs", "1", "--out", str(trained)]) == 0
    before = {p.name: p.read_bytes() for p in sorted(trained.iterdir())}
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it now fails
    with pytest.raises(ImportError):
        __import__("torch.utils.tensorboard")
    fresh = tmp_path / "fresh"
    for out in (["--epochs", "1", "--out", str(fresh)], ["--out", str(trained), "--resume", "--epochs", "2"]):
        capsys.readouterr()
        status = main(base + ["--tensorboard"] + out)
        err = capsys.readouterr().err.strip()
        assert status == 2, err
        assert err == f"vaekit train: error: {tensorboard.MISSING}"
        one_sentence(tensorboard.MISSING, tensorboard.INSTALL)
    assert not fresh.exists()
    assert {p.name: p.read_bytes() for p in sorted(trained.iterdir())} == before


# ----------------------------------------------------------------------------- under torchrun


def test_two_processes_write_one_log_from_rank_0(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "vaekit", "train", "--data", "digits", "--hidden", "32", "--latent", "4",
               "--batch-size", "64", "--threads", "1", "--no-progress", "--epochs", "2", "--tensorboard",
               "--out", str(run)]
    env = {**os.environ, "VAEKIT_DIST_TIMEOUT": "20", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((run / tensorboard.DIR).iterdir())) == 1  # rank 1 wrote none
    assert_scalars_are_the_metrics(run)
    assert [e.step for e in events(run).Images("images/reconstructions")] == [1, 2]
