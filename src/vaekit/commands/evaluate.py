"""`vaekit eval RUN_DIR`: test -ELBO, the importance-weighted -log p(x) and latent statistics of a
run's best model, written to RUN_DIR/eval.json and printed as a table (or JSON with --json)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vaekit.commands.flags import add_device_flag, int_flag
from vaekit.config import SEED_MAX
from vaekit.distributed import world
from vaekit.evaluate.run import EVAL_JSON, evaluate_run


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
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `vaekit train`")
    p.add_argument("--k", type=int_flag("--k"), default=5000,
                   help="importance samples per image (default: 5000, the published standard)")
    p.add_argument("--limit", type=int_flag("--limit"),
                   help="evaluate only the first N test images (default: all)")
    p.add_argument("--batch-size", type=int_flag("--batch-size"), default=100,
                   help="test images per batch (default: 100)")
    p.add_argument("--seed", type=int_flag("--seed", 0, SEED_MAX), default=0,
                   help="seed of the importance samples (default: 0)")
    p.add_argument("--data-dir", help="directory holding the dataset files (default: the run's, then "
                   "the lookup order of `vaekit data`)")
    p.add_argument("--dataset", help="evaluate on this dataset name or .npy/.npz path instead of the "
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


def format_table(result: dict[str, Any]) -> str:
    """The eval.json object as a table for people."""
    n, k = result["images"], result["k"]
    stderr = result.get("test_nll_stderr")
    lines = [
        f"test images        {n:,} of {result.get('dataset', '?')} (binarization: "
        f"{result.get('binarization', '?')})",
        f"-log p(x)          {result['test_nll']:.2f} nats" + (f" +- {stderr:.2f}" if stderr else "")
        + f"   (IWAE, k = {k:,})",
        f"bits per dim       {result['bits_per_dim']:.4f}" + _of(result),
        f"-ELBO              {result['test_neg_elbo']:.2f} nats   (recon {result['test_recon']:.2f} + "
        f"KL {result['test_kl']:.2f}" + _kl_estimate(result) + ")",
        f"active units       {result['active_units']} of {result['latent_dim']}",
        f"reconstruction MSE {result['mse']:.5f} per pixel",
    ]
    if result.get("probe_accuracy") is not None:
        lines.append(f"linear probe       {result['probe_accuracy']:.4f} test accuracy "
                     f"(fitted on {result['probe_train_images']:,} training images)")
    kl = result.get("kl_per_dim") or []
    if kl:
        lines.append("KL per dim         " + " ".join(f"{v:.2f}" for v in kl))
    threads, device = result.get("threads", "?"), result.get("device", "cpu")
    where = f"{threads} thread{'' if threads == 1 else 's'}"
    lines.append(f"time               {result['seconds']:.1f} s on "
                 + (where if device == "cpu" else f"{device} ({where} of the CPU)"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, k=args.k, limit=args.limit, batch_size=args.batch_size,
                          seed=args.seed, data_dir=args.data_dir, dataset=args.dataset,
                          progress=False if args.no_progress else None, probe=not args.no_probe,
                          threads=args.threads, force=args.force, device=args.device)
    w = world()
    if w is not None and not w.writer:  # under torchrun, rank 0 reports
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
        print(f"wrote {args.run_dir.rstrip('/')}/{EVAL_JSON}")
    return 0


def _of(result: dict[str, Any]) -> str:
    """'   (of 8-bit images: ...)': what the likelihood is of, when eval.json says it."""
    of = result.get("likelihood_of")
    return f"   (of {of})" if of else ""


def _kl_estimate(result: dict[str, Any]) -> str:
    """', KL by Monte Carlo, k = 5000' where the KL has no closed form (a VampPrior, two layers)."""
    how = result.get("kl_estimate", "closed form")
    return "" if how == "closed form" else f", KL by {how}"
