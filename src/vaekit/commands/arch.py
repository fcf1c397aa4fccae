"""`vaekit arch`: shapes, parameters, MACs, receptive fields and memory of a stack of layers.

Answers Exercise 1 of the TD-2 sheet for any stack (`--sheet` prints the sheet's own three answers,
`--scaling` the dense-vs-conv table behind Q1's "what problem with a large input").
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from vaekit import arith
from vaekit.errors import ConfigError, SpecError
from vaekit.explain import explain_row
from vaekit.spec import SIGNATURES, parse_input_shape, parse_stack
from vaekit.stack import LayerRow, analyze, totals

MAC_NOTE = ("MACs: 1 multiply-add = 1 MAC, per sample; bias adds, activations, pooling and "
            "normalization count 0 (as torch.utils.flop_counter; ConvTranspose2d on its input "
            "size). Memory: float32 output of each layer, per sample.")

EXAMPLES = """\
examples:
  vaekit arch --input 3,10,10 "Conv2d(20, kernel_size=3)"
  vaekit arch --input 3x10x10 "Conv2d(20, kernel_size=3, stride=2)" --explain
  vaekit arch --input 1,28,28 "Conv2d(32, 4, stride=2, padding=1)" "ReLU()" \\
      "Conv2d(64, 4, stride=2, padding=1)" "ReLU()" "Flatten()" "Linear(20)" --json
  vaekit arch --input 20 "Linear(3136)" "ReLU()"
  vaekit arch --input 64,7,7 "ConvTranspose2d(32, 4, stride=2, padding=1)"
  vaekit arch --sheet                     the three answers of Exercise 1
  vaekit arch --scaling --plot scaling.png

A LAYER is its torch.nn constructor call without the input size (in_channels, in_features,
num_features are inferred from the previous layer); quote it for the shell. Literals only.
Layers: """ + ", ".join(SIGNATURES) + "."


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "arch",
        help="output shape, params, MACs, receptive field and memory of a stack of layers",
        description="Layer arithmetic, exact and checked against torch: for each layer the "
        "output shape (C x H x W), trainable parameters, MACs, receptive field and jump (in "
        "input pixels) and float32 output memory, then totals.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("layers", nargs="*", metavar="LAYER",
                   help='a layer such as "Conv2d(20, kernel_size=3, stride=2)"')
    p.add_argument("--input", metavar="SHAPE",
                   help="input shape per sample: C,H,W or CxHxW for an image, N for a vector")
    p.add_argument("--explain", action="store_true",
                   help="print under each layer its formulas with the numbers put in")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--sheet", action="store_true",
                   help="print the three answers of the sheet's Exercise 1 with their formulas")
    p.add_argument("--scaling", action="store_true",
                   help="dense vs conv parameters and float32 memory for square RGB images of "
                   f"side {', '.join(map(str, arith.SCALING_SIDES))}")
    p.add_argument("--plot", metavar="FILE.png",
                   help="with --scaling: also draw the table to this PNG (log scale)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.plot and not args.scaling:
        raise SpecError("--plot draws the --scaling table; add --scaling.")
    if args.sheet or args.scaling:
        if args.layers or args.input:
            raise SpecError("--sheet and --scaling take no --input and no LAYER.")
        if args.sheet:
            print_sheet(args.json)
        if args.scaling:
            print_scaling(args.json, args.plot)
        return 0
    if not args.layers or not args.input:
        raise SpecError("give --input C,H,W (or N) and at least one LAYER, or --sheet or "
                        "--scaling; see vaekit arch --help.")
    shape = parse_input_shape(args.input)
    rows = analyze(parse_stack(args.layers), shape)
    if args.json:
        sums = totals(rows)
        print(dump_json({"input": list(shape), "layers": [r.to_json() for r in rows],
                         "total_params": sums["total_params"], "total_macs": sums["total_macs"]}))
    else:
        print_table(shape, rows, args.explain)
    return 0


# ----------------------------------------------------------------------------- formatting


def dump_json(obj: object) -> str:
    """json.dumps with indent 2, but lists of numbers kept on one line: [20, 8, 8]."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s+([-\w.,\s]*?)\s+\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def human_bytes(n: int) -> str:
    """1,280 -> '1.2 KiB' (binary units)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def _dims(values: Sequence[int | Fraction] | None) -> str:
    if values is None:
        return "-"
    return "x".join(str(v) if not isinstance(v, Fraction) or v.denominator != 1 else str(int(v))
                    for v in values)


def print_table(shape: tuple[int, ...], rows: Sequence[LayerRow], explain: bool) -> None:
    print(f"input {_dims(shape)} ({'C x H x W' if len(shape) == 3 else 'N'})")
    head = ("#", "layer", "output", "params", "MACs", "field", "jump", "memory")
    cells = [(str(r.index), r.layer, _dims(r.output_shape), f"{r.params:,}", f"{r.macs:,}",
              _dims(r.receptive_field), _dims(r.jump), human_bytes(r.output_bytes))
             for r in rows]
    sums = totals(rows)
    total = ("", "total", "", f"{sums['total_params']:,}", f"{sums['total_macs']:,}", "", "",
             human_bytes(sums["total_output_bytes"]))
    widths = [max(len(c[i]) for c in [head, total, *cells]) for i in range(len(head))]
    right = {0, 3, 4, 7}

    def line(c: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(c, widths, strict=True))).rstrip()

    print(line(head))
    for i, (row, c) in enumerate(zip(rows, cells, strict=True)):
        print(line(c))
        if explain:
            for text in explain_row(row, rows[i - 1] if i else None):
                print(" " * (widths[0] + 4) + text)
    print(line(total))
    print(f"params: {sums['total_weight_params']:,} weights + {sums['total_bias_params']:,} "
          f"biases = {sums['total_params']:,} ({human_bytes(4 * sums['total_params'])} in "
          "float32)")
    print(textwrap.fill(MAC_NOTE, 100))
    if len(shape) == 3:
        print(textwrap.fill("field, jump: receptive field and effective stride in input pixels "
                            "(H x W), the largest over the output units, padding counted.", 100))


def print_sheet(as_json: bool) -> None:
    """Ex.1 Q1-Q3 in the sheet's notation (H x W x C), every number from `arith`."""
    a = arith.sheet_exercise1()
    h, w, c = arith.SHEET_INPUT_HWC
    k, maps = arith.SHEET_KERNEL, arith.SHEET_MAPS
    if as_json:
        print(dump_json({
            "notation": "H x W x C", "input": [h, w, c],
            "q1": {"in_features": a.q1_in_features, "out_features": a.q1_out_features,
                   "params": a.q1_params},
            "q2": {"weights": a.q2_weights, "biases": a.q2_biases, "params": a.q2_params},
            "q3": {"no_padding": list(a.q3_no_padding), "stride2": list(a.q3_stride2)},
        }))
        return
    big = arith.scaling_table([224])[0]
    print(f"TD-2 Exercise 1: input x in R^{h}x{w}x{c} (H x W x C)\n")
    print(f"Q1  dense layer, no bias: {h}x{w}x{c} -> {h}x{w}x{maps}, flattened "
          f"{a.q1_in_features:,} -> {a.q1_out_features:,}")
    print(f"    params = ({h}*{w}*{c}) * ({h}*{w}*{maps}) = {a.q1_in_features:,} * "
          f"{a.q1_out_features:,} = {a.q1_params:,}")
    print(f"    a large input: the count grows as (H*W)^2; at 224x224x3 it is "
          f"{big.dense_params:,} ({human_bytes(big.dense_bytes)} in float32) against "
          f"{big.conv_params:,} for the conv (vaekit arch --scaling)")
    print(f"Q2  conv {k}x{k}, {c} -> {maps} feature maps (with bias)")
    print(f"    params = k_h*k_w*C_in*C_out + C_out = {k}*{k}*{c}*{maps} + {maps} = "
          f"{a.q2_weights} weights + {a.q2_biases} biases = {a.q2_params}")
    print("Q3  H_out = floor((H_in + 2*padding - kernel_size)/stride + 1)")
    for stride, out in ((1, a.q3_no_padding), (2, a.q3_stride2)):
        print(f"    no padding, stride {stride}: floor(({h} + 2*0 - {k})/{stride} + 1) = {out[0]}"
              f" -> {_dims(out)}")


def print_scaling(as_json: bool, plot: str | None) -> None:
    rows = arith.scaling_table()
    if as_json:
        print(dump_json({"rows": [
            {"side": r.side, "dense_params": r.dense_params, "conv_params": r.conv_params,
             "dense_bytes": r.dense_bytes, "conv_bytes": r.conv_bytes} for r in rows]}))
    else:
        print("Ex.1 Q1 vs Q2 for square RGB images: a dense layer HxWx3 -> HxWx20 (no bias) vs a "
              "3x3 conv with 20 maps (with bias)")
        table: list[tuple[str, ...]] = [("side", "dense params", "dense f32", "conv params",
                                         "conv f32", "dense/conv")]
        table += [(f"{r.side}", f"{r.dense_params:,}", human_bytes(r.dense_bytes),
                   f"{r.conv_params:,}", human_bytes(r.conv_bytes),
                   f"{r.dense_params // r.conv_params:,}x") for r in rows]
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
        for t in table:
            print("  ".join(v.rjust(w) for v, w in zip(t, widths, strict=True)))
        print("The dense layer grows as side^4 ((side*side*3) * (side*side*20)): memory, compute "
              "and data needed explode; the conv's weights are shared across positions.")
    if plot:
        draw_scaling(rows, plot)
        if not as_json:
            print(f"plot written to {plot}")


def _params_to_bytes(params: Any) -> Any:
    return params * arith.FLOAT32_BYTES


def _bytes_to_params(size: Any) -> Any:
    return size / arith.FLOAT32_BYTES


def draw_scaling(rows: Sequence[arith.ScalingRow], path: str) -> None:
    """Parameters (left axis) and float32 bytes (right axis) vs image side, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [r.side for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sides, [r.dense_params for r in rows], "o-", label="dense HxWx3 -> HxWx20")
    ax.plot(sides, [r.conv_params for r in rows], "s-", label="conv 3x3, 20 maps")
    ax.set(xscale="log", yscale="log", xlabel="image side (pixels)", ylabel="trainable parameters",
           title="TD-2 Ex.1 Q1: dense vs conv as the image grows")
    ax.set_xticks(sides, [str(s) for s in sides])
    right = ax.secondary_yaxis("right", functions=(_params_to_bytes, _bytes_to_params))
    right.set_ylabel("float32 bytes")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as err:
        raise ConfigError(f"--plot cannot write {path!r}: {err.strerror}.") from None
    finally:
        plt.close(fig)

