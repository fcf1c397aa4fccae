"""Each erratum of the sheet's solutions: its check computes the sheet's version and the correction,
and the numbers support the correction; the same check handed the sheet's version as the truth
would fail (so it can tell them apart)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from eval_runs import make_run
from vaekit.runs import load_run
from vaekit.sheet import errata as er


@pytest.fixture(scope="module")
def model_and_x(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, torch.Tensor]:
    run = load_run(make_run(tmp_path_factory.mktemp("errata") / "run", latent=4, epochs=1))
    return run.model, run.images("test", limit=32)


def test_every_erratum_is_a_sentence_with_a_check() -> None:
    ids = [e.id for e in er.ERRATA]
    assert len(ids) == len(set(ids)) >= 8
    for e in er.ERRATA:
        assert e.question.startswith("Ex.2 Q") and e.writes != e.should_read and e.because.endswith(".")


@pytest.mark.parametrize("erratum", [e for e in er.ERRATA if e.id not in er.MODEL_CHECKS], ids=lambda e: e.id)
def test_the_numbers_support_the_correction(erratum: er.Erratum) -> None:
    verdict = erratum.check(seed=0)
    assert verdict.supports == "correction", verdict.summary


@pytest.mark.parametrize("erratum", [e for e in er.ERRATA if e.id in er.MODEL_CHECKS], ids=lambda e: e.id)
def test_the_model_numbers_support_the_correction(erratum: er.Erratum, model_and_x: tuple) -> None:
    model, x = model_and_x
    verdict = erratum.check(model, x, seed=0)
    assert verdict.supports == "correction", verdict.summary


def test_q1_the_joint_over_z_integrates_to_p_x() -> None:
    n = er.joint_integral().numbers
    assert n["max_error_p_x_z"] < 1e-8
    growth = [b - a for a, b in zip(n["log_int_p_x_y"], n["log_int_p_x_y"][1:], strict=False)]
    assert growth == pytest.approx([math.log(2)] * 2)  # 2 L p(x, y): doubling L adds log 2


def test_q2_kl_breaks_both_metric_axioms() -> None:
    n = er.kl_not_a_metric().numbers
    assert n["kl_p_q"] == pytest.approx(2.0) and n["kl_p_r"] + n["kl_r_q"] == pytest.approx(1.0)
    assert n["kl_n01_n14"] != pytest.approx(n["kl_n14_n01"])


def test_q3_the_two_sign_errors_against_torch() -> None:
    n = er.second_moment().numbers
    assert n["corrected"] == pytest.approx(0.7**2 + 1.5**2) and n["z_corrected"] < 4 < n["z_sheet"]
    k = er.kl_sign().numbers
    reference = float(kl_divergence(Normal(torch.tensor(1.5, dtype=torch.float64), 0.7), Normal(0.0, 1.0)))
    assert k["corrected"] == pytest.approx(reference, abs=1e-12) and k["sheet"] < 0


def test_q4_only_the_log_gives_a_bound() -> None:
    n = er.loss_is_a_bound(n_x=100, samples=500).numbers
    assert n["corrected_below_nll"] == 0 and n["sheet_below_nll"] > 0


def test_q6_the_likelihood_depends_on_x(model_and_x: tuple) -> None:
    n = er.likelihood_term(*model_and_x).numbers
    assert n["sheet_x1"] == n["sheet_x2"] and n["corrected_x1"] != pytest.approx(n["corrected_x2"])
    assert n["max_error_vs_torch"] < 1e-3


def test_q6_the_kl_is_a_sum_over_dimensions(model_and_x: tuple) -> None:
    n = er.kl_sum_over_dims(*model_and_x).numbers
    assert n["max_error_sum"] < 1e-9
    assert n["mean_kl_sum"] == pytest.approx(n["latent_dim"] * n["mean_kl_mean_over_dims"])


def test_a_check_can_decide_for_the_sheet() -> None:
    """The verdicts are computed: a check whose correction does not hold says so."""
    assert er._supports(False, True) == "sheet" and er._supports(False, False) == "neither"
    v = er.second_moment(mu=0.0)  # at mu = 0 both lines agree: the sheet's holds too
    assert v.supports != "correction"


def test_q6_holds_for_a_run_on_continuous_pixels(model_and_x: tuple) -> None:
    """A run trained with --binarize none reads pixels in [0, 1]: torch's Bernoulli refuses them
    with its argument checks, and the cross-entropy it computes without them is the same sum."""
    model, x = model_and_x
    grey = x.clamp(0, 1) * 0.5 + 0.25  # no pixel in {0, 1}
    n = er.likelihood_term(model, grey).numbers
    assert n["max_error_vs_torch"] < 1e-3 and n["corrected_x1"] != pytest.approx(n["corrected_x2"])
