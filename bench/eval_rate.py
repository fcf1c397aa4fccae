"""The multiply-adds per second the IWAE evaluation achieves on this machine, as `vaekit eval --force`
counts them (`vaekit.evaluate.run.decoder_macs`: the decoder's parameters once per image and
importance sample), against `CPU_MACS_PER_SECOND`, the rate its cost estimates assume.

A digits run is trained first (scikit-learn's bundled 8x8 digits, no download: `--hidden`, `--latent`,
two epochs), or `--run RUN_DIR` is taken as it is; then `evaluate_model` runs k importance samples
on its first `--images` test images, `--rounds` times. The best round is the rate (the one least
slowed by other processes on a shared machine); the load average before and after says how busy
the machine was.

Run: .venv/bin/python bench/eval_rate.py [--k 2000] [--images 180] [--rounds 3] [--threads 0]
     [--hidden 400 --latent 20 | --run RUN_DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vaekit.config import TrainConfig
from vaekit.data.binarize import eval_images
from vaekit.data.load import load_configured
from vaekit.device import set_threads
from vaekit.evaluate import run as ev
from vaekit.runs import load_run


def train_digits(out: Path, hidden: int, latent: int) -> Path:
    from vaekit.train.fit import fit

    config = TrainConfig()
    config.data.name = "digits"
    config.model.hidden = [hidden]
    config.model.latent = latent
    config.train.epochs = 2
    config.train.batch_size = 64
    fit(config, out, show_bar=False, log=lambda _m: None)
    return out


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=2000, help="importance samples (default: 2000)")
    parser.add_argument("--images", type=int, default=180, help="test images (default: 180, all of digits')")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the best one counts (default: 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, 0: the idle cores")
    parser.add_argument("--hidden", type=int, default=400, help="hidden units of the trained MLP")
    parser.add_argument("--latent", type=int, default=20, help="latent size of the trained MLP")
    parser.add_argument("--run", help="a trained VAE run to time instead of training one")
    args = parser.parse_args(argv)
    for flag in ("k", "images", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else train_digits(Path(tmp) / "run", args.hidden, args.latent)
        run = load_run(run_dir)
        ds = load_configured(run.config.data)
        x = eval_images(ds.test.images[: args.images], run.config.resolved_binarize())
    threads = set_threads(args.threads)
    macs = ev.decoder_macs(run.model, x.shape[0], args.k)
    print(f"model: {run.config.model.hidden} hidden, latent {run.config.model.latent}; {x.shape[0]} images, "
          f"k = {args.k:,}, {threads} threads; {macs:.2e} multiply-adds counted a round")
    print(f"load average before: {load_average()}")
    seconds = []
    for i in range(args.rounds):
        start = time.perf_counter()
        ev.evaluate_model(run.model, x, args.k, progress=False)
        seconds.append(time.perf_counter() - start)
        print(f"round {i + 1}: {seconds[-1]:.4g} s, {macs / seconds[-1]:.2e} multiply-adds per second")
    print(f"load average after:  {load_average()}")
    best = macs / min(seconds)
    print(f"best: {best:.2e} multiply-adds per second; the estimates assume {ev.CPU_MACS_PER_SECOND:.0e} "
          f"({ev.CPU_MACS_PER_SECOND / best:.1f}x the best rate)")


if __name__ == "__main__":
    main()
