"""bench/quality.py's ExampleAdapter holds pytorch/examples' VAE to vaekit's evaluator: its decoder
is the example's before the sigmoid, vaekit's -ELBO through it is the example's own loss, and
`evaluate_model` gives a finite NLL below the -ELBO."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench_modules import load_bench
from vaekit.evaluate.run import evaluate_model
from vaekit.vae.prob import negative_elbo

quality = load_bench("quality")


def _example(seed: int = 0):  # noqa: ANN202
    torch.manual_seed(seed)
    vae = quality.ExampleVAE()
    vae.eval()
    return vae, quality.ExampleAdapter(vae)


def test_decode_is_the_example_decoder_before_its_sigmoid(one_thread: None) -> None:
    vae, adapter = _example()
    z = torch.randn(16, 20)
    with torch.no_grad():
        ours = torch.sigmoid(adapter.decode(z))
        theirs = torch.sigmoid(vae.fc4(F.relu(vae.fc3(z))))  # ExampleVAE.forward's decoder
    assert ours.shape == (16, 1, 28, 28)
    assert torch.allclose(ours.reshape(16, 784), theirs, atol=1e-6)
    assert adapter.likelihood == "bernoulli" and adapter.latent_dim == 20


def test_negative_elbo_through_the_adapter_is_the_examples_loss(one_thread: None) -> None:
    vae, adapter = _example(1)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 1, 28, 28, generator=g) < 0.3).float()
    eps = torch.randn(1, 6, 20, generator=g)
    with torch.no_grad():
        ours = negative_elbo(x, adapter, k=1, eps=eps).neg_elbo  # (6,)
        # the example's loss_function, per image, at the same z = mu + eps * std
        h1 = F.relu(vae.fc1(x.view(-1, 784)))
        mu, logvar = vae.fc21(h1), vae.fc22(h1)
        z = mu + eps[0] * torch.exp(0.5 * logvar)
        recon = torch.sigmoid(vae.fc4(F.relu(vae.fc3(z))))
        bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="none").sum(dim=1)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    assert torch.allclose(ours, bce + kld, rtol=1e-5, atol=1e-3), (ours, bce + kld)


def test_evaluate_model_through_the_adapter(one_thread: None) -> None:
    _, adapter = _example(2)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(8, 1, 28, 28, generator=g) < 0.3).float()
    ev = evaluate_model(adapter, x, k=64, batch_size=4, seed=0, progress=False)
    summary = ev.summary(784)
    nll, neg_elbo = summary["test_nll"], summary["test_neg_elbo"]
    assert math.isfinite(nll) and math.isfinite(neg_elbo)
    assert ev.nll.shape == (8,)
    assert nll <= neg_elbo + 1e-3, (nll, neg_elbo)


def test_pythae_adapter_is_pythaes_own_encoder_and_decoder() -> None:
    """Where pythae is installed (a bench-only peer, not a vaekit dependency): the adapter's q(z|x)
    is Pythae's encoder output and sigmoid(logits) its decoder's reconstruction."""
    pytest.importorskip("pythae", reason="pythae is a bench-only peer (pip install pythae==0.1.2)")
    from pythae.models import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(model_config=VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce"))
    model.eval()
    adapter = quality.PythaeAdapter(model, latent_dim=20)
    x = (torch.rand(5, 1, 28, 28) > 0.5).float()
    mu, logvar = adapter.encode(x)
    out = model.encoder(x)
    assert torch.equal(mu, out.embedding) and torch.equal(logvar, out.log_covariance)
    z = torch.randn(5, 20)
    recon = model.decoder(z).reconstruction.reshape(5, 1, 28, 28)
    assert torch.allclose(torch.sigmoid(adapter.decode(z)), recon, atol=1e-6)


@pytest.mark.parametrize("content", [None, "[model]\nlatent = -3\n", "[model\n"])
def test_best_config_that_cannot_be_used_is_one_usage_error(tmp_path: Path, content: str | None,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--best-config: a missing file, a bad value, bad TOML: exit 2 naming the flag, before anything
    trains or any run directory is made."""
    toml = tmp_path / "candidate.toml"
    if content is not None:
        toml.write_text(content)
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        quality.main(["--only", "best", "--budget", "1", "--best-config", str(toml), "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--best-config" in err and str(toml) in err, err
    assert not (out / "best").exists()
