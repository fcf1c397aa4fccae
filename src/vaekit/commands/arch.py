"""`vaekit arch`: shapes, parameters, MACs, receptive fields and memory of a stack of layers.

Answers Exercise 1 of the TD-2 sheet for any stack (`--sheet` prints the sheet's own three answers,
`--scaling` the dense-vs-conv table behind Q1's "what problem with a large input").
"""

from __future__ import annotations

import argparse
import json
import re

from vaekit.arch import sheet
from vaekit.arch.spec import SIGNATURES, parse_input_shape, parse_stack
from vaekit.arch.stack import analyze, totals
from vaekit.arch.table import stack_table
from vaekit.errors import ConfigError, SpecError

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
                   f"side {', '.join(map(str, sheet.SCALING_SIDES))}")
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
            print(dump_json(sheet.exercise1_json()) if args.json else sheet.exercise1_text())
        if args.scaling:
            table = sheet.scaling_table()
            print(dump_json(sheet.scaling_json(table)) if args.json else sheet.scaling_text(table))
            if args.plot:
                from vaekit.report.figures import scaling_figure  # matplotlib: only for --plot

                try:
                    scaling_figure(table, args.plot)
                except OSError as err:
                    raise ConfigError(f"--plot cannot write {args.plot!r}: {err.strerror}.") from None
                if not args.json:
                    print(f"plot written to {args.plot}")
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
        print(stack_table(shape, rows, args.explain))
    return 0


def dump_json(obj: object) -> str:
    """json.dumps with indent 2, but lists of numbers kept on one line: [20, 8, 8]."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s+([-\w.,\s]*?)\s+\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
