"""vaekit.vae.backprop, the hand-derived loss and gradients of the MLP VAE, held against autograd on
`prob.negative_elbo` (every gradient and the four batch sums), and `vaekit.train.loop.train_epoch`
with engine "auto" (by hand) against engine "autograd" from the same weights and draws."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import Tensor

from vaekit.config import LoopConfig, TrainConfig
from vaekit.data.load import Dataset, load_dataset
from vaekit.train.engines import make_engine
from vaekit.train.loop import Pixels, kl_weight, train_epoch
from vaekit.train.optim import make_optimizer
from vaekit.vae import backprop as mlp_backprop
from vaekit.vae.models import MLPVAE, ConvVAE, VAEBase, build_model
from vaekit.vae.prob import Terms, negative_elbo, negative_iwae

LATENT = 8
MNIST, ODD = (1, 28, 28), (3, 5, 7)

# (hidden, activation, beta, free bits on, batch size, image shape): every hidden stack with both
# activations, each beta, free bits off and on, batch sizes 1, 7 (odd) and 32, square and odd images.
CASES = [
    ([], "relu", 1.0, False, 7, MNIST),
    ([], "tanh", 0.3, True, 1, ODD),
    ([], "relu", 2.0, True, 32, ODD),
    ([], "tanh", 1.0, False, 32, MNIST),
    ([400], "relu", 1.0, False, 32, MNIST),
    ([400], "relu", 0.3, True, 7, MNIST),
    ([400], "tanh", 2.0, True, 1, MNIST),
    ([400], "tanh", 1.0, False, 7, ODD),
    ([64, 32], "relu", 2.0, False, 1, ODD),
    ([64, 32], "relu", 1.0, True, 32, MNIST),
    ([64, 32], "tanh", 0.3, False, 7, MNIST),
    ([64, 32], "tanh", 1.0, True, 7, ODD),
    ([50, 40, 30], "relu", 0.3, False, 7, ODD),
    ([50, 40, 30], "relu", 1.0, True, 1, MNIST),
    ([50, 40, 30], "tanh", 2.0, False, 32, MNIST),
    ([50, 40, 30], "tanh", 0.3, True, 32, ODD),
]


def case_id(case: tuple[Any, ...]) -> str:
    hidden, act, beta, fb, n, shape = case
    return f"h{'-'.join(map(str, hidden)) or 'none'}-{act}-b{beta}-{'fb' if fb else 'nofb'}-n{n}-" + \
        "x".join(map(str, shape))


def make_model(hidden: list[int], activation: str, shape: tuple[int, int, int], seed: int = 0,
               dtype: torch.dtype = torch.float64) -> MLPVAE:
    torch.manual_seed(seed)
    return MLPVAE(shape, hidden, LATENT, activation=activation).to(dtype)


def make_batch(n: int, shape: tuple[int, int, int], seed: int, dtype: torch.dtype = torch.float64,
               binary: bool = True) -> tuple[Tensor, Tensor]:
    """Images x (n, *shape) (binary, or grey levels in [0, 1]) and eps (n, LATENT), seeded."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand((n, *shape), generator=g, dtype=torch.float64)
    x = torch.bernoulli(probs, generator=g) if binary else probs
    eps = torch.randn((n, LATENT), generator=g, dtype=torch.float64)
    return x.to(dtype), eps.to(dtype)


def reference(model: MLPVAE, x: Tensor, eps: Tensor, beta: float,
              free_bits: float) -> tuple[Tensor, dict[str, Tensor], Terms]:
    """Autograd on prob.negative_elbo: the four batch sums and the gradient of the batch mean."""
    model.zero_grad(set_to_none=True)
    terms = negative_elbo(x, model, k=1, beta=beta, free_bits=free_bits, eps=eps[None])
    terms.loss.mean().backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}  # type: ignore[union-attr]
    model.zero_grad(set_to_none=True)
    sums = torch.stack([terms.loss.sum(), terms.neg_elbo.sum(), terms.recon.sum(), terms.kl.sum()])
    return sums.detach(), grads, terms


def by_hand(model: MLPVAE, x: Tensor, eps: Tensor, beta: float,
            free_bits: float) -> tuple[Tensor, dict[str, Tensor]]:
    sums = mlp_backprop.backprop(model, x, eps, beta, free_bits)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}  # type: ignore[union-attr]
    return sums, grads


def rel_err(a: Tensor, b: Tensor) -> float:
    """||a - b|| / ||b|| (the absolute error when b = 0)."""
    diff = (a - b).norm().item()
    scale = b.norm().item()
    return diff / scale if scale > 0 else diff


def assert_grads_match(got: dict[str, Tensor], want: dict[str, Tensor], rel: float) -> None:
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].shape == want[name].shape, name
        assert got[name].dtype == want[name].dtype, name
        assert torch.isfinite(got[name]).all(), name
        err = rel_err(got[name], want[name])
        assert err <= rel, f"{name}: relative error {err:.3e} > {rel:.1e}"


def mid_free_bits(kl_per_dim: Tensor) -> float:
    """A floor between two distinct per-dim KLs near the median: some dims below it, some above, none
    within rounding of it (so both computations agree on which dims are floored)."""
    values = torch.unique(kl_per_dim.detach().flatten())  # sorted
    assert values.numel() >= 2
    k = values.numel() // 2
    return float((values[k - 1] + values[k]) / 2)


# ----------------------------------------------------------------------------- equations


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_matches_autograd_float64(case: tuple[Any, ...]) -> None:
    hidden, act, beta, use_fb, n, shape = case
    model = make_model(hidden, act, shape, seed=len(hidden) + n)
    x, eps = make_batch(n, shape, seed=n + 100 * len(hidden))
    free_bits = 0.0
    if use_fb:
        _, _, terms = reference(model, x, eps, beta, 0.0)
        free_bits = mid_free_bits(terms.kl_per_dim)
        below = terms.kl_per_dim < free_bits
        assert below.any() and (~below).any(), "the free-bits mask must floor some dims, not all"
    want_sums, want_grads, terms = reference(model, x, eps, beta, free_bits)
    if use_fb:  # the floor really changes the objective and its gradient
        assert not torch.allclose(terms.loss, terms.recon + beta * terms.kl, rtol=1e-9, atol=0)
        _, plain_grads, _ = reference(model, x, eps, beta, 0.0)
        assert rel_err(plain_grads["q_mu.weight"], want_grads["q_mu.weight"]) > 1e-6

    got_sums, got_grads = by_hand(model, x, eps, beta, free_bits)
    assert got_sums.shape == (4,) and got_sums.dtype == torch.float64
    torch.testing.assert_close(got_sums, want_sums, rtol=1e-12, atol=1e-13)
    assert_grads_match(got_grads, want_grads, rel=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_matches_autograd_float32(activation: str) -> None:
    """float32 against float32 autograd, and both against the float64 truth: same accuracy class."""
    model = make_model([64, 32], activation, MNIST, seed=3, dtype=torch.float32)
    x, eps = make_batch(16, MNIST, seed=4, dtype=torch.float32)
    _, _, terms = reference(model, x, eps, 0.7, 0.0)
    free_bits = mid_free_bits(terms.kl_per_dim)
    want_sums, want_grads, _ = reference(model, x, eps, 0.7, free_bits)
    got_sums, got_grads = by_hand(model, x, eps, 0.7, free_bits)
    assert got_sums.dtype == torch.float32
    torch.testing.assert_close(got_sums, want_sums, rtol=1e-5, atol=1e-4)
    assert_grads_match(got_grads, want_grads, rel=1e-4)

    double = copy.deepcopy(model).double()
    true_sums, true_grads, _ = reference(double, x.double(), eps.double(), 0.7, free_bits)
    for name, g in got_grads.items():
        err_hand = rel_err(g.double(), true_grads[name])
        err_auto = rel_err(want_grads[name].double(), true_grads[name])
        assert err_hand <= max(10 * err_auto, 1e-5), name
    torch.testing.assert_close(got_sums.double(), true_sums, rtol=1e-5, atol=1e-3)


def test_flat_and_grey_images() -> None:
    """x given as (n, d), and grey levels in [0, 1] (softplus(l) - x l is the BCE for any x)."""
    model = make_model([50, 40, 30], "tanh", ODD, seed=5)
    x, eps = make_batch(9, ODD, seed=6, binary=False)
    want_sums, want_grads, _ = reference(model, x, eps, 1.3, 0.0)
    got_sums, got_grads = by_hand(model, x.reshape(9, -1), eps, 1.3, 0.0)
    torch.testing.assert_close(got_sums, want_sums, rtol=1e-12, atol=1e-13)
    assert_grads_match(got_grads, want_grads, rel=1e-12)


def test_grads_overwritten_in_the_same_buffers() -> None:
    model = make_model([64, 32], "relu", MNIST, seed=7)
    x, eps = make_batch(5, MNIST, seed=8)
    want_sums, want_grads, _ = reference(model, x, eps, 1.0, 0.0)
    for p in model.parameters():  # stale garbage that accumulation would keep
        p.grad = torch.full_like(p, float("nan"))
    stale = {name: p.grad for name, p in model.named_parameters()}

    first = mlp_backprop.backprop(model, x, eps)
    buffers = {name: p.grad for name, p in model.named_parameters()}
    ptrs = {name: g.data_ptr() for name, g in buffers.items()}  # type: ignore[union-attr]
    grads1 = {name: g.clone() for name, g in buffers.items()}  # type: ignore[union-attr]
    assert_grads_match(grads1, want_grads, rel=1e-12)
    assert all(buffers[name] is stale[name] for name in stale), "existing .grad tensors are reused"

    second = mlp_backprop.backprop(model, x, eps)
    for name, p in model.named_parameters():
        assert p.grad is buffers[name], f"{name}: a new .grad tensor"
        assert p.grad.data_ptr() == ptrs[name], f"{name}: new storage"  # type: ignore[union-attr]
        assert torch.equal(p.grad, grads1[name]), f"{name}: accumulated, not overwritten"
    assert torch.equal(first, second)
    torch.testing.assert_close(first, want_sums, rtol=1e-12, atol=1e-13)


def test_creates_grads_when_none() -> None:
    model = make_model([400], "relu", ODD, seed=9)
    x, eps = make_batch(3, ODD, seed=10)
    want_sums, want_grads, _ = reference(model, x, eps, 2.0, 0.0)  # leaves every .grad None
    assert all(p.grad is None for p in model.parameters())
    got_sums, got_grads = by_hand(model, x, eps, 2.0, 0.0)
    assert_grads_match(got_grads, want_grads, rel=1e-12)


# ----------------------------------------------------------------------------- K samples, IWAE-K


def noisy_ar(hidden: list[int], activation: str, units: int, dropout: float = 0.0, seed: int = 0) -> MLPVAE:
    """An MLP VAE on odd 3x5x7 images with an autoregressive decoder of `units` masked units (0:
    none), every weight redrawn N(0, 0.3^2) so that V is not zero and the samples' weights differ."""
    torch.manual_seed(seed)
    model = MLPVAE(ODD, hidden, LATENT, activation=activation, autoregressive=units,
                   autoregressive_dropout=dropout).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return model


# (objective, K, hidden, activation, masked units, dropout, beta, free bits on)
KCASES = [
    ("iwae", 1, [16], "relu", 0, 0.0, 1.0, False),
    ("iwae", 3, [16], "relu", 0, 0.0, 1.0, False),
    ("iwae", 5, [12, 10], "tanh", 0, 0.0, 1.0, False),
    ("iwae", 4, [16], "relu", 9, 0.0, 1.0, False),
    ("iwae", 3, [], "relu", 33, 0.0, 1.0, False),
    ("iwae", 2, [12, 10], "relu", 17, 0.25, 1.0, False),
    ("elbo", 3, [16], "relu", 0, 0.0, 0.7, True),
    ("elbo", 4, [12, 10], "tanh", 9, 0.0, 1.0, False),
    ("elbo", 2, [16], "relu", 17, 0.25, 0.5, True),
]


@pytest.mark.parametrize("case", KCASES, ids=["-".join(map(str, c[:5])) + f"-d{c[5]}" for c in KCASES])
def test_k_samples_and_iwae_match_autograd(case: tuple[Any, ...]) -> None:
    """K samples per image through the hand-derived chain (the pixel part of the autoregressive term
    once per image, its gradient summed over the samples) against autograd on `prob.negative_iwae`
    (IWAE eq. 8 and its log-sum-exp) and on the K-sample `prob.negative_elbo`, in float64: the four
    batch sums and every gradient. With dropout both draw the mask from the global generator at
    the same point, over the same K x B x units values."""
    objective, k, hidden, act, units, dropout, beta, use_fb = case
    model = noisy_ar(hidden, act, units, dropout, seed=k + units)
    n = 6
    g = torch.Generator().manual_seed(40 + k)
    x = torch.bernoulli(torch.full((n, *ODD), 0.4, dtype=torch.float64), generator=g)
    eps = torch.randn((k, n, LATENT), generator=g, dtype=torch.float64)
    free_bits = 0.0
    if use_fb:
        free_bits = mid_free_bits(negative_elbo(x, model, k=k, eps=eps).kl_per_dim)  # type: ignore[arg-type]
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    if objective == "iwae":
        terms = negative_iwae(x, model, k=k, eps=eps)
    else:
        terms = negative_elbo(x, model, k=k, beta=beta, free_bits=free_bits, eps=eps)
    terms.loss.mean().backward()
    want = {name: p.grad.detach().clone() for name, p in model.named_parameters()}  # type: ignore[union-attr]
    want_sums = torch.stack([terms.loss.sum(), terms.neg_elbo.sum(), terms.recon.sum(),
                             terms.kl.sum()]).detach()
    torch.manual_seed(7)
    got_sums = mlp_backprop.backprop(model, x, eps, beta, free_bits, objective=objective)
    got = {name: p.grad.clone() for name, p in model.named_parameters()}  # type: ignore[union-attr]
    torch.testing.assert_close(got_sums, want_sums, rtol=1e-12, atol=1e-11)
    assert_grads_match(got, want, rel=1e-11)
    if objective == "iwae" and k > 1:  # IWAE-K's gradient is not the K-sample ELBO's
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        negative_elbo(x, model, k=k, eps=eps).loss.mean().backward()
        assert rel_err(model.q_mu.weight.grad, want["q_mu.weight"]) > 1e-3  # type: ignore[arg-type]
        assert got_sums[0] < got_sums[1]  # -L_K below the -ELBO of the same samples (Jensen)


def test_one_sample_iwae_is_the_elbo_with_the_kl_by_monte_carlo() -> None:
    """IWAE-1 is the ELBO with KL(q || p) estimated at the sample, so its objective equals
    recon + log q(z|x) - log p(z) there, and its decoder's gradients equal the closed-form ELBO's
    (the KL does not depend on the decoder)."""
    model = noisy_ar([16], "relu", 9, seed=3)
    g = torch.Generator().manual_seed(5)
    x = torch.bernoulli(torch.full((4, *ODD), 0.5, dtype=torch.float64), generator=g)
    eps = torch.randn((1, 4, LATENT), generator=g, dtype=torch.float64)
    iw = mlp_backprop.backprop(model, x, eps, objective="iwae")
    dec_iw = {n: p.grad.clone() for n, p in model.named_parameters() if n.startswith("p_")}  # type: ignore[union-attr]
    el = mlp_backprop.backprop(model, x, eps, objective="elbo")
    dec_el = {n: p.grad.clone() for n, p in model.named_parameters() if n.startswith("p_")}  # type: ignore[union-attr]
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * eps[0]
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(1)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(iw[0], el[2] + (q - p).sum(), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(iw[1:], el[1:], rtol=1e-14, atol=1e-12)  # the same sums, another order
    assert_grads_match(dec_iw, dec_el, rel=1e-12)


def test_objective_is_checked() -> None:
    model = noisy_ar([], "relu", 0)
    with pytest.raises(ValueError, match="objective"):
        mlp_backprop.backprop(model, torch.zeros(2, *ODD, dtype=torch.float64),
                              torch.zeros(2, LATENT, dtype=torch.float64), objective="elbo2")


# ----------------------------------------------------------------------------- supports


def mlp(**kw: Any) -> MLPVAE:
    args: dict[str, Any] = {"hidden": [16], "latent": 4}
    args.update(kw)
    return MLPVAE((1, 6, 5), **args)


@pytest.mark.parametrize("model, loop", [
    (mlp(), LoopConfig()),
    (mlp(activation="tanh"), LoopConfig()),
    (mlp(hidden=[]), LoopConfig()),
    (mlp(hidden=[8, 8]), LoopConfig(beta=0.5, warmup=2.0, free_bits=0.1)),
    (mlp(), LoopConfig(objective="iwae", samples=5)),
    (mlp(autoregressive=8), LoopConfig(samples=3)),
], ids=["relu", "tanh", "no-hidden", "beta-warmup-freebits", "iwae5", "samples3-ar"])
def test_supports_true(model: VAEBase, loop: LoopConfig) -> None:
    assert mlp_backprop.supports(model, loop)


@pytest.mark.parametrize("model, loop", [
    (ConvVAE((1, 8, 8), channels=[4], latent=4), LoopConfig()),
    (mlp(likelihood="gaussian"), LoopConfig()),
    (mlp(activation="elu"), LoopConfig()),
    (mlp(activation="gelu"), LoopConfig()),
    (mlp(), LoopConfig(estimator="score")),
    (mlp(prior="vamp"), LoopConfig(objective="iwae", samples=2)),
], ids=["conv", "gaussian", "elu", "gelu", "score", "vamp-iwae"])
def test_supports_false(model: VAEBase, loop: LoopConfig) -> None:
    assert not mlp_backprop.supports(model, loop)


def test_auto_takes_the_hand_engine_where_it_is_measured_faster() -> None:
    """K > 1 samples: the hand-derived engine for the factorized decoder, autograd with the
    autoregressive term (bench/engine_speed.py measures which is faster); one sample: by hand."""
    from vaekit.train.engines import AutogradEngine, BackpropEngine

    for model, loop, want in [(mlp(), LoopConfig(objective="iwae", samples=5), BackpropEngine),
                              (mlp(), LoopConfig(samples=2), BackpropEngine),
                              (mlp(autoregressive=8), LoopConfig(), BackpropEngine),
                              (mlp(autoregressive=8), LoopConfig(objective="iwae", samples=2),
                               AutogradEngine),
                              (mlp(autoregressive=8), LoopConfig(samples=3), AutogradEngine)]:
        assert mlp_backprop.supports(model, loop)
        assert isinstance(make_engine(model, loop), want), (loop, want)
        assert mlp_backprop.faster(model, loop) == (want is BackpropEngine)


# ----------------------------------------------------------------------------- train_epoch


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def digits_config(engine: str, **loop: Any) -> TrainConfig:
    c = TrainConfig()
    c.data.name = "digits"
    c.model.hidden, c.model.latent, c.model.image_shape = [32], 4, [1, 8, 8]
    c.optim.lr = 3e-3
    c.train.batch_size, c.train.epochs, c.train.threads = 64, 1, 1
    c.train.engine = engine
    for key, value in loop.items():
        setattr(c.train, key, value)
    return c


def run_epoch(engine: str, images: Tensor, monkeypatch: pytest.MonkeyPatch,
              **loop: Any) -> tuple[VAEBase, dict[str, float], int]:
    """One epoch from seed-0 weights and a seed-1 generator; also counts the by-hand steps."""
    calls = []
    real = mlp_backprop.backprop

    def counting(*args: Any, **kwargs: Any) -> Tensor:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mlp_backprop, "backprop", counting)
    config = digits_config(engine, **loop)
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = make_optimizer(model.parameters(), config.optim)
    generator = torch.Generator().manual_seed(1)
    engine = make_engine(model, config.train)
    stats, _ = train_epoch(model, optimizer, engine, Pixels(images, "dynamic"), config.train.batch_size,
                           config.train.epochs, config.optim, generator, 0, 1, kl_weight(config.train),
                           show_bar=False)
    return model, stats, len(calls)


LOOPS = [{}, {"beta": 0.5, "warmup": 4.0, "free_bits": 0.05}, {"samples": 3},
         {"objective": "iwae", "samples": 4}]


@pytest.mark.parametrize("loop", LOOPS, ids=["elbo", "warmup-freebits", "elbo3", "iwae4"])
def test_one_step_auto_equals_autograd(digits: Dataset, monkeypatch: pytest.MonkeyPatch,
                                       loop: dict[str, Any]) -> None:
    images = digits.train.images[:64]  # exactly one batch: one step
    hand, hand_stats, hand_calls = run_epoch("auto", images, monkeypatch, **loop)
    auto, auto_stats, auto_calls = run_epoch("autograd", images, monkeypatch, **loop)
    assert hand_calls == 1 and auto_calls == 0
    for key in hand_stats:
        assert hand_stats[key] == pytest.approx(auto_stats[key], rel=1e-5, abs=1e-5), key
    hand_params = dict(hand.named_parameters())
    for name, p in auto.named_parameters():
        assert rel_err(hand_params[name].grad, p.grad) <= 1e-4, name  # type: ignore[arg-type]
        torch.testing.assert_close(hand_params[name].detach(), p.detach(), rtol=1e-4, atol=1e-6)
    torch.manual_seed(0)
    start = build_model(digits_config("auto", **loop))
    moved = max((a - b).abs().max().item() for a, b in zip(hand.parameters(), start.parameters(),
                                                             strict=True))
    assert moved > 1e-3  # the step did update the weights (lr 3e-3)


def test_epoch_auto_close_to_autograd(digits: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    images = digits.train.images[:640]  # 10 steps
    _, hand_stats, hand_calls = run_epoch("auto", images, monkeypatch)
    _, auto_stats, auto_calls = run_epoch("autograd", images, monkeypatch)
    assert hand_calls == 10 and auto_calls == 0
    for key in ("train_loss", "train_neg_elbo", "train_recon", "train_kl"):
        assert hand_stats[key] == pytest.approx(auto_stats[key], rel=1e-4, abs=1e-4), key
    assert hand_stats["train_neg_elbo"] == pytest.approx(hand_stats["train_recon"] + hand_stats["train_kl"])


def test_unsupported_model_falls_back_to_autograd(digits: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    images = digits.train.images[:128]
    _, stats, calls = run_epoch("auto", images, monkeypatch, estimator="score")
    assert calls == 0
    assert all(math.isfinite(v) for v in stats.values())


# ----------------------------------------------------------------------------- bfloat16 products


def test_bf16_products_are_float32_to_bfloat16_accuracy() -> None:
    """mm_dtype=bfloat16: the same sums and gradients as the float64 truth to bfloat16's accuracy
    (8 bits of mantissa: ~0.4% per product), in float32 buffers; and not float32's (so the products
    really ran in bfloat16)."""
    model = make_model([64, 32], "relu", MNIST, seed=5, dtype=torch.float32)
    x, eps = make_batch(32, MNIST, seed=6, dtype=torch.float32)
    low_sums = mlp_backprop.backprop(model, x, eps, 0.8, 0.0, mm_dtype=torch.bfloat16)
    low = {name: p.grad.clone() for name, p in model.named_parameters()}  # type: ignore[union-attr]
    f32_sums, f32 = by_hand(model, x, eps, 0.8, 0.0)
    double = copy.deepcopy(model).double()
    true_sums, true, _ = reference(double, x.double(), eps.double(), 0.8, 0.0)
    assert low_sums.dtype == torch.float32 and all(g.dtype == torch.float32 for g in low.values())
    torch.testing.assert_close(low_sums.double(), true_sums, rtol=1e-2, atol=0.5)
    worse = 0
    for name, g in low.items():
        err = rel_err(g.double(), true[name])
        assert err <= 0.1, f"{name}: relative error {err:.3e}"
        worse += err > 10 * max(rel_err(f32[name].double(), true[name]), 1e-7)
    assert worse >= len(low) // 2  # bfloat16's error, well above float32's, on most parameters


def test_bf16_is_the_hand_derived_products_or_autocast_elsewhere() -> None:
    from vaekit.train.engines import AutogradEngine, BackpropEngine

    config = digits_config("auto")
    config.train.precision = "bf16"
    torch.manual_seed(0)
    engine = make_engine(build_model(config), config.train)
    assert isinstance(engine, BackpropEngine) and engine.mm_dtype == torch.bfloat16
    config.model.gated = True
    other = make_engine(build_model(config), config.train)
    assert isinstance(other, AutogradEngine) and other.autocast == torch.bfloat16
    config.train.precision = "float32"
    plain = make_engine(build_model(config), config.train)
    assert isinstance(plain, AutogradEngine) and plain.autocast is None


def test_bf16_epoch_close_to_float32(digits: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    images = digits.train.images[:640]  # 10 steps from the same weights and draws
    _, f32, _ = run_epoch("auto", images, monkeypatch)
    _, bf16, calls = run_epoch("auto", images, monkeypatch, precision="bf16")
    assert calls == 10
    for key in ("train_loss", "train_neg_elbo", "train_recon", "train_kl"):
        assert bf16[key] == pytest.approx(f32[key], rel=2e-2, abs=0.05), key
