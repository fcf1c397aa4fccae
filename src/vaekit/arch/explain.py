"""Formula text with the numbers put in, for `vaekit arch --explain` (and `explain_layer`).

Each line is the equation of `vaekit.arch.arith` (whose docstrings give the sources) written with one
layer's numbers, e.g. for the sheet's Ex.1 Q3 with stride 2:
`H_out = floor((10 + 2*0 - 1*(3-1) - 1)/2 + 1) = 4`.
"""

from __future__ import annotations

from fractions import Fraction

from vaekit.arch import arith, field
from vaekit.arch.spec import ACTIVATIONS, parse_layer
from vaekit.arch.stack import AXES, LayerRow, analyze, geometry


def _n(value: int | Fraction) -> str:
    if isinstance(value, Fraction) and value.denominator != 1:
        return str(value)
    return f"{int(value):,}"


def _pad_text(p0: int, p1: int) -> str:
    return f"2*{p0}" if p0 == p1 else f"{p0} + {p1}"


def _shape_lines(row: LayerRow) -> list[str]:
    spec, kind = row.spec, row.spec.kind
    lines: list[str] = []
    hw_in, hw_out = row.input_shape[1:], row.output_shape[1:]
    if kind in ("Conv2d", "MaxPool2d", "AvgPool2d"):
        g = geometry(spec)
        ceil = kind != "Conv2d" and spec["ceil_mode"]
        pad = "2*padding" if g.pad_start == g.pad_end else "pad_before + pad_after"
        inner = f"H_in + {pad} - dilation*(kernel_size-1) - 1"
        lines.append(f"H_out = ceil(({inner})/stride) + 1, minus 1 if the last window would "
                     "start in the right padding" if ceil else
                     f"H_out = floor(({inner})/stride + 1)")
        for i, axis in enumerate(AXES):
            k, s, d, p0, p1 = g.kernel[i], g.stride[i], g.dilation[i], g.pad_start[i], g.pad_end[i]
            inner = f"{hw_in[i]} + {_pad_text(p0, p1)} - {d}*({k}-1) - 1"
            if not ceil:
                lines.append(f"{axis}_out = floor(({inner})/{s} + 1) = {hw_out[i]}")
                continue
            up = (hw_in[i] + p0 + p1 - d * (k - 1) - 1 + s - 1) // s + 1
            text = f"{axis}_out = ceil(({inner})/{s}) + 1 = {up}"
            if up != hw_out[i]:
                text += (f" - 1 (the last window would start at {up - 1}*{s} >= {hw_in[i]} + "
                         f"{p0}) = {hw_out[i]}")
            lines.append(text)
        if spec.params.get("padding") == "same":
            pads = ", ".join(f"{a} {b}+{c}" for a, b, c in zip(AXES, g.pad_start, g.pad_end,
                                                                strict=True))
            lines.append(f"padding='same' pads before+after: {pads} (total dilation*(k-1), "
                         "the odd pixel after)")
    elif kind == "ConvTranspose2d":
        g = geometry(spec)
        lines.append("H_out = (H_in-1)*stride - 2*padding + dilation*(kernel_size-1) "
                     "+ output_padding + 1")
        for i, axis in enumerate(AXES):
            k, s, p, d = g.kernel[i], g.stride[i], g.pad_start[i], g.dilation[i]
            op = spec["output_padding"][i]
            lines.append(f"{axis}_out = ({hw_in[i]}-1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1 "
                         f"= {hw_out[i]}")
    elif kind == "AdaptiveAvgPool2d":
        lines.append("window i = [floor(i*H_in/H_out), ceil((i+1)*H_in/H_out))")
        for i, axis in enumerate(AXES):
            lengths = arith.adaptive_pool_window_lengths(hw_in[i], hw_out[i])
            lines.append(f"{axis}_out = output_size = {hw_out[i]} (windows of "
                         f"{' or '.join(map(str, lengths))} pixels)")
    elif kind == "Upsample":
        for i, axis in enumerate(AXES):
            if spec["size"] is not None:
                lines.append(f"{axis}_out = size = {hw_out[i]}")
            else:
                f = spec["scale_factor"][i]
                lines.append(f"{axis}_out = floor({axis}_in * scale_factor) = "
                             f"floor({hw_in[i]} * {f}) = {hw_out[i]}")
    elif kind == "Flatten":
        dims = "*".join(map(str, row.input_shape))
        lines.append(f"N = {'C*H*W' if len(row.input_shape) == 3 else 'N'} = {dims} = "
                     f"{_n(row.output_shape[0])}")
    return lines


def _param_lines(row: LayerRow) -> list[str]:
    spec, kind = row.spec, row.spec.kind
    bias = ("biases = C_out = " + _n(row.bias_params)) if row.bias_params else "biases = 0"
    if kind == "Linear":
        n_in, n_out = row.input_shape[0], row.output_shape[0]
        return [f"weights = in_features * out_features = {n_in} * {n_out} = "
                f"{_n(row.weight_params)}",
                ("biases = out_features = " + _n(row.bias_params)) if row.bias_params
                else "biases = 0 (bias=False)",
                f"MACs = in_features * out_features = {n_in} * {n_out} = {_n(row.macs)}"]
    if kind in ("Conv2d", "ConvTranspose2d"):
        c_in, c_out, grp = row.input_shape[0], row.output_shape[0], spec["groups"]
        kh, kw = spec["kernel_size"]
        if kind == "Conv2d":
            w = f"C_out * C_in/groups * k_h * k_w = {c_out} * {c_in}/{grp} * {kh} * {kw}"
            m = (f"C_out * H_out * W_out * C_in/groups * k_h * k_w = {c_out} * "
                 f"{row.output_shape[1]} * {row.output_shape[2]} * {c_in}/{grp} * {kh} * {kw}")
        else:
            w = f"C_in * C_out/groups * k_h * k_w = {c_in} * {c_out}/{grp} * {kh} * {kw}"
            m = (f"C_in * H_in * W_in * C_out/groups * k_h * k_w (on the input size) = {c_in} * "
                 f"{row.input_shape[1]} * {row.input_shape[2]} * {c_out}/{grp} * {kh} * {kw}")
        return [f"weights = {w} = {_n(row.weight_params)}",
                bias + ("" if row.bias_params else " (bias=False)"),
                f"MACs = {m} = {_n(row.macs)} (bias adds not counted)"]
    if kind == "BatchNorm2d":
        if not row.params:
            return ["params = 0 (affine=False); running mean/var are buffers"]
        return [f"params = gamma + beta = C + C = {row.weight_params} + {row.bias_params} = "
                f"{row.params}; running mean/var are buffers, not trainable"]
    what = "activation" if kind in ACTIVATIONS else kind
    return [f"params = 0, MACs = 0 ({what}: no multiply-add with a weight is counted)"]


def _field_lines(row: LayerRow, previous: LayerRow | None,
                 image: tuple[int, ...] | None) -> list[str]:
    kind = row.spec.kind
    if row.receptive_field is None:
        if row.jump is None and (kind != "Linear" or image is None):  # a flat input
            return []
        jump = "" if row.jump is None else (f"; jump = {_n(row.jump[0])}x{_n(row.jump[1])} input "
                                            "pixels per output step")
        return [f"receptive field not computed: it would take more than "
                f"{field.MAX_FIELD_STEPS:,} steps of the composed index maps{jump}"]
    if kind == "Linear":
        h, w = row.receptive_field
        if image == (h, w):
            return [f"receptive field = the whole image {h}x{w} (every output reads every input)"]
        of = "" if image is None else f" of the {image[0]}x{image[1]} image"
        return [f"receptive field = {h}x{w}{of}: every output reads every input, and these "
                f"depend only on the input pixels in a span of {h} rows and {w} columns (padding "
                "not counted)"]
    if previous is None:
        r_in: tuple[int, int] = (1, 1)
        j_in: tuple[Fraction, Fraction] | None = (Fraction(1), Fraction(1))
    else:
        assert previous.receptive_field is not None
        r_in, j_in = previous.receptive_field, previous.jump
    if row.jump is None or j_in is None or row.receptive_field == r_in and row.jump == j_in:
        return []
    lines = []
    for i, axis in enumerate(AXES):
        r, j = row.receptive_field[i], row.jump[i]
        if kind in ("Conv2d", "MaxPool2d", "AvgPool2d") and j_in[i].denominator == 1:
            g = geometry(row.spec)
            k, s, d = g.kernel[i], g.stride[i], g.dilation[i]
            r_classic, _ = field.receptive_field_step(r_in[i], int(j_in[i]), k, s, d)
            if r_classic == r:
                lines.append(f"receptive field {axis} = r_in + dilation*(k-1)*j_in = {r_in[i]} + "
                             f"{d}*({k}-1)*{_n(j_in[i])} = {r}; jump = j_in*stride = "
                             f"{_n(j_in[i])}*{s} = {_n(j)}")
                continue
        lines.append(f"receptive field {axis} = {r} (largest over the output units, from the "
                     f"composed index maps); jump = {_n(j)} input pixels per output step")
    return lines


def explain_row(row: LayerRow, previous: LayerRow | None = None,
                image: tuple[int, ...] | None = None) -> list[str]:
    """The formulas of one layer with its numbers, one line each; `image` (H, W): the stack's
    input, named by a Linear's field."""
    memory = (f"output = {'*'.join(map(str, row.output_shape))} floats * 4 bytes = "
              f"{_n(row.output_bytes)} bytes")
    return (_shape_lines(row) + _param_lines(row) + _field_lines(row, previous, image) + [memory])


def explain_layer(text: str, input_shape: tuple[int, ...]) -> list[str]:
    """The formulas of one layer, given as text, on an input shape (C, H, W) or (N,), e.g.
    explain_layer("Conv2d(20, kernel_size=3, stride=2)", (3, 10, 10))[1] ==
    "H_out = floor((10 + 2*0 - 1*(3-1) - 1)/2 + 1) = 4"."""
    return explain_row(analyze([parse_layer(text)], input_shape)[0])
