"""`vaekit train`: train the sheet's VAE (MLP or convolutional) into runs/NAME/, or resume it.
Precedence: defaults < `--config FILE.toml` < flags; with `--resume` the base is the run's own
config.json, of which only `config.RESUMABLE_CHANGES` (epochs, patience, device, ...) may change."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vaekit import config as cfg
from vaekit.commands.flags import CONFIG_PATH, OUT_PATH
from vaekit.commands.tables import add_table, check_device, flag_table, given
from vaekit.config import TrainConfig, load_toml
from vaekit.data.registry import check_val_size
from vaekit.device import process_seconds
from vaekit.errors import ConfigError
from vaekit.runs import anchor_data, read_config, resumed_config, trained_epochs
from vaekit.train.budget import BudgetTooShort
from vaekit.train.fit import fit, say_notes

# flag -> (section, key, kind, help), one row for each setting of `vaekit.config` with a flag; default None:
# "not given". A value argparse cannot convert is one sentence naming the flag (`vaekit.cli.int_flag` and
# co.); a converted one is checked by `config.apply` (finite, in range), naming the "command line".
FLAGS = flag_table(TrainConfig())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VAE (MLP or conv) with checkpoints and resume",
        description="Train the sheet's VAE (Ex.2 Q6) on a dataset, writing runs/NAME/: config.json, "
        "model.safetensors (best validation -ELBO), checkpoint.safetensors + checkpoint.json, "
        "metrics.jsonl. Precedence: defaults < --config FILE.toml < flags.",
    )
    p.add_argument("--config", type=CONFIG_PATH,
                   help="TOML file of [data] [model] [optim] [train] tables (default: none)")
    p.add_argument("--out", type=OUT_PATH, help="run directory (default: runs/DATA-MODEL)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint up to --epochs (default: off)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: a bar on a terminal)")
    add_table(p, FLAGS)
    p.set_defaults(func=run)


def default_out(config: TrainConfig) -> Path:
    return Path("runs") / f"{Path(config.data.name).stem}-{config.model.kind}"


def build_config(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """defaults (or the resumed run's config.json) < --config file < flags; and the run directory."""
    base = TrainConfig()
    if args.resume:
        base = resumed_config(args.out)
    start, keys = base, set[str]()
    if args.config:
        base = load_toml(args.config, base, keys)
    flags = given(args, FLAGS)  # the flags given, by section
    config = cfg.apply(base, flags, cfg.COMMAND_LINE)
    anchor_data(config, start if args.resume else None)  # the run finds its data from anywhere later
    typed = "data.val_size" in cfg.given_keys(flags)  # else a --config file's, or config.json's own
    if typed or "data.val_size" in keys or not args.resume:  # config.json's: the resume's check names it
        check_val_size(config.data.name, config.data.val_size,  # before a resume compares it with the run's
                       "data.val_size (--val-size)" if typed else f"{args.config}: data.val_size")
    cfg.check_used(config, start, given=cfg.given_keys(flags), file=args.config, file_keys=keys)
    cfg.check_warmup(config, start)
    say_notes(cfg.check_planned_epochs(config, start, base, cfg.given_keys(flags), keys, args.config))
    cfg.check_epochs(config, start, trained=trained_epochs(args.out if args.resume else None))
    check_device(config, args, keys)
    out = Path(args.out) if args.out else default_out(config)
    return config, out


def budget_name(args: argparse.Namespace, out: Path) -> str:
    """The time budget as a refusal names it: the flag, else the TOML file's key, else the key of the
    resumed run's config.json (the file read again: this is a refusal, not a run)."""
    if args.time_budget is not None:
        return "--time-budget"
    start = read_config(out) if args.resume else TrainConfig()
    if args.config and "train.time_budget" in cfg.differences(start, load_toml(args.config, start)):
        return f"{args.config}, train.time_budget:"
    return f"{out / 'config.json'}, train.time_budget:"


def run(args: argparse.Namespace) -> int:
    config, out = build_config(args)
    started = time.perf_counter() - process_seconds()  # a time budget counts the whole command
    try:
        summary = fit(config, out, resume=args.resume, show_bar=False if args.no_progress else None,
                      started=started)
    except BudgetTooShort as err:  # named by where the budget came from
        raise ConfigError(f"{budget_name(args, out)} {err.detail}") from None
    if not summary["rank"]:  # under torchrun, rank 0 reports
        print(f"best validation -ELBO {summary['best_val_neg_elbo']:.2f} nats at epoch "
              f"{summary['best_epoch']} ({cfg.n_epochs(summary['epochs'])}); model: "
              f"{out / 'model.safetensors'}")
    return 0
