"""Checkpoints that no run of their config.json writes: optimizer settings other than config.json's
(amsgrad, maximize, eps, weight decay, a learning rate that is text), optimizer state that means
nothing (a negative second moment, a step count beyond the run's steps), a best score no run of the
kind reaches, weights that overflow. `train --resume` and `classify --resume` refuse each with one
sentence naming the checkpoint and the field (exit 2), before any step, the run directory byte for
byte as it was; an untouched checkpoint resumes as before (tests/train: resume equals the
uninterrupted run).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from eval_runs import make_classifier_run, make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.errors import CheckpointError
from vaekit.train.fit import VAETask
from vaekit.train.resume import Progress, check_progress, progress_fields
from vaekit.vae.models import build_model

Edit = Callable[[dict[str, torch.Tensor], dict[str, Any]], None]  # (tensors, state) -> None, in place


def _group(key: str, value: Any) -> Edit:
    return lambda t, s: s["optimizer"]["param_groups"][0].__setitem__(key, value)


def _fill(name: str, value: float) -> Edit:
    return lambda t, s: t[name].fill_(value)


def _progress(**fields: Any) -> Edit:
    return lambda t, s: s["progress"].update(fields)


# The probe's edits (F5-F9), and the field each refusal names; they apply to both kinds of run.
SHARED: dict[str, tuple[Edit, str]] = {
    "amsgrad": (_group("amsgrad", True), "param_groups[0].amsgrad"),
    "maximize": (_group("maximize", True), "param_groups[0].maximize"),
    "eps-negative": (_group("eps", -1.0), "param_groups[0].eps"),
    "weight-decay-1e30": (_group("weight_decay", 1e30), "param_groups[0].weight_decay"),
    "lr-text": (_group("lr", "fast"), "param_groups[0].lr"),
    "lr-above-config": (_group("lr", 1.0), "param_groups[0].lr"),
    "lr-zero": (_group("lr", 0.0), "param_groups[0].lr"),  # no schedule reaches 0 but by underflow
    "betas-other": (_group("betas", [0.5, 0.999]), "param_groups[0].betas"),
    "fused-missing": (lambda t, s: s["optimizer"]["param_groups"][0].pop("fused"), "param_groups[0].fused"),
    "foreign-field": (_group("nesterov", True), "param_groups[0].nesterov"),
    "step-1e30": (_fill("optim.0.step", 1e30), "optim.0.step"),
    "step-negative": (_fill("optim.0.step", -5.0), "optim.0.step"),
    "step-fraction": (_fill("optim.0.step", 2.5), "optim.0.step"),
    "exp-avg-sq-negative": (_fill("optim.0.exp_avg_sq", -1.0), "optim.0.exp_avg_sq"),
    "best-val-1e300": (_progress(best_val=-1e300), "progress.best_val"),
    "best-val-inf": (_progress(best_val=-math.inf), "progress.best_val"),
    "best-val-nan": (_progress(best_val=math.nan), "progress.best_val"),
    "best-epoch-0": (_progress(best_epoch=0, bad_epochs=2), "progress.best_epoch"),
    "bad-epochs-other": (_progress(bad_epochs=1), "progress.bad_epochs"),
}
VAE_ONLY: dict[str, tuple[Edit, str]] = {
    "logvar-bias-200": (_fill("model.q_logvar.bias", 200.0), "not finite"),  # finite, overflows
    "lr-scheduled-without-schedule": (_group("lr", 5e-4), "param_groups[0].lr"),  # 'none': 1e-3 only
    "baseline-negative": (_progress(baseline=-5.0), "progress.baseline"),  # a Bernoulli reconstruction
}
CLASSIFIER_ONLY: dict[str, tuple[Edit, str]] = {
    "weights-overflow": (lambda t, s: [t[k].fill_(1e38) for k in ("model.net.0.weight",
                                                                  "model.net.4.weight")], "not finite"),
    "best-val-above-0": (_progress(best_val=0.5), "progress.best_val"),  # minus an accuracy of -50%
    "best-val-below-1": (_progress(best_val=-2.0), "progress.best_val"),
    "baseline-kept": (_progress(baseline=0.5), "progress.baseline"),  # a classifier keeps none
}

VAE_RESUME = ["train", "--resume", "--epochs", "3", "--threads", "1", "--no-progress", "--out"]
CLASSIFIER_RESUME = ["classify", "--resume", "--epochs", "3", "--threads", "1", "--no-progress", "--out"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "vae")


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier_run(tmp_path_factory.mktemp("runs") / "classifier")


def _edit(run: Path, edit: Edit) -> None:
    """Edit checkpoint.safetensors, what resume reads (its tensors and the state in its metadata)."""
    path = run / runs.CHECKPOINT
    tensors, metadata = runs.read_tensors(path, "test")
    state = json.loads(metadata["checkpoint"])
    edit(tensors, state)
    save_file(tensors, str(path), metadata={"checkpoint": json.dumps(state)})


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def _refused(run: Path, argv: list[str], field: str, capsys: Any, one_sentence: Any) -> None:
    before = _snapshot(run)
    capsys.readouterr()
    status = main([*argv, str(run)])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert status == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    prefix = f"vaekit {argv[0]}: error: "
    assert err.startswith(prefix), err
    one_sentence(err.removeprefix(prefix), str(run / runs.CHECKPOINT), field)
    assert "epoch   3" not in captured.out  # refused before any step
    assert _snapshot(run) == before


@pytest.mark.parametrize("case", [*SHARED, *VAE_ONLY])
def test_a_vae_checkpoint_no_run_writes_is_refused(vae_run: Path, tmp_path: Path, capsys: Any,
                                                   one_sentence: Any, case: str) -> None:
    run = Path(shutil.copytree(vae_run, tmp_path / "run"))
    edit, field = {**SHARED, **VAE_ONLY}[case]
    _edit(run, edit)
    _refused(run, VAE_RESUME, field, capsys, one_sentence)


@pytest.mark.parametrize("case", [*SHARED, *CLASSIFIER_ONLY])
def test_a_classifier_checkpoint_no_run_writes_is_refused(classifier_run: Path, tmp_path: Path, capsys: Any,
                                                          one_sentence: Any, case: str) -> None:
    run = Path(shutil.copytree(classifier_run, tmp_path / "run"))
    edit, field = {**SHARED, **CLASSIFIER_ONLY}[case]
    _edit(run, edit)
    _refused(run, CLASSIFIER_RESUME, field, capsys, one_sentence)


@pytest.mark.parametrize("resume, make", [(VAE_RESUME, "vae_run"), (CLASSIFIER_RESUME, "classifier_run")])
def test_an_untouched_checkpoint_resumes(resume: list[str], make: str, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    """The classifier's checkpoint holds the cosine schedule's learning rate (half its optim.lr)."""
    run = Path(shutil.copytree(request.getfixturevalue(make), tmp_path / "run"))
    _edit(run, lambda t, s: None)  # rewritten as the edits are, nothing changed
    assert main([*resume, str(run)]) == 0
    assert runs.load_checkpoint(run)[2]["epoch"] == 3


def test_load_run_refuses_a_model_whose_minus_elbo_overflows(vae_run: Path, tmp_path: Path,
                                                             one_sentence: Any) -> None:
    """Finite weights whose q(z|x) variance exp(logvar) overflows: the -ELBO of a grey image is
    not finite, so the model file is refused as the checkpoint is."""
    run = Path(shutil.copytree(vae_run, tmp_path / "run"))
    tensors, metadata = runs.read_tensors(run / runs.MODEL, "test")
    tensors["q_logvar.bias"].fill_(200.0)
    save_file(tensors, str(run / runs.MODEL), metadata=metadata)
    with pytest.raises(CheckpointError) as err:
        runs.load_run(run)
    one_sentence(str(err.value), str(run / runs.MODEL), "not finite")


def _bounds(**model: Any) -> dict[str, tuple[float, float, str]]:
    config = TrainConfig()
    config.model.image_shape = [1, 8, 8]
    config.model.hidden = [8]
    config.model.latent = 2
    if model.get("likelihood") == "gaussian":
        config.data.binarize = "dequantize"
    for key, value in model.items():
        setattr(config.model, key, value)
    return VAETask(config, None).progress_bounds(build_model(config))  # type: ignore[arg-type]


def test_the_floor_of_a_vae_score_is_that_of_its_likelihood_and_kl() -> None:
    """-log p(x|z) of a Bernoulli is >= 0, and so is the closed-form KL: a -ELBO >= 0; a one-sample
    KL estimate (the VampPrior) or a Gaussian density has no floor (the reconstruction of a
    Bernoulli, the score estimator's baseline, still has)."""
    assert _bounds()["best_val"][:2] == (0.0, math.inf)
    assert _bounds(likelihood="gaussian")["best_val"][:2] == (-math.inf, math.inf)
    assert _bounds(likelihood="gaussian")["baseline"][:2] == (-math.inf, math.inf)
    vamp = _bounds(prior="vamp", pseudo_inputs=4)
    assert vamp["best_val"][:2] == (-math.inf, math.inf) and vamp["baseline"][:2] == (0.0, math.inf)
    record = {**Progress(epoch=2, step=24, best_val=-3.5, best_epoch=2).__dict__}
    check_progress(record, Path("c"), progress_fields(Progress), _bounds(likelihood="gaussian"))
    with pytest.raises(CheckpointError, match=r"progress\.best_val must be a validation -ELBO in nats, at "
                                              r"least 0, got -3\.5"):
        check_progress(record, Path("c"), progress_fields(Progress), _bounds())


@pytest.mark.parametrize("resume, make", [(VAE_RESUME, "vae_run"), (CLASSIFIER_RESUME, "classifier_run")])
@pytest.mark.parametrize("how", ["config.json", "epoch 1", "another seed", "not JSON"])
def test_a_checkpoint_json_that_is_not_the_checkpoints_state_is_refused(
        resume: list[str], make: str, how: str, tmp_path: Path, request: pytest.FixtureRequest,
        capsys: Any, one_sentence: Any) -> None:
    """checkpoint.json is the readable copy of checkpoint.safetensors' state: held against it."""
    run = Path(shutil.copytree(request.getfixturevalue(make), tmp_path / "run"))
    path = run / runs.CHECKPOINT_JSON
    state = json.loads(path.read_text())
    if how == "config.json":
        shutil.copy(run / runs.CONFIG, path)
    elif how == "not JSON":
        path.write_text("{")
    else:
        state["epoch" if how == "epoch 1" else "config"] = 1 if how == "epoch 1" else {
            **state["config"], "train": {**state["config"]["train"], "seed": 1}}
        path.write_text(json.dumps(state))
    before = _snapshot(run)
    capsys.readouterr()
    assert main([*resume, str(run)]) == 2
    err = capsys.readouterr().err.strip()
    one_sentence(err.removeprefix(f"vaekit {resume[0]}: error: "), str(path), str(run / runs.CHECKPOINT))
    assert _snapshot(run) == before
    path.unlink()  # vaekit writes it again from the state
    assert main([*resume, str(run)]) == 0
    assert json.loads(path.read_text()) == runs.load_checkpoint(run)[2]


@pytest.mark.parametrize("resume, make", [(VAE_RESUME, "vae_run"), (CLASSIFIER_RESUME, "classifier_run")])
@pytest.mark.parametrize("how", ["reversed", "twice", "past the end"])
def test_metrics_rows_out_of_order_are_refused_for_every_kind(
        resume: list[str], make: str, how: str, tmp_path: Path, request: pytest.FixtureRequest,
        capsys: Any, one_sentence: Any) -> None:
    """A classifier's metrics.jsonl is held to the law of a VAE's: epochs 1, 2, ... of the run."""
    run = Path(shutil.copytree(request.getfixturevalue(make), tmp_path / "run"))
    path = run / runs.METRICS
    rows = path.read_text().splitlines()
    extra = {"reversed": rows[::-1], "twice": rows,
             "past the end": [rows[-1].replace('"epoch": 2', '"epoch": 3', 1)]}[how]
    path.write_text("\n".join([*rows, *extra]) + "\n")
    before = _snapshot(run)
    for argv in (["report", str(run)], [*resume, str(run)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        one_sentence(err.removeprefix(f"vaekit {argv[0]}: error: "), str(path))
    assert _snapshot(run) == before
