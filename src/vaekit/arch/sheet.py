"""The sheet's Exercise 1 answered with `vaekit.arch.arith` (no number typed in), and the scaling
table behind Q1's "what problem can we have if the input size is high".

The input is x in R^{10x10x3}, written H x W x C as the sheet does (torch's order is C x H x W):

- Ex.1 Q1: a dense layer without bias from x to a 10x10x20 output, both flattened:
  params = (H*W*C_in) * (H*W*C_out) = 300 * 2,000 = 600,000.
- Ex.1 Q2: a 3x3 convolution with 20 feature maps, with bias:
  params = k_h*k_w*C_in*C_out + C_out = 540 weights + 20 biases = 560.
- Ex.1 Q3: its output size, H_out = floor((H_in + 2*padding - kernel_size)/stride + 1):
  8x8x20 without padding, 4x4x20 with stride 2.

`exercise1_text` / `scaling_text` are the prose of `vaekit arch --sheet` / `--scaling`,
`exercise1_json` / `scaling_json` their `--json` objects, `sheet_outputs` what the command prints.
The plot of the scaling table is `vaekit.report.figures.scaling_figure` (matplotlib lives in report/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vaekit.arch import arith
from vaekit.arch.table import dims, dump_json
from vaekit.device import format_bytes

INPUT_HWC: tuple[int, int, int] = (10, 10, 3)  # the sheet's x, H x W x C
MAPS = 20  # output channels: Q1's 10x10x20 output and Q2's feature maps
KERNEL = 3  # Q2's kernel is KERNEL x KERNEL
Q3_STRIDES = (1, 2)  # Q3 asks for the output without padding, then with stride 2
SCALING_SIDES: tuple[int, ...] = (10, 28, 64, 224, 1024)  # the sheet's 10, MNIST, ..., ImageNet
LARGE_SIDE = 224  # the "large input" quoted in the answer to Q1


# ----------------------------------------------------------------------------- the answers


@dataclass(frozen=True)
class Exercise1:
    """The three answers of Exercise 1, shapes in H x W x C (the sheet's order)."""

    q1_in_features: int
    q1_out_features: int
    q1_params: int
    q2_weights: int
    q2_biases: int
    q3_no_padding: tuple[int, int, int]
    q3_stride2: tuple[int, int, int]

    @property
    def q2_params(self) -> int:
        """Ex.1 Q2: weights + biases of the convolution."""
        return self.q2_weights + self.q2_biases


def q3_output_hwc(stride: int) -> tuple[int, int, int]:
    """Ex.1 Q3: H_out x W_out x C_out of Q2's convolution without padding at `stride`:
    H_out = floor((H_in + 2*0 - kernel_size)/stride + 1) (`arith.conv2d_output_size`)."""
    h, w, _ = INPUT_HWC
    return (arith.conv2d_output_size(h, KERNEL, stride), arith.conv2d_output_size(w, KERNEL, stride),
            MAPS)


def exercise1() -> Exercise1:
    """Ex.1 Q1-Q3 computed with `arith`:

    Q1: params = in_features * out_features = (H*W*C) * (H*W*20), no bias (`arith.linear_params`);
    Q2: weights = C_out * C_in * k_h * k_w, biases = C_out (`arith.conv2d_params`);
    Q3: `q3_output_hwc` at stride 1 and 2.
    """
    h, w, c = INPUT_HWC
    in_features, out_features = h * w * c, h * w * MAPS
    q1, _ = arith.linear_params(in_features, out_features, bias=False)
    weights, biases = arith.conv2d_params(c, MAPS, (KERNEL, KERNEL))
    no_padding, stride2 = (q3_output_hwc(s) for s in Q3_STRIDES)
    return Exercise1(in_features, out_features, q1, weights, biases, no_padding, stride2)


# ----------------------------------------------------------------------------- the scaling table


@dataclass(frozen=True)
class ScalingRow:
    """Ex.1 Q1's dense layer vs Q2's convolution for a square RGB image of side `side`."""

    side: int
    dense_params: int
    conv_params: int

    @property
    def dense_bytes(self) -> int:
        """float32 memory of the dense layer's weights: 4 * dense_params."""
        return self.dense_params * arith.FLOAT32_BYTES

    @property
    def conv_bytes(self) -> int:
        """float32 memory of the convolution's weights and biases: 4 * conv_params."""
        return self.conv_params * arith.FLOAT32_BYTES


def scaling_table(sides: Sequence[int] = SCALING_SIDES, in_channels: int = INPUT_HWC[2],
                  out_channels: int = MAPS, kernel_size: int = KERNEL) -> list[ScalingRow]:
    """The answer to Ex.1 Q1's "what problem can we have if the input size is high", as numbers.

    Dense (no bias, HxWxC_in -> HxWxC_out flattened): (H*W*C_in)*(H*W*C_out), growing as side^4.
    Conv (k x k, C_in -> C_out maps, bias): C_out*C_in*k*k + C_out, independent of the side.
    """
    rows = []
    for side in sides:
        dense, _ = arith.linear_params(side * side * in_channels, side * side * out_channels,
                                       bias=False)
        conv = sum(arith.conv2d_params(in_channels, out_channels, (kernel_size, kernel_size)))
        rows.append(ScalingRow(side, dense, conv))
    return rows


# ----------------------------------------------------------------------------- text and JSON


def exercise1_json() -> dict[str, Any]:
    """The `vaekit arch --sheet --json` object: the input and the answers of Ex.1 Q1-Q3."""
    a = exercise1()
    return {
        "notation": "H x W x C", "input": list(INPUT_HWC),
        "q1": {"in_features": a.q1_in_features, "out_features": a.q1_out_features,
               "params": a.q1_params},
        "q2": {"weights": a.q2_weights, "biases": a.q2_biases, "params": a.q2_params},
        "q3": {"no_padding": list(a.q3_no_padding), "stride2": list(a.q3_stride2)},
    }


def exercise1_text() -> str:
    """Ex.1 Q1-Q3 in the sheet's notation (H x W x C), each answer with its formula and the
    numbers put in, as `vaekit arch --sheet` prints them."""
    a = exercise1()
    h, w, c = INPUT_HWC
    big = scaling_table([LARGE_SIDE])[0]
    lines = [
        f"TD-2 Exercise 1: input x in R^{h}x{w}x{c} (H x W x C)",
        "",
        f"Q1  dense layer, no bias: {h}x{w}x{c} -> {h}x{w}x{MAPS}, flattened "
        f"{a.q1_in_features:,} -> {a.q1_out_features:,}",
        f"    params = ({h}*{w}*{c}) * ({h}*{w}*{MAPS}) = {a.q1_in_features:,} * "
        f"{a.q1_out_features:,} = {a.q1_params:,}",
        f"    a large input: the count grows as (H*W)^2; at {big.side}x{big.side}x{c} it is "
        f"{big.dense_params:,} ({format_bytes(big.dense_bytes, 1)} in float32) against "
        f"{big.conv_params:,} for the conv (vaekit arch --scaling)",
        f"Q2  conv {KERNEL}x{KERNEL}, {c} -> {MAPS} feature maps (with bias)",
        f"    params = k_h*k_w*C_in*C_out + C_out = {KERNEL}*{KERNEL}*{c}*{MAPS} + {MAPS} = "
        f"{a.q2_weights} weights + {a.q2_biases} biases = {a.q2_params}",
        "Q3  H_out = floor((H_in + 2*padding - kernel_size)/stride + 1)",
    ]
    for stride, out in zip(Q3_STRIDES, (a.q3_no_padding, a.q3_stride2), strict=True):
        lines.append(f"    no padding, stride {stride}: floor(({h} + 2*0 - {KERNEL})/{stride} + 1) "
                     f"= {out[0]} -> {dims(out)}")
    return "\n".join(lines)


def scaling_json(rows: Sequence[ScalingRow]) -> dict[str, Any]:
    """The `vaekit arch --scaling --json` object: one entry per image side."""
    return {"rows": [{"side": r.side, "dense_params": r.dense_params, "conv_params": r.conv_params,
                      "dense_bytes": r.dense_bytes, "conv_bytes": r.conv_bytes} for r in rows]}


def scaling_text(rows: Sequence[ScalingRow]) -> str:
    """The `vaekit arch --scaling` table: Ex.1 Q1's dense layer against Q2's convolution, in
    parameters and float32 bytes, for each side, with the ratio dense/conv."""
    c = INPUT_HWC[2]
    table: list[tuple[str, ...]] = [("side", "dense params", "dense f32", "conv params",
                                     "conv f32", "dense/conv")]
    table += [(f"{r.side}", f"{r.dense_params:,}", format_bytes(r.dense_bytes, 1),
               f"{r.conv_params:,}", format_bytes(r.conv_bytes, 1),
               f"{r.dense_params // r.conv_params:,}x") for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    return "\n".join([
        f"Ex.1 Q1 vs Q2 for square RGB images: a dense layer HxWx{c} -> HxWx{MAPS} (no bias) vs a "
        f"{KERNEL}x{KERNEL} conv with {MAPS} maps (with bias)",
        *("  ".join(v.rjust(w) for v, w in zip(t, widths, strict=True)) for t in table),
        f"The dense layer grows as side^4 ((side*side*{c}) * (side*side*{MAPS})): memory, compute "
        "and data needed explode; the conv's weights are shared across positions.",
    ])


def sheet_outputs(exercise: bool, table: Sequence[ScalingRow] | None, as_json: bool) -> list[str]:
    """What `vaekit arch --sheet` (`exercise`) and `--scaling` (`table`) print, in that order:
    the prose, or with `as_json` the JSON objects."""
    outputs = []
    if exercise:
        outputs.append(dump_json(exercise1_json()) if as_json else exercise1_text())
    if table is not None:
        outputs.append(dump_json(scaling_json(table)) if as_json else scaling_text(table))
    return outputs
