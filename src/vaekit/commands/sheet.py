"""`vaekit sheet`: the exercise sheet TD-2 answered in one self-contained HTML page."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vaekit.commands.flags import int_flag, text_flag
from vaekit.config import SEED_MAX
from vaekit.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sheet",
        help="answer the sheet TD-2 in one page: each question, its numbers, checks and errata",
        description="Write one self-contained HTML page (figures embedded, formulas as MathML, opens "
        "offline) answering the sheet TD-2 in its order: for each question the answer computed by "
        "vaekit with its numbers, the checks that prove it (PASS/FAIL), figures, and the sheet's own "
        "solution beside it with its errata, each decided by numbers. --quick (the default) takes "
        "under 3 minutes on 2 cores; --full trains longer and evaluates with k = 5,000, and says its "
        "cost before it starts.",
    )
    p.add_argument("--out", default="sheet.html", help="the page to write, new or one vaekit wrote "
                   "(default: sheet.html)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short budget: configs/sheet.toml's 10 "
                      "epochs for Q6, k = 100, a small compare, the quick checks (the default)")
    size.add_argument("--full", action="store_true", help="100 epochs for Q6, k = 5,000, the full "
                      "compare and checks (tens of minutes)")
    p.add_argument("--vae-run", type=text_flag("--vae-run"),
                   metavar="RUN", help="answer Ex.2 Q6 with this run of `vaekit train` "
                   "(read only) instead of training the sheet's model")
    p.add_argument("--compare", type=text_flag("--compare"),
                   metavar="DIR", help="answer Ex.1 Q1 with the compare.json of an "
                   "existing `vaekit classify --compare --out DIR` instead of training one")
    p.add_argument("--json", action="store_true", help="print every answer's numbers as JSON")
    p.add_argument("--seed", type=int_flag("--seed", 0, SEED_MAX), default=0,
                   help=f"random seed in [0, {SEED_MAX}] (default: 0)")
    p.add_argument("--threads", type=int_flag("--threads", 0, 1024), default=0,
                   help="CPU threads for training (default: 0, the idle cores)")
    p.add_argument("--data-dir", type=text_flag("--data-dir"),
                   help="directory holding Fashion-MNIST (default: lookup order)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaekit.report.paths import figure_path  # checks the page's path before any work
    from vaekit.sheet import build_sheet, check_not_a_report, check_sheet_data, write_page  # torch: only here
    from vaekit.sheet import vae_run as vr  # the run's checks and costs: torch, only for this command

    out = figure_path(args.out, "--out", (".html",), "sheet")
    check_not_a_report(out, "--out")
    if args.vae_run is not None:
        vr.check_vae_run(Path(args.vae_run))
    if args.compare is not None and not Path(args.compare).is_dir():
        raise ConfigError(f"--compare {args.compare!r} is not a directory; expected the --out directory "
                          "of `vaekit classify --compare`.")
    check_sheet_data(args.data_dir, args.vae_run, args.compare)  # before the cost and any work
    if args.full:
        what = vr.full_cost(args.data_dir) if args.vae_run is None else "reading " + args.vae_run
        print(f"vaekit sheet --full: {what}, the full compare (about 8 minutes) and the full checks "
              "(about 30 s).", file=sys.stderr)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="vaekit-sheet-") as work:
        sheet = build_sheet(work, quick=not args.full, vae_run=args.vae_run, compare_dir=args.compare,
                            seed=args.seed, data_dir=args.data_dir, threads=args.threads, log=log)
        write_page(sheet, out, "--out")
    if args.json:
        print(json.dumps({**sheet.to_json(), "page": str(out)}, indent=2, default=str))
    else:
        failed = [c.name for a in sheet.answers for c in a.checks if not c.passed]
        print(f"{out}: {len(sheet.answers)} questions, {len(sheet.errata)} errata, "
              + (f"checks failed: {', '.join(failed)}" if failed else "every check PASS")
              + f", in {sheet.seconds:.0f} s")
    return 0
