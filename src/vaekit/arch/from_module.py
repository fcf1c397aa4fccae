"""A torch module as layer text, so that the layer arithmetic of Ex.1 (`spec` -> `stack` ->
`arith`) sizes real models: per-layer output shapes, parameters and MACs of a VAE's parts (the
report's parameter table) or of a classifier's stack.

This is the one file of `vaekit.arch` that imports torch; it reads a module's constructor
arguments (out_features, kernel_size, stride, ...) and writes them in the spec language, e.g.
`nn.Conv2d(3, 20, 3)` -> "Conv2d(20, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), ...)". The
input size (in_features, in_channels) is not written: `stack` infers it from the previous layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vaekit.arch import spec, stack

# activations written as "Name()": their arguments change no shape, parameter or MAC
PLAIN_ACTIVATIONS = ("ReLU", "Tanh", "Sigmoid", "ELU", "GELU", "SiLU")


@dataclass
class ParamRow:
    """One layer of a model part: its output shape per sample ("64x7x7"), its trainable
    parameters and its MACs per sample (None when they are not known, e.g. a raw tensor)."""

    part: str
    layer: str
    output_shape: str
    params: int
    macs: int | None


def layer_text(module: nn.Module) -> str | None:
    """`module` in the layer language of `vaekit.arch.spec`, or None if this file cannot write it.

    Written: Linear, Conv2d, ConvTranspose2d (with every argument that changes a shape or a count:
    kernel_size, stride, padding, dilation, groups, bias, output_padding), LeakyReLU, Flatten and
    the activations of PLAIN_ACTIVATIONS. Anything else (pooling, normalization, dropout,
    Unflatten, containers) gives None.
    """
    name = type(module).__name__
    if isinstance(module, nn.Linear):
        return f"Linear({module.out_features}, bias={module.bias is not None})"
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        extra = (f", output_padding={tuple(module.output_padding)}"
                 if isinstance(module, nn.ConvTranspose2d) else "")
        return (f"{name}({module.out_channels}, kernel_size={tuple(module.kernel_size)}, "
                f"stride={tuple(module.stride)}, padding={tuple(module.padding)}, "
                f"dilation={tuple(module.dilation)}, groups={module.groups}, "
                f"bias={module.bias is not None}{extra})")
    if isinstance(module, nn.LeakyReLU):
        return f"LeakyReLU({module.negative_slope})"
    if isinstance(module, nn.Flatten) or name in PLAIN_ACTIVATIONS:
        return f"{name}()"
    return None


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def analyze_module(part: str, module: nn.Module, input_shape: tuple[int, ...]
                   ) -> tuple[list[ParamRow], tuple[int, ...]]:
    """Rows of `stack.analyze` for a Sequential (or a single layer) on `input_shape` (per sample:
    (C, H, W) or (N,)), and the output shape of the last layer.

    The layers between two `nn.Unflatten`s go through `stack.analyze` as one stack; an Unflatten
    (of dim 1, on a flat input) gives a row of its own with 0 parameters and 0 MACs, and its
    unflattened_size is the input of the layers after it. ValueError names the first layer that
    `layer_text` cannot write; `SpecError` comes from `stack` when the layers do not fit the shape.
    """
    layers = list(module) if isinstance(module, nn.Sequential) else [module]
    rows: list[ParamRow] = []
    shape, pending = input_shape, list[str]()

    def flush() -> None:
        nonlocal shape, pending
        if pending:
            for r in stack.analyze(spec.parse_stack(pending), shape):
                rows.append(ParamRow(part, r.layer, _shape_text(r.output_shape), r.params, r.macs))
                shape = r.output_shape
        pending = []

    for layer in layers:
        if isinstance(layer, nn.Unflatten):
            flush()
            shape = tuple(int(s) for s in layer.unflattened_size)
            rows.append(ParamRow(part, f"Unflatten(1, {shape})", _shape_text(shape), 0, 0))
            continue
        text = layer_text(layer)
        if text is None:
            raise ValueError(f"no layer text for {type(layer).__name__}")
        pending.append(text)
    flush()
    return rows, shape


def parameter_table(model: nn.Module) -> tuple[list[ParamRow], str]:
    """Per-layer output shapes, parameters and MACs, from `arith` through `stack`, of the sheet's
    VAEs: q_enc on `model.image_shape`, q_mu and q_logvar on its output, p_dec on
    (`model.latent_dim`,), and a learned `p_logvar` parameter if the model has one.

    Returns the rows and where they come from. The rows' total must equal the model's own count,
    sum(p.numel() for p in model.parameters()); when it does not, or when a part is missing or
    cannot be written as layer text, the rows are the model's named parameters instead (MACs None).
    """
    total = sum(p.numel() for p in model.parameters())
    try:
        image = tuple(int(s) for s in model.image_shape)  # type: ignore[union-attr]
        enc_rows, h = analyze_module("q_enc", model.q_enc, image)  # type: ignore[arg-type]
        mu_rows, _ = analyze_module("q_mu", model.q_mu, h)  # type: ignore[arg-type]
        lv_rows, _ = analyze_module("q_logvar", model.q_logvar, h)  # type: ignore[arg-type]
        dec_rows, _ = analyze_module("p_dec", model.p_dec,  # type: ignore[arg-type]
                                     (int(model.latent_dim),))  # type: ignore[arg-type]
        rows = enc_rows + mu_rows + lv_rows + dec_rows
        p = getattr(model, "p_logvar", None)
        if isinstance(p, nn.Parameter):
            rows.append(ParamRow("p_logvar", "log sigma^2 of p(x|z), learned", _shape_text(tuple(p.shape)),
                                 p.numel(), 0))
        if sum(r.params for r in rows) != total:
            raise ValueError("parameter counts disagree")
        return rows, "vaekit.arch.arith (per layer, MACs per image, bias adds not counted)"
    except Exception:  # any model the spec language cannot describe: list its tensors instead
        rows = [ParamRow(name.split(".")[0], name, _shape_text(tuple(p.shape)), p.numel(), None)
                for name, p in model.named_parameters()]
        return rows, "the model's named parameters"
