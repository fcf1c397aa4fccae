"""Classifiers of Ex.1 as networks: a preset or any layer list in the language of `vaekit arch`
(the `torch.nn` call without input sizes, `vaekit.arch.spec`), built into `torch.nn` modules with
the in_channels / in_features / num_features that `vaekit.arch.stack.analyze` infers.

    preset_layers(preset, image_shape, classes)   the layer text of a preset
    layer_rows(config)                             the arch table of a run's network (or SpecError)
    build_classifier(config)                       the nn.Module: logits (B, classes) of x in [0, 1]
    params_and_macs(config_rows(config))           its parameters and MACs per image, counted from
                                                   the arch table as `vaekit classify eval` writes them

The presets (for 1x28x28 Fashion-MNIST; the last Linear has one output per class):

    cnn          two conv blocks (3x3 conv, batch norm, 2x2 max pooling, ReLU: max and ReLU
                 commute, and pooling first runs ReLU on a quarter of the numbers) and a third
                 conv, averaged to 7x7 (AdaptiveAvgPool2d), dropout, one Linear: 87,434
                 parameters at any image size

How the modules run is the builder's business, not the layer text's (docs/benchmarks.md,
"Classifier epoch", has the figures of each):

    channels-last   `Classifier.forward` gives the network x in channels-last (NHWC) strides on a
                    CPU, where oneDNN's convolutions, batch norm and pooling are fastest (for C = 1
                    `x.contiguous(memory_format=torch.channels_last)` keeps NCHW strides, so the
                    layout is made explicitly); the values are the same, the sums' order differs
    identity pool   an AdaptiveAvgPool2d whose output size is its input size is `nn.Identity`
    dropout         `Dropout16`: the mask from 16-bit draws, 4 per 64-bit draw of torch's generator,
                    as `vaekit.data.binarize` draws its bits
    dense        Flatten, Linear(DENSE_HIDDEN), ReLU, Linear: about the cnn's parameters at 28x28,
                 growing with the square of the image side (Ex.1 Q1)
    dense-wide   Flatten, Ex.1 Q1's layer (H*W*C -> H*W*20, no bias), ReLU, Linear
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vaekit.arch.spec import LayerSpec, parse_stack
from vaekit.arch.stack import LayerRow, analyze, shape_walk
from vaekit.classify.config import ClassifierConfig, ClassifierModelConfig
from vaekit.config import spell
from vaekit.errors import ConfigError, SpecError
from vaekit.vae.layers import Dropout16

CNN_GRID = 7  # the cnn's last feature maps are averaged to 7x7 (the identity at 28x28): its head,
# and so its parameter count, is the same at any image side
DENSE_HIDDEN = 112  # 784 * 112 + 112 * 10 + biases = 89,050 parameters at 28x28, near the cnn's
WIDE_MAPS = 20  # Ex.1 Q1's output: H x W x 20


def preset_layers(preset: str, image_shape: Sequence[int], classes: int) -> list[str]:
    """The layer text of `preset` (one of `classify.config.PRESETS`) for images (C, H, W)."""
    c, h, w = image_shape
    if preset == "cnn":
        return ["Conv2d(32, 3, padding=1)", "BatchNorm2d()", "MaxPool2d(2)", "ReLU()",
                "Conv2d(64, 3, padding=1)", "BatchNorm2d()", "MaxPool2d(2)", "ReLU()",
                "Conv2d(64, 3, padding=1)", "BatchNorm2d()", "ReLU()",
                f"AdaptiveAvgPool2d({CNN_GRID})", "Flatten()", "Dropout(0.25)", f"Linear({classes})"]
    if preset == "dense":
        return ["Flatten()", f"Linear({DENSE_HIDDEN})", "ReLU()", f"Linear({classes})"]
    if preset == "dense-wide":
        return ["Flatten()", f"Linear({h * w * WIDE_MAPS}, bias=False)", "ReLU()", f"Linear({classes})"]
    raise ConfigError(f"unknown preset {spell(preset)}; valid presets are cnn, dense, dense-wide.")


def layer_texts(m: ClassifierModelConfig, image_shape: Sequence[int], classes: int) -> list[str]:
    """The run's layers: `model.layers` when given, else the preset's."""
    return list(m.layers) or preset_layers(m.preset, image_shape, classes)


def check_output(rows: Sequence[LayerRow], classes: int) -> None:
    """The network must end in a vector of one logit per class (SpecError otherwise)."""
    out = rows[-1].output_shape if rows else ()
    if tuple(out) != (classes,):
        shown = "x".join(map(str, out)) or "nothing"
        raise SpecError(f"the layers end in an output of shape {shown}, but a classifier of {classes} "
                        f"classes needs {classes} logits: end with Flatten() and Linear({classes}).")


def layer_rows(layers: Sequence[str], image_shape: Sequence[int], classes: int,
               size_flag: str = "--image-size") -> list[LayerRow]:
    """`vaekit arch`'s rows of the network on its input (params, MACs, shapes, receptive fields);
    SpecError (one sentence) if a layer does not parse, the shapes do not fit (with the smallest
    images they do fit, given by `size_flag`), or the output is not one logit per class."""
    if not layers:
        raise SpecError("the layer list is empty; give at least Flatten() and Linear(CLASSES).")
    specs = parse_stack(list(layers))
    try:
        rows = analyze(specs, tuple(image_shape))
    except SpecError as err:
        side = smallest_side(specs, image_shape)
        if side is None or side <= min(image_shape[1:]):
            raise
        also = ""  # the size alone would only meet the next refusal: the output's, said now
        try:
            check_output(analyze(specs, (image_shape[0], side, side)), classes)
        except SpecError as end:
            also = f"; at that size, {str(end).rstrip('.')}"
        raise SpecError(f"{str(err).rstrip('.')}: these layers take images of {side}x{side} or larger, "
                        f"not {image_shape[1]}x{image_shape[2]} ({size_flag} {side}){also}.") from None
    check_output(rows, classes)
    return rows


MAX_SIDE_SEARCHED = 1024  # `smallest_side` looks no further


def smallest_side(specs: Sequence[LayerSpec], image_shape: Sequence[int]) -> int | None:
    """The smallest square side S <= MAX_SIDE_SEARCHED for which the layers' shapes fit images of
    (C, S, S) (Ex.1 Q2's arithmetic, `stack.shape_walk`), or None: by bisection, about 11 walks of
    the shapes alone, whatever the layers.

    Every output size is a nondecreasing function of the input side (the floor formulas of
    convolution and pooling, upsampling, a fixed or kept adaptive size, flattening), and every
    check on it is a lower bound (an output of at least 1, padding smaller than the input) or the
    upper bound MAX_SIZE. So a side whose walk 'fails' fails for every smaller side, one that is
    'too large' is too large for every larger side, and over S = 1, 2, ... the walks read 'fails',
    then 'fits', then 'too large' (each run possibly empty); a failure that does not depend on the
    side is 'fails' wherever the walk reaches it."""
    c = image_shape[0]
    lo, hi = 1, MAX_SIDE_SEARCHED + 1  # every side below lo fails; hi is past the search or does not fail
    while lo < hi:
        mid = (lo + hi) // 2
        if shape_walk(specs, (c, mid, mid)) == "fails":
            lo = mid + 1
        else:
            hi = mid
    return lo if lo <= MAX_SIDE_SEARCHED and shape_walk(specs, (c, lo, lo)) == "fits" else None


def to_module(row: LayerRow) -> nn.Module:
    """The torch.nn module of one analyzed layer, its input sizes taken from the row."""
    spec: LayerSpec = row.spec
    p = dict(spec.params)
    kind = spec.kind
    shape = row.input_shape
    if kind == "AdaptiveAvgPool2d" and tuple(row.output_shape) == tuple(shape):
        return nn.Identity()  # averaging each pixel with itself
    if kind == "Dropout":
        return Dropout16(p["p"])
    if kind == "Linear":
        return nn.Linear(shape[0], p["out_features"], bias=p["bias"])
    if kind in ("Conv2d", "ConvTranspose2d"):
        return getattr(nn, kind)(shape[0], **p)
    if kind == "BatchNorm2d":
        return nn.BatchNorm2d(shape[0], **p)
    if kind == "Flatten":
        return nn.Flatten()
    return getattr(nn, kind)(**p)  # pooling, activations, dropout, upsample: no input sizes


class Classifier(nn.Module):
    """A network of `arch` layers that maps images x (B, C, H, W) in [0, 1] to logits (B, classes)."""

    def __init__(self, layers: Sequence[str], image_shape: Sequence[int], classes: int) -> None:
        super().__init__()
        self.layers = list(layers)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.classes = classes
        self.rows = layer_rows(self.layers, self.image_shape, classes)
        self.net = nn.Sequential(*[to_module(r) for r in self.rows])

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, classes) of images x (B, C, H, W) in [0, 1]."""
        if x.dim() == 4 and x.device.type == "cpu":
            b, c, h, w = x.shape
            x = torch.empty((b, h, w, c), dtype=x.dtype, device=x.device).permute(0, 3, 1, 2).copy_(x)
        return self.net(x)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def params_and_macs(rows: Sequence[LayerRow]) -> tuple[int, int]:
    """The network's parameters and multiply-accumulates per image: sums over its `vaekit arch` rows."""
    return sum(r.params for r in rows), sum(r.macs for r in rows)


def config_rows(config: ClassifierConfig) -> list[LayerRow]:
    """`layer_rows` of the network of a ClassifierConfig whose model.image_shape and model.classes
    are filled in (a run's config.json), without building its modules."""
    m = config.model
    if m.image_shape is None or m.classes is None:
        raise ConfigError("model.image_shape and model.classes must be known to build a classifier.")
    return layer_rows(layer_texts(m, m.image_shape, m.classes), m.image_shape, m.classes)


def build_classifier(config: ClassifierConfig) -> Classifier:
    """The network of a ClassifierConfig whose model.image_shape and model.classes are filled in."""
    m = config.model
    if m.image_shape is None or m.classes is None:
        raise ConfigError("model.image_shape and model.classes must be known to build a classifier.")
    return Classifier(layer_texts(m, m.image_shape, m.classes), m.image_shape, m.classes)
