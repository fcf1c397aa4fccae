"""`vaekit arch`: shapes, parameters, MACs, receptive fields and memory of a stack of layers.

Answers Exercise 1 of the TD-2 sheet for any stack (`--sheet` prints the sheet's own three answers,
`--scaling` the dense-vs-conv table behind Q1's "what problem with a large input").

Sizes, numbers, layer texts and the layer count are bounded in `vaekit.arch.spec` (2**31 - 1 for a
size, 1,000 characters a layer, 1,000 layers), so every input is answered at once. `--plot` is
checked before anything is drawn or printed (`vaekit.report.paths.figure_path`) and written whole
or not at all (`vaekit.report.figures.scaling_plot`); an error prints nothing but its sentence.
"""

from __future__ import annotations

import argparse

from vaekit.arch import sheet
from vaekit.arch.spec import LANGUAGE_HELP, parse_stack
from vaekit.arch.stack import analyze, parse_input_shape
from vaekit.arch.table import check_explain, dump_json, stack_json, stack_table
from vaekit.errors import SpecError
from vaekit.report.paths import figure_path

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

""" + LANGUAGE_HELP


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
    p.add_argument("--plot", metavar="FILE",
                   help="with --scaling: also draw the table to FILE (log scale), a name ending "
                   "in .png, .svg or .pdf (the extension picks the format) in an existing, "
                   "writable directory: a new file, or one vaekit wrote")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_explain(args.explain, sheet=args.sheet, scaling=args.scaling, json=args.json)
    if args.plot is not None and not args.scaling:
        raise SpecError("--plot draws the --scaling table, which takes no --input and no LAYER: "
                        "`vaekit arch --scaling --plot FILE`.")
    if args.sheet or args.scaling:
        if args.layers or args.input is not None:
            raise SpecError("--sheet and --scaling take no --input and no LAYER.")
        plot = None if args.plot is None else figure_path(args.plot, example="scaling")
        table = sheet.scaling_table() if args.scaling else None
        # printed once the plot is written: a failure prints nothing but its error
        outputs = sheet.sheet_outputs(args.sheet, table, args.json)
        if table is not None and plot is not None:
            from vaekit.report.figures import scaling_plot  # matplotlib: only for --plot

            scaling_plot(table, plot, args.plot)
            if not args.json:
                outputs.append(f"plot written to {args.plot}")
        print("\n".join(outputs))
        return 0
    if not args.layers or args.input is None:  # '' is an --input given, refused as such
        raise SpecError("give --input C,H,W (or N) and at least one LAYER, or --sheet or "
                        "--scaling; see vaekit arch --help.")
    shape = parse_input_shape(args.input)
    rows = analyze(parse_stack(args.layers), shape)
    print(dump_json(stack_json(shape, rows)) if args.json else stack_table(shape, rows, args.explain))
    return 0


