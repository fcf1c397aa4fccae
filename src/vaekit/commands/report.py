"""`vaekit report RUN_DIR`: figures and one self-contained report.html for a run."""

from __future__ import annotations

import argparse
import sys

from vaekit.commands.flags import add_device_flag, int_flag, run_dir_argument, text_flag
from vaekit.config import MAX_SIZE, SEED_MAX
from vaekit.evaluate.run import MAX_K
from vaekit.report.kinds import REPORT_K


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN_DIR/report.html and RUN_DIR/figures/*.png",
        description="Write the figures of a run and one self-contained HTML report (images embedded, "
        "opens offline): config, learning curves, the eval table, every figure, the parameter table "
        "and the time spent. Uses RUN_DIR/eval.json if it belongs to the run's model; if there is "
        "none, evaluates with --k samples first (unless --no-eval). A classifier run (`vaekit "
        "classify`) gets the test accuracy with its interval, the per-class table, the confusion "
        "matrix, the most confidently wrong images, the learning curves and the layer table.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=run_dir_argument,
                   help="a run directory of `vaekit train` or "
                   "`vaekit classify`")
    p.add_argument("--k", type=int_flag("--k", 1, MAX_K),
                   help=f"VAE runs: importance samples if eval.json is missing, 1 to {MAX_K:,} (default: "
                   f"{REPORT_K}; for more, `vaekit eval RUN --k N --force` first: its eval.json is read)")
    p.add_argument("--limit", type=int_flag("--limit", 1, MAX_SIZE),
                   help="if eval.json is missing: evaluate only the first N test images (default: all)")
    p.add_argument("--no-eval", action="store_true",
                   help="fail instead of evaluating when eval.json is missing (default: evaluate)")
    p.add_argument("--seed", type=int_flag("--seed", 0, SEED_MAX),
                   help="VAE runs: seed of samples and pairs (default: 0)")
    p.add_argument("--data-dir", type=text_flag("--data-dir"),
                   help="directory holding the dataset files (default: lookup order)")
    p.add_argument("--dataset", type=text_flag("--dataset"),
                   help="VAE runs: test images from this dataset instead of the run's, evaluated on it if "
                   "there is no eval.json, else eval.json's own (default: eval.json's, else the run's)")
    add_device_flag(p, "a VAE run's model is evaluated and draws the figures")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaekit.report.html import write_report  # matplotlib, through report.figures

    path = write_report(args.run_dir, k=args.k, evaluate_missing=not args.no_eval, limit=args.limit,
                        data_dir=args.data_dir, dataset=args.dataset, seed=args.seed, device=args.device,
                        log=lambda m: print(m, file=sys.stderr))
    print(path)
    return 0
