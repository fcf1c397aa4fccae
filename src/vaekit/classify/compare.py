"""`vaekit classify --compare`: Ex.1 Q1 answered by measurement. The sheet asks how many parameters
a dense layer from a 10x10x3 image to 10x10x20 has (600,000: `vaekit arch --sheet`) and what goes
wrong when the image is large; here the `dense` and the `cnn` preset (`classify.models`) are
trained on the same images resized to each side (28x28 upsampled to 56x56 and 112x112 by default,
`data.resize` nearest or bilinear), the same epochs each, and measured:

    params, MACs     of the network per image (`vaekit.arch` rows = the torch modules' tensors):
                     the dense's first Linear has side^2 * C * DENSE_HIDDEN weights; the cnn's
                     convolutions share their weights across positions and its AdaptiveAvgPool2d
                     makes its head the same at any side, so only its MACs grow (as side^2)
    memory           `fit.run_bytes`' estimate, and the peak resident memory MEASURED in a child
                     process of its own (`compare_network`); `fit.check_fits` refuses a network whose
                     estimate is over what the machine has, in one sentence, and it is not trained
    s/epoch          training seconds per epoch (metrics.jsonl's epoch_seconds, validation apart)
    accuracy         of the best model (model.safetensors) in eval mode, on a seeded sample of
                     EVAL_IMAGES training images it was trained on and of EVAL_IMAGES test
                     images: the gap train - test is the overfitting

Each network trains through `fit_classifier` into OUT/<model>-<side>/, a real run directory
(`vaekit classify eval OUT/cnn-28` works on it), on a seeded subset of the training split
(TRAIN_IMAGES) with VAL_IMAGES validation images. OUT must be new or empty: nothing is overwritten.
OUT/compare.json holds the rows (written after each network), OUT/compare.png their figure
(`vaekit.classify.figure.compare_figure`).

The steps, a module each: `compare_plan` (the sides, OUT, the data subset, each network checked
before anything trains), `compare_network` (one network trained and measured, in a child process
of its own: its docstring says how the memory is measured) and `compare_table` (the JSON rows, the
table and its notes).

`compare(..., isolate=False)` trains in this process instead (tests: no interpreter start per
network); its memory columns are then empty, since one process's peak is not per network.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaekit import runs
from vaekit.classify import config as ccfg
from vaekit.classify.compare_network import Log, run_child, train_network
from vaekit.classify.compare_plan import (
    EPOCHS,
    FIGURE_NAME,
    JSON_NAME,
    MODELS,
    SIDES,
    TRAIN_IMAGES,  # noqa: F401 (compare.TRAIN_IMAGES: the default of --train-images and the sheet's)
    check_out,
    check_sides,
    check_train_images,
    plan,
    subset,
)
from vaekit.classify.compare_table import make_row, notes_text, table_text
from vaekit.classify.config import ClassifierConfig
from vaekit.data.load import load_configured
from vaekit.device import choose_threads
from vaekit.errors import ConfigError

DEFAULT_OUT = "runs/compare"


def _prefixed(log: Log, name: str) -> Log:
    return lambda line: log(f"[{name}] {line}")


def compare(config: ClassifierConfig, out: str | Path, sides: Sequence[int] = SIDES, epochs: int = EPOCHS,
            train_images: int | None = None, isolate: bool = True, show_bar: bool | None = None,
            log: Log = print) -> list[dict[str, Any]]:
    """Train the dense and the cnn preset at each side into `out` and return their rows (see the
    module's docstring); everything a user can get wrong (sides, OUT, config, data, layers) is one
    sentence before anything trains. `isolate` trains each network in a child process, which
    measures its memory; False trains them here (no memory columns)."""
    sides = check_sides(sides)
    out = Path(out)
    check_out(out)
    if config.model.layers:
        raise ConfigError("--compare trains the dense and the cnn preset; model.layers (--layers) is "
                          "for a single run.")
    ccfg.validate(config)
    full = load_configured(config.data)
    train_images = check_train_images(train_images, full)  # None: TRAIN_IMAGES, or all there are
    ds = subset(full, train_images, config.train.seed)
    threads = choose_threads(config.train.threads)  # once, so that every network gets the same
    networks = plan(config, ds, sides, epochs, threads)
    if all(n.refused for n in networks):
        raise ConfigError(str(networks[0].refused))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the directory ({err.strerror or err}).") from None
    log(f"Ex.1 Q1 by measurement: {' and '.join(MODELS)} on {ds.name} resized ({config.data.resize}) to "
        f"{', '.join(f'{s}x{s}' for s in sides)}; {len(ds.train):,} training images, {len(ds.val):,} "
        f"validation, {epochs} epoch{'s' if epochs > 1 else ''} each, {threads} thread"
        f"{'s' if threads > 1 else ''}; {'each in a child process' if isolate else 'in this process'}")
    rows: list[dict[str, Any]] = []
    for net in networks:
        result = None
        if net.refused is None:
            request = {"config": net.config.to_dict(), "run_dir": str(out / net.name),
                       "train_images": train_images, "show_bar": show_bar}
            prefixed = _prefixed(log, net.name)
            result = run_child(request, prefixed) if isolate else train_network(request, prefixed, False)
        else:
            log(f"[{net.name}] refused: {net.refused}")
        rows.append(make_row(net, result, out, isolate))
        runs.write_json_atomic(out / JSON_NAME, rows)  # after each network: a kill keeps the rows done
    from vaekit.classify.figure import compare_figure  # matplotlib only once there is a figure to draw

    compare_figure(rows, out / FIGURE_NAME)
    return rows


def check_flags(args: argparse.Namespace, config: ClassifierConfig, start: ClassifierConfig) -> None:
    """--sides and --train-images bound --compare; without it they would change nothing: refused.
    Under --compare, a --config file's train.epochs (one other than `start`'s) stands for --epochs."""
    if args.compare and getattr(args, "epochs", None) is None and config.train.epochs != start.train.epochs:
        args.epochs = config.train.epochs
    single = " and ".join(single_run_flags(args))  # --compare refuses them: the advice leaves them out
    for flag in ("--sides", "--train-images"):
        if not args.compare and getattr(args, flag[2:].replace("-", "_")) is not None:
            raise ConfigError(f"{flag} is used only with --compare, which is not given here; leave it out "
                              "(a single run trains on every training image, at --side if given), or add "
                              f"--compare{f' and leave out {single}' if single else ''}.")


SINGLE_RUN_FLAGS = ("--resume", "--side", "--preset", "--layers")  # and --nproc of more than one


def single_run_flags(args: argparse.Namespace) -> list[str]:
    """The flags of a single run given in `args`, which --compare refuses."""
    given = [flag for flag in SINGLE_RUN_FLAGS if getattr(args, flag.lstrip("-"), None) not in (None, False)]
    return given + (["--nproc"] if getattr(args, "nproc", 1) > 1 else [])


def check_single_run_flags(args: argparse.Namespace) -> None:
    """--resume, --side, --preset, --layers and --nproc are a single run's: with --compare, one
    sentence, before a run directory is looked at or a process started."""
    if not getattr(args, "compare", False):
        return
    if getattr(args, "nproc", 1) > 1:  # each rank would run the whole comparison, its children stopped
        raise ConfigError(f"--nproc {args.nproc} is for a single run; --compare trains each network in a "
                          "process of its own, one after the other, so leave --nproc out.")
    given = single_run_flags(args)
    if given:
        raise ConfigError(f"{given[0]} is for a single run; --compare trains the dense and the cnn "
                          "preset at each of --sides.")


def epochs_of(args: argparse.Namespace) -> int:
    """The epochs each network of `--compare` trains: --epochs (or a --config file's, `check_flags`),
    else EPOCHS."""
    return int(args.epochs) if getattr(args, "epochs", None) is not None else EPOCHS


def main(config: ClassifierConfig, args: argparse.Namespace, out: Path, isolate: bool = True) -> int:
    """`vaekit classify --compare`: --sides, --epochs, --train-images bound it; --json prints the
    rows as one JSON list. `isolate=False` (tests only) trains in this process."""
    check_single_run_flags(args)
    quiet = bool(getattr(args, "json", False))
    rows = compare(config, out, args.sides if args.sides is not None else SIDES,
                   epochs_of(args),
                   args.train_images, isolate,
                   show_bar=False if getattr(args, "no_progress", False) else None,
                   log=(lambda line: None) if quiet else print)
    if quiet:
        print(json.dumps(rows))
        return 0
    print(table_text(rows))
    for note in notes_text(rows):
        print(note)
    trained = [r["run_dir"] for r in rows if r["run_dir"]]
    print(f"wrote {out / JSON_NAME}, {out / FIGURE_NAME}"
          + (f"; each run is a run directory: `vaekit classify eval {trained[-1]}`" if trained else ""))
    return 0
