"""The new models (VampPrior, two stochastic layers, gated layers, the autoregressive decoder) end to
end on scikit-learn's 8x8 digits: eval.json, the HTML report, the Python API, exact resume and
`vaekit eval`; and the config rules and engine choice that go with them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.config import LoopConfig, TrainConfig, validate
from vaekit.errors import ConfigError
from vaekit.evaluate.run import evaluate_run, read_eval
from vaekit.report.html import write_report
from vaekit.train import engines
from vaekit.train.fit import fit
from vaekit.vae.hierarchical import HierarchicalVAE
from vaekit.vae.models import MLPVAE
from vaekit.vae.priors import VampPrior

VARIANTS: dict[str, dict[str, Any]] = {
    "vamp": {"prior": "vamp", "pseudo_inputs": 5},
    "hvae": {"stochastic_layers": 2},
    "hvae-conv-gated": {"stochastic_layers": 2, "kind": "conv", "channels": [4], "gated": True},
    "gated": {"gated": True},
    "ar": {"autoregressive": 12, "autoregressive_dropout": 0.25},
    "ar-window": {"autoregressive": 12, "autoregressive_window": 5},
    "hvae-ar": {"stochastic_layers": 2, "autoregressive": 6, "autoregressive_dropout": 0.5},
}
MONTE_CARLO = {"vamp", "hvae", "hvae-conv-gated", "hvae-ar"}


@pytest.fixture(autouse=True)
def _keep_threads() -> Any:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    name = request.param
    run = make_run(tmp_path_factory.mktemp(name) / "run", latent=2, epochs=2, **VARIANTS[name])
    return name, run


def test_eval_json(variant: tuple[str, Path]) -> None:
    name, run = variant
    result = evaluate_run(run, k=20, progress=False, probe=False, threads=1)
    written = json.loads((run / "eval.json").read_text())
    assert written == result
    assert read_eval(run) == written
    assert math.isfinite(result["test_nll"]) and math.isfinite(result["test_neg_elbo"])
    assert result["test_nll"] <= result["test_neg_elbo"] + 1.0
    assert result["test_neg_elbo"] == pytest.approx(result["test_recon"] + result["test_kl"])
    assert result["latent_dim"] == 2 and result["k"] == 20
    if name in MONTE_CARLO:
        assert result["kl_estimate"] == "Monte Carlo, k = 20"
        assert result["kl_per_dim"] is None
    else:
        assert result["kl_estimate"] == "closed form"
        assert len(result["kl_per_dim"]) == 2
        assert sum(result["kl_per_dim"]) == pytest.approx(result["test_kl"], rel=1e-6)


def test_report_builds(variant: tuple[str, Path]) -> None:
    name, run = variant
    evaluate_run(run, k=10, limit=40, progress=False, probe=False, threads=1)
    path = write_report(run, log=lambda _m: None)
    assert path == run / "report.html" and path.is_file()
    page = path.read_text()
    # the config table says which model it is, the parameter table lists its own parameters
    rows = {"vamp": ["<td>prior</td><td>vamp</td>", "<td>pseudo_inputs</td><td>5</td>", "prior.w"],
            "hvae": ["<td>stochastic_layers</td><td>2</td>", "q1_mu", "p1_logvar"],
            "hvae-conv-gated": ["<td>stochastic_layers</td><td>2</td>", "<td>gated</td><td>true</td>",
                                "q1_enc", "conv.weight"],
            "gated": ["<td>gated</td><td>true</td>", "linear.weight"],
            "ar": ["<td>autoregressive</td><td>12</td>", "p_ar.x_in.weight", "p_ar.out.weight"],
            "ar-window": ["<td>autoregressive_window</td><td>5</td>", "p_ar.x_in.weight"],
            "hvae-ar": ["<td>stochastic_layers</td><td>2</td>", "<td>autoregressive</td><td>6</td>",
                        "p_ar.z_in.weight"]}[name]
    for row in rows:
        assert row in page, row
    assert f"{read_eval(run)['test_nll']:,.4f}" in page


def test_report_samples_are_drawn_from_the_models_prior() -> None:
    """The report's "samples from the prior" (`visualize.sample_prior`) of a VampPrior model should
    be samples of the model (z ~ the VampPrior, `model.sample`), not decodes of z ~ N(0, I): with
    the mixture's components near z = 6, the mean sample image must be the model's."""
    from vaekit.report import visualize

    torch.manual_seed(0)
    model = MLPVAE((1, 8, 8), [], latent=2, prior="vamp", pseudo_inputs=3).double().eval()
    with torch.no_grad():
        model.q_mu.bias.fill_(6.0)
        model.q_logvar.bias.fill_(-4.0)
        model.p_dec[0].weight.normal_(0.0, 1.0)
        n = 4000
        report = visualize.sample_prior(model, n, seed=0).mean(0)
        own = model.sample(n, torch.Generator().manual_seed(1)).mean(0)
        standard = model.decode_mean(torch.randn(n, 2, dtype=torch.float64)).mean(0)
    assert (own - standard).abs().max() > 0.1  # the two priors give different images here
    assert (report - own).abs().max() < (report - standard).abs().max()


def test_python_api(variant: tuple[str, Path]) -> None:
    name, run = variant
    loaded = runs.load_run(run)
    model = loaded.model
    assert isinstance(model, HierarchicalVAE) == name.startswith("hvae")
    assert isinstance(model.prior, VampPrior) == (name == "vamp")
    x = loaded.images(limit=6)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        images = model.decode_mean(mu)
        samples = model.sample(5, torch.Generator().manual_seed(0))
    assert mu.shape == logvar.shape == (6, 2)
    assert images.shape == x.shape and samples.shape == (5, *x.shape[1:])
    for t in (images, samples):
        assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1


def test_cli_eval_says_how_the_kl_is_estimated(variant: tuple[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    name, run = variant
    assert main(["eval", str(run), "--k", "20", "--limit", "30", "--no-probe", "--no-progress",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert ("Monte Carlo" in out) == (name in MONTE_CARLO), out
    if name in MONTE_CARLO:
        assert "KL by Monte Carlo, k = 20" in out
    else:
        assert "KL per dim" in out


# ----------------------------------------------------------------------------- resume


def config_of(epochs: int, **model: Any) -> TrainConfig:
    """The config of eval_runs.make_run (hidden 16, latent 2, batch 64, one thread)."""
    config = TrainConfig()
    config.data.name = "digits"
    config.model.hidden, config.model.latent = [16], 2
    config.train.epochs, config.train.batch_size, config.train.seed, config.train.threads = epochs, 64, 0, 1
    for key, value in model.items():
        setattr(config.model, key, value)
    return config


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = runs.read_tensors(a, "test")[0], runs.read_tensors(b, "test")[0]
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.mark.parametrize("name", list(VARIANTS))
def test_resume_equals_uninterrupted(tmp_path: Path, name: str) -> None:
    fit(config_of(2, **VARIANTS[name]), tmp_path / "full", show_bar=False, log=lambda _m: None)
    fit(config_of(1, **VARIANTS[name]), tmp_path / "part", show_bar=False, log=lambda _m: None)
    fit(config_of(2, **VARIANTS[name]), tmp_path / "part", resume=True, show_bar=False, log=lambda _m: None)
    assert_same_tensors(tmp_path / "full" / runs.CHECKPOINT, tmp_path / "part" / runs.CHECKPOINT)
    assert_same_tensors(tmp_path / "full" / runs.MODEL, tmp_path / "part" / runs.MODEL)
    rows = [[{k: v for k, v in r.items() if k != "epoch_seconds"} for r in runs.read_metrics(p)]
            for p in (tmp_path / "full", tmp_path / "part")]
    assert rows[0] == rows[1] and len(rows[0]) == 2
    # and the run did learn something other than its initialization
    fresh = runs.read_tensors(tmp_path / "full" / runs.MODEL, "test")[0]
    assert all(torch.isfinite(t).all() for t in fresh.values())


# ----------------------------------------------------------------------------- config and engine


def test_config_refuses_closed_form_only_options() -> None:
    for model in ({"prior": "vamp"}, {"stochastic_layers": 2}):
        for train in ({"free_bits": 0.5}, {"estimator": "score"}):
            config = config_of(1, **model)
            for key, value in train.items():
                setattr(config.train, key, value)
            with pytest.raises(ConfigError, match="closed-form KL"):
                validate(config)
        validate(config_of(1, **model))  # without them the config is fine
    validate(config_of(1, free_bits=0.0))
    ok = config_of(1)
    ok.train.free_bits = 0.5
    validate(ok)  # free bits are fine with the standard prior and one layer
    for layers in (0, 3):
        with pytest.raises(ConfigError, match="stochastic layers"):
            validate(config_of(1, stochastic_layers=layers))
    with pytest.raises(ConfigError, match="prior"):
        validate(config_of(1, prior="gaussian-mixture"))
    with pytest.raises(ConfigError, match="pseudo-inputs"):
        validate(config_of(1, prior="vamp", pseudo_inputs=0))


def test_autoregressive_decoder_needs_bernoulli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    said = r"autoregressive decoder \(model.autoregressive, --autoregressive\) is a Bernoulli decoder"
    with pytest.raises(ConfigError, match=said):
        validate(config_of(1, autoregressive=8, likelihood="gaussian"))
    validate(config_of(1, autoregressive=8))
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--autoregressive", "8", "--likelihood", "gaussian",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a Bernoulli decoder, but model.likelihood (--likelihood) is gaussian" in err, err
    assert err.count("\n") == 1, err
    assert not out.exists()


def test_engine_is_autograd_for_gated_and_vamp() -> None:
    loop = LoopConfig()
    plain = MLPVAE((1, 8, 8), [16], latent=2)
    assert isinstance(engines.make_engine(plain, loop), engines.BackpropEngine)  # the reference case
    autoregressive = MLPVAE((1, 8, 8), [16], latent=2, autoregressive=8)
    assert isinstance(engines.make_engine(autoregressive, loop), engines.BackpropEngine)
    for model in (MLPVAE((1, 8, 8), [16], latent=2, gated=True),
                  MLPVAE((1, 8, 8), [16], latent=2, prior="vamp", pseudo_inputs=3),
                  HierarchicalVAE((1, 8, 8), "mlp", [16], 2, [])):
        assert isinstance(engines.make_engine(model, loop), engines.AutogradEngine), model
