"""`vaekit check`: every claim passes at a small size with a fixed seed, every claim FAILS when the
implementation it tests carries a planted bug, and the command's output, JSON and exit status."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from planted_bugs import score_loss_without_score_term
from vaekit import checks
from vaekit.checks import gradients as checks_gradients
from vaekit.checks import training as checks_training
from vaekit.cli import main
from vaekit.errors import DataError
from vaekit.train.engines import BASELINE_DECAY
from vaekit.vae import prob
from vaekit.vae.estimators import GradientSamples, Objective, pathwise_gradient, score_function_gradient

QUICK = {claim_id: sizes for claim_id, (_, sizes) in checks.registry().items()}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with checks.one_thread():
        yield


def quick(claim_id: str, **kwargs: Any) -> checks.ClaimResult:
    func, sizes = checks.registry()[claim_id]
    return func(seed=0, **{**sizes, **kwargs})


# ----------------------------------------------------------------------------- every claim holds


@pytest.mark.parametrize("claim_id", checks.CLAIM_IDS)
def test_claim_passes_at_test_size(claim_id: str) -> None:
    result = quick(claim_id)
    assert result.passed, result.summary
    assert (result.id, result.question.startswith("Ex.2 Q")) == (claim_id, True)
    json.dumps(result.to_dict())  # the numbers are plain JSON


def test_registry_and_claim_ids_agree() -> None:
    assert tuple(checks.registry()) == checks.CLAIM_IDS


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    a, b = checks.kl_closed_form(seed=3, n_samples=2000), checks.kl_closed_form(seed=3, n_samples=2000)
    c = checks.kl_closed_form(seed=4, n_samples=2000)
    assert a.numbers == b.numbers
    assert a.numbers["max_z_vs_monte_carlo"] != c.numbers["max_z_vs_monte_carlo"]


def test_elbo_identity_holds_to_float_precision() -> None:
    numbers = quick("elbo_bound").numbers
    assert numbers["max_identity_error"] < 1e-10 and numbers["max_gap_optimal_q"] < 1e-10
    assert numbers["min_gap_random_q"] > 0.1  # the random encoders leave a real gap


def test_iwae_gap_shrinks_with_k() -> None:
    gaps = quick("iwae_tightens").numbers["mean_gap"]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.1 * gaps[0]


def test_variance_ratios_grow_with_dimension() -> None:
    result = quick("variance")
    for ratios in result.numbers["ratios"].values():
        assert min(ratios["score"]) > 2 and ratios["score"][-1] > 10 * ratios["score"][0]
    rows = result.details["table"]
    assert {(r["estimator"], r["n"], r["dim"]) for r in rows} >= {("reparam", 100, 100), ("score", 1, 1)}
    assert "score+baseline" in checks_gradients.variance_table(rows)


# ----------------------------------------------------------------------------- planted bugs


def kl_wrong_sign(mu_q: Tensor, lv_q: Tensor, mu_p: Tensor, lv_p: Tensor) -> Tensor:
    return -prob.diag_gaussian_kl(mu_q, lv_q, mu_p, lv_p)


def kl_forgot_minus_one(mu_q: Tensor, lv_q: Tensor, mu_p: Tensor, lv_p: Tensor) -> Tensor:
    # >= 0 everywhere, but not 0 when p = q
    return prob.diag_gaussian_kl(mu_q, lv_q, mu_p, lv_p) + 0.5 * mu_q.shape[-1]


def categorical_kl_swapped(p: Tensor, q: Tensor) -> Tensor:
    # sum q log(q / p): >= 0 and 0 when equal, but it is KL(q || p)
    return prob.categorical_kl(q, p)


@pytest.mark.parametrize("bug", [
    {"gaussian_kl": kl_wrong_sign},
    {"gaussian_kl": kl_forgot_minus_one},
    {"categorical_kl": categorical_kl_swapped},
    {"categorical_kl": lambda p, q: (p * (p.log() - q.log())).sum(-1)},  # 0 log 0 = nan
])
def test_kl_nonnegative_fails_with_a_planted_bug(bug: dict[str, Any]) -> None:
    assert not quick("kl_nonnegative", **bug).passed


@pytest.mark.parametrize("bug", [
    lambda mu, lv: -prob.gaussian_kl(mu, lv),  # wrong sign
    lambda mu, lv: -0.5 * (lv + 1 - lv.exp() - mu).sum(-1),  # mu instead of mu^2
    lambda mu, lv: -0.5 * (2 * lv + 1 - lv.exp() - mu**2).sum(-1),  # log sigma^4
])
def test_kl_closed_form_fails_with_a_planted_bug(bug: Any) -> None:
    assert not quick("kl_closed_form", kl=bug).passed


def elbo_kl_wrong_sign(model: Any, x: Tensor) -> Tensor:
    mu, logvar = model.encode(x)
    return model.elbo(x) + 2 * prob.gaussian_kl(mu, logvar)  # E[log p(x|z)] + KL


def neg_elbo_kl_wrong_sign(x: Tensor, model: Any, **kwargs: Any) -> prob.Terms:
    t = prob.negative_elbo(x, model, **kwargs)
    return prob.Terms(t.recon - t.kl, t.recon - t.kl, t.recon, -t.kl, -t.kl_per_dim)


@pytest.mark.parametrize("bug", [{"elbo": elbo_kl_wrong_sign}, {"neg_elbo": neg_elbo_kl_wrong_sign}])
def test_elbo_bound_fails_with_a_kl_of_the_wrong_sign(bug: dict[str, Any]) -> None:
    assert not quick("elbo_bound", **bug).passed


@pytest.mark.parametrize("bug", [
    lambda log_w: log_w.mean(dim=0),  # the ELBO: does not rise with K
    lambda log_w: torch.logsumexp(log_w, dim=0),  # forgot - log K: above log p(x)
    lambda log_w: log_w.max(dim=0).values,  # the best sample only
    lambda log_w: torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0] + 1),  # off by one: L_1 != ELBO
])
def test_iwae_tightens_fails_with_a_planted_bug(bug: Any) -> None:
    assert not quick("iwae_tightens", bound=bug).passed


def score_missing_log_derivative(f: Objective, mu: Tensor, scale: Tensor, n: int,
                                 **kw: Any) -> GradientSamples:
    """f(z) where (f(z) - b) d log q(z) belongs: E[f], not its gradient."""
    out = score_function_gradient(f, mu, scale, n, **kw)
    weight = out.values.unsqueeze(-1).expand_as(out.mu)
    return GradientSamples(weight, weight, out.values)


def score_missing_one_over_sigma(f: Objective, mu: Tensor, scale: Tensor, n: int,
                                 **kw: Any) -> GradientSamples:
    out = score_function_gradient(f, mu, scale, n, **kw)
    sigma = scale if kw.get("scale_is", "sigma") == "sigma" else (0.5 * scale).exp()
    return GradientSamples(out.mu * sigma, out.scale, out.values)


def pathwise_sigma_detached(f: Objective, mu: Tensor, scale: Tensor, n: int, **kw: Any) -> GradientSamples:
    """z = mu + sigma.detach() * eps: no gradient reaches the scale."""
    out = pathwise_gradient(f, mu, scale, n, **kw)
    return GradientSamples(out.mu, torch.zeros_like(out.scale), out.values)


def same_eps_for_all(estimator: Any) -> Any:
    """The n 'samples' are one sample repeated: the mean of n is no better than one."""
    def wrapped(f: Objective, mu: Tensor, scale: Tensor, n: int, **kw: Any) -> GradientSamples:
        one = estimator(f, mu, scale, 1, **kw)
        return GradientSamples(*(t.expand(n, *t.shape[1:]) for t in (one.mu, one.scale, one.values)))
    return wrapped


@pytest.mark.parametrize("bug", [
    {"estimator": score_missing_log_derivative},
    {"estimator": score_missing_one_over_sigma},
    {"loss": score_loss_without_score_term},
])
def test_score_unbiased_fails_with_a_planted_bug(bug: dict[str, Any]) -> None:
    result = quick("score_unbiased", **bug)
    assert not result.passed and result.numbers["max_z"] > 5


@pytest.mark.parametrize("bug", [
    {"estimator": pathwise_sigma_detached},
    {"estimator": score_function_gradient},  # right mean, but check the planted-bug detector itself
    {"loss": neg_elbo_kl_wrong_sign},
])
def test_reparam_unbiased_fails_with_a_planted_bug(bug: dict[str, Any]) -> None:
    result = quick("reparam_unbiased", **bug)
    if bug.get("estimator") is score_function_gradient:
        assert result.passed  # an unbiased estimator passes whatever its variance
    else:
        assert not result.passed and result.numbers["max_z"] > 10


@pytest.mark.parametrize("bug", [
    {"reparam": score_function_gradient},  # the 'reparameterization' is the score function
    {"reparam": same_eps_for_all(pathwise_gradient), "score": same_eps_for_all(score_function_gradient)},
])
def test_variance_fails_with_a_planted_bug(bug: dict[str, Any]) -> None:
    assert not quick("variance", **bug).passed


def test_training_fails_when_the_reparameterized_encoder_gets_no_gradient() -> None:
    def detached(x: Tensor, model: prob.VAE, baseline: float | None, g: torch.Generator) -> prob.Terms:
        return score_loss_without_score_term(x, model, generator=g)

    losses = {"reparam": detached, "score+baseline": checks_training.score_baseline_loss}
    result = checks_training.training_curves(steps=300, dataset="digits", losses=losses)
    assert not result.passed, result.summary
    assert result.numbers["final_heldout_kl"]["reparam"] < 0.1  # the collapsed posterior


def test_training_falls_back_to_digits_when_the_dataset_is_missing(places: Any) -> None:
    result = checks_training.training_curves(steps=3, dataset="fashion-mnist")
    assert result.numbers["dataset"] == "digits" and "fashion-mnist" in result.numbers["note"]
    with pytest.raises(DataError):
        checks_training.training_curves(steps=3, dataset="fashion-mnist", fallback=None)


def test_training_steps_have_a_floor_of_the_averaging_the_claim_rests_on() -> None:
    """The claim compares the estimators' variance, which Adam sees through its first moment and the
    score function's baseline is a running mean against: both average over 1 / (1 - 0.9) steps."""
    adam = torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    assert checks_training.MIN_STEPS == round(1 / (1 - adam.defaults["betas"][0])) == 10
    assert checks_training.MIN_STEPS == round(1 / (1 - BASELINE_DECAY))


def test_one_training_step_cannot_tell_the_baseline_from_none() -> None:
    """What `--steps 1` "passed" on: at one step the score runs with and without the baseline are the
    same run (no running mean yet), and every weight moved by lr whatever its gradient's variance."""
    result = checks_training.training_curves(steps=1, dataset="digits", fallback=None, n_heldout=200)
    final = result.numbers["final_heldout_neg_elbo"]
    assert final["score"] == final["score+baseline"]


@pytest.mark.parametrize("steps", ["1", "9", "0", "-3"])  # 9: MIN_STEPS - 1
def test_cli_refuses_fewer_training_steps_than_the_claim_needs(
        steps: str, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """`check --only training --steps 1` printed PASS from one step; now one sentence, before any work."""
    assert main(["check", "--only", "training", "--steps", steps, "--data", "digits"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    one_sentence(err.strip().removeprefix("vaekit check: error: "), "--steps",
                 f"at least {checks_training.MIN_STEPS}", f"got {steps}")


def test_cli_takes_the_fewest_training_steps_the_claim_needs(capsys: pytest.CaptureFixture[str]) -> None:
    steps = str(checks_training.MIN_STEPS)
    assert main(["check", "--only", "training", "--steps", steps, "--data", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["claims"][0]["numbers"]["steps"] == checks_training.MIN_STEPS


def test_a_long_training_claim_is_said_to_be_long(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`check --steps 100000` trained for minutes without a word: past a minute by the first steps'
    rate, one note says how long the runs will take; a short claim says nothing."""
    checks_training.note_slow_training(3.0, 1000, 3)  # 3 s / 20 steps * 1000 steps * 3 runs = 450 s
    checks_training.note_slow_training(0.2, 100, 3)  # 3 s
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("note: training: the first 20 steps took 3") and (
        "so the 3 runs of 1,000 steps will take up to about 7" in err[0]), err
    monkeypatch.setattr(checks_training, "SLOW_EPOCH", 0.0)  # any estimate is past it: the note comes
    checks_training.training_curves(steps=30, dataset="digits", fallback=None, n_heldout=100)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "so the 3 runs of 30 steps" in err[0], err
    checks_training.training_curves(steps=20, dataset="digits", fallback=None, n_heldout=100)
    assert capsys.readouterr().err == ""  # no steps past the timed ones: no estimate


def test_training_curves_are_recorded() -> None:
    result = quick("training", steps=20)
    curves = result.details["curves"]
    assert set(curves) == {"reparam", "score", "score+baseline"}
    for c in curves.values():
        assert len(c["train_neg_elbo"]) == 20 and c["steps"][-1] == 20
        assert all(math.isfinite(v) for v in c["heldout_neg_elbo"])
    # same seed, same start: every run begins from the same model and held-out value
    assert len({c["heldout_neg_elbo"][0] for c in curves.values()}) == 1


# ----------------------------------------------------------------------------- the command


def test_cli_json_fields_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--quick", "--only", "kl_closed_form,elbo_bound", "--json", "--seed", "1"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["passed"] is True and out["seed"] == 1
    claims = {c["id"]: c for c in out["claims"]}
    assert list(claims) == ["kl_closed_form", "elbo_bound"]
    assert claims["elbo_bound"]["question"] == "Ex.2 Q1" and claims["elbo_bound"]["passed"] is True
    assert {"claim", "numbers", "summary"} <= set(claims["kl_closed_form"])


def test_cli_prints_one_line_per_claim(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--quick", "--only", "kl_nonnegative,iwae_tightens"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert lines[0].startswith("PASS  kl_nonnegative") and lines[1].startswith("PASS  iwae_tightens")
    assert lines[-1].startswith("2/2 claims passed")


def test_cli_exits_1_when_a_claim_fails(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    real = checks.registry()
    bad = functools.partial(checks.kl_closed_form, kl=lambda mu, lv: -prob.gaussian_kl(mu, lv))
    monkeypatch.setattr(checks, "registry", lambda: {**real, "kl_closed_form": (bad, {})})
    status = main(["check", "--quick", "--only", "kl_closed_form,kl_nonnegative", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 1 and out["passed"] is False
    assert [c["passed"] for c in out["claims"]] == [False, True]
    main(["check", "--quick", "--only", "kl_closed_form"])
    assert capsys.readouterr().out.startswith("FAIL  kl_closed_form")


@pytest.mark.parametrize("argv, name", [
    (["--only", "elbo,kl_closed_form"], "elbo"),
    (["--steps", "0"], "--steps"),
    (["--steps", str(10**20)], "at most 100000"),
    (["--only", ""], "--only"),  # an empty list of claims is not all of them
    (["--only", ","], "--only"),
    (["--only", "elbo_bound,"], "--only"),
    (["--only", "training", "--data", "fashion-mnist"], "fashion-mnist"),  # asked for, not here
    (["--only", "variance,variance"], "'variance' twice"),  # not two claims passed
    (["--only", "variance", "--steps", "5"], "--steps"),  # the training claim's flags, unused
    (["--only", "variance", "--data", "mnist"], "--data"),
    (["--only", "kl_closed_form", "--data-dir", "/nonexistent"], "--data-dir"),
])
def test_cli_bad_arguments_exit_2_with_one_sentence(argv: list[str], name: str, places: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", *argv])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vaekit check: error: ") and name in last and last.endswith(".")


@pytest.mark.parametrize("argv, names", [
    (["--data", "mnist2"], ["unknown dataset 'mnist2'"]),
    (["--data", "fashion-mnist"], ["fashion-mnist is not on this machine"]),  # asked for, no fall-back
    (["--data", "no/such.npy"], ["no/such.npy: no such file; expected a .npy/.npz array file"]),
])
def test_cli_refuses_the_training_data_before_any_claim_runs(
        argv: list[str], names: list[str], places: Any, capsys: pytest.CaptureFixture[str],
        one_sentence: Any) -> None:
    """`check --quick --data mnist2` printed 7 claims before refusing the name; now nothing runs."""
    assert main(["check", "--quick", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    one_sentence(err.strip().removeprefix("vaekit check: error: "), *names)


def test_cli_refuses_a_data_dir_without_the_set_rather_than_falling_back(
        tmp_path: Path, places: Any, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """A --data-dir the user named is final (`vaekit.data.registry.locate`): one that does not hold
    Fashion-MNIST is refused before any claim, not replaced by digits with a note."""
    (tmp_path / "npy").mkdir()
    assert main(["check", "--only", "kl_nonnegative,training", "--steps", "10",
                 "--data-dir", str(tmp_path / "npy")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    one_sentence(err.strip().removeprefix("vaekit check: error: "), str(tmp_path / "npy"),
                 "no fashion-mnist data there")


def test_quick_with_a_data_dir_is_not_told_to_add_the_training_claim(
        tmp_path: Path, places: Any, capsys: pytest.CaptureFixture[str], one_sentence: Any) -> None:
    """`check --quick --data-dir D --only kl_nonnegative` was told to "add training to --only", which
    was then refused: the quick claim trains on digits, which takes no data directory. Now the quick
    case is named, and its advice (--data fashion-mnist) reads the set from D."""
    d = str(tmp_path)
    for argv, names in (
            (["--only", "kl_nonnegative"], ["--data-dir is used only by", "leave --data-dir out."]),
            (["--only", "kl_nonnegative", "--steps", "20"], ["--steps and --data-dir are used only by"]),
            (["--only", "kl_nonnegative,training"], [f"--data-dir {d} is not used with --quick",
                                                    "add --data fashion-mnist"])):
        assert main(["check", "--quick", "--data-dir", d, *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "add training to --only" not in err, err
        one_sentence(err.strip().removeprefix("vaekit check: error: "), *names)
    assert checks.training_overrides(["training"], None, "fashion-mnist", d, quick=True) == {
        "training": {"dataset": "fashion-mnist", "fallback": None, "data_dir": d}}  # the advice, taken
    assert checks.training_overrides(["training"], 20, None, None, quick=True) == {"training": {"steps": 20}}
    with pytest.raises(Exception, match="leave --steps out, or add training to --only"):
        checks.training_overrides(["variance"], 20, None, None, quick=True)  # adding it works there


def test_cli_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--quick", "--only", "variance,training", "--steps", "20",
                   "--data", "digits", "--figures", str(tmp_path / "figs")])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in ("variance.png", "training.png"):
        data = (tmp_path / "figs" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"wrote {tmp_path / 'figs' / name}" in out


@pytest.mark.parametrize("only", ["kl_nonnegative", "elbo_bound,kl_closed_form"])
def test_cli_figures_when_no_claim_draws_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        one_sentence: Any, only: str) -> None:
    """None of the claims that run draws a figure: refused before they run, no folder made."""
    figs = tmp_path / "figs"
    status = main(["check", "--quick", "--only", only, "--figures", str(figs)])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix("vaekit check: error: "), "--figures", str(figs))
    assert not figs.exists() and list(tmp_path.iterdir()) == []


def test_training_does_not_fall_back_from_a_damaged_copy(places: Any, fake_registry: Any, fake_set: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset that is there but does not match its published sums is an error (exit 2), not a
    silent switch to digits: only a missing dataset falls back."""
    from vaekit.errors import ChecksumError

    fake_registry("fake")
    directory = fake_set.write(places.cache_root / "fake", gz=False)
    (directory / "t10k-images-idx3-ubyte").write_bytes(
        (directory / "t10k-images-idx3-ubyte").read_bytes()[:-1] + b"\x07")
    with pytest.raises(ChecksumError):
        checks_training.training_curves(steps=3, dataset="fake")
