"""vaekit.classify.models against the real torch.nn modules: every preset and random layer lists,
their parameter counts (arch's arithmetic vs the modules' tensors) and output shapes (arch's vs a
forward pass), and a hand-written torch version of the cnn preset."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vaekit.arch import stack
from vaekit.arch.spec import parse_stack
from vaekit.classify import models
from vaekit.classify.models import DENSE_HIDDEN, WIDE_MAPS, Classifier, Dropout16, layer_rows, preset_layers
from vaekit.errors import SpecError

SHAPES = [(1, 28, 28), (1, 8, 8), (3, 32, 32), (1, 56, 56)]


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("preset", ["cnn", "dense", "dense-wide"])
def test_presets_count_and_shape_as_torch(preset: str, shape: tuple[int, int, int]) -> None:
    if preset == "dense-wide" and shape[1] > 28:
        pytest.skip("dense-wide at 56x56 is 491M parameters: its count is test_dense_presets' formula")
    model = Classifier(preset_layers(preset, shape, 10), shape, 10)
    assert numel(model) == sum(r.params for r in model.rows)
    x = torch.rand(3, *shape)
    for layer, row in zip(model.net, model.rows, strict=True):
        x = layer(x)
        assert tuple(x.shape[1:]) == tuple(row.output_shape), row.layer
    assert x.shape == (3, 10)


def test_cnn_preset_is_a_small_conv_net() -> None:
    """The issue's cnn: 2-3 conv layers under 100,000 parameters, the same count at any side."""
    counts = {side: numel(Classifier(preset_layers("cnn", (1, side, side), 10), (1, side, side), 10))
              for side in (28, 56, 112)}
    assert len(set(counts.values())) == 1 and counts[28] < 100_000
    assert sum("Conv2d" in t for t in preset_layers("cnn", (1, 28, 28), 10)) in (2, 3)


def test_cnn_preset_equals_a_hand_written_torch_net() -> None:
    torch.manual_seed(0)
    ours = Classifier(preset_layers("cnn", (1, 28, 28), 10), (1, 28, 28), 10)
    reference = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # ReLU first:
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # they commute
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 10))
    assert {k: v.shape for k, v in ours.net.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    reference.load_state_dict(ours.net.state_dict())
    x = torch.rand(4, 1, 28, 28)
    ours.eval(), reference.eval()
    # channels-last inside `Classifier.forward`: the same values, summed in another order
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)
    assert isinstance(ours.net[11], nn.Identity)  # AdaptiveAvgPool2d(7) of 7x7 maps


def test_dropout16_drops_p_and_keeps_the_mean() -> None:
    drop = Dropout16(0.25).train()
    x = torch.ones(400_000)
    torch.manual_seed(0)
    y = drop(x)
    kept = (y != 0).double().mean().item()
    assert abs(kept - 0.75) < 4 * (0.75 * 0.25 / 400_000) ** 0.5  # binomial, 4 standard deviations
    assert torch.unique(y).tolist() == [0.0, torch.tensor(4 / 3).item()]  # scaled by 1 / (1 - p)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the global generator's draws: seeded, as nn.Dropout's
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout16(1.0).train()(x), torch.zeros_like(x))
    assert torch.equal(Dropout16(0.0).train()(x), x)


def test_dense_presets() -> None:
    """dense: about the cnn's parameters at 28x28, growing with the square of the side; dense-wide:
    Ex.1 Q1's layer H*W*C -> H*W*20 without bias."""
    dense = {s: numel(Classifier(preset_layers("dense", (1, s, s), 10), (1, s, s), 10)) for s in (28, 56)}
    assert dense[28] == 784 * DENSE_HIDDEN + DENSE_HIDDEN + DENSE_HIDDEN * 10 + 10
    assert dense[56] - DENSE_HIDDEN * 11 - 10 == 4 * (dense[28] - DENSE_HIDDEN * 11 - 10)
    wide = Classifier(preset_layers("dense-wide", (3, 10, 10), 10), (3, 10, 10), 10)
    assert wide.net[1].weight.shape == (10 * 10 * WIDE_MAPS, 300) and wide.net[1].bias is None
    assert wide.rows[1].params == 300 * 2000  # the sheet's answer to Q1: 600,000


# ----------------------------------------------------------------------------- random stacks

CONV = st.builds(lambda c, k, p, s: f"Conv2d({c}, {k}, stride={s}, padding={p})",
                 st.integers(1, 12), st.integers(1, 4), st.integers(0, 2), st.integers(1, 2))
POINTWISE = st.sampled_from(["ReLU()", "BatchNorm2d()", "GELU()", "Dropout(0.1)", "Tanh()",
                             "LeakyReLU(0.2)"])
POOL = st.sampled_from(["MaxPool2d(2)", "AvgPool2d(2)", "MaxPool2d(3, stride=1, padding=1)"])
HEAD = st.sampled_from([["Flatten()"], ["AdaptiveAvgPool2d(1)", "Flatten()"],
                        ["Flatten()", "Linear(7)", "ReLU()"]])


@settings(max_examples=60)
@given(body=st.lists(st.one_of(CONV, POINTWISE, POOL), max_size=6), head=HEAD,
       side=st.integers(6, 20), channels=st.sampled_from([1, 3]), classes=st.integers(2, 12))
def test_random_stacks_count_and_shape_as_torch(body: list[str], head: list[str], side: int,
                                                channels: int, classes: int) -> None:
    layers = [*body, *head, f"Linear({classes})"]
    shape = (channels, side, side)
    try:
        model = Classifier(layers, shape, classes)
    except SpecError:
        # arch refused the stack: torch must refuse it too (a shape that does not fit)
        with pytest.raises(RuntimeError):
            build_by_hand(layers, shape)(torch.rand(2, *shape))
        return
    assert numel(model) == sum(r.params for r in model.rows)
    model.eval()
    assert model(torch.rand(2, *shape)).shape == (2, classes)


def build_by_hand(layers: list[str], shape: tuple[int, int, int]) -> nn.Module:
    """torch's own modules with LazyConv2d / LazyLinear / LazyBatchNorm2d inferring the sizes:
    an independent way to learn whether the stack runs."""
    mods: list[nn.Module] = []
    for text in layers:
        name, _, args = text.partition("(")
        args = args.rstrip(")")
        values = [a.strip() for a in args.split(",") if a.strip()]
        positional = [float(v) if "." in v else int(v) for v in values if "=" not in v]
        keywords = {k.strip(): int(v) for k, v in (a.split("=") for a in values if "=" in a)}
        lazy = {"Conv2d": nn.LazyConv2d, "Linear": nn.LazyLinear, "BatchNorm2d": nn.LazyBatchNorm2d}
        mods.append(lazy.get(name, getattr(nn, name))(*positional, **keywords))
    return nn.Sequential(*mods)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("layers, words", [
    (["Conv2d(8, 5)", "Conv2d(8, 5)", "Flatten()", "Linear(10)"], ["layer 2", "Conv2d(8, 5)"]),
    (["Flatten()", "Linear(7)"], ["7", "Linear(10)"]),
    (["Conv2d(8, 3)", "Linear(10)"], ["Flatten()"]),
    ([], ["empty"]),
    (["Conv2d(8, 3"], ["layer 1"]),
])
def test_layers_that_do_not_fit_are_one_sentence(layers: list[str], words: list[str],
                                                 one_sentence) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as err:
        Classifier(layers, (1, 8, 8), 10)
    one_sentence(str(err.value), *words)


@pytest.mark.parametrize("side", [1, 2, 3])
def test_an_image_too_small_for_the_cnn_names_the_size_that_works(side: int) -> None:
    """Two 2x2 poolings need 4x4 images: the sentence says so, and 4x4 runs in a real module."""
    pattern = r"take images of 4x4 or larger, not \dx\d \(--image-size 4\)"
    with pytest.raises(SpecError, match=pattern) as info:
        layer_rows(preset_layers("cnn", (1, side, side), 10), (1, side, side), 10)
    assert str(info.value).count(". ") == 0
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                        nn.MaxPool2d(2))
    assert net(torch.rand(1, 1, 4, 4)).shape[-1] == 1
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 1, 3, 3))


# ----------------------------------------------------------------------------- the side that fits

SIDE_LAYERS = st.sampled_from([
    "Conv2d(3, 5)", "Conv2d(2, 3, stride=2)", "Conv2d(2, 3, padding=4, padding_mode='reflect')",
    "Conv2d(2, 3, padding=6, padding_mode='circular')", "MaxPool2d(2)", "MaxPool2d(3, dilation=2)",
    "AvgPool2d(4, stride=3)", "ConvTranspose2d(2, 3, stride=2, padding=3)", "Upsample(scale_factor=0.25)",
    "Upsample(scale_factor=2)", "Upsample(size=5)", "AdaptiveAvgPool2d((None, 3))", "AdaptiveAvgPool2d(2)",
    "ReLU()", "Conv2d(1500000, 1)", "ConvTranspose2d(1, 2, stride=90)", "Conv2d(2, 3, padding='same')"])
SIDES_TRIED = 48


@settings(max_examples=100, deadline=None)
@given(body=st.lists(SIDE_LAYERS, max_size=5), head=st.sampled_from([["Flatten()", "Linear(10)"], [],
                                                                      ["Linear(10)"]]))
def test_the_smallest_side_is_the_first_side_analyze_takes(body: list[str], head: list[str]) -> None:
    """The bisection over shape walks gives the side that trying `analyze` on every side gives:
    kernels and reflect padding that need a large input, sizes past 2**31 - 1 (1.5 million maps
    flattened, or strides of 90 transposed) that need a small one, and failures at any side. (The
    layers keep `analyze`'s receptive fields cheap: periodic maps, or small axes.)"""
    specs = parse_stack([*body, *head])

    def fits(side: int) -> bool:
        try:
            stack.analyze(specs, (1, side, side))
        except SpecError:
            return False
        return True

    expected = next((side for side in range(1, SIDES_TRIED + 1) if fits(side)), None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "MAX_SIDE_SEARCHED", SIDES_TRIED)
        assert models.smallest_side(specs, (1, 8, 8)) == expected


WORST_LAYERS = [  # each took every side up to 1,024 through `analyze`: seconds to many minutes
    ["AdaptiveAvgPool2d(2147483647)", "Flatten()", "Linear(10)"],  # too large at every side
    ["Upsample(size=2147483647)", "Upsample(scale_factor=1.5)", "Flatten()", "Linear(10)"],
    ["MaxPool2d(2)"] * 10 + ["ReLU()"] * 987 + ["Flatten()", "Linear(10)"],  # 1,024 and larger
    ["MaxPool2d(2)"] * 11 + ["ReLU()"] * 987 + ["Flatten()", "Linear(10)"],  # no side up to 1,024
    ["Upsample(scale_factor=1.5)"] * 998 + ["Linear(10)"],  # a failure at any side, after 998 layers
]


@pytest.mark.parametrize("layers", WORST_LAYERS, ids=range(len(WORST_LAYERS)))
def test_the_side_search_walks_shapes_a_few_times(layers: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """At most 12 walks of the layers' shapes, no receptive field: bounded work for any layer
    text (the search used to run `analyze`, fields and all, on each of 1,024 sides)."""
    from hang import deadline

    specs = parse_stack(layers)
    steps = [0]
    real = stack._layer_output

    def counted(*args: object) -> object:
        steps[0] += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(stack, "_layer_output", counted)
    monkeypatch.setattr(models, "analyze", lambda *_: pytest.fail("analyze called by the side search"))
    with deadline(20):
        side = models.smallest_side(specs, (1, 28, 28))
    assert steps[0] <= 12 * len(layers)
    assert side == (1024 if len(layers) == 999 and layers[10] == "ReLU()" else None)


def test_an_adaptive_pool_past_any_size_is_one_sentence_at_once(one_sentence) -> None:  # type: ignore[no-untyped-def]
    from hang import deadline

    with deadline(20), pytest.raises(SpecError) as err:
        layer_rows(WORST_LAYERS[0], (1, 28, 28), 10)
    one_sentence(str(err.value), "Flatten()", "2,147,483,647")
