"""`vaekit sample RUN_DIR -n 64 --out FILE.png`: images decoded from z ~ N(0, I)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vaekit.errors import ConfigError
from vaekit.runs import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from the prior of a run's model into a PNG",
        description="Decode n latents z ~ N(0, I) with a run's best model and save the means of "
        "p(x|z) as a grid of images.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `vaekit train`")
    p.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--out", help="PNG file to write (default: RUN_DIR/figures/samples-seedS.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of z (default: 0)")
    p.add_argument("--ncols", type=int, help="images per row (default: about sqrt(n))")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaekit.report import figures  # matplotlib: imported by the command that draws
    from vaekit.report.visualize import sample_prior  # matplotlib, through report.figures

    if args.n < 1:
        raise ConfigError(f"-n must be at least 1 sample, got {args.n}.")
    out = Path(args.out) if args.out else Path(args.run_dir) / "figures" / f"samples-seed{args.seed}.png"
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: expected a file name ending in .png.")
    model = load_run(args.run_dir).model
    ncols = args.ncols or math.ceil(math.sqrt(args.n))
    images = sample_prior(model, args.n, args.seed)
    figures.image_grid(images, out, ncols=ncols,
                       title=f"{args.n} means of p(x|z), z ~ N(0, I), seed {args.seed}")
    print(out)
    return 0
