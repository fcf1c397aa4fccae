"""vaekit.train.memory: the parameter count against closed forms and real models, the activation
count against the layer sizes written out by hand, and check_fits refusing (one sentence with both
sizes) the runs that end in allocator errors, before anything is allocated."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vaekit.config import TrainConfig
from vaekit.data.load import load_dataset
from vaekit.device import format_bytes
from vaekit.errors import ConfigError
from vaekit.train.loop import VAL_BATCH
from vaekit.train.memory import (
    check_fits,
    estimate,
    host_available_bytes,
    run_bytes,
)
from vaekit.vae.models import build_model

GiB = 2**30


def mlp(hidden: list[int], latent: int = 20, **train: int) -> TrainConfig:
    config = TrainConfig()
    config.model.hidden, config.model.latent = hidden, latent
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def mlp_parameters(d: int, hidden: list[int], latent: int) -> int:
    """Closed form: Linear(n_in, n_out) has n_in*n_out + n_out parameters; the encoder d -> hidden,
    the two heads hidden[-1] -> latent, the decoder latent -> reversed(hidden) -> d."""
    def dense(sizes: list[int]) -> int:
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    last = hidden[-1] if hidden else d
    return dense([d, *hidden]) + 2 * (last * latent + latent) + dense([latent, *reversed(hidden), d])


def mlp_bytes(d: int, hidden: list[int], latent: int, batch: int, samples: int) -> int:
    """The module docstring's formula written out for the MLP: the encoder's layers output
    Linear + activation per hidden size and the two heads (E = 2 sum(h) + 2L); the decoder's
    Linear + activation per hidden size and the last Linear (G = 2 sum(h) + D)."""
    e, g = 2 * sum(hidden) + 2 * latent, 2 * sum(hidden) + d
    train = 3 * batch * (d + e + samples * (latent + g + d))
    val = VAL_BATCH * (d + e + latent + g + d)
    return 16 * mlp_parameters(d, hidden, latent) + 4 * max(train, val)


@pytest.mark.parametrize("hidden, latent", [([400], 20), ([512, 256], 40), ([], 3)])
def test_parameters_match_the_closed_form(hidden: list[int], latent: int) -> None:
    assert estimate(mlp(hidden, latent), (1, 28, 28)).parameters == mlp_parameters(784, hidden, latent)


@pytest.mark.parametrize("model", [
    {"kind": "conv", "channels": [4, 8], "hidden": [16]},
    {"kind": "conv", "channels": [3], "hidden": [], "likelihood": "gaussian"},
    {"kind": "mlp", "hidden": [7], "likelihood": "gaussian", "variance": "global"},
])
def test_parameters_match_a_real_model(model: dict) -> None:
    config = TrainConfig()
    for key, value in model.items():
        setattr(config.model, key, value)
    config.model.image_shape = [3, 12, 10]
    real = sum(p.numel() for p in build_model(config).parameters())  # allocated, on the CPU
    assert estimate(config, (3, 12, 10)).parameters == real


@pytest.mark.parametrize("hidden, latent, batch, samples", [
    ([400], 20, 128, 1),  # the validation batch is the larger step
    ([64, 32], 5, 4096, 10),  # the training step is
])
def test_run_bytes_of_an_mlp_is_the_formula(hidden: list[int], latent: int, batch: int, samples: int) -> None:
    config = mlp(hidden, latent, batch_size=batch, samples=samples)
    assert run_bytes(config, (1, 28, 28)) == mlp_bytes(784, hidden, latent, batch, samples)


def test_conv_activations_by_hand() -> None:
    """1x8x8 images, one Conv2d(1 -> 4, k=4, s=2, p=1) to 4x4x4, no dense layer, latent 2. Encoder
    outputs: conv 64, ReLU 64, q_mu 2, q_logvar 2; decoder: Linear 64, ReLU 64, ConvTranspose2d
    back to 1x8x8 = 64 (Flatten and Unflatten are views)."""
    config = TrainConfig()
    config.model.kind, config.model.channels, config.model.hidden, config.model.latent = "conv", [4], [], 2
    e, g, d, latent = 64 + 64 + 2 + 2, 64 + 64 + 64, 64, 2
    parts = estimate(config, (1, 8, 8))
    assert parts.activation_bytes == 4 * max(3 * 128 * (d + e + (latent + g + d)),
                                             VAL_BATCH * (d + e + latent + g + d))


def test_hidden_of_10_to_the_10_is_refused_with_the_size_it_needs(one_sentence: Callable[..., None]) -> None:
    config = mlp([10**10])  # past the config's range, so built here as a config never read from a file
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        check_fits(config, (1, 28, 28), available=64 * GiB)
    need = mlp_bytes(784, [10**10], 20, 128, 1)  # about 380 TiB
    one_sentence(str(info.value), format_bytes(need), "64 GiB", "16,300,000,000,824 parameters")
    assert need > 300 * 2**40 and time.perf_counter() - start < 5  # counted, not allocated


def test_default_config_on_28x28_fits() -> None:
    need = check_fits(TrainConfig(), (1, 28, 28), available=1 * GiB)
    assert need == mlp_bytes(784, [400], 20, 128, 1) and need < 100 * 2**20
    check_fits(TrainConfig(), (1, 28, 28))  # and on this machine


def test_the_limit_is_the_available_memory_itself() -> None:
    need = run_bytes(TrainConfig(), (1, 28, 28))
    assert check_fits(TrainConfig(), (1, 28, 28), available=need) == need
    with pytest.raises(ConfigError, match=format_bytes(need - 1).replace(".", r"\.")):
        check_fits(TrainConfig(), (1, 28, 28), available=need - 1)


def test_an_mlp_on_4000x4000_images_is_refused(one_sentence: Callable[..., None]) -> None:
    with pytest.raises(ConfigError) as info:
        check_fits(TrainConfig(), (1, 4000, 4000), available=64 * GiB)
    need = mlp_bytes(4000 * 4000, [400], 20, 128, 1)
    one_sentence(str(info.value), format_bytes(need), "64 GiB", "1x4000x4000")
    assert need > 350 * GiB  # 12.8e9 parameters x 16 bytes, and 1000 validation images of 16e6 pixels


@pytest.mark.parametrize("change", [{"latent": 10**9}, {"samples": 10**8}, {"batch_size": 10**8}])
def test_large_sizes_within_the_config_range_are_refused(change: dict,
                                                         one_sentence: Callable[..., None]) -> None:
    config = mlp([400], latent=change.get("latent", 20))
    for key in ("samples", "batch_size"):
        if key in change:
            setattr(config.train, key, change[key])
    with pytest.raises(ConfigError) as info:
        check_fits(config, (1, 28, 28), available=64 * GiB)
    one_sentence(str(info.value), "64 GiB")


def test_the_trainers_call_with_a_dataset_shape() -> None:
    ds = load_dataset("digits")
    config = TrainConfig()
    config.data.name = "digits"
    assert check_fits(config, tuple(ds.image_shape)) == run_bytes(config, (1, 8, 8))


def test_too_large_to_count_is_a_sentence(one_sentence: Callable[..., None]) -> None:
    config = TrainConfig()
    config.model.kind, config.model.channels = "conv", [2**31 - 1, 2**31 - 1]  # > 2**63 weights
    with pytest.raises(ConfigError) as info:
        check_fits(config, (1, 28, 28), available=64 * GiB)
    one_sentence(str(info.value), "1x28x28")


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="no /proc/meminfo on this platform")
def test_available_memory_is_at_most_the_machine() -> None:
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    total = int(fields["MemTotal"].split()[0]) * 1024
    available = host_available_bytes()
    assert available is not None and 0 < available <= total
