"""vaekit.train (fit, loop, engines, optim) and `vaekit train` on scikit-learn's 8x8 digits (no
download, fractions of a second per epoch): learning, exact resume, kills, NaN, and every bad input
(exit 2, nothing overwritten)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from vaekit import device as threads_mod
from vaekit import runs
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.data.binarize import binarize as binarize_batch
from vaekit.data.binarize import eval_images
from vaekit.data.load import Dataset
from vaekit.train import engines
from vaekit.train import fit as train_mod
from vaekit.train.fit import Progress, fit
from vaekit.train.loop import validate
from vaekit.train.optim import beta_at, lr_at
from vaekit.vae import backprop as mlp_backprop
from vaekit.vae.models import build_model


def small(**changes: Any) -> TrainConfig:
    """A digits run that takes well under a second per epoch."""
    c = TrainConfig()
    c.data.name = "digits"
    c.model.hidden, c.model.latent = [32], 4
    c.optim.lr = 3e-3
    c.train.batch_size, c.train.epochs, c.train.threads = 64, 2, 1
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(c, section), name, value)
    return c


def quiet(_: str) -> None:
    pass


def tensors_of(path: Path) -> dict[str, torch.Tensor]:
    return runs.read_tensors(path, "test")[0]


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = tensors_of(a), tensors_of(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def metrics_without_time(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in runs.read_metrics(run)]


def assert_same_run(a: Path, b: Path) -> None:
    assert_same_tensors(a / runs.CHECKPOINT, b / runs.CHECKPOINT)  # weights and optimizer
    assert_same_tensors(a / runs.MODEL, b / runs.MODEL)  # best weights
    assert metrics_without_time(a) == metrics_without_time(b)
    sa, sb = (runs.load_checkpoint(p)[2] for p in (a, b))
    assert sa["rng"] == sb["rng"]
    clock = "train_seconds"  # the wall time of training: the one field that is not a result
    assert {k: v for k, v in sa["progress"].items() if k != clock} == \
        {k: v for k, v in sb["progress"].items() if k != clock}
    assert sa["progress"][clock] > 0 and sb["progress"][clock] > 0


# ----------------------------------------------------------------------------- learning


def test_short_run_lowers_neg_elbo(tmp_path: Path, digits: Dataset) -> None:
    config = small(train__epochs=6)
    config.model.image_shape = list(digits.image_shape)
    torch.manual_seed(config.train.seed)
    untrained = validate(build_model(config), eval_images(digits.val.images, config.resolved_binarize()))
    summary = fit(config, tmp_path / "run", log=quiet, dataset=digits)
    rows = runs.read_metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert rows[-1]["val_neg_elbo"] < rows[0]["val_neg_elbo"] < untrained["neg_elbo"]
    assert rows[-1]["val_neg_elbo"] < 0.8 * untrained["neg_elbo"]
    assert rows[-1]["train_neg_elbo"] < rows[0]["train_neg_elbo"]
    assert summary["best_val_neg_elbo"] == min(r["val_neg_elbo"] for r in rows)


def test_run_directory(tmp_path: Path, digits: Dataset) -> None:
    run = tmp_path / "run"
    fit(small(), run, log=quiet, dataset=digits)
    names = {p.name for p in run.iterdir()}
    assert names == {"config.json", "model.safetensors", "checkpoint.safetensors", "checkpoint.json",
                     "metrics.jsonl"}
    for row in runs.read_metrics(run):
        for key in ("epoch", "train_neg_elbo", "val_neg_elbo", "val_recon", "val_kl", "epoch_seconds", "lr"):
            assert key in row
        assert row["epoch_seconds"] > 0 and row["lr"] == 3e-3
        assert row["val_neg_elbo"] == pytest.approx(row["val_recon"] + row["val_kl"])
    # the best model reloads and reproduces the recorded validation -ELBO
    loaded = runs.load_run(run)
    model, config = loaded.model, loaded.config
    again = validate(model, eval_images(digits.val.images, config.resolved_binarize()))
    state = runs.load_checkpoint(run)[2]
    assert again["neg_elbo"] == pytest.approx(state["progress"]["best_val"], rel=1e-6)
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 2


def test_same_seed_same_numbers(tmp_path: Path, digits: Dataset) -> None:
    fit(small(), tmp_path / "a", log=quiet, dataset=digits)
    fit(small(), tmp_path / "b", log=quiet, dataset=digits)
    assert_same_run(tmp_path / "a", tmp_path / "b")


# ----------------------------------------------------------------------------- resume


def test_resume_equals_uninterrupted(tmp_path: Path, digits: Dataset) -> None:
    fit(small(train__epochs=4), tmp_path / "full", log=quiet, dataset=digits)
    fit(small(train__epochs=2), tmp_path / "part", log=quiet, dataset=digits)
    fit(small(train__epochs=4), tmp_path / "part", resume=True, log=quiet, dataset=digits)
    assert_same_run(tmp_path / "full", tmp_path / "part")


def test_resume_after_a_kill_mid_epoch(tmp_path: Path, digits: Dataset,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Cosine schedule, KL warm-up, 2 samples: killed in the middle of epoch 3, resumed."""
    changes = dict(train__epochs=4, train__warmup=2.0, train__samples=2, optim__schedule="cosine",
                   train__checkpoint_every="epoch")
    fit(small(**changes), tmp_path / "full", log=quiet, dataset=digits)
    calls = {"n": 0}
    real = train_mod.make_engine

    def killed_engine(*args: Any, **kwargs: Any) -> Any:  # the run's engine, killed at one step
        engine = real(*args, **kwargs)
        step = engine.loss_and_grads

        def killed(*a: Any, **kw: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2 * 23 + 5:  # 23 batches per epoch: the 5th batch of epoch 3
                raise KeyboardInterrupt
            return step(*a, **kw)
        engine.loss_and_grads = killed  # type: ignore[method-assign]
        return engine

    monkeypatch.setattr(train_mod, "make_engine", killed_engine)
    with pytest.raises(KeyboardInterrupt):
        fit(small(**changes), tmp_path / "part", log=quiet, dataset=digits)
    monkeypatch.setattr(train_mod, "make_engine", real)
    assert calls["n"] == 2 * 23 + 5
    assert runs.load_checkpoint(tmp_path / "part")[2]["epoch"] == 2
    fit(small(**changes), tmp_path / "part", resume=True, log=quiet, dataset=digits)
    assert_same_run(tmp_path / "full", tmp_path / "part")


class _Stopped(Exception):
    """A session stopped after an epoch's line, as a kill after its checkpoint would."""


def stop_after(epoch: int) -> Any:
    """A `log` that stops the session once epoch `epoch`'s line is logged (after its checkpoint)."""
    def log(line: str) -> None:
        if line.startswith(f"epoch {epoch:3d}/"):
            raise _Stopped
    return log


def test_resume_with_fewer_epochs_of_a_cosine_schedule_notes_the_learning_rate_jump(
        tmp_path: Path, digits: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    """A cosine run planned over 40 epochs, stopped after epoch 2, resumed with --epochs 3: the cosine
    is recomputed over 3 epochs, so epoch 3's learning rate is a quarter of the base one where the
    plan had it near the base, without a word. Now one note names the new end, both rates (those
    metrics.jsonl records) and the factor."""
    out = tmp_path / "run"
    changes = dict(optim__schedule="cosine", train__checkpoint_every="epoch")
    with pytest.raises(_Stopped):
        fit(small(train__epochs=40, **changes), out, log=stop_after(2), dataset=digits)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = runs.read_metrics(out)
    lr = small().optim.lr
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[1]["lr"] == pytest.approx(lr * (1 + math.cos(math.pi / 40)) / 2)  # the plan of 40
    assert rows[2]["lr"] == pytest.approx(lr / 4)  # (1 + cos(2 pi / 3)) / 2 of the new 3
    assert lines[0] == (f"{out}: note: the cosine schedule now ends at epoch 3 instead of the 40 it was "
                        f"planned over, so the learning rate goes from {rows[1]['lr']:.2e} (epoch 2) to "
                        f"{rows[2]['lr']:.2e} (epoch 3), 4.0 times lower.")
    # the same epochs, or more of a schedule that is not cosine: no note
    for schedule in ("cosine", "none"):
        run = tmp_path / schedule
        with pytest.raises(_Stopped):
            fit(small(train__epochs=5, optim__schedule=schedule, train__checkpoint_every="epoch"), run,
                log=stop_after(1), dataset=digits)
        capsys.readouterr()
        flags = ["--epochs", "6"] if schedule == "none" else []
        assert main(["train", "--resume", "--out", str(run), *flags, "--no-progress"]) == 0
        assert "note: the cosine schedule" not in capsys.readouterr().out


@pytest.mark.parametrize("which", [runs.CHECKPOINT, runs.CHECKPOINT_JSON])
def test_kill_while_writing_a_checkpoint_leaves_a_loadable_one(
        tmp_path: Path, digits: Dataset, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """The rename of epoch 2's file fails (as a kill at that moment would): the last good
    checkpoint loads, and resuming from it ends exactly as an uninterrupted run."""
    fit(small(train__epochs=3), tmp_path / "full", log=quiet, dataset=digits)
    real_replace = runs.files.os.replace
    seen = {"n": 0}

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == which:
            seen["n"] += 1
            if seen["n"] == 2:
                raise OSError("killed while renaming")
        real_replace(src, dst)

    monkeypatch.setattr(runs.files.os, "replace", replace)
    with pytest.raises(OSError, match="killed"):
        fit(small(train__epochs=3, train__checkpoint_every="epoch"), tmp_path / "part", log=quiet,
            dataset=digits)
    monkeypatch.setattr(runs.files.os, "replace", real_replace)
    model_t, optim_t, state = runs.load_checkpoint(tmp_path / "part")
    # the .safetensors is the commit point: killed before it, epoch 1 stays; after it, epoch 2 is in
    assert state["epoch"] == (1 if which == runs.CHECKPOINT else 2)
    assert model_t and optim_t
    fit(small(train__epochs=3), tmp_path / "part", resume=True, log=quiet, dataset=digits)
    assert_same_run(tmp_path / "full", tmp_path / "part")


@pytest.mark.parametrize(("epochs", "count"), [(1, "1 epoch "), (2, "2 epochs ")])
def test_resume_of_a_finished_run_does_nothing(tmp_path: Path, digits: Dataset, epochs: int,
                                               count: str) -> None:
    fit(small(train__epochs=epochs), tmp_path / "run", log=quiet, dataset=digits)
    before = snapshot(tmp_path / "run")
    lines: list[str] = []
    fit(small(train__epochs=epochs), tmp_path / "run", resume=True, log=lines.append, dataset=digits)
    assert "nothing to do" in lines[-1] and f"already trained for {count}(" in lines[-1], lines[-1]
    assert snapshot(tmp_path / "run") == before


# ----------------------------------------------------------------------------- stops


@pytest.mark.parametrize("engine", ["auto", "autograd"])
def test_nan_loss_stops_with_epoch_and_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], one_sentence: Any,
                                            engine: str) -> None:
    calls = {"n": 0}
    if engine == "autograd":  # the loss of vaekit.vae.prob, differentiated by autograd
        real = engines.objective_for

        def poisoned_objective(loop: Any) -> Any:
            objective = real(loop)

            def poisoned(*args: Any, **kwargs: Any) -> Any:
                calls["n"] += 1
                terms = objective(*args, **kwargs)
                if calls["n"] == 23 + 3:  # epoch 2, step 3
                    terms.loss = terms.loss * float("nan")
                return terms
            return poisoned

        monkeypatch.setattr(engines, "objective_for", poisoned_objective)
    else:  # the default for this MLP: vaekit.vae.backprop
        real_backprop = mlp_backprop.backprop

        def poisoned_backprop(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            sums = real_backprop(*args, **kwargs)
            return sums * float("nan") if calls["n"] == 23 + 3 else sums

        monkeypatch.setattr(mlp_backprop, "backprop", poisoned_backprop)
    run = tmp_path / "run"
    status = main(["train", "--data", "digits", "--hidden", "32", "--latent", "4", "--batch-size", "64",
                   "--epochs", "3", "--threads", "1", "--engine", engine, "--out", str(run), "--no-progress"])
    assert calls["n"] == 23 + 3  # the poisoned function was the one in use, and the run stopped there
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2
    assert "epoch 2, step 3 of 23" in err and "nan" in err
    one_sentence(err.removeprefix("vaekit train: error: "))
    state = runs.load_checkpoint(run)[2]
    assert state["epoch"] == 1
    assert [r["epoch"] for r in runs.read_metrics(run)] == [1]
    model = runs.load_run(run).model
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_early_stopping_keeps_the_best(tmp_path: Path, digits: Dataset,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([10.0, 9.0, 9.5, 9.6, 8.0])
    best_weights: dict[int, dict[str, torch.Tensor]] = {}

    def fake_validate(model: Any, x: Any, **_: Any) -> dict[str, float]:
        value = next(scores)
        best_weights[len(best_weights) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"neg_elbo": value, "recon": value - 1, "kl": 1.0}

    monkeypatch.setattr(train_mod, "validate", fake_validate)
    summary = fit(small(train__epochs=5, train__patience=2), tmp_path / "run", log=quiet, dataset=digits)
    assert summary["epochs"] == 4 and summary["best_epoch"] == 2 and "early stopping" in summary["stopped"]
    saved = tensors_of(tmp_path / "run" / runs.MODEL)
    assert all(torch.equal(saved[k], best_weights[2][k]) for k in saved)


# ----------------------------------------------------------------------------- other objectives


@pytest.mark.parametrize("changes", [
    dict(train__objective="iwae", train__samples=3),
    dict(model__kind="conv", model__channels=[8, 16], model__hidden=[]),
    dict(model__likelihood="gaussian", model__variance="global", optim__clip=5.0),
    dict(train__beta=2.0, train__free_bits=0.2, optim__name="sgd", optim__lr=1e-3),
    dict(optim__name="rmsprop", optim__lr=1e-4, optim__schedule="step", optim__step_size=1),
    dict(optim__name="adamw", optim__weight_decay=0.01, data__binarize="fixed"),
])
def test_objectives_models_and_optimizers_run(tmp_path: Path, digits: Dataset, changes: dict) -> None:
    fit(small(train__epochs=1, **changes), tmp_path / "run", log=quiet, dataset=digits)
    row = runs.read_metrics(tmp_path / "run")[0]
    assert all(math.isfinite(row[k]) for k in ("train_neg_elbo", "val_neg_elbo", "val_kl"))
    assert row["val_kl"] >= 0


def test_score_estimator_branch(tmp_path: Path, digits: Dataset) -> None:
    pytest.importorskip("vaekit.vae.estimators")
    fit(small(train__epochs=1, train__estimator="score"), tmp_path / "run", log=quiet, dataset=digits)
    state = runs.load_checkpoint(tmp_path / "run")[2]
    assert state["progress"]["baseline"] is not None and math.isfinite(state["progress"]["baseline"])
    assert math.isfinite(runs.read_metrics(tmp_path / "run")[0]["val_neg_elbo"])


# ----------------------------------------------------------------------------- pieces


def test_schedules_closed_forms() -> None:
    c = TrainConfig()
    c.optim.lr = 0.1
    assert lr_at(7, c.optim, 10) == 0.1
    c.optim.schedule = "cosine"
    assert lr_at(0, c.optim, 10) == pytest.approx(0.1)
    assert lr_at(5, c.optim, 10) == pytest.approx(0.05)
    assert lr_at(10, c.optim, 10) == pytest.approx(0.0, abs=1e-12)
    c.optim.schedule, c.optim.step_size, c.optim.gamma = "step", 3, 0.5
    assert [lr_at(e, c.optim, 10) for e in (0, 2, 3, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    c.train.beta, c.train.warmup = 2.0, 2.0
    assert beta_at(0, 10, c.train) == pytest.approx(2.0 * 1 / 20)
    assert beta_at(9, 10, c.train) == pytest.approx(1.0)
    assert beta_at(19, 10, c.train) == beta_at(500, 10, c.train) == 2.0


def test_binarize_batch_is_bernoulli_of_pixel_over_255() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).repeat(4000, 1)  # (4000, 256)
    x = binarize_batch(pixels, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    p = torch.arange(256, dtype=torch.float64) / 255
    freq = x.double().mean(0)
    stderr = (p * (1 - p) / 4000).sqrt()
    assert (freq - p).abs().max() <= (5 * stderr).max()
    assert freq[0] == 0 and freq[255] == 1


def test_auto_threads_use_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads_mod, "available_cores", lambda: 2)
    assert threads_mod.choose_threads(3) == 3  # asked for: given
    for idle, expected in [(2.0, 2), (1.85, 2), (1.5, 1), (1.0, 1), (0.1, 1), (None, 2)]:
        monkeypatch.setattr(threads_mod, "idle_cores", lambda idle=idle: idle)
        assert threads_mod.choose_threads(0) == expected, idle
    idle = threads_mod.idle_cores(0.05)  # the real reading, on Linux
    assert idle is None or -0.01 <= idle <= (__import__("os").cpu_count() or 1) + 0.01


def test_flush_denormals_while_training_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             digits: Dataset) -> None:
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 subnormal
    assert (tiny * 1.0).item() != 0.0  # the default: computed as it is
    with threads_mod.flush_denormals():
        assert (tiny * 1.0).item() == 0.0  # flushed to zero
        assert (torch.tensor([1e-37]) * 1.0).item() != 0.0  # a normal float is left alone
    assert (tiny * 1.0).item() != 0.0  # and back to the default after the block
    seen: list[float] = []  # during training (fit), and not after it
    real_epoch = train_mod.train_epoch

    def epoch(*args: Any, **kwargs: Any) -> Any:
        seen.append((tiny * 1.0).item())
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_epoch", epoch)
    fit(small(train__epochs=1), tmp_path / "run", show_bar=False, log=quiet, dataset=digits)
    assert seen == [0.0] and (tiny * 1.0).item() != 0.0


def test_flush_blocks_nest() -> None:
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    with threads_mod.flush_denormals():
        with threads_mod.flush_denormals():
            assert (tiny * 1.0).item() == 0.0
        assert (tiny * 1.0).item() == 0.0  # the inner block left the setting to the outer one
    assert (tiny * 1.0).item() != 0.0


def _python(script: str, *args: str) -> list[str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


_PROBE = """
import sys, torch
from vaekit.device import denormals_flushed, flush_denormals
torch.set_num_threads(2)
if sys.argv[1] == "late":
    a = torch.randn(512, 512); (a @ a).sum()  # torch's worker thread starts unflushed
with flush_denormals():
    print(denormals_flushed())
print(denormals_flushed())
"""


@pytest.mark.parametrize("when, inside", [("early", "True"), ("late", "False")])
def test_the_worker_thread_flushes_only_if_started_inside_the_block(when: str, inside: str) -> None:
    """The fused AdamW update over subnormal moments (`device.denormals_flushed`, which reads the
    bits as integers) leaves none when the block began before torch's threads started, and the
    worker's share when it began after; after the block nothing is flushed."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    assert _python(_PROBE, when) == [inside, "False"]


NOTE = "subnormal floats are not flushed in all of torch's threads"

_FIT_AFTER_A_PRODUCT = """
import sys, torch
from pathlib import Path
from vaekit.config import TrainConfig
from vaekit.train.fit import fit
torch.set_num_threads(2)
a = torch.randn(512, 512); (a @ a).sum()  # the worker thread exists before fit
c = TrainConfig()
c.data.name = "digits"
c.model.hidden, c.model.latent = [16], 2
c.train.epochs, c.train.threads = 1, 2
fit(c, Path(sys.argv[1]), show_bar=False, log=print)
"""


def test_the_cli_flushes_every_thread_and_fit_says_when_it_cannot(tmp_path: Path) -> None:
    """`vaekit train` runs inside the block from the process's start: no note. `fit` called from
    Python after torch's threads started says they are not all flushed."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    cli = _python("from vaekit.cli import main; raise SystemExit(main())", "train", "--data", "digits",
                  "--epochs", "1", "--threads", "2", "--hidden", "16", "--latent", "2", "--no-progress",
                  "--out", str(tmp_path / "cli"))
    assert any(line.startswith("epoch   1/1") for line in cli) and not any(NOTE in line for line in cli)
    api = _python(_FIT_AFTER_A_PRODUCT, str(tmp_path / "api"))
    assert any(line.startswith("epoch   1/1") for line in api) and any(NOTE in line for line in api)


def test_progress_round_trips_through_json() -> None:
    p = Progress(epoch=3, step=9, best_val=1.5, best_epoch=2, bad_epochs=1, baseline=0.25)
    from dataclasses import asdict

    assert Progress(**json.loads(json.dumps(asdict(p)))) == p


# ----------------------------------------------------------------------------- the command


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())} if run.exists() else {}


@pytest.fixture
def trained_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    status = main(["train", "--data", "digits", "--hidden", "16", "--latent", "4", "--batch-size", "128",
                   "--epochs", "1", "--threads", "1", "--out", str(run), "--no-progress"])
    assert status == 0
    return run


BASE = ["train", "--data", "digits", "--threads", "1", "--no-progress"]


@pytest.mark.parametrize("flags, phrase", [
    (["--optimizer", "adamx"],
     'unknown --optimizer "adamx" (optim.name); valid values are adam, adamw, sgd, rmsprop.'),
    (["--likelihood", "poisson"], 'unknown --likelihood "poisson" (model.likelihood)'),
    (["--model", "resnet"], 'unknown --model "resnet" (model.kind); valid values are mlp, conv.'),
    (["--latent", "0"], "latent size must be at least 1, got 0."),
    (["--likelihood", "gaussian", "--binarize", "dynamic"],
     "model.likelihood gaussian (--likelihood) needs continuous pixels"),
    (["--estimator", "magic"], 'unknown --estimator "magic"'),
    (["--engine", "jax"], 'unknown --engine "jax" (train.engine); valid values are auto, autograd.'),
])
def test_bad_flags(tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str],
                   one_sentence: Any, flags: list[str], phrase: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out, runs/digits-mlp, would land here
    before = snapshot(trained_run)
    fresh = tmp_path / "fresh"
    for out in ([], ["--out", str(fresh)], ["--out", str(trained_run), "--resume"]):
        capsys.readouterr()
        status = main(BASE + flags + out)
        err = capsys.readouterr().err.strip()
        assert status == 2, err
        assert len(err.splitlines()) == 1 and phrase in err, err
        one_sentence(err.removeprefix("vaekit train: error: "))
    assert snapshot(trained_run) == before
    assert not fresh.exists() and not (tmp_path / "runs").exists()


def run_bad(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    status = main(args)
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("vaekit train: error: "), err
    return err


def test_unknown_config_key(tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str],
                            one_sentence: Any) -> None:
    before = snapshot(trained_run)
    toml = tmp_path / "bad.toml"
    toml.write_text("[train]\nepoch = 3\n")
    err = run_bad(BASE + ["--config", str(toml), "--out", str(trained_run), "--resume"], capsys)
    assert "unknown key train.epoch" in err and "epochs" in err and str(toml) in err
    one_sentence(err.removeprefix("vaekit train: error: "))
    toml.write_text("[training]\nepochs = 3\n")
    assert "valid sections are data, model, optim, train" in run_bad(BASE + ["--config", str(toml)], capsys)
    toml.write_text("[train]\nepochs = 'three'\n")
    assert "train.epochs must be an integer" in run_bad(BASE + ["--config", str(toml)], capsys)
    assert snapshot(trained_run) == before


def test_resume_with_a_different_config(trained_run: Path, capsys: pytest.CaptureFixture[str],
                                        one_sentence: Any) -> None:
    before = snapshot(trained_run)
    err = run_bad(BASE + ["--out", str(trained_run), "--resume", "--latent", "5", "--lr", "0.1",
                          "--epochs", "2"], capsys)
    assert "model.latent" in err and "optim.lr" in err and str(trained_run) in err
    one_sentence(err.removeprefix("vaekit train: error: "))
    assert snapshot(trained_run) == before


def test_resume_with_another_dataset_is_refused_before_it_is_read(
        trained_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed data set is refused from config.json alone: nothing is read, nothing fetched."""
    def no_loading(*_: Any, **__: Any) -> None:
        raise AssertionError("the dataset was loaded before the changed config was refused")

    monkeypatch.setattr(train_mod, "load_configured", no_loading)
    before = snapshot(trained_run)
    err = run_bad(["train", "--data", "mnist", "--threads", "1", "--no-progress", "--out", str(trained_run),
                   "--resume"], capsys)
    assert "data.name" in err and str(trained_run) in err
    assert snapshot(trained_run) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = run_bad(BASE + ["--device", "cuda", "--out", str(tmp_path / "run")], capsys)
    assert "no CUDA device" in err and not (tmp_path / "run").exists()


def test_new_run_over_an_existing_one(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(trained_run)
    err = run_bad(BASE + ["--out", str(trained_run), "--epochs", "2"], capsys)
    assert "already holds a run" in err
    assert snapshot(trained_run) == before
    (trained_run / runs.CHECKPOINT).unlink()  # a run that lost its checkpoint but has results
    (trained_run / runs.CHECKPOINT_JSON).unlink()
    before = snapshot(trained_run)
    err = run_bad(BASE + ["--out", str(trained_run)], capsys)
    assert "(model.safetensors, metrics.jsonl)" in err and "--resume" not in err  # it would not resume
    assert "no checkpoint file" in run_bad(BASE + ["--out", str(trained_run), "--resume"], capsys)
    assert "--resume needs --out" in run_bad(BASE + ["--resume"], capsys)
    assert snapshot(trained_run) == before


@pytest.mark.parametrize("damage", ["truncate", "pickle", "missing"])
def test_damaged_checkpoint(trained_run: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any,
                            damage: str) -> None:
    path = trained_run / runs.CHECKPOINT
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "pickle":
        torch.save({"model": torch.zeros(3)}, path)
    else:
        path.unlink()
    before = snapshot(trained_run)
    err = run_bad(BASE + ["--out", str(trained_run), "--resume", "--epochs", "2"], capsys)
    assert str(path) in err
    one_sentence(err.removeprefix("vaekit train: error: "))
    assert snapshot(trained_run) == before


def test_cli_resume_continues(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(BASE + ["--out", str(trained_run), "--resume", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out and "epoch   2/2" in out
    assert [r["epoch"] for r in runs.read_metrics(trained_run)] == [1, 2]
    assert runs.read_config(trained_run).train.epochs == 2


def test_config_file_and_flags(tmp_path: Path) -> None:
    from vaekit.cli import build_parser
    from vaekit.commands.train import build_config

    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nhidden = [64, 32]\nlatent = 7\n[optim]\nname = "sgd"\nlr = 0.5\n')
    args = build_parser().parse_args(["train", "--config", str(toml), "--lr", "0.01", "--hidden", "512,256"])
    config, out = build_config(args)
    assert config.model.hidden == [512, 256] and config.model.latent == 7  # flag over file over default
    assert config.optim.name == "sgd" and config.optim.lr == 0.01 and config.train.epochs == 10
    assert out == Path("runs/fashion-mnist-mlp")


def test_shipped_configs() -> None:
    from vaekit.config import load_toml, validate

    root = Path(__file__).resolve().parents[2] / "configs"
    sheet = validate(load_toml(root / "sheet.toml"))
    assert sheet.model.kind == "mlp" and len(sheet.model.hidden) == 1
    assert sheet.train.samples == 1 and sheet.optim.name == "adam" and sheet.train.objective == "elbo"
    assert validate(load_toml(root / "fashion-mnist-mlp.toml")).model.kind == "mlp"
    assert validate(load_toml(root / "fashion-mnist-conv.toml")).model.kind == "conv"
    best = validate(load_toml(root / "fashion-mnist-best.toml"))  # the best config's hour
    assert best.model.autoregressive > 0 and best.model.likelihood == "bernoulli"


# ----------------------------------------------------------------------------- numbers and TOML files


@pytest.mark.parametrize("flags, names", [
    (["--warmup", "nan"], ["train.warmup", "nan", "finite"]),
    (["--clip", "nan"], ["optim.clip", "nan", "finite"]),
    (["--free-bits", "nan"], ["train.free_bits", "nan", "finite"]),
    (["--lr", "nan"], ["optim.lr", "nan", "(0, 100]"]),
    (["--lr", "inf"], ["optim.lr", "inf"]),
    (["--warmup", "Infinity"], ["train.warmup", "inf"]),
    (["--beta=-inf"], ["train.beta", "-inf"]),
    (["--seed", str(2**32)], ["train.seed", "at most 4294967295", str(2**32)]),
    (["--seed", str(2**63)], ["train.seed", "at most 4294967295"]),
    (["--latent", "10000000000"], ["model.latent", "at most 2147483647", "10000000000"]),
    (["--hidden", "10000000000"], ["model.hidden", "at most 2147483647"]),
    (["--samples", "10000000000"], ["train.samples", "at most 2147483647"]),
    (["--autoregressive=-1"], ["model.autoregressive", "at least 0"]),
    (["--autoregressive", "10000000"], ["model.autoregressive", "at most 1000000"]),
    (["--autoregressive-dropout", "1"], ["model.autoregressive_dropout", "less than 1"]),
    (["--autoregressive-dropout=-0.1"], ["model.autoregressive_dropout", "at least 0"]),
    (["--autoregressive-dropout", "nan"], ["model.autoregressive_dropout", "nan", "finite"]),
    (["--autoregressive-window=-1"], ["model.autoregressive_window", "at least 0"]),
    (["--autoregressive-window", "10000000000"], ["model.autoregressive_window", "at most 2147483647"]),
])
def test_non_finite_and_huge_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any,
                                   flags: list[str], names: list[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out, runs/digits-mlp, would land here
    fresh = tmp_path / "fresh"
    for out in ([], ["--out", str(fresh)]):
        err = run_bad(BASE + flags + out, capsys)
        one_sentence(err.removeprefix("vaekit train: error: "), f"{flags[0].split('=')[0]} ({names[0]})",
                     *names)  # the flag typed, then its key
    assert not fresh.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags", [["--warmup", "1e999"], ["--lr=-1E400"]])
def test_a_number_too_large_for_a_float_is_quoted_as_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any, flags: list[str]) -> None:
    """float() reads it as inf, which the range check quoted as "got inf"."""
    err = run_bad([*BASE, *flags, "--out", str(tmp_path / "fresh")], capsys)
    flag, written = flags[0].split("=")[0], flags[-1].split("=")[-1]
    one_sentence(err.removeprefix("vaekit train: error: "),
                 f"{flag} must be a finite number, got {written}, larger in size than the largest float")
    assert not (tmp_path / "fresh").exists()


def test_bad_numbers_and_files_leave_a_run_alone(tmp_path: Path, trained_run: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 one_sentence: Any) -> None:
    before = snapshot(trained_run)
    resume = ["--out", str(trained_run), "--resume"]
    err = run_bad(BASE + ["--lr", "nan"] + resume, capsys)
    one_sentence(err.removeprefix("vaekit train: error: "), "--lr (optim.lr)")
    toml = tmp_path / "c.toml"
    for content, names in ((b"[optim]\nschedule = 'step'\ngamma = nan\n", ["optim.gamma", "nan"]),
                           (b"[train]\nseed = 99999999999999999999999\n", ["train.seed"]),
                           (b"[model]\nlatent = 4 # \xff\n", ["UTF-8"]),
                           (b"[model]\nhidden = " + b"[" * 3000 + b"]" * 3000 + b"\n", ["nested"]),
                           (b"optim = 0.1\n", ["[optim] must be a table"])):
        toml.write_bytes(content)
        for out in (resume, ["--out", str(tmp_path / "fresh")]):
            err = run_bad(BASE + ["--config", str(toml)] + out, capsys)
            one_sentence(err.removeprefix("vaekit train: error: "), str(toml), *names)
    err = run_bad(BASE + ["--config", str(tmp_path)] + resume, capsys)  # a directory
    one_sentence(err.removeprefix("vaekit train: error: "), str(tmp_path), "directory")
    assert snapshot(trained_run) == before and not (tmp_path / "fresh").exists()


def test_more_pseudo_inputs_than_training_images_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """100,000 pseudo-inputs of the VampPrior on digits' 1,437 training images: minutes per step."""
    out = tmp_path / "run"
    err = run_bad(BASE + ["--prior", "vamp", "--pseudo-inputs", "100000", "--out", str(out)], capsys)
    assert "100,000" in err and "1,437 training images" in err
    one_sentence(err.removeprefix("vaekit train: error: "))
    assert not out.exists()


@pytest.mark.parametrize("command", [["train", "--hidden", "16", "--latent", "2"], ["classify"]])
def test_an_epoch_that_will_be_slow_is_said_once_where_no_bar_shows_it(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With no progress bar (--no-progress), an epoch whose first batch times its batches past
    SLOW_EPOCH is said before it runs on: one note on stderr for the process, the estimate the
    first batch's time times the epoch's batches; an epoch under it says nothing."""
    from vaekit.train import loop

    argv = [*command, "--data", "digits", "--epochs", "2", "--batch-size", "64", "--threads", "1",
            "--no-progress"]
    monkeypatch.setattr(loop, "_SAID_SLOW", [])
    monkeypatch.setattr(loop, "SLOW_EPOCH", 1e9)
    assert main([*argv, "--out", str(tmp_path / "fast")]) == 0
    assert "note: the first batch" not in capsys.readouterr().err
    monkeypatch.setattr(loop, "SLOW_EPOCH", 0.0)  # every epoch is slow: said once, of epoch 1
    assert main([*argv, "--out", str(tmp_path / "slow")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note: the first batch" in line]
    batches = math.ceil(1437 / 64) if command == ["classify"] else None
    assert len(notes) == 1 and "of epoch 1 took" in notes[0], notes
    if batches is not None:
        assert f"its {batches:,} batches will take up to about" in notes[0], notes


def test_a_resume_with_a_setting_its_data_cannot_take_is_told_so_not_to_train_anew(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """`--resume --val-size 10` of a digits run was told to train a new run into another --out, which
    was then refused: digits takes no --val-size. Both now say so, and the run is left as it was."""
    before = snapshot(trained_run)
    for argv in (["--out", str(trained_run), "--resume", "--no-progress", "--val-size", "10"],
                 ["--data", "digits", "--val-size", "10", "--out", str(tmp_path / "new"), "--epochs", "1"]):
        err = run_bad(["train", *argv], capsys)
        one_sentence(err.removeprefix("vaekit train: error: "), "--val-size", "digits is split 80/10/10",
                     "leave it out")
        assert "another --out" not in err, err
    assert snapshot(trained_run) == before and not (tmp_path / "new").exists()


def test_a_val_size_edited_into_config_json_is_named_by_the_file_not_the_flag(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """A digits run whose config.json gained a val_size was told to leave out --val-size, which the
    user had not given; the resume now names the file, as eval, sample and report do."""
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(trained_run, run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["val_size"] = 100
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    err = run_bad(["train", "--out", str(run), "--resume", "--no-progress"], capsys)
    one_sentence(err.removeprefix("vaekit train: error: "), f"{run}/config.json", "data.val_size: 100")
    assert "--val-size" not in err and snapshot(run) == before, err


def test_a_val_size_from_a_config_file_is_named_by_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """`[data] val_size` in a TOML file for digits was refused as the flag --val-size, not typed."""
    config = tmp_path / "c.toml"
    config.write_text("[data]\nval_size = 100\n")
    out = tmp_path / "run"
    err = run_bad(["train", "--data", "digits", "--config", str(config), "--out", str(out)], capsys)
    one_sentence(err.removeprefix("vaekit train: error: "), f"{config}: data.val_size applies to",
                 "digits is split 80/10/10")
    assert "--val-size" not in err and not out.exists(), err
