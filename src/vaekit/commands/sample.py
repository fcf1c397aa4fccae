"""`vaekit sample RUN_DIR -n 64 --out FILE.png`: images decoded from z ~ N(0, I)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vaekit.commands.flags import OUT_PATH, add_device_flag, int_flag, run_dir_argument
from vaekit.config import SEED_MAX
from vaekit.errors import CheckpointError, ConfigError
from vaekit.report.outputs import quoted
from vaekit.report.paths import figure_path
from vaekit.runs import figures_dir, load_run, locked

MAX_SAMPLES = 10_000  # at most; fewer where their grid would be too large (`visualize.grid_columns`)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from the prior of a run's model into a PNG",
        description="Decode n latents z ~ N(0, I) with a run's best model and save the means of "
        "p(x|z) as a grid of images.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=run_dir_argument,
                   help="a run directory of `vaekit train`")
    p.add_argument("-n", type=int_flag("-n"), default=64, help="number of samples (default: 64)")
    p.add_argument("--out", type=OUT_PATH,
                   help="PNG file to write, new or one vaekit wrote (default: "
                   "RUN_DIR/figures/samples-seedS.png)")
    p.add_argument("--seed", type=int_flag("--seed", 0, SEED_MAX), default=0, help="seed of z (default: 0)")
    p.add_argument("--ncols", type=int_flag("--ncols"), help="images per row (default: about sqrt(n))")
    add_device_flag(p, "z is drawn and decoded (a seed draws other images on cuda than on cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaekit.report.visualize import config_image_shape  # matplotlib: imported by the command that draws

    if not 1 <= args.n <= MAX_SAMPLES:
        raise ConfigError(f"-n must be between 1 and {MAX_SAMPLES:,} samples (one grid image), got {args.n}.")
    if args.ncols is not None and not 1 <= args.ncols <= args.n:
        raise ConfigError(f"--ncols must be between 1 and -n ({args.n}), got {args.ncols}.")

    out = figure_path(args.out, "--out", (".png",), example="samples") if args.out else None
    shape = config_image_shape(args.run_dir)  # a grid too large is refused before the model is read
    if out is not None and not Path(out).resolve().is_relative_to(Path(args.run_dir).resolve()):
        return _sample(args, out, shape)  # a file outside the run: the run is only read
    with locked(args.run_dir):  # a file in the run (its figures/, say): one writer at a time
        return _sample(args, out, shape)


def _sample(args: argparse.Namespace, out: Path | None, shape: list[int] | None) -> int:
    from vaekit.report import figures  # matplotlib: imported by the command that draws
    from vaekit.report.visualize import grid_columns, sample_prior  # matplotlib too

    ncols = grid_columns(args.n, args.ncols, shape) if shape else None
    model = load_run(args.run_dir, "vae", args.device).model
    if ncols is None:
        ncols = grid_columns(args.n, args.ncols, model.image_shape)
    if out is None:  # the run's own figures/ folder, made once the run is known to be one
        out = figures_dir(args.run_dir) / f"samples-seed{args.seed}.png"
        _writable(out.parent)
    images = sample_prior(model, args.n, args.seed)
    if not bool(images.isfinite().all()):  # weights that overflow on these z: no image of NaN
        raise CheckpointError(f"{Path(args.run_dir) / 'model.safetensors'}: the model's samples are not "
                              "finite (its weights overflow in the decoder); train the run again into "
                              "another --out.")
    figures.image_grid(images, out, ncols=ncols, title=f"{args.n} means of p(x|z), z ~ N(0, I), seed "
                       f"{args.seed}", named_by=f"--out {quoted(args.out)}" if args.out else quoted(str(out)))
    print(out)
    return 0


def _writable(folder: Path) -> None:
    """The run's figures/ folder, made if missing, where this process may write (os.access: also a
    read-only mount), else a CheckpointError naming it and --out, which writes elsewhere."""
    try:
        folder.mkdir(exist_ok=True)
        why = None if os.access(folder, os.W_OK) else "not writable"
    except OSError as err:
        why = (err.strerror or str(err)).lower()
    if why is not None:
        raise CheckpointError(f"{folder}: cannot write the samples there ({why}); pass --out FILE.png to "
                              "write them elsewhere.")
