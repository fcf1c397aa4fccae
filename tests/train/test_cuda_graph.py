"""The training step captured in a CUDA graph (`vaekit.train.step.GraphStep`) against the eager
step on the same GPU: the same weights after the same batches (two batch shapes, both engines, a
learning rate changed between epochs), a run of `fit` with and without the capture, and no host
synchronisation per step. Skipped where torch sees no CUDA device (the CPU-side pieces a capture
relies on are held in tests/train/test_step.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from vaekit import runs
from vaekit.config import TrainConfig
from vaekit.train.engines import make_engine
from vaekit.train.loop import Pixels, train_epoch
from vaekit.train.optim import make_optimizer
from vaekit.train.step import EagerStep, GraphStep
from vaekit.vae.models import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device: torch sees none on this machine")


def mlp(engine: str) -> TrainConfig:
    c = TrainConfig()
    c.model.hidden, c.model.latent, c.model.image_shape = [64, 32], 5, [1, 12, 12]
    c.train.engine, c.train.batch_size = engine, 32
    c.optim.clip = 5.0
    return c


def train(c: TrainConfig, captured: bool, epochs: int = 3) -> tuple[dict[str, torch.Tensor], object]:
    torch.manual_seed(0)
    model = build_model(c).cuda()
    engine = make_engine(model, c.train)
    optimizer = make_optimizer(model.parameters(), c.optim)
    step = (GraphStep if captured else EagerStep)(engine, model, optimizer, c.optim.clip)
    images = (torch.rand(200, 1, 12, 12, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    data = Pixels(images.cuda(), "dynamic")  # 200 = 6 batches of 32 and one of 8: two shapes
    generator = torch.Generator(device="cuda").manual_seed(1)
    done = 0
    for epoch in range(1, epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 / epoch  # a schedule: the graph must read the new rate
        _, done = train_epoch(model, optimizer, engine, data, c.train.batch_size, epochs, c.optim, generator,
                              done, epoch, show_bar=False, stepper=step)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, step


@pytest.mark.parametrize("engine", ["auto", "autograd"])
def test_captured_steps_equal_eager_steps(engine: str) -> None:
    eager, _ = train(mlp(engine), captured=False)
    graph, step = train(mlp(engine), captured=True)
    assert isinstance(step, GraphStep) and not step.failed and len(step.graphs) == 2  # both shapes
    for name, value in eager.items():
        torch.testing.assert_close(graph[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_an_epoch_of_captured_steps_syncs_only_for_its_checks() -> None:
    c = mlp("auto")
    _, step = train(c, captured=True, epochs=1)  # captured already: the next epoch only replays
    model = step.model  # type: ignore[attr-defined]
    images = torch.randint(0, 256, (50 * 32, 1, 12, 12), dtype=torch.uint8, device="cuda")
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_epoch(model, step.optimizer, step.engine, Pixels(images, "dynamic"), 32, 1,  # type: ignore[attr-defined]
                        c.optim, torch.Generator(device="cuda").manual_seed(0), 0, 1, show_bar=False,
                        stepper=step)  # type: ignore[arg-type]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) <= 6, [str(w.message) for w in syncs][:3]  # 50 steps: 2 checks and the means


def test_a_run_with_the_captured_step_ends_as_the_eager_run(tmp_path: Path) -> None:
    from vaekit.train.fit import fit

    def run(graph: bool) -> Path:
        c = TrainConfig()
        c.data.name, c.model.hidden, c.model.latent = "digits", [32], 2
        c.train.epochs, c.train.device, c.train.cuda_graph = 3, "cuda", graph
        fit(c, tmp_path / str(graph), show_bar=False, log=lambda _m: None)
        return tmp_path / str(graph)

    a, b = runs.load_checkpoint(run(False))[0], runs.load_checkpoint(run(True))[0]
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-4, atol=1e-5, msg=name)
