"""`vaekit classify`: train a CNN or a dense classifier (Ex.1 trained, not only counted), compare
them as the images grow (`--compare`, Ex.1 Q1 by measurement), or evaluate a run (`eval`).

Precedence: built-in defaults < `--config FILE.toml` < flags; with `--resume` the base is the
run's own config.json. The network's `vaekit arch` table is printed before training starts, and a
layer list whose shapes do not fit is one sentence before anything is trained or written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vaekit import config as cfg
from vaekit.arch.table import stack_table
from vaekit.classify import compare, compare_plan
from vaekit.classify.config import ClassifierConfig, used_with
from vaekit.classify.evaluate import evaluate_classifier
from vaekit.classify.fit import fit_classifier
from vaekit.commands import classify_eval
from vaekit.commands.flags import CONFIG_PATH, OUT_PATH, int_flag, parsed_flag
from vaekit.commands.tables import add_table, check_device, flag_table, given
from vaekit.device import peak_rss_mb
from vaekit.runs import anchor_data, read_metrics, resumed_config, trained_epochs

# flag -> (section, key, kind, help), a row per classifier setting with a flag (default None: not given)
FLAGS = flag_table(ClassifierConfig(), compare_epochs=compare.EPOCHS)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify", help="train a CNN or dense classifier; --compare them as images grow; eval a run",
        description="Train a classifier (Ex.1 of the sheet, trained) into runs/NAME/: config.json, "
        "model.safetensors (best validation accuracy), checkpoint, metrics.jsonl. `vaekit classify "
        "eval RUN` evaluates it; `--compare` trains the dense and the cnn preset at several image "
        "sizes (Ex.1 Q1: why dense layers fail on large images).")
    p.add_argument("--config", type=CONFIG_PATH, help="TOML file of [data] [model] [optim] [train] tables")
    p.add_argument("--out", type=OUT_PATH, help="run directory (default: runs/DATA-PRESET; --compare: "
                   f"{compare.DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary (or the --compare rows) as JSON")
    p.add_argument("--compare", action="store_true", help="train the dense and the cnn preset at each "
                   "--sides and print a table and a figure of parameters, memory, time and accuracy")
    p.add_argument("--sides", type=parsed_flag("--sides", compare_plan.parse_sides), default=None,
                   help=f"--compare: image sides (default: {','.join(map(str, compare.SIDES))})")
    p.add_argument("--train-images", type=int_flag("--train-images", 1), default=None,
                   help=f"--compare: training images per network (default: {compare.TRAIN_IMAGES:,})")
    add_table(p, FLAGS)
    p.set_defaults(func=run)
    classify_eval.register(p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p)), p)


def build_config(args: argparse.Namespace) -> tuple[ClassifierConfig, Path]:
    """defaults (or the resumed run's config.json) < --config file < flags; and the run directory."""
    base = ClassifierConfig()
    compare.check_single_run_flags(args)
    if args.resume:
        base = resumed_config(args.out, "classify")
    start, keys = base, set[str]()
    if args.config:
        base = cfg.load_toml(args.config, base, keys)
    config = cfg.apply(base, flags := given(args, FLAGS), cfg.COMMAND_LINE)
    anchor_data(config, start if args.resume else None)  # the run finds its data from anywhere later
    cfg.check_used(config, start, used_with(args.compare), given=cfg.given_keys(flags), file=args.config,
                   file_keys=keys)
    compare.check_flags(args, config, start)
    cfg.check_epochs(config, start, compare.epochs_of(args) if args.compare else None,
                     trained=trained_epochs(args.out if args.resume else None))
    check_device(config, args, keys)
    name = "custom" if config.model.layers else config.model.preset
    return config, Path(args.out) if args.out else Path("runs") / f"{Path(config.data.name).stem}-{name}"


def run(args: argparse.Namespace) -> int:
    config, out = build_config(args)
    if args.compare:
        return compare.main(config, args, out if args.out else Path(compare.DEFAULT_OUT))
    show = (lambda rows: None) if args.json else (
        lambda rows: print(stack_table(tuple(config.model.image_shape or ()), rows)))
    summary = fit_classifier(config, out, resume=args.resume, show_bar=False if args.no_progress else None,
                             log=(lambda s: None) if args.json else print, on_rows=show)
    if summary["rank"]:  # under torchrun, rank 0 evaluates and reports
        return 0
    result = evaluate_classifier(out, data_dir=config.data.data_dir)  # the best model on the test set
    seconds = [r["epoch_seconds"] for r in read_metrics(out)]
    summary.update(test_accuracy=result["accuracy"], test_accuracy_ci95=result["accuracy_ci95"],
                   params=result["params"], macs=result["macs"],
                   epoch_seconds=sum(seconds) / len(seconds), peak_memory_mb=peak_rss_mb())
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"best validation accuracy {100 * summary['best_val_accuracy']:.2f}% at epoch "
          f"{summary['best_epoch']} ({cfg.n_epochs(summary['epochs'])}); model: {out / 'model.safetensors'}")
    print(f"{classify_eval.headline(result)} | {result['params']:,} parameters, {result['macs']:,} MACs "
          f"per image | {summary['epoch_seconds']:.1f} s per epoch | peak memory "
          f"{summary['peak_memory_mb']:,.0f} MiB (this process) | `vaekit classify eval {out}` for the "
          "per-class table, `vaekit report` for the page")
    return 0
