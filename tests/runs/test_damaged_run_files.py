"""Run files emptied, removed or swapped after training: every reader, and `--resume`, refuses them
in one sentence naming the file at fault, and nothing already in the directory is changed."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_refusal import cli_bad, filled, snapshot
from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
         "--threads", "1", "--no-progress"]
RESUME = [*TRAIN, "--epochs", "3", "--out", "{run}", "--resume"]
REPORT = ["report", "{run}", "--k", "2"]


# ----------------------------------------------------------------------------- metrics.jsonl


@pytest.mark.parametrize("how", ["emptied", "deleted", "one junk line"])
def test_metrics_without_the_rows_the_checkpoint_records_are_refused(
        run: Path, capsys: Any, one_sentence: Any, how: str) -> None:
    """The checkpoint records 2 finished epochs and the digest of their rows; a metrics.jsonl with
    none of them (a junk last line without its newline reads as a cut one, dropped) is no longer
    read as 0 rows, and a resume does not train on to a file whose line 1 is epoch 3."""
    path = run / runs.METRICS
    assert len(path.read_text().splitlines()) == 2
    if how == "deleted":
        path.unlink()
    else:
        path.write_text("" if how == "emptied" else "not a row")
    with pytest.raises(CheckpointError, match="metrics.jsonl"):
        runs.read_metrics(run)
    before = snapshot(run)
    for template in (REPORT, RESUME):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(path))
        assert err.endswith(f"{runs.PUT_BACK}."), err  # what to do about it
    assert snapshot(run) == before


@pytest.mark.parametrize("keep", [0, 300])
def test_a_truncated_checkpoint_on_resume_is_named_with_its_fix(run: Path, capsys: Any, one_sentence: Any,
                                                                keep: int) -> None:
    path = run / runs.CHECKPOINT
    path.write_bytes(path.read_bytes()[:keep])
    before = snapshot(run)
    for template in (RESUME, REPORT):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(path))
        assert "not a complete safetensors file" in err and err.endswith(f"{runs.PUT_BACK}."), err
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- model.safetensors


EVAL = ["eval", "{run}", "--k", "2", "--limit", "20", "--no-progress", "--no-probe", "--threads", "1"]
SAMPLE = ["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"]


@pytest.fixture(scope="module")
def tanh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of a network of the same shapes as `trained`'s, another activation."""
    return make_run(tmp_path_factory.mktemp("runs") / "tanh", activation="tanh")


def test_a_model_file_of_another_run_is_named_not_the_config(run: Path, tanh: Path, capsys: Any,
                                                              one_sentence: Any) -> None:
    """config.json and the checkpoint carry the same run id and config (relu): the model file that
    says tanh is the stranger, and the sentence says so rather than asking for config.json back."""
    shutil.copyfile(tanh / runs.MODEL, run / runs.MODEL)
    model, config = str(run / runs.MODEL), str(run / runs.CONFIG)
    with pytest.raises(CheckpointError) as caught:
        runs.load_run(run)
    assert str(caught.value).startswith(f"{model} is not this run's"), caught.value
    before = snapshot(run)
    for template in (EVAL, SAMPLE, REPORT, RESUME):
        err = cli_bad(capsys, one_sentence, filled(template, run), model)
        assert f"{model} is not this run's" in err and "copied from another run" in err, err
        assert f"{config} is not the config" not in err, err
    assert snapshot(run) == before


def test_a_config_json_edited_is_still_the_one_named(run: Path, tanh: Path, capsys: Any,
                                                     one_sentence: Any) -> None:
    """The other way round: config.json says tanh, the checkpoint and the model file relu."""
    shutil.copyfile(tanh / runs.CONFIG, run / runs.CONFIG)
    raw = json.loads((run / runs.CONFIG).read_text())
    raw["run"] = {"id": json.loads((run / runs.CHECKPOINT_JSON).read_text())["run_id"]}  # the run's id
    (run / runs.CONFIG).write_text(json.dumps(raw))
    err = cli_bad(capsys, one_sentence, filled(EVAL, run), str(run / runs.CONFIG))
    assert "is not this run's" not in err, err


def test_a_config_edited_to_fewer_epochs_than_the_run_holds_is_refused(
        run: Path, capsys: Any, one_sentence: Any) -> None:
    """config.json's train.epochs edited below the epochs the run trained (its metrics rows, its
    checkpoint's epoch): every reader, `vaekit eval` too, names config.json; the run as it was."""
    rows = len(runs.read_metrics(run))
    path = run / runs.CONFIG
    config = json.loads(path.read_text())
    assert config["train"]["epochs"] == rows == 2
    config["train"]["epochs"] = rows - 1
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json"):
        runs.load_run(run)
    before = snapshot(run)
    evaluate = ["eval", "{run}", "--k", "2", "--no-probe", "--threads", "1", "--no-progress"]
    for argv in (evaluate, REPORT):
        cli_bad(capsys, one_sentence, filled(argv, run), str(path))
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- eval.json


@pytest.fixture(scope="module")
def evaluated(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of `trained` with the eval.json of `vaekit eval` (closed-form KL, Bernoulli decoder)."""
    run = Path(shutil.copytree(trained, tmp_path_factory.mktemp("evaluated") / "run"))
    assert main(["eval", str(run), "--k", "4", "--limit", "20", "--no-progress", "--no-probe",
                 "--threads", "1"]) == 0
    return run


def _negative_kl(r: dict[str, Any]) -> None:
    r["test_kl"] = -0.5
    r["test_neg_elbo"] = r["test_recon"] - 0.5


def _negative_kl_dim(r: dict[str, Any]) -> None:
    r["kl_per_dim"][0] = -0.25


def _latent_3(r: dict[str, Any]) -> None:  # consistent in itself: 3 dimensions everywhere
    r["latent_dim"] = 3
    r["kl_per_dim"].append(0.0)
    r["latent_mean_variance"].append(0.0)


def _active_past_config(r: dict[str, Any]) -> None:  # 3 active units, latent_dim 3: the run has 2
    _latent_3(r)
    r["active_units"] = 3


def _negative_recon(r: dict[str, Any]) -> None:
    r["test_recon"] = -1.0


def _terms_not_summing(r: dict[str, Any]) -> None:  # -ELBO = reconstruction + KL, by definition
    r["test_neg_elbo"] = r["test_recon"] + r["test_kl"] + 1.0


def _bits_not_of_nll(r: dict[str, Any]) -> None:  # bits/dim = nats / (D ln 2), D = 8 x 8 digits pixels
    assert r["bits_per_dim"] == pytest.approx(r["test_nll"] / (64 * math.log(2)), rel=1e-9)
    r["bits_per_dim"] *= 1.01


def _images_past_test_set(r: dict[str, Any]) -> None:  # digits: 1,797 images, a tenth of them test
    from vaekit.data.load import load_digits_dataset

    r["images"] = len(load_digits_dataset().test) + 1


def _nll_far_above_elbo(r: dict[str, Any]) -> None:  # -L_k <= -ELBO up to Monte-Carlo noise (IWAE)
    assert r["test_nll"] <= r["test_neg_elbo"]  # what the evaluation wrote
    r["test_nll"] = r["test_neg_elbo"] + 100.0
    r["bits_per_dim"] = r["test_nll"] / (64 * math.log(2))


def _kl_dims_not_summing(r: dict[str, Any]) -> None:  # the closed-form KL is the sum of its dimensions
    assert math.fsum(r["kl_per_dim"]) == pytest.approx(r["test_kl"], rel=1e-5)
    r["kl_per_dim"][0] += 0.5


def _active_of_no_variance(r: dict[str, Any]) -> None:  # active: a latent mean's variance above 0.01
    r["latent_mean_variance"], r["active_units"] = [0.001, 0.009], 2


def _inactive_of_a_large_variance(r: dict[str, Any]) -> None:
    r["latent_mean_variance"], r["active_units"] = [5.0, 0.0], 0


def _mse_past_one(r: dict[str, Any]) -> None:  # Bernoulli: means and pixels in [0, 1], per pixel
    r["mse"] = 5.0


def _nll_far_below_elbo_at_one_sample(r: dict[str, Any]) -> None:  # k = 1: -L_1 is the -ELBO's sample
    from vaekit.evaluate.eval_json import nll_slack

    slack = nll_slack(r["test_kl"], r["images"], 1, True, r["test_neg_elbo"])
    r["k"], r["test_nll"] = 1, r["test_neg_elbo"] - 2 * slack - 1.0
    r["bits_per_dim"] = r["test_nll"] / (64 * math.log(2))


def _edited_text(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(r: dict[str, Any]) -> None:
        r[field] = value
    edit.__name__ = f"_{field}_{value}"
    return edit


@pytest.mark.parametrize("edit", [_negative_kl, _negative_kl_dim, _latent_3, _active_past_config,
                                  _negative_recon, _terms_not_summing, _bits_not_of_nll,
                                  _images_past_test_set, _nll_far_above_elbo, _kl_dims_not_summing,
                                  _active_of_no_variance, _inactive_of_a_large_variance, _mse_past_one,
                                  _nll_far_below_elbo_at_one_sample, _edited_text("binarization", "none"),
                                  _edited_text("binarization", "wibble"),
                                  _edited_text("likelihood_of", "three cats"),
                                  _edited_text("binarization_seed", 7), _edited_text("device", "tpu:9"),
                                  _edited_text("dataset", "")])
def test_an_eval_json_the_run_makes_impossible_is_refused(
        evaluated: Path, tmp_path: Path, capsys: Any, one_sentence: Any,
        edit: Callable[[dict[str, Any]], None]) -> None:
    """A closed-form KL(q || N(0, I)) is >= 0 (each dimension too), the latent dimensions are the
    network's (the torch module's own), a Bernoulli cross-entropy of pixels in [0, 1] is >= 0 and
    their squared error at most 1; the active units are the variances above 0.01; -L_1 is the
    -ELBO of its one sample; the protocol is what `vaekit eval` writes for the run's config."""
    from vaekit.evaluate.run import read_eval

    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    assert runs.load_run(run).model.latent_dim == 2
    path = run / runs.EVAL
    result = json.loads(path.read_text())
    assert read_eval(run) == result  # the file of `vaekit eval` itself is read
    edit(result)
    path.write_text(json.dumps(result))
    with pytest.raises(CheckpointError, match="eval.json"):
        read_eval(run)
    before = snapshot(run)
    cli_bad(capsys, one_sentence, filled(REPORT, run), str(path))
    assert snapshot(run) == before


def test_a_negative_nll_is_not_refused(evaluated: Path, tmp_path: Path) -> None:
    """An importance-sampled -log p(x) near 0 can be drawn below it: not certain enough to refuse."""
    from vaekit.evaluate.run import read_eval

    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    result = json.loads((run / runs.EVAL).read_text())
    result["test_nll"], result["bits_per_dim"] = -0.01, -0.01 / (64 * 0.6931471805599453)
    (run / runs.EVAL).write_text(json.dumps(result))
    assert read_eval(run) == result


# ----------------------------------------------------------------------------- an empty model file


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier run with the eval.json of `vaekit classify eval`."""
    from eval_runs import make_classifier_run

    run = make_classifier_run(tmp_path_factory.mktemp("classifier") / "run")
    assert main(["classify", "eval", str(run)]) == 0
    return run


EMPTY_MODEL_READERS = {
    "vae": [EVAL, SAMPLE, REPORT, RESUME],
    "classify": [["classify", "eval", "{run}"], ["report", "{run}"],
                 ["classify", "--data", "digits", "--epochs", "3", "--out", "{run}", "--resume"]],
}


@pytest.mark.parametrize("kind", sorted(EMPTY_MODEL_READERS))
def test_an_empty_model_file_is_named_by_every_reader(evaluated: Path, classifier: Path, tmp_path: Path,
                                                      capsys: Any, one_sentence: Any, kind: str) -> None:
    """model.safetensors of zero bytes (vaekit writes whole files only), beside an eval.json of the
    model it replaced: each reader names the model file, none blames eval.json ("other weights")."""
    from vaekit.serve.app import make_server

    run = Path(shutil.copytree(evaluated if kind == "vae" else classifier, tmp_path / "run"))
    model = run / runs.MODEL
    model.write_bytes(b"")
    before = snapshot(run)
    with pytest.raises(CheckpointError, match=str(model)):
        runs.load_run(run)
    if kind == "vae":
        with pytest.raises(CheckpointError, match=str(model)):
            make_server(run)
    for template in EMPTY_MODEL_READERS[kind]:
        err = cli_bad(capsys, one_sentence, filled(template, run), str(model))
        assert "other weights" not in err, err
    assert snapshot(run) == before
