"""Every evaluator on its inputs' device.

On any machine: each evaluator (the IWAE estimate, the evaluation of many images, the activation
count, the figures' arrays, the explorer's answers) runs under tests/device_check.strays_fail, which
fails at the first tensor made without its inputs' device, and gives the numbers it gives outside;
the eps are the CPU draws of the seed, block by block; the device's memory sizing does not change
the numbers. With CUDA (skipped elsewhere): the same seed gives the CPU's eps on the GPU exactly
and the CPU's estimates up to float32 rounding, and every result stays on the GPU.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from device_check import assert_on, same_with_strays_failing, strays_fail
from eval_runs import make_run
from vaekit.config import ModelConfig
from vaekit.data.load import load_configured
from vaekit.evaluate import iwae
from vaekit.evaluate import run as ev
from vaekit.report import visualize
from vaekit.runs import load_run
from vaekit.serve import api
from vaekit.serve.explorer import N_MAP, Explorer
from vaekit.vae.models import VAEBase, build_model

pytestmark = pytest.mark.usefixtures("one_thread")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# One model of each kind the evaluators branch on: prior, layers, decoder, likelihood, architecture.
KINDS: dict[str, dict[str, Any]] = {
    "mlp": {}, "vamp": {"prior": "vamp", "pseudo_inputs": 5}, "two layers": {"stochastic_layers": 2},
    "autoregressive": {"autoregressive": 20}, "gaussian": {"likelihood": "gaussian"},
    "conv": {"kind": "conv", "channels": [4], "hidden": []},
}


def model_of(kind: str, latent: int = 2) -> VAEBase:
    m = ModelConfig()
    m.image_shape, m.hidden, m.latent = [1, 8, 8], [16], latent
    for key, value in KINDS[kind].items():
        setattr(m, key, value)
    torch.manual_seed(0)
    return build_model(m).eval()


def images(n: int = 13, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 1, 8, 8), 0.3), generator=g)


class RankZeroOfTwo:
    """A world of two ranks seen from rank 0, whose sum over the ranks is its own table: the rows of
    rank 1's batches stay the zeros rank 0 made for them."""

    rank, size = 0, 2

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        return t


# ----------------------------------------------------------------------------- no stray tensors


@pytest.mark.parametrize("kind", KINDS)
class TestNoStrayTensor:
    def test_activation_elements(self, kind: str) -> None:
        model = model_of(kind)
        assert same_with_strays_failing(iwae.activation_elements, model, model.latent_dim) > 64

    def test_estimate_batch_from_a_seed_and_from_given_eps(self, kind: str) -> None:
        model, x = model_of(kind), images()
        est = same_with_strays_failing(
            lambda: iwae.estimate_batch(x, model, 70, generator=torch.Generator().manual_seed(1), chunk=32))
        assert_on(est, "cpu")
        assert bool(torch.isfinite(est.nll).all())
        eps = torch.randn(5, 13, iwae.noise_dim(model), generator=torch.Generator().manual_seed(2))
        same_with_strays_failing(lambda: iwae.estimate_batch(x, model, 5, eps=eps, tile=2))

    def test_evaluate_model_alone_and_as_one_rank_of_two(self, kind: str) -> None:
        model, x = model_of(kind), images()
        whole = same_with_strays_failing(ev.evaluate_model, model, x, 40, batch_size=5, seed=2,
                                         progress=False)
        assert_on([whole.nll, whole.mu, whole.kl_per_dim], "cpu")
        rank0 = same_with_strays_failing(ev.evaluate_model, model, x, 40, batch_size=5, seed=2,
                                         progress=False, world=RankZeroOfTwo())  # type: ignore[arg-type]
        ours = torch.tensor([i // 5 % 2 == 0 for i in range(13)])  # batches 0 and 2 are rank 0's
        assert torch.equal(rank0.nll[ours], whole.nll[ours])
        assert bool((rank0.nll[~ours] == 0).all()) and bool((rank0.mu[~ours] == 0).all())

    def test_the_figures_arrays(self, kind: str) -> None:
        model, x = model_of(kind), images()
        assert same_with_strays_failing(visualize.sample_prior, model, 6, 1).shape == (6, 1, 8, 8)
        same_with_strays_failing(visualize.reconstruct, model, x)
        rows = same_with_strays_failing(visualize.interpolate, model, x[:2], x[2:4], 5)
        assert rows.shape == (2, 5, 1, 8, 8)
        grid, p = same_with_strays_failing(visualize.manifold_grid, model, 4)
        assert grid.shape == (4, 4, 1, 8, 8) and len(p) == 4


def test_active_units_of_no_images() -> None:
    count, variances = same_with_strays_failing(ev.active_units, torch.zeros(0, 3))
    assert count == 0 and variances.tolist() == [0.0, 0.0, 0.0] and variances.dtype == torch.float64


def test_write_figures(tmp_path: Path) -> None:
    model, x = model_of("mlp"), images(20)
    labels = torch.arange(20) % 4
    with strays_fail():
        paths = visualize.write_figures(model, x, tmp_path, labels, seed=3)
    assert {"reconstructions", "samples", "interpolations", "manifold", "latent_space"} <= set(paths)
    assert all(p.is_file() for p in paths.values())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("devices") / "run", latent=3)


def explorer_answers(explorer: Explorer) -> list[dict[str, Any]]:
    """An answer of each endpoint that computes with the model."""
    c, h, w = explorer.model.image_shape
    pixels = [float(i % 3 == 0) for i in range(c * h * w)]
    return [api.info(explorer, {}, None), api.latent_map(explorer, {}, None),
            api.latent_map(explorer, {"dims": "0,2"}, None),
            api.decode(explorer, {}, {"z": [0.5, -1.0, 2.0]}),
            api.decode(explorer, {}, {"z": [0.0] * 3, "sample": True, "seed": 4}),
            api.code(explorer, {"index": "3"}, None),
            api.interpolate(explorer, {}, {"a": 0, "b": 5, "steps": 4}),
            api.encode(explorer, {}, {"pixels": pixels}),
            api.samples(explorer, {"n": "3", "seed": "2"}, None)]


def test_the_explorer_state_and_answers(run_dir: Path) -> None:
    run = load_run(run_dir, "vae")
    test = (run.images("test", N_MAP), run.labels("test", N_MAP), load_configured(run.config.data).classes)
    with torch.inference_mode():
        outside = Explorer.of(run, *test)
        with strays_fail():
            inside = Explorer.of(run, *test)
            answers = explorer_answers(inside)
        assert explorer_answers(outside) == answers
    assert answers[0]["device"] == "cpu" and inside.device.type == "cpu"
    assert math.isfinite(answers[7]["nll"])


# ----------------------------------------------------------------------------- draws and sizes


def test_eps_blocks_are_the_cpu_draws_of_each_block() -> None:
    """One randn of (EPS_BLOCK, B, D) per block from the seeded CPU generator, concatenated."""
    g = torch.Generator().manual_seed(9)
    ref = torch.cat([torch.randn((iwae.EPS_BLOCK, 3, 2), generator=g) for _ in range(4)])
    got = iwae.draw_eps_blocks(4, 3, 2, torch.Generator().manual_seed(9), device=torch.device("cpu"))
    assert torch.equal(got, ref) and got.device.type == "cpu"


def test_sizing_of_a_cpu_and_of_a_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert iwae.sizing(torch.device("cpu")) == (iwae.MEMORY_BUDGET, iwae.TARGET_ROWS)
    for total, budget in ((80 * 2**30, 4 * 2**30), (8 * 2**30, 2 * 2**30)):  # at most a quarter
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _d, t=total: SimpleNamespace(
            total_memory=t))
        assert iwae.sizing(torch.device("cuda")) == (budget, iwae.CUDA_TARGET_ROWS)


def test_the_cuda_sizes_give_the_cpu_sizes_numbers() -> None:
    """On the CPU, with the budget and rows of a large GPU (every sample in one chunk and one tile),
    of a 2-core CPU, and of a tiny budget (chunks of one block, tiles of a sample or two): the same
    draws, so the same numbers up to the products' rounding."""
    model, x = model_of("mlp"), images(40)
    sizes = {"gpu": (iwae.CUDA_MEMORY_BUDGET, iwae.CUDA_TARGET_ROWS), "cpu": (None, None),
             "tiny": (2**16, 40)}
    tiles = {name: iwae.tile_size(20, 64, iwae.activation_elements(model, 2), b or iwae.MEMORY_BUDGET,
                                  target_rows=r or iwae.TARGET_ROWS) for name, (b, r) in sizes.items()}
    chunks = {name: iwae.chunk_size(300, 20, 2, b or iwae.MEMORY_BUDGET) for name, (b, _) in sizes.items()}
    assert tiles["gpu"] >= 300 > tiles["cpu"] == 205 > tiles["tiny"]  # one tile, two, 300 or more
    assert chunks == {"gpu": 320, "cpu": 320, "tiny": 32}
    runs = {name: ev.evaluate_model(model, x, 300, batch_size=20, seed=4, progress=False, budget=b,
                                    target_rows=r) for name, (b, r) in sizes.items()}
    for name in ("gpu", "tiny"):
        torch.testing.assert_close(runs[name].nll, runs["cpu"].nll, rtol=1e-5, atol=1e-5)
    other = ev.evaluate_model(model, x, 300, batch_size=20, seed=5, progress=False)
    assert (other.nll - runs["cpu"].nll).abs().max() > 1e-3  # the seed does matter at this tolerance


# ----------------------------------------------------------------------------- on CUDA


@cuda
def test_cuda_eps_are_the_cpu_eps() -> None:
    cpu = iwae.draw_eps_blocks(5, 7, 3, torch.Generator().manual_seed(11))
    gpu = iwae.draw_eps_blocks(5, 7, 3, torch.Generator().manual_seed(11), device=torch.device("cuda"))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)


@cuda
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_gives_the_cpu_numbers_and_keeps_them_there(kind: str) -> None:
    model, x = model_of(kind), images(30)
    cpu = ev.evaluate_model(model, x, 200, batch_size=10, seed=3, progress=False)
    model.cuda()
    with strays_fail():
        gpu = ev.evaluate_model(model, x, 200, batch_size=10, seed=3, progress=False)
        est = iwae.estimate_batch(x[:4].cuda(), model, 50, generator=torch.Generator().manual_seed(1))
        arrays = [visualize.reconstruct(model, x), visualize.interpolate(model, x[:2], x[2:4], 3),
                  visualize.sample_prior(model, 4, 0)]
    assert_on([gpu.nll, gpu.recon, gpu.kl, gpu.mu, gpu.sq_error, est, arrays], "cuda")
    for a, b in ((gpu.nll, cpu.nll), (gpu.recon, cpu.recon), (gpu.kl, cpu.kl), (gpu.mu, cpu.mu)):
        torch.testing.assert_close(a.cpu(), b, rtol=2e-5, atol=2e-4)


@cuda
def test_the_explorer_on_cuda_answers_as_on_the_cpu(run_dir: Path) -> None:
    cpu, gpu = Explorer.load(run_dir, "cpu"), Explorer.load(run_dir, "cuda")
    assert gpu.device.type == "cuda" and gpu.mu.device.type == "cuda"
    with torch.inference_mode():
        a, b = explorer_answers(cpu), explorer_answers(gpu)
    assert b[0]["device"].startswith("cuda")
    assert a[7]["nll"] == pytest.approx(b[7]["nll"], rel=1e-5)  # the upload's eps: the CPU's draws
    torch.testing.assert_close(torch.tensor(a[3]["pixels"]), torch.tensor(b[3]["pixels"]), atol=2e-4, rtol=0)


@cuda
def test_eval_run_on_cuda_is_the_cpu_eval(run_dir: Path) -> None:
    cpu = ev.evaluate_run(run_dir, k=100, limit=60, probe=False, write=False, progress=False)
    gpu = ev.evaluate_run(run_dir, k=100, limit=60, probe=False, write=False, progress=False, device="cuda")
    assert cpu["device"] == "cpu" and gpu["device"].startswith("cuda")
    for key in ("test_nll", "test_neg_elbo", "test_recon", "test_kl", "mse"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-5), key
