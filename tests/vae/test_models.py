"""vaekit.vae.models: the sheet's names, shapes for 28x28 and 8x8 images, parameter counts by hand."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from vaekit.config import TrainConfig
from vaekit.errors import ConfigError
from vaekit.vae.models import MLPVAE, ConvVAE, build_model
from vaekit.vae.prob import negative_elbo


def dense(n_in: int, n_out: int) -> int:
    """Parameters of a dense layer with bias, counted by hand: a weight per pair, a bias per output."""
    return n_in * n_out + n_out


def conv(c_in: int, c_out: int, k: int) -> int:
    """Parameters of a (transposed) convolution with bias: c_in * c_out * k * k weights + c_out."""
    return c_in * c_out * k * k + c_out


SHAPES = [(1, 28, 28), (1, 8, 8)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes(kind: str, shape: tuple[int, int, int], likelihood: str) -> None:
    torch.manual_seed(0)
    model = (MLPVAE(shape, [32, 16], latent=5, likelihood=likelihood) if kind == "mlp"
             else ConvVAE(shape, [8, 16], latent=5, hidden=[24], likelihood=likelihood))
    x = torch.rand(3, *shape)
    mu, logvar = model.encode(x)
    assert mu.shape == (3, 5) and logvar.shape == (3, 5)
    out = model.decode(mu)
    if likelihood == "bernoulli":
        assert isinstance(out, torch.Tensor) and out.shape == (3, *shape)
    else:
        mean, var = out
        assert mean.shape == (3, *shape) and var.shape == shape  # per-pixel log-variance
    terms = negative_elbo(x if likelihood == "gaussian" else (x > 0.5).float(), model, k=2)
    assert terms.neg_elbo.shape == (3,) and torch.isfinite(terms.neg_elbo).all()


def test_the_sheets_names_exist() -> None:
    model = MLPVAE((1, 28, 28), [400], latent=20)
    for name in ("q_enc", "q_mu", "q_logvar", "p_dec"):
        assert isinstance(getattr(model, name), nn.Module), name
    assert model.q_mu.out_features == 20 and model.q_logvar.out_features == 20
    assert model.latent_dim == 20 and model.likelihood == "bernoulli"
    conv_model = ConvVAE((1, 28, 28), [32, 64], latent=20)
    for name in ("q_enc", "q_mu", "q_logvar", "p_dec"):
        assert isinstance(getattr(conv_model, name), nn.Module), name


def test_mlp_parameter_count_by_hand() -> None:
    # pytorch/examples vae/main.py: fc1 784-400, fc21 and fc22 400-20, fc3 20-400, fc4 400-784
    model = MLPVAE((1, 28, 28), [400], latent=20)
    expected = dense(784, 400) + 2 * dense(400, 20) + dense(20, 400) + dense(400, 784)
    assert expected == 652_824
    assert model.num_parameters() == expected
    deep = MLPVAE((1, 8, 8), [512, 256], latent=7)
    assert deep.num_parameters() == (dense(64, 512) + dense(512, 256) + 2 * dense(256, 7)
                                     + dense(7, 256) + dense(256, 512) + dense(512, 64))


def test_gaussian_variance_parameters_are_counted() -> None:
    pixel = MLPVAE((1, 8, 8), [16], latent=2, likelihood="gaussian", variance="pixel")
    global_ = MLPVAE((1, 8, 8), [16], latent=2, likelihood="gaussian", variance="global")
    base = MLPVAE((1, 8, 8), [16], latent=2)
    assert pixel.num_parameters() == base.num_parameters() + 64
    assert global_.num_parameters() == base.num_parameters() + 1
    assert global_.decode(torch.zeros(2, 2))[1].shape == (1, 1, 1)


def test_conv_parameter_count_by_hand() -> None:
    # 28 -> 14 -> 7 with kernel 4, stride 2, padding 1: (28 + 2 - 3 - 1) // 2 + 1 = 14, then 7
    model = ConvVAE((1, 28, 28), [32, 64], latent=20, hidden=[256])
    flat = 64 * 7 * 7
    encoder = conv(1, 32, 4) + conv(32, 64, 4) + dense(flat, 256) + 2 * dense(256, 20)
    decoder = dense(20, 256) + dense(256, flat) + conv(64, 32, 4) + conv(32, 1, 4)
    assert model.num_parameters() == encoder + decoder
    # the layers really are the strided convolutions described
    convs = [m for m in model.q_enc if isinstance(m, nn.Conv2d)]
    assert [(c.stride, c.padding, c.kernel_size) for c in convs] == [((2, 2), (1, 1), (4, 4))] * 2


@pytest.mark.parametrize("shape", [(1, 7, 7), (3, 13, 17), (2, 5, 9)])
def test_conv_decoder_restores_odd_sizes(shape: tuple[int, int, int]) -> None:
    model = ConvVAE(shape, [4, 6], latent=3, kernel_size=3, stride=2)
    assert model.decode(torch.zeros(2, 3)).shape == (2, *shape)
    x = torch.rand(2, *shape)
    h = x
    for layer in model.q_enc:  # the encoder's own sizes, measured by running it
        if isinstance(layer, nn.Flatten):
            break
        h = layer(h)
    def down(n: int) -> int:  # kernel 3, stride 2, padding 1: floor((n + 2 - 2 - 1) / 2) + 1
        return (n + 2 - 2 - 1) // 2 + 1

    assert h.shape[1:] == (6, *[down(down(s)) for s in shape[1:]])


def test_conv_too_small_image_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="too small"):
        ConvVAE((1, 2, 2), [4, 4, 4, 4], latent=3, kernel_size=4, stride=2)


@pytest.mark.parametrize(("channels", "k", "s"), [([4, 4, 4, 4], 4, 2), ([8, 8], 2, 2), ([4, 4, 4], 6, 3),
                                                  ([4], 9, 1), ([4, 4], 7, 1)])
def test_too_small_names_the_smallest_size_that_builds(channels: list[int], k: int, s: int) -> None:
    """The size the sentence names is the smallest one whose ConvVAE builds and runs: tried one by
    one with real modules."""
    with pytest.raises(ConfigError) as info:
        ConvVAE((1, 1, 1), channels, latent=3, kernel_size=k, stride=s)
    named = int(str(info.value).split("--image-size ")[1].split(")")[0])
    builds, unread = [], []
    for side in range(1, 40):
        try:
            model = ConvVAE((1, side, side), channels, latent=3, kernel_size=k, stride=s)
        except ConfigError as err:
            if "never reads" in str(err):  # large enough, but its edges unread: the next test's rule
                unread.append(side)
            continue
        assert model.decode(model.encode(torch.rand(1, 1, side, side))[0]).shape[-1] == side
        builds.append(side)
    assert builds[0] == named
    assert sorted(builds + unread) == list(range(named, 40))  # every larger size is large enough


def test_a_stride_no_image_can_take_is_refused_at_once() -> None:
    """A stride of 2**20 over several layers: the smallest size that would build is computed, not
    searched for (a search over 2**31 sizes hung), and is beyond any image."""
    with pytest.raises(ConfigError, match="no image up to 2,147,483,647 pixels"):
        ConvVAE((1, 28, 28), [4] * 6, latent=3, kernel_size=2**20, stride=2**20)
    with pytest.raises(ConfigError, match="kernel_size is 4, smaller than model.stride 2147483647"):
        ConvVAE((1, 28, 28), [4] * 6, latent=3, kernel_size=4, stride=2**31 - 1)


def unseen_pixels(side: int, n_layers: int, k: int, s: int) -> int:
    """Pixels of a side x side image that no output of a stack of `n_layers` torch Conv2d(k, s,
    padding (k - 1) // 2) depends on: those whose gradient of the summed output is 0, with every
    weight 1 (no cancellation, no activation) so that a pixel any window covers gets a gradient > 0."""
    stack = nn.Sequential(*[nn.Conv2d(1, 1, k, s, (k - 1) // 2) for _ in range(n_layers)])
    for conv in stack:
        nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, side, side, requires_grad=True)
    stack(x).sum().backward()
    assert x.grad is not None
    return int((x.grad == 0).sum())


@pytest.mark.parametrize(("k", "s"), [(1, 1), (1, 2), (2, 2), (3, 2), (4, 2), (6, 4), (1, 8), (3, 5),
                                      (2, 3), (2, 4)])
def test_a_conv_vae_is_built_exactly_where_its_encoder_sees_every_pixel(k: int, s: int) -> None:
    """A stride above the kernel steps over pixels: counted with torch's own convolutions' gradients
    on a 16x16 image through one and two layers, every pixel is seen exactly where kernel_size >=
    stride, and ConvVAE is built exactly there (else one sentence naming both and the rule). (These
    stacks tile 16 pixels without a remainder; one whose floor drops the last rows, such as kernel 4
    at stride 3 on 16 pixels, is the next test's.)"""
    seen = unseen_pixels(16, 1, k, s) == 0 and unseen_pixels(16, 2, k, s) == 0
    assert seen is (k >= s)
    if seen:
        ConvVAE((1, 16, 16), [2, 2], latent=3, kernel_size=k, stride=s)
        return
    with pytest.raises(ConfigError) as info:
        ConvVAE((1, 16, 16), [2, 2], latent=3, kernel_size=k, stride=s)
    message = str(info.value)
    assert f"kernel_size is {k}" in message and f"stride {s}" in message
    assert "kernel_size >= stride" in message


@pytest.mark.parametrize(("k", "s"), [(2, 2), (3, 2), (4, 2), (4, 3), (5, 3), (6, 4), (3, 3)])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_a_conv_vae_is_built_exactly_where_its_last_windows_reach_the_edge(k: int, s: int,
                                                                         n_layers: int) -> None:
    """Where a layer's last window stops short of its input's edge, the encoder never reads the
    last rows: ConvVAE builds on a side x side image exactly where torch's own convolutions'
    gradients reach every pixel; a refusal names the rows and columns unread and fixes that build
    and read every pixel."""
    for side in range(4, 24):
        try:
            ConvVAE((1, side, side), [2] * n_layers, latent=3, kernel_size=k, stride=s)
        except ConfigError as err:
            message = str(err)
            if "never reads" not in message:  # too small, or a kernel past the image: other rules
                continue
            unseen = unseen_pixels(side, n_layers, k, s)
            m = side - math.isqrt(side * side - unseen)  # rows and columns unread: side^2 - (side - m)^2
            assert unseen > 0 and unseen == side * side - (side - m) ** 2, message
            said = ("the last row and the last column" if m == 1
                    else f"the last {m} rows and the last {m} columns")
            assert f"{said} of a {side}x{side} image" in message, message
            for fix in re.findall(r"kernel_size (\d+)|--image-size (\d+)", message):
                k2, side2 = (int(fix[0]), side) if fix[0] else (k, int(fix[1]))
                ConvVAE((1, side2, side2), [2] * n_layers, latent=3, kernel_size=k2, stride=s)
                assert unseen_pixels(side2, n_layers, k2, s) == 0
            continue
        assert unseen_pixels(side, n_layers, k, s) == 0, (side, n_layers, k, s)


def test_a_fix_a_refusal_offers_builds_and_is_read_whole() -> None:
    """Every fix that a too-small or kernel-past-the-image refusal offers (an --image-size, a
    kernel_size, a number of channels entries) builds a ConvVAE whose encoder reads every pixel
    (torch's own gradients), over small stacks; none says "or larger" (three layers of kernel 2,
    stride 2 read all of an 8x8 image, not of 9x9 to 15x15) and none offers what no stack takes
    (a kernel below a stride of 10 on 8x8 images; fewer than one channels entry)."""
    from vaekit.vae.base import ConvGeometry

    offered: set[tuple[int, int, int, int]] = set()  # (layers, kernel, stride, side) said to work
    for n_layers in (1, 2, 3):
        for k in [*range(1, 7), 10]:
            for s in range(1, k + 1):
                for side in range(1, 10):
                    try:
                        ConvGeometry.of((1, side, side), [2] * n_layers, k, s)
                    except ConfigError as err:
                        message = str(err)
                        if "never reads" in message:  # the edge rule's fixes: the test above
                            continue
                        assert "or larger" not in message and "1 convolutions" not in message, message
                        found = {what: [int(n) for n in re.findall(pattern, message)] for what, pattern in
                                 (("side", r"--image-size (\d+)"), ("kernel", r"kernel_size (\d+)"),
                                  ("layers", r"(\d+) channels entr"))}
                        offered |= {(n_layers, k, s, n) for n in found["side"]}
                        offered |= {(n_layers, k2, s, side) for k2 in found["kernel"]}
                        offered |= {(n, k, s, side) for n in found["layers"]}
    assert (3, 2, 2, 8) in offered and not any(k < 10 == s for _, k, s, _ in offered)
    assert all(n >= 1 for n, _, _, _ in offered)
    for n_layers, k, s, n in sorted(offered):
        model = ConvVAE((1, n, n), [2] * n_layers, latent=3, kernel_size=k, stride=s)
        assert model.decode(model.encode(torch.rand(1, 1, n, n))[0]).shape[-1] == n
        assert unseen_pixels(n, n_layers, k, s) == 0, (n_layers, k, s, n)


def test_a_kernel_larger_than_the_image_is_refused() -> None:
    """kernel 100 on 8x8 images would build a VAE of millions of weights that see mostly padding;
    the sentence names the largest kernel that fits."""
    with pytest.raises(ConfigError, match="kernel 100 is larger than the 8x8 image.*use kernel_size 8 or"):
        ConvVAE((1, 8, 8), [4], latent=3, kernel_size=100, stride=2)
    ConvVAE((1, 8, 8), [4], latent=3, kernel_size=8, stride=2)


def test_build_model_from_config() -> None:
    config = TrainConfig()
    config.model.image_shape = [1, 8, 8]
    config.model.kind, config.model.channels, config.model.hidden = "conv", [4], []
    model = build_model(config)
    assert isinstance(model, ConvVAE) and model.latent_dim == 20
    config.model.kind = "mlp"
    assert isinstance(build_model(config.model), MLPVAE)
    config.model.image_shape = None
    with pytest.raises(ConfigError, match="image_shape"):
        build_model(config)
    config.model.image_shape, config.model.latent = [1, 8, 8], 0
    with pytest.raises(ConfigError, match="latent"):
        build_model(config)


def test_models_return_parameters_not_losses() -> None:
    model = MLPVAE((1, 8, 8), [16], latent=2)
    mu, logvar = model(torch.rand(4, 1, 8, 8))
    assert mu.shape == logvar.shape == (4, 2)


def test_a_kernel_no_image_size_can_hold_is_not_answered_with_that_size() -> None:
    """--image-size takes at most 8,192 pixels a side: advising --image-size 2147483647 is wrong."""
    from vaekit.config import TrainConfig, validate
    from vaekit.errors import ConfigError
    from vaekit.vae.models import build_model

    config = TrainConfig()
    config.model.kind, config.model.kernel_size, config.model.image_shape = "conv", 2**31 - 1, [1, 8, 8]
    validate(config)
    with pytest.raises(ConfigError) as info:
        build_model(config.model)
    assert "kernel_size 8" in str(info.value) and "--image-size" not in str(info.value)
