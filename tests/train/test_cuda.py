"""The GPU path: `--device cuda` keeps the data on the device, syncs with the host only
every 50 steps, and `--precision bf16` runs an autograd model's forward under torch.autocast.

What needs a CUDA device is skipped without one (this project's CI machine has none); what can be
held on a CPU is: the autocast engine against the float32 one (torch.autocast works on the CPU
too), the count of host synchronisations of an epoch on a device that is not the CPU (a fake
device type), and the refusal of --device cuda where torch sees no GPU.
"""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.config import TrainConfig
from vaekit.errors import ConfigError
from vaekit.train import loop as loop_mod
from vaekit.train.engines import AutogradEngine, make_engine
from vaekit.vae.models import build_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="needs a CUDA device: torch sees none on this machine")


def conv_config(precision: str = "float32") -> TrainConfig:
    config = TrainConfig()
    config.model.kind, config.model.channels = "conv", [8, 16]
    config.model.hidden, config.model.latent = [], 4
    config.model.image_shape = [1, 16, 16]
    config.train.precision = precision
    return config


def batch(device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(32, 1, 16, 16, generator=g) < 0.3).float().to(device)


def loss_and_grads(config: TrainConfig, device: str = "cpu", eps: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step's sums and gradients. `eps` given: the step's noise (the engine's `noise`); else the
    engine draws it from the generator (`prob.draw_eps`)."""
    torch.manual_seed(0)
    model = build_model(config).to(device)
    engine = make_engine(model, config.train)
    engine.noise = eps  # type: ignore[attr-defined]
    sums = engine.loss_and_grads(model, batch(device), 1.0, torch.Generator(device=device).manual_seed(1))
    return sums.cpu(), {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def test_autocast_bf16_is_close_to_float32_and_keeps_float32_weights() -> None:
    """The bf16 step against the float32 step on the same float32 eps, given to both: a bound on
    rounding must not depend on how a torch version draws (torch 2.11's bfloat16 draws were other
    numbers than its float32 draws, another sample of the stochastic gradient with relative errors
    up to 1.33 per parameter, before `prob.draw_eps` drew in float32). On the same eps the autocast
    rule itself (the step in float64
    with each op's operands and result in the dtypes autocast gives them, bench/autocast_cpu.py)
    is 0.2% to 8.4% from float32 per parameter and 0.5% for the whole gradient, on torch 2.13 and
    2.11 alike; oneDNN's kernels add nothing to it, torch's own (oneDNN off) up to 5%. Bounds with
    a margin over that on any kernel path: the whole gradient, where no cancellation amplifies the
    rounding, within 3%; each parameter's bf16 gradient a descent direction of the float32 loss
    (a small step along it lowers that loss at 0.75 to 1.25 times the rate of the float32
    gradient's own step; here 0.98 to 1.004) with cosine > 0.95 (here >= 0.996). A flipped sign, a
    lost KL or sample term, another beta or a doubled gradient fails them."""
    eps = torch.randn((1, 32, 4), generator=torch.Generator().manual_seed(1))  # float32, for both
    f32_sums, f32 = loss_and_grads(conv_config(), eps=eps)
    bf_sums, bf = loss_and_grads(conv_config("bf16"), eps=eps)
    assert bf_sums.dtype == torch.float32
    torch.testing.assert_close(bf_sums, f32_sums, rtol=2e-2, atol=0.5)
    assert not torch.equal(bf_sums, f32_sums)  # the products really ran in bfloat16
    assert set(bf) == set(f32) and all(g.dtype == torch.float32 for g in bf.values())
    flat_bf = torch.cat([g.flatten() for g in bf.values()])
    flat_32 = torch.cat([g.flatten() for g in f32.values()])
    whole = float((flat_bf - flat_32).norm() / flat_32.norm())
    assert whole < 0.03, f"the whole gradient: relative error {whole:.3g}"
    for name, g in bf.items():
        ref = f32[name]
        rate = float(g.double().flatten() @ ref.double().flatten() / ref.double().norm() ** 2)
        cos = cosine(g, ref)
        assert 0.75 < rate < 1.25 and cos > 0.95, f"{name}: descent rate {rate:.3g}, cosine {cos:.4f}"


def test_autocast_engine_is_chosen_off_the_hand_derived_path() -> None:
    config = conv_config("bf16")
    engine = make_engine(build_model(config), config.train)
    assert isinstance(engine, AutogradEngine) and engine.autocast == torch.bfloat16


class FakeDevice:
    """A device whose type is not 'cpu', for the loop's sync rule (data stays where it is)."""

    type = "cuda"


def test_an_epoch_off_the_cpu_reads_the_loss_every_50_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a non-CPU device, `train_epoch` converts the loss to a Python number (a host sync) once
    per 50 steps and at the last step, not at every step; on the CPU at every step."""
    calls = {"n": 0}

    class Counting(torch.Tensor):
        pass

    config = TrainConfig()
    config.model.hidden, config.model.latent, config.model.image_shape = [16], 2, [1, 4, 4]
    torch.manual_seed(0)
    model = build_model(config)
    engine = make_engine(model, config.train)
    real = engine.loss_and_grads

    def counted(*args: object, **kw: object) -> torch.Tensor:
        sums = real(*args, **kw)  # type: ignore[arg-type]
        out = sums.as_subclass(Counting)
        return out

    original_float = Counting.__float__

    def spy(self: torch.Tensor) -> float:
        calls["n"] += 1
        return original_float(self)

    monkeypatch.setattr(Counting, "__float__", spy)
    monkeypatch.setattr(engine, "loss_and_grads", counted)
    images = (torch.rand(130 * 8, 1, 4, 4) * 255).to(torch.uint8)

    def epoch(device_type: str) -> int:
        calls["n"] = 0
        pixels = loop_mod.Pixels(images, "dynamic")
        if device_type != "cpu":
            monkeypatch.setattr(loop_mod.Pixels, "device", property(lambda self: FakeDevice()))
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        loop_mod.train_epoch(model, optimizer, engine, pixels, 8, 1, config.optim,
                             torch.Generator().manual_seed(0), 0, 1, show_bar=False)
        return calls["n"]

    assert epoch("cpu") == 130
    monkeypatch.setattr(torch, "randperm", _cpu_randperm(torch.randperm))
    monkeypatch.setattr(torch, "zeros", _cpu_zeros(torch.zeros))
    assert epoch("cuda") == math.ceil(130 / 50) + 1  # steps 0, 50, 100 and the last


def _cpu_randperm(randperm):  # type: ignore[no-untyped-def]
    return lambda n, generator=None, device=None: randperm(n, generator=generator)


def _cpu_zeros(zeros):  # type: ignore[no-untyped-def]
    return lambda *a, device=None, **kw: zeros(*a, **kw)


def test_cuda_refused_where_there_is_none() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    from vaekit.device import resolve_device

    with pytest.raises(ConfigError, match="--device cuda was asked for, but torch sees no CUDA device"):
        resolve_device("cuda")


@CUDA
def test_steps_on_cuda_match_the_cpu() -> None:
    cpu_sums, cpu = loss_and_grads(conv_config(), "cpu")
    gpu_sums, gpu = loss_and_grads(conv_config(), "cuda")
    # the eps come from each device's generator: compare the loss on the same eps instead
    torch.manual_seed(0)
    model = build_model(conv_config())
    x, eps = batch(), torch.randn(1, 32, 4)
    from vaekit.vae.prob import negative_elbo

    a = negative_elbo(x, model, eps=eps).neg_elbo
    b = negative_elbo(x.cuda(), model.cuda(), eps=eps.cuda()).neg_elbo.cpu()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
    assert gpu_sums.isfinite().all() and set(gpu) == set(cpu)


@CUDA
def test_a_run_on_cuda_keeps_its_data_on_the_device(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vaekit.train.fit import fit

    config = TrainConfig()
    config.data.name, config.model.hidden, config.model.latent = "digits", [32], 2
    config.train.epochs, config.train.device = 2, "cuda"
    summary = fit(config, tmp_path / "run", show_bar=False, log=lambda _m: None)
    assert math.isfinite(summary["best_val_neg_elbo"])


@CUDA
def test_autocast_bf16_on_cuda_is_close_to_float32() -> None:
    f32_sums, _ = loss_and_grads(conv_config(), "cuda")
    bf_sums, _ = loss_and_grads(conv_config("bf16"), "cuda")
    torch.testing.assert_close(bf_sums, f32_sums, rtol=2e-2, atol=0.5)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(),
                             reason="needs a machine where torch sees no CUDA device")


@NO_CUDA
@pytest.mark.parametrize("command", ["train", "classify"])
def test_cuda_from_a_toml_file_is_named_by_its_file_and_key(tmp_path, capsys, command) -> None:  # type: ignore[no-untyped-def]
    from vaekit.cli import main

    toml = tmp_path / "gpu.toml"
    toml.write_text('[train]\ndevice = "cuda"\n')
    out = tmp_path / "run"
    assert main([command, "--data", "digits", "--config", str(toml), "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f'{toml}: train.device "cuda" was asked for' in err and "--device" not in err, err
    assert not out.exists()


@NO_CUDA
def test_resuming_a_cuda_run_here_names_its_config_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from vaekit.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    config["train"]["device"] = "cuda"  # as a run trained on a GPU records it
    (out / "config.json").write_text(json.dumps(config))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert f'{out}/config.json: train.device "cuda" was asked for' in err and "--device" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--device", "cpu",
                 "--no-progress"]) == 0
