"""Overfitting screen: a config trained on a subset of the training images, validation -ELBO at the end.

The best config overfits in an hour on the 55,000 training images (training -ELBO 224.4
against validation 226.4 at the end); a regularizer can only be judged where that happens, and an
hour per candidate is too dear. On 11,000 images (a fixed draw of the training split) five minutes
on 2 threads reach the same gap (about 1.9 nats at ~185 epochs), so candidates are compared there:

    .venv/bin/python bench/overfit_screen.py --budget 5m --images 11000 \\
        --set optim.name=adamw --set optim.weight_decay=0.3

Prints one JSON line: the overrides, epochs, the last training and validation -ELBO (nats per
image; the training figure is the running mean over the epoch, in training mode, so with dropout it
is of the thinned network), the best validation -ELBO and its epoch, and seconds per epoch. The
validation split is the full 5,000 images. A screen, not the protocol: bench/quality.py gives test
NLL at k = 5,000.

`--nll K` also scores the run's model at the end with the evaluator of `vaekit eval`
(`vaekit.evaluate.run.evaluate_model`, seed 0) on the first `--nll-images` validation images
binarized once (`eval_images`): "val_nll" (-L_K, nats per image) and "val_nll_neg_elbo". It is what
compares objectives whose -ELBO says little: an IWAE-K model is trained for L_K, not for the ELBO.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vaekit import config as cfg  # noqa: E402
from vaekit.config import TrainConfig, load_toml, parse_duration, validate  # noqa: E402
from vaekit.data.binarize import eval_images  # noqa: E402
from vaekit.data.load import Split, load_dataset  # noqa: E402
from vaekit.device import flush_denormals  # noqa: E402
from vaekit.errors import ConfigError  # noqa: E402
from vaekit.evaluate.run import evaluate_model  # noqa: E402
from vaekit.runs import load_run, read_metrics  # noqa: E402
from vaekit.train.fit import fit  # noqa: E402

SUBSET_SEED = 1  # the draw of the training images screened on


def apply(config: TrainConfig, setting: str) -> TrainConfig:
    """A copy of `config` with SECTION.KEY=VALUE applied by `vaekit.config.apply` (type and range
    checked); VALUE is read as a TOML value (0.3, 64, true, nan), else as a string (adamw)."""
    key, sep, text = setting.partition("=")
    section, _, name = key.partition(".")
    if not sep or not name:
        raise ConfigError(f"--set {setting!r}: expected SECTION.KEY=VALUE.")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return cfg.apply(config, {section: {name: value}}, f"--set {setting!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "fashion-mnist-best.toml")
    parser.add_argument("--budget", type=parse_duration, default=parse_duration("5m"),
                        help="training wall time (default: 5m)")
    parser.add_argument("--images", type=int, default=11000, help="training images used (default: 11000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. model.autoregressive_dropout=0.25")
    parser.add_argument("--nll", type=int, default=0, metavar="K",
                        help="also the validation NLL at the end, -L_K with K importance samples "
                        "(default: 0, off)")
    parser.add_argument("--nll-images", type=int, default=2000, metavar="N",
                        help="validation images the NLL is taken on, the first N (default: 2000)")
    args = parser.parse_args(argv)
    if args.nll < 0:
        parser.error(f"--nll must be 0 (off) or a number of importance samples >= 1, got {args.nll}")
    if args.nll_images < 1:
        parser.error(f"--nll-images must be at least 1, got {args.nll_images}")
    try:
        config = load_toml(args.config)
        for setting in args.set:
            config = apply(config, setting)
        config.train.threads, config.train.time_budget = args.threads, args.budget
        config.data.val_size = None  # the screen's split: the default 5,000 validation images
        validate(config)
    except ConfigError as e:
        parser.error(str(e))
    ds = load_dataset(config.data.name)
    if not 1 <= args.images <= len(ds.train):
        parser.error(f"--images must be in 1..{len(ds.train)}, got {args.images}")
    idx = torch.randperm(len(ds.train), generator=torch.Generator().manual_seed(SUBSET_SEED))[:args.images]
    labels = ds.train.labels[idx] if ds.train.labels is not None else None
    ds = dataclasses.replace(ds, train=Split(ds.train.images[idx], labels))
    out = Path(tempfile.mkdtemp(prefix="vaekit-screen-")) / "run"
    fit(config, out, show_bar=False, log=lambda _line: None, dataset=ds)
    rows = [r for r in read_metrics(out) if "val_neg_elbo" in r]
    best, last = min(rows, key=lambda r: r["val_neg_elbo"]), rows[-1]
    result = {"set": args.set, "images": args.images, "epochs": last["epoch"],
              "last_train_neg_elbo": round(last["train_neg_elbo"], 2),
              "last_val_neg_elbo": round(last["val_neg_elbo"], 2),
              "best_val_neg_elbo": round(best["val_neg_elbo"], 2), "best_epoch": best["epoch"],
              "seconds_per_epoch": round(sum(r["epoch_seconds"] for r in rows) / len(rows), 3),
              "run": str(out)}
    if args.nll:
        x = eval_images(ds.val.images[:args.nll_images], config.resolved_binarize())
        summary = evaluate_model(load_run(out, "vae").model, x, args.nll, seed=0, progress=False).summary(
            x[0].numel())
        result.update(val_nll=round(float(summary["test_nll"]), 2), nll_k=args.nll, nll_images=x.shape[0],
                      val_nll_neg_elbo=round(float(summary["test_neg_elbo"]), 2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    with flush_denormals():  # every thread, the peers' too: before torch's first parallel op
        main()
