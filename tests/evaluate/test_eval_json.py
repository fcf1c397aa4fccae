"""eval.json held against what no evaluation of the run can write: more images than its test set,
-L_k far above the -ELBO, a KL per dimension that does not sum to the KL; and what honest
evaluations write, at their noisiest (one image, one importance sample), still read."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from cli_refusal import cli_bad, snapshot
from eval_runs import make_classifier_run, make_run, write_images
from vaekit import runs
from vaekit.cli import main
from vaekit.data.load import (
    known_image_shape,
    known_test_images,
    known_train_images,
    load_dataset,
    load_digits_dataset,
)
from vaekit.errors import CheckpointError
from vaekit.evaluate.eval_json import nll_slack, read_eval
from vaekit.evaluate.run import evaluate_run


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("eval_json") / "run", latent=3)
    assert main(["eval", str(run), "--k", "4", "--limit", "30", "--no-progress", "--no-probe",
                 "--threads", "1"]) == 0
    return run


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits run evaluated with its linear probe (fitted on the whole training split)."""
    run = make_run(tmp_path_factory.mktemp("eval_json") / "probed", latent=3)
    assert main(["eval", str(run), "--k", "1", "--limit", "20", "--no-progress", "--threads", "1"]) == 0
    return run


def _edited(evaluated: Path, tmp_path: Path, **fields: Any) -> Path:
    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    result = json.loads((run / runs.EVAL).read_text())
    result.update(fields)
    if "test_nll" in fields:  # bits/dim follows -log p(x): D = 64 pixels of 8x8 digits
        result["bits_per_dim"] = result["test_nll"] / (64 * math.log(2))
    (run / runs.EVAL).write_text(json.dumps(result))
    return run


def test_known_test_images_are_those_of_the_loaded_sets() -> None:
    assert known_test_images("digits") == len(load_digits_dataset().test)
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        assert known_test_images("fashion-mnist") == len(load_dataset("fashion-mnist", download=False).test)
    assert known_test_images("./my_images.npz") is None


def test_images_past_the_test_set_are_refused(evaluated: Path, tmp_path: Path) -> None:
    test = len(load_digits_dataset().test)
    assert read_eval(_edited(evaluated, tmp_path / "a", images=test)) is not None  # all of them: --limit off
    with pytest.raises(CheckpointError, match=rf"eval\.json: images is {test + 1}, but the test set of "
                                              rf"digits holds {test} images"):
        read_eval(_edited(evaluated, tmp_path / "b", images=test + 1))


def test_known_train_images_are_those_of_the_loaded_sets() -> None:
    assert known_train_images("digits") == len(load_digits_dataset().train)
    assert known_train_images("./my_images.npz") is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"probe_train_images": 99_999_999}, r"probe_train_images is 99999999, but the training split of "
                                         r"digits holds 1,437 images"),
    ({"probe_train_images": 1_438}, r"probe_train_images is 1438, but the training split of digits holds"),
    ({"probe_train_images": 0}, r"probe_train_images is 0, but `vaekit eval` writes probe_train_images >= 1"),
    ({"probe_train_images": 12.5}, r"probe_train_images is 12\.5, but it must be an integer"),
    ({"probe_train_images": 20_000, "dataset": "./mine.npz"},
     r"probe_train_images is 20000, but `vaekit eval` fits the probe on at most 10,000 images"),
    ({"probe_train_images": None}, r"probe_accuracy is there without probe_train_images"),
])
def test_a_probe_fitted_on_more_images_than_the_training_split_is_refused(
        probed: Path, tmp_path: Path, capsys: Any, one_sentence: Any, fields: dict[str, Any],
        message: str) -> None:
    """The probe is fitted on a seeded subsample of at most PROBE_TRAIN_IMAGES images of the
    training split: digits' holds 1,437 (1,797 less its validation and test tenths), which the
    honest eval.json records; more, a fraction or none at all beside an accuracy is refused."""
    honest = json.loads((probed / runs.EVAL).read_text())
    assert honest["probe_train_images"] == len(load_digits_dataset().train) == 1_437
    assert read_eval(_edited(probed, tmp_path / "same", probe_train_images=1_437)) is not None
    run = _edited(probed, tmp_path / "run", **fields)
    with pytest.raises(CheckpointError, match=r"eval\.json: " + message):
        read_eval(run)
    cli_bad(capsys, one_sentence, ["report", str(run), "--no-eval"], str(run / runs.EVAL))


@pytest.mark.parametrize("accuracy", [0.1234, 0.5 + 1 / 40, 1 / 21])
def test_a_probe_accuracy_no_fraction_of_the_test_images_has_is_refused(
        probed: Path, tmp_path: Path, capsys: Any, one_sentence: Any, accuracy: float) -> None:
    """The probe scores every evaluated test image, `images` (20) of them: its accuracy is a
    multiple of 1/20, as every one of 0/20 .. 20/20 is read; 0.1234, 21/40 and 1/21 are not."""
    honest = json.loads((probed / runs.EVAL).read_text())
    assert honest["images"] == 20 and honest["probe_accuracy"] is not None
    for right in range(21):
        assert read_eval(_edited(probed, tmp_path / f"right{right}", probe_accuracy=right / 20)) is not None
    run = _edited(probed, tmp_path / "run", probe_accuracy=accuracy)
    with pytest.raises(CheckpointError, match=r"eval\.json: probe_accuracy is .*, but the probe scores the "
                                              r"20 test images \(images\), so it is a multiple of 1/20"):
        read_eval(run)
    cli_bad(capsys, one_sentence, ["report", str(run), "--no-eval"], str(run / runs.EVAL))


@pytest.mark.parametrize(("field", "value"), [("seed", 0.5), ("threads", 1.5), ("batch_size", 2.5),
                                              ("world_size", 1.5), ("binarization_seed", 0.0), ("seed", 1.0)])
def test_counts_that_are_not_whole_numbers_are_refused(evaluated: Path, tmp_path: Path, capsys: Any,
                                                       one_sentence: Any, field: str, value: float) -> None:
    """seed, threads, batch_size, world_size and binarization_seed are integers as `vaekit eval`
    writes them: a fraction, or a whole number written as a float, is refused naming the field."""
    run = _edited(evaluated, tmp_path, **{field: value})
    with pytest.raises(CheckpointError, match=rf"eval\.json: {field} is {value}, but it must be an integer"):
        read_eval(run)
    cli_bad(capsys, one_sentence, ["report", str(run), "--no-eval"], str(run / runs.EVAL))


def test_known_image_shapes_are_those_of_the_loaded_sets() -> None:
    assert known_image_shape("digits") == load_digits_dataset().image_shape
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        assert known_image_shape("fashion-mnist") == load_dataset("fashion-mnist", download=False).image_shape
    assert known_image_shape("./my_images.npz") is None


def test_a_dataset_of_other_images_than_the_runs_is_refused(evaluated: Path, tmp_path: Path, capsys: Any,
                                                            one_sentence: Any) -> None:
    """A digits run (8x8) whose eval.json names mnist (28x28): no `vaekit eval` of it can have
    used that set; the report is refused, nothing in the run written."""
    run = _edited(evaluated, tmp_path, dataset="mnist")
    with pytest.raises(CheckpointError, match=r"eval\.json: dataset is mnist, whose images are 1x28x28"):
        read_eval(run)
    before = snapshot(run)
    cli_bad(capsys, one_sentence, ["report", str(run)], str(run / runs.EVAL))
    assert snapshot(run) == before


def test_an_evaluation_on_other_images_of_the_runs_shape_is_read(evaluated: Path, tmp_path: Path) -> None:
    """`vaekit eval --dataset` on a user's .npz of 8x8 images: its eval.json names that file, and is
    read."""
    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    images = write_images(tmp_path / "other.npz", (8, 8))
    written = evaluate_run(run, k=2, dataset=str(images), progress=False, probe=False, threads=1)
    assert written["dataset"] != "digits" and read_eval(run) == written


def test_nll_far_above_the_neg_elbo_is_refused(evaluated: Path, tmp_path: Path) -> None:
    result = json.loads((evaluated / runs.EVAL).read_text())
    assert result["test_nll"] <= result["test_neg_elbo"]  # as the IWAE bound says
    with pytest.raises(CheckpointError, match=r"eval\.json: test_nll is .* at most test_neg_elbo"):
        read_eval(_edited(evaluated, tmp_path, test_nll=result["test_neg_elbo"] + 100.0))


def test_kl_per_dim_not_summing_to_test_kl_is_refused(evaluated: Path, tmp_path: Path) -> None:
    result = json.loads((evaluated / runs.EVAL).read_text())
    dims = result["kl_per_dim"]
    assert math.fsum(dims) == pytest.approx(result["test_kl"], rel=1e-6)
    shifted = [dims[0] + 0.3, *dims[1:]]  # each still >= 0
    with pytest.raises(CheckpointError, match=r"eval\.json: kl_per_dim sums to .* but test_kl is"):
        read_eval(_edited(evaluated, tmp_path, kl_per_dim=shifted))


@pytest.mark.parametrize("field", ["kl_per_dim", "test_kl", "mse", "latent_mean_variance"])
def test_numbers_past_float32s_range_are_refused_by_name(evaluated: Path, tmp_path: Path, capsys: Any,
                                                        one_sentence: Callable[..., None],
                                                        field: str) -> None:
    big = float(np.finfo(np.float32).max) * 1.01
    result = json.loads((evaluated / runs.EVAL).read_text())
    value: Any = [1e308] * len(result[field]) if isinstance(result[field], list) else big
    run = _edited(evaluated, tmp_path, **{field: value})  # 1e308s: fsum overflows, no traceback
    with pytest.raises(CheckpointError, match=rf"eval\.json: {field} holds .*past float32's range"):
        read_eval(run)
    cli_bad(capsys, one_sentence, ["report", str(run)], str(run / runs.EVAL))


def test_honest_evaluations_at_their_noisiest_are_read(evaluated: Path, tmp_path: Path) -> None:
    """One image, one importance sample: -L_1 above the closed-form -ELBO by the whole Monte-Carlo
    noise of one draw (about half the time above it), on ten seeds; each eval.json is read."""
    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    above = 0
    for seed in range(10):
        written = evaluate_run(run, k=1, limit=1, seed=seed, progress=False, probe=False, threads=1)
        assert read_eval(run) == written
        above += written["test_nll"] > written["test_neg_elbo"]
    assert above > 0  # the slack is needed: an honest -L_1 does lie above the closed-form -ELBO


@pytest.mark.parametrize(("mu", "s"), [(0.0, 0.1), (2.0, 0.3), (-1.0, 0.9), (0.5, 1.0), (1.0, 1.5),
                                      (0.0, 3.0)])
def test_the_noise_variance_bound_of_nll_slack(mu: float, s: float) -> None:
    """Var[log q(z) - log p(z)], z ~ q = N(mu, s^2), p = N(0, 1), is at most 2 max(1, s^2) KL(q || p):
    the bound `nll_slack` divides by N k, held against torch.distributions on 400,000 draws."""
    f64 = {"dtype": torch.float64}
    q, p = Normal(torch.tensor(mu, **f64), torch.tensor(s, **f64)), Normal(torch.tensor(0.0, **f64), 1.0)
    z = mu + s * torch.randn(400_000, generator=torch.Generator().manual_seed(0), **f64)
    variance = float((q.log_prob(z) - p.log_prob(z)).var())
    kl = float(kl_divergence(q, p))
    assert variance <= 2 * max(1.0, s * s) * kl * 1.02 + 1e-9
    # the slack is NLL_SIGMAS such standard deviations at one image, one sample, s <= 1
    assert nll_slack(kl, 1, 1, True, 0.0) >= 20 * math.sqrt(2 * kl)
    assert nll_slack(kl, 1, 1, False, 0.0) < 1e-3  # Monte-Carlo KL: Jensen on the same samples, exact


@pytest.mark.parametrize(("fields", "message"), [
    ({"active_units": 3, "latent_mean_variance": [0.001, 0.005, 0.0099]},
     r"active_units is 3, but latent_mean_variance holds 0 variances above 0\.01"),
    ({"active_units": 0, "latent_mean_variance": [5.0, 0.001, 0.002]},
     r"active_units is 0, but latent_mean_variance holds 1 variances above 0\.01"),
    ({"mse": 5.0}, r"mse is 5, but under a Bernoulli likelihood .* at most 1"),
    ({"binarization": "none"}, r"binarization is 'none', but `vaekit eval` writes 'fixed' for a run "
                               r"trained with binarize 'dynamic'"),
    ({"binarization": "wibble"}, r"binarization is 'wibble', but `vaekit eval` writes 'fixed'"),
    ({"likelihood_of": "three cats"},
     r"likelihood_of is 'three cats', but `vaekit eval` writes its text for binarization 'fixed'"),
    ({"binarization_seed": 7}, r"binarization_seed is 7, but `vaekit eval` writes 0"),
    ({"device": "tpu:9"}, r"device is 'tpu:9', but `vaekit eval` evaluates on cpu, cuda or cuda:N"),
    ({"dataset": ""}, r"dataset is empty, but `vaekit eval` writes the name"),
    ({"test_sha256": "ABC"}, r"test_sha256 is not 64 lowercase hex digits"),
    ({"data_source": str(Path(__file__).resolve())},  # a file there, but no dataset
     r"data_source is '/.*test_eval_json\.py', a file that is neither a folder nor a \.npy/\.npz array"),
    ({"data_source": "mine.npz"}, r"data_source is 'mine\.npz', a relative path, but `vaekit eval` writes"),
])
def test_what_eval_cannot_write_for_the_run_is_named(evaluated: Path, tmp_path: Path, capsys: Any,
                                                     one_sentence: Any, fields: dict[str, Any],
                                                     message: str) -> None:
    """Active units that are not the latent means' variances above 0.01 (`latents.active_units` on
    the same means), a squared error per pixel above 1 where means and pixels lie in [0, 1], and a
    protocol other than the one `vaekit eval` writes for a Bernoulli run trained with dynamic
    binarization (its test images binarized once, seed 0, on cpu or cuda)."""
    config = json.loads((evaluated / runs.CONFIG).read_text())
    assert config["model"]["likelihood"] == "bernoulli" and config["data"]["binarize"] in ("auto", "dynamic")
    run = _edited(evaluated, tmp_path, **fields)
    with pytest.raises(CheckpointError, match=r"eval\.json: " + message) as err:
        read_eval(run)
    assert str(err.value).endswith(f"; run `vaekit eval {run}` again."), err.value  # and its fix
    before = snapshot(run)
    cli_bad(capsys, one_sentence, ["report", str(run), "--no-eval"], str(run / runs.EVAL))
    assert snapshot(run) == before


def test_a_classifiers_eval_json_in_a_vae_run_is_named_a_classifiers(evaluated: Path, tmp_path: Path,
                                                                     capsys: Any, one_sentence: Any) -> None:
    """`vaekit classify eval`'s file (task "classify") copied into a VAE run: named as a classifier's,
    with the fix, not only as one with fields missing."""
    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    classifier = make_classifier_run(tmp_path / "classifier")
    assert main(["classify", "eval", str(classifier), "--limit", "20"]) == 0
    shutil.copy(classifier / runs.EVAL, run / runs.EVAL)
    err = cli_bad(capsys, one_sentence, ["report", str(run), "--no-eval"], str(run / runs.EVAL))
    assert "a classifier's eval.json" in err and err.endswith(f"run `vaekit eval {run}` again."), err


def test_a_negative_kl_relabelled_monte_carlo_is_refused(evaluated: Path, tmp_path: Path, capsys: Any,
                                                         one_sentence: Any) -> None:
    """A standard-prior, one-layer run: `vaekit eval` writes its KL in closed form (>= 0, one entry
    per dimension in kl_per_dim); an eval.json relabelled "Monte Carlo" to carry a KL of -5 nats is
    refused naming kl_estimate, as is the negative KL under its own label."""
    config = json.loads((evaluated / runs.CONFIG).read_text())
    assert config["model"]["prior"] == "standard" and config["model"]["stochastic_layers"] == 1
    result = json.loads((evaluated / runs.EVAL).read_text())
    assert result["kl_estimate"] == "closed form"
    negative = {"test_kl": -6.0, "kl_per_dim": [-2.0, -2.0, -2.0], "test_nll": result["test_recon"] - 7.0,
                "test_neg_elbo": result["test_recon"] - 6.0}
    monte_carlo = f"Monte Carlo, k = {result['k']}"
    relabelled = _edited(evaluated, tmp_path / "mc", kl_estimate=monte_carlo, **negative)
    with pytest.raises(CheckpointError, match=r"eval\.json: kl_estimate is 'Monte Carlo, k = 4', but "
                                              r"`vaekit eval` writes 'closed form'"):
        read_eval(relabelled)
    before = snapshot(relabelled)
    cli_bad(capsys, one_sentence, ["report", str(relabelled), "--no-eval"], str(relabelled / runs.EVAL))
    assert snapshot(relabelled) == before
    unlisted = _edited(evaluated, tmp_path / "none", kl_estimate=monte_carlo,
                       **{**negative, "kl_per_dim": None})
    with pytest.raises(CheckpointError, match=r"eval\.json: kl_estimate is 'Monte Carlo"):
        read_eval(unlisted)
    with pytest.raises(CheckpointError, match=r"eval\.json: kl_per_dim holds a negative KL"):
        read_eval(_edited(evaluated, tmp_path / "closed", **negative))


def test_at_one_sample_an_nll_far_below_the_neg_elbo_is_refused(evaluated: Path, tmp_path: Path) -> None:
    """k = 1: -L_1 and the -ELBO are of one sample, apart by the closed-form KL's noise alone, so
    -L_1 far below the -ELBO is refused; with k > 1 -L_k may lie anywhere below it (no bound)."""
    result = json.loads((evaluated / runs.EVAL).read_text())
    assert result["k"] > 1
    low = result["test_neg_elbo"] - 2 * nll_slack(result["test_kl"], result["images"], 1, True,
                                                  result["test_neg_elbo"]) - 1.0
    assert read_eval(_edited(evaluated, tmp_path / "k4", test_nll=low)) is not None
    with pytest.raises(CheckpointError, match=r"eval\.json: test_nll is .* with k = 1 -L_1 is the -ELBO"):
        read_eval(_edited(evaluated, tmp_path / "k1", test_nll=low, k=1))


def test_honest_one_sample_evaluations_of_the_test_set_are_read(evaluated: Path, tmp_path: Path) -> None:
    """k = 1 on every test image, five seeds: -L_1 lies on both sides of the closed-form -ELBO, and
    each eval.json is read (the active units, protocol and mse `vaekit eval` wrote)."""
    run = Path(shutil.copytree(evaluated, tmp_path / "run"))
    below = above = 0
    for seed in range(5):
        written = evaluate_run(run, k=1, seed=seed, progress=False, probe=False, threads=1)
        assert read_eval(run) == written
        below += written["test_nll"] < written["test_neg_elbo"]
        above += written["test_nll"] > written["test_neg_elbo"]
    assert below and above
