"""`vaekit train`: train the sheet's VAE (MLP or convolutional) into runs/NAME/, or resume it.
Precedence: defaults < `--config FILE.toml` < flags; with `--resume` the base is the run's own
config.json, of which only `config.RESUMABLE_CHANGES` (epochs, patience, device, ...) may change."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vaekit import config as cfg
from vaekit.commands.flags import Kind, add_table, given
from vaekit.commands.tables import device_flags, image_flags
from vaekit.config import TrainConfig, load_toml
from vaekit.device import process_seconds
from vaekit.errors import ConfigError
from vaekit.runs import read_config
from vaekit.train.fit import fit

D = TrainConfig()  # the defaults, quoted in the help

# flag -> (section, key, kind, help); kind: str, int, float or list (of ints, '512,256'); default None:
# "not given". A value argparse cannot convert is one sentence naming the flag (`vaekit.cli.int_flag` and
# co.); a converted one is checked by `config.apply` (finite, in range), naming the "command line".
FLAGS: dict[str, tuple[str, str, Kind, str]] = {
    "--data": ("data", "name", str, "dataset name, .npy/.npz path or a folder of images "
               f"(default: {D.data.name})"),
    "--data-dir": ("data", "data_dir", str, "directory holding the dataset files (default: lookup "
                   "order of `vaekit data`)"),
    "--val-size": ("data", "val_size", int, "images of a built-in set's training file held out for "
                   "validation; the rest train (default: the set's own, 5000)"),
    "--binarize": ("data", "binarize", str, f"{'|'.join(cfg.BINARIZATIONS)}: dynamic x ~ "
                   "Bernoulli(pixel/255) per batch; dequantize x = (pixel + u)/256, bits/dim of 8-bit "
                   f"images; auto: dynamic | dequantize by likelihood (default: {D.data.binarize})"),
    **image_flags(),
    "--model": ("model", "kind", str, f"{'|'.join(cfg.MODEL_KINDS)} (default: {D.model.kind})"),
    "--layers": ("model", "stochastic_layers", int, "stochastic layers: 1 (z), or 2 (the hierarchical VAE "
                 f"z2 -> z1 -> x) (default: {D.model.stochastic_layers})"),
    "--gated": ("model", "gated", "switch", "gated layers h = (Wx + b) * sigmoid(Vx + c) (default: off)"),
    "--prior": ("model", "prior", str, f"p(z): {'|'.join(cfg.PRIORS)} (vamp: the VampPrior, a mixture of the "
                f"posteriors of learned pseudo-inputs) (default: {D.model.prior})"),
    "--pseudo-inputs": ("model", "pseudo_inputs", int, f"VampPrior size (default: {D.model.pseudo_inputs})"),
    "--autoregressive": ("model", "autoregressive", int, "autoregressive decoder's units (MADE given z; "
                         f"0: factorized) (default: {D.model.autoregressive})"),
    "--autoregressive-dropout": ("model", "autoregressive_dropout", float, "fraction of the AR units "
                                 f"dropped in training (default: {D.model.autoregressive_dropout})"),
    "--autoregressive-window": ("model", "autoregressive_window", int, "pixels before each pixel that "
                                "its AR term sees, in raster order (0: all) "
                                f"(default: {D.model.autoregressive_window})"),
    "--hidden": ("model", "hidden", list, "dense hidden sizes, comma list, e.g. 512,256 "
                 f"(default: {','.join(map(str, D.model.hidden))})"),
    "--latent": ("model", "latent", int, f"latent dimension of z (default: {D.model.latent})"),
    "--likelihood": ("model", "likelihood", str, f"{'|'.join(cfg.LIKELIHOODS)} "
                     f"(default: {D.model.likelihood})"),
    "--variance": ("model", "variance", str, f"gaussian decoder log-variance: {'|'.join(cfg.VARIANCES)} "
                   f"(default: {D.model.variance})"),
    "--activation": ("model", "activation", str, f"{'|'.join(cfg.ACTIVATIONS)} "
                     f"(default: {D.model.activation})"),
    "--channels": ("model", "channels", list, "conv channels per strided conv, comma list "
                   f"(default: {','.join(map(str, D.model.channels))})"),
    "--objective": ("train", "objective", str, f"{'|'.join(cfg.OBJECTIVES)} (default: {D.train.objective})"),
    "--samples": ("train", "samples", int, f"K samples per image (default: {D.train.samples})"),
    "--beta": ("train", "beta", float, f"KL weight (default: {D.train.beta})"),
    "--warmup": ("train", "warmup", float, f"epochs of linear KL warm-up from 0 to beta "
                 f"(default: {D.train.warmup})"),
    "--free-bits": ("train", "free_bits", float, f"KL floor per latent dim, nats (default: "
                    f"{D.train.free_bits})"),
    "--estimator": ("train", "estimator", str, f"gradient estimator: {'|'.join(cfg.ESTIMATORS)} "
                    f"(default: {D.train.estimator})"),
    "--optimizer": ("optim", "name", str, f"{'|'.join(cfg.OPTIMIZERS)} (default: {D.optim.name})"),
    "--lr": ("optim", "lr", float, f"learning rate (default: {D.optim.lr})"),
    "--weight-decay": ("optim", "weight_decay", float, f"weight decay (default: {D.optim.weight_decay})"),
    "--momentum": ("optim", "momentum", float, f"sgd/rmsprop momentum (default: {D.optim.momentum})"),
    "--schedule": ("optim", "schedule", str, f"lr schedule {'|'.join(cfg.SCHEDULES)} "
                   f"(default: {D.optim.schedule})"),
    "--clip": ("optim", "clip", float, f"max gradient norm, 0 = off (default: {D.optim.clip})"),
    "--batch-size": ("train", "batch_size", int, f"images per step (default: {D.train.batch_size})"),
    "--time-budget": ("train", "time_budget", "duration", "wall time of training, e.g. 60m, 1h30m, 90s: the "
                      "run plans its epochs, cosine decay and warm-up to end inside it (replaces --epochs) "
                      "(default: none)"),
    "--epochs": ("train", "epochs", int, f"epochs in all; with --resume, train up to this many "
                 f"(default: {D.train.epochs})"),
    "--patience": ("train", "patience", int, "early stopping after this many epochs without a better "
                   f"validation -ELBO, 0 = off (default: {D.train.patience})"),
    "--seed": ("train", "seed", int, f"seed of weights, batches, binarization and eps (default: "
               f"{D.train.seed})"),
    "--tensorboard": ("train", "tensorboard", "switch", "also write scalars and image grids per epoch to "
                      "RUN/tensorboard (needs pip install 'vaekit[tensorboard]') (default: off)"),
    **device_flags(),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VAE (MLP or conv) with checkpoints and resume",
        description="Train the sheet's VAE (Ex.2 Q6) on a dataset, writing runs/NAME/: config.json, "
        "model.safetensors (best validation -ELBO), checkpoint.safetensors + checkpoint.json, "
        "metrics.jsonl. Precedence: defaults < --config FILE.toml < flags.",
    )
    p.add_argument("--config", help="TOML file of [data] [model] [optim] [train] tables (default: none)")
    p.add_argument("--out", help="run directory (default: runs/DATA-MODEL)")
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
        if args.out is None:
            raise ConfigError("--resume needs --out, the run directory to continue.")
        base = read_config(Path(args.out))
    if args.config:
        base = load_toml(args.config, base)
    config = cfg.apply(base, given(args, FLAGS), "command line")  # the flags given, by section
    out = Path(args.out) if args.out else default_out(config)
    return config, out


def run(args: argparse.Namespace) -> int:
    config, out = build_config(args)
    started = time.perf_counter() - process_seconds()  # a time budget counts the whole command
    summary = fit(config, out, resume=args.resume, show_bar=False if args.no_progress else None,
                  started=started)
    if not summary["rank"]:  # under torchrun, rank 0 reports
        print(f"best validation -ELBO {summary['best_val_neg_elbo']:.2f} nats at epoch "
              f"{summary['best_epoch']} ({summary['epochs']} epochs); model: {out / 'model.safetensors'}")
    return 0
