"""The plain-text table of a stack, as `vaekit arch` prints it: one line per `LayerRow`, totals,
then the conventions (what a MAC is, what memory counts, what field and jump mean); and its `--json`
object (`stack_json`, written by `dump_json`).

Also the shape format the sheet's answers share with it: `dims` (a shape as "20x8x8", jumps as
fractions when they are not whole). Bytes are `vaekit.device.format_bytes`, one decimal in tables.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from vaekit.arch import arith, field
from vaekit.arch.explain import explain_row
from vaekit.arch.stack import LayerRow, totals
from vaekit.device import format_bytes
from vaekit.errors import SpecError

MAC_NOTE = ("MACs: 1 multiply-add = 1 MAC, per sample; bias adds, activations, pooling and "
            "normalization count 0 (as torch.utils.flop_counter; ConvTranspose2d on its input "
            "size). Memory: float32 output of each layer, per sample.")
FIELD_NOTE = ("field, jump: receptive field and effective stride in input pixels (H x W), the "
              "largest over the output units, padding counted; of a Linear, the pixels its "
              "inputs depend on, padding not counted.")
FIELD_NOT_COMPUTED = ("field '-' on an image: not computed, finding it exactly would take more "
                      f"than {field.MAX_FIELD_STEPS:,} steps of the composed index maps (a field "
                      "that varies with the position, or a Linear after strides that skip "
                      "pixels, on a large axis; the other numbers are exact).")
WIDTH = 100  # characters per line of the notes


def dims(values: Sequence[int | Fraction] | None) -> str:
    """(20, 8, 8) -> '20x8x8'; a Fraction jump stays '1/2'; None (no such number) -> '-'."""
    if values is None:
        return "-"
    return "x".join(str(v) if not isinstance(v, Fraction) or v.denominator != 1 else str(int(v))
                    for v in values)


def stack_table(shape: tuple[int, ...], rows: Sequence[LayerRow], explain: bool = False) -> str:
    """The table of `vaekit arch --input SHAPE LAYER...`: a line per layer (with its formulas
    under it when `explain`), the totals, the parameter split and the notes."""
    lines = [f"input {dims(shape)} ({'C x H x W' if len(shape) == 3 else 'N'})"]
    head = ("#", "layer", "output", "params", "MACs", "field", "jump", "memory")
    cells = [(str(r.index), r.layer, dims(r.output_shape), f"{r.params:,}", f"{r.macs:,}",
              dims(r.receptive_field), dims(r.jump), format_bytes(r.output_bytes, 1))
             for r in rows]
    sums = totals(rows)
    total = ("", "total", "", f"{sums['total_params']:,}", f"{sums['total_macs']:,}", "", "",
             format_bytes(sums["total_output_bytes"], 1))
    widths = [max(len(c[i]) for c in [head, total, *cells]) for i in range(len(head))]
    right = {0, 3, 4, 7}  # numbers are right-aligned

    def line(c: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(c, widths, strict=True))).rstrip()

    lines.append(line(head))
    for i, (row, c) in enumerate(zip(rows, cells, strict=True)):
        lines.append(line(c))
        if explain:
            lines += [" " * (widths[0] + 4) + text
                      for text in explain_row(row, rows[i - 1] if i else None,
                                                  shape[1:] or None)]
    lines.append(line(total))
    lines.append(f"params: {sums['total_weight_params']:,} weights + "
                 f"{sums['total_bias_params']:,} biases = {sums['total_params']:,} "
                 f"({format_bytes(arith.FLOAT32_BYTES * sums['total_params'], 1)} in float32)")
    lines.append(textwrap.fill(MAC_NOTE, WIDTH))
    if len(shape) == 3:
        lines.append(textwrap.fill(FIELD_NOTE, WIDTH))
    if len(shape) == 3 and any(r.receptive_field is None for r in rows):
        lines.append(textwrap.fill(FIELD_NOT_COMPUTED, WIDTH))
    return "\n".join(lines)


def stack_json(shape: tuple[int, ...], rows: Sequence[LayerRow]) -> dict[str, Any]:
    """The object of `vaekit arch --input SHAPE LAYER... --json`: the input, a row per layer, totals."""
    sums = totals(rows)
    return {"input": list(shape), "layers": [r.to_json() for r in rows],
            "total_params": sums["total_params"], "total_macs": sums["total_macs"]}


def dump_json(obj: object) -> str:
    """json.dumps with indent 2, but lists of numbers kept on one line: [20, 8, 8]."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s+([-\w.,\s]*?)\s+\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def check_explain(explain: bool, **outputs: bool) -> None:
    """`--explain` writes formulas under the rows of a LAYER table: with an output that has no such
    rows (`outputs`, flag name -> given: --json, --sheet, --scaling) it would do nothing, so it is
    refused (SpecError) naming the first of them."""
    given = [f"--{name}" for name, on in outputs.items() if on]
    if explain and given:
        raise SpecError(f"--explain writes formulas under the rows of the LAYER table, and {given[0]} "
                        f"prints no such table; give one of --explain and {given[0]}.")
