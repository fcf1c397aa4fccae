"""`vaekit eval RUN_DIR`: test -ELBO, the importance-weighted -log p(x) and latent statistics of a
run's best model, written to RUN_DIR/eval.json and printed as a table (or JSON with --json)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from vaekit.commands.flags import add_device_flag, int_flag, run_dir_argument, text_flag
from vaekit.config import MAX_SIZE, SEED_MAX
from vaekit.distributed import world
from vaekit.evaluate.run import EVAL_JSON, evaluate_run
from vaekit.evaluate.table import eval_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="test -ELBO and importance-weighted -log p(x) of a run (writes eval.json)",
        description="Evaluate a run's best model on its test set, binarized once with a fixed seed "
        "(continuous for a Gaussian decoder): -ELBO, its reconstruction and KL terms, and -log p(x) "
        "estimated with k importance samples (Burda et al. 2016, eq. 8) in nats per image and bits "
        "per dimension; per-dimension KL, active units, reconstruction error and a logistic-regression "
        "probe on the latent means. Writes RUN_DIR/eval.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=run_dir_argument,
                   help="a run directory of `vaekit train`")
    p.add_argument("--k", type=int_flag("--k", 1), default=5000,
                   help="importance samples per image (default: 5000, the published standard)")
    p.add_argument("--limit", type=int_flag("--limit", 1, MAX_SIZE),
                   help="evaluate only the first N test images (default: all)")
    p.add_argument("--batch-size", type=int_flag("--batch-size", 1, MAX_SIZE), default=100,
                   help="test images per batch (default: 100)")
    p.add_argument("--seed", type=int_flag("--seed", 0, SEED_MAX), default=0,
                   help="seed of the importance samples (default: 0)")
    p.add_argument("--data-dir", type=text_flag("--data-dir"),
                   help="directory holding the dataset files (default: the run's, then "
                   "the lookup order of `vaekit data`)")
    p.add_argument("--dataset", type=text_flag("--dataset"),
                   help="evaluate on this dataset name or .npy/.npz path instead of the "
                   "run's (same image shape; default: the run's dataset)")
    p.add_argument("--threads", type=int_flag("--threads", 0, 1024), default=0,
                   help="CPU threads, 0 = the cores other processes leave idle (default: 0)")
    add_device_flag(p, "the model and the images are and the evaluation computes")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the logistic-regression probe (default: run it)")
    p.add_argument("--force", action="store_true",
                   help="allow more than 100,000 importance samples (the cost is said first; default: off)")
    p.add_argument("--json", action="store_true", help="print the eval.json object instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: on a terminal)")
    p.set_defaults(func=run)


def print_eval(result: dict[str, Any], run_dir: str, as_json: bool,
               text: Callable[[dict[str, Any]], str]) -> None:
    """Print the eval.json object just written to `run_dir`: itself as JSON (--json), or `text` of
    it and where it was written. `vaekit eval` and `vaekit classify eval` both print so."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(text(result))
        print(f"wrote {run_dir.rstrip('/')}/{EVAL_JSON}")


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, k=args.k, limit=args.limit, batch_size=args.batch_size,
                          seed=args.seed, data_dir=args.data_dir, dataset=args.dataset,
                          progress=False if args.no_progress else None, probe=not args.no_probe,
                          threads=args.threads, force=args.force, device=args.device)
    w = world()
    if w is not None and not w.writer:  # under torchrun, rank 0 reports
        return 0
    print_eval(result, args.run_dir, args.json, eval_table)
    return 0
