"""`vaekit check`: the claims of the sheet's Exercise 2 as numbers, each PASS or FAIL."""

from __future__ import annotations

import argparse
import json
import time

from vaekit.checks import parse_ids, run_checks, training_overrides
from vaekit.checks.claim import ClaimResult
from vaekit.checks.summary import claim_line, summary_json, summary_text
from vaekit.checks.training import MIN_STEPS
from vaekit.commands.flags import int_flag, text_flag
from vaekit.config import SEED_MAX
from vaekit.report.paths import check_figures_dir

MAX_STEPS = 100_000  # 200 times the default: minutes of training per estimator, not forever

EPILOG = """claims (in order):
  elbo_bound        Ex.2 Q1  log p(x) >= ELBO, gap = KL(q || p(z|x)), exact on a linear-Gaussian VAE
  iwae_tightens     Ex.2 Q1  the IWAE bound rises with K towards log p(x)
  kl_nonnegative    Ex.2 Q2  KL >= 0, = 0 iff p = q, not symmetric (Gaussian and categorical pairs)
  kl_closed_form    Ex.2 Q3  the closed-form Gaussian KL = torch.distributions = Monte Carlo
  reparam_unbiased  Ex.2 Q5  the pathwise gradient's mean equals the exact gradient
  score_unbiased    Ex.2 Q5  the score-function gradient's mean equals the exact gradient
  variance          Q5, Q6   variance of each estimator against D and the number of samples
  training          Ex.2 Q5  a VAE trained with each estimator, same seed and steps

exit status: 0 if every claim passed, 1 if one failed, 2 for bad arguments.
example: vaekit check --only variance,training --figures figs/"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="show each claim of the sheet's Exercise 2 holding, with the numbers",
        description="Run numerical checks of the sheet's Exercise 2 (ELBO bound, KL, gradient\n"
        "estimators) and print one line per claim: PASS or FAIL, the claim, and the numbers that\n"
        "test it; then the variance table. Checks run on one CPU thread, so a seed gives the same\n"
        "numbers on every run. The full run takes about 30 s (most of it the training claim).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", metavar="ID[,ID]",
                   help="run only these claims, comma-separated (default: all; ids listed below)")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes (fewer samples; 100 training steps on 'digits'): a few seconds")
    p.add_argument("--seed", type=int_flag("--seed", 0, SEED_MAX), default=0,
                   help=f"random seed in [0, {SEED_MAX}]; same seed, same numbers (default: 0)")
    p.add_argument("--json", action="store_true",
                   help='print {"claims": [{"id", "question", "claim", "passed", "numbers", ...}]}')
    p.add_argument("--figures", type=text_flag("--figures"), metavar="DIR",
                   help="write variance.png and training.png into DIR (for the claims that ran): a new "
                   "directory, or one where those files are missing or vaekit's own")
    p.add_argument("--steps", type=int_flag("--steps", None, MAX_STEPS), metavar="N",
                   help=f"training steps per estimator for the 'training' claim, {MIN_STEPS} to "
                   f"{MAX_STEPS:,} (fewer compare single gradients' directions: Adam's first moment and the "
                   f"score-function baseline average over ~{MIN_STEPS} steps) (default: 500; --quick: 100)")
    p.add_argument("--data", type=text_flag("--data"), metavar="NAME",
                   help="dataset for the 'training' claim (default: fashion-mnist if found on this "
                   "machine, else digits; never downloads)")
    p.add_argument("--data-dir", type=text_flag("--data-dir"),
                   help="directory holding the dataset's files (default: lookup)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ids = parse_ids(args.only)
    overrides = training_overrides(ids, args.steps, args.data, args.data_dir, args.quick)
    if args.figures:  # before the claims run: a refused folder costs nothing
        check_figures_dir(args.figures, ids)
    start = time.perf_counter()

    def show(result: ClaimResult) -> None:
        if not args.json:
            print(claim_line(result), flush=True)

    results = run_checks(ids, seed=args.seed, quick=args.quick, overrides=overrides, on_result=show)
    figures: list[str] = []
    if args.figures:
        from vaekit.report.figures import write_check_figures  # matplotlib: only for --figures

        figures = [str(p) for p in write_check_figures(results, args.figures)]
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps(summary_json(results, args.seed, args.quick, figures, seconds), indent=2))
    else:
        print(summary_text(results, ids, figures, seconds))
    return 0 if all(r.passed for r in results) else 1
