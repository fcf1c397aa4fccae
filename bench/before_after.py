"""This tree against an earlier one, interleaved in one run: the figures of bench/train_speed.py and
bench/banded_speed.py, each measured by the tree's own code and its own bench file.

A refactor must not make training slower. Given `--before DIR`, the root of an earlier checkout
(`git worktree add /tmp/before COMMIT`), each round runs, for the earlier tree and then this one, in
a fresh process with that tree's `src/` and `bench/` first on the path:

  epoch      `train_speed.vaekit_epoch` (pytorch/examples' VAE, the hand-derived engine) on the
             first `--images` Fashion-MNIST training images, then the same with the autograd engine;
  banded     `banded_speed.py --windows 168 --groups 32` (the best config's autoregressive term):
             its training step and its evaluation pass, in milliseconds.

Printed: the best of `--rounds` rounds for each tree, the ratio after / before (above 1: slower) and
the load average; other processes only ever slow a round down, so the best round is the figure.

Run: .venv/bin/python bench/before_after.py --before /tmp/before [--rounds 3] [--images 20000]
     [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EPOCH = """
import sys, torch
sys.path[:0] = [{src!r}, {bench!r}]
from vaekit.device import set_threads
set_threads({threads})
import train_speed
from vaekit.data.load import load_dataset
ds = load_dataset("fashion-mnist")
images = torch.cat([ds.train.images, ds.val.images])[:{images}]
train_speed.vaekit_epoch(images[:2000])
train_speed.vaekit_epoch(images[:2000], "autograd")
print(train_speed.vaekit_epoch(images), train_speed.vaekit_epoch(images, "autograd"))
"""
ROW = re.compile(r"^\s*168\s+32\s+\S+\s+(?P<step>[\d.]+)\s+\S+\s+(?P<eval>[\d.]+)", re.M)


def epoch_seconds(tree: Path, images: int, threads: int) -> tuple[float, float]:
    code = EPOCH.format(src=str(tree / "src"), bench=str(tree / "bench"), threads=threads, images=images)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tree)
    hand, autograd = out.stdout.split()[-2:]
    return float(hand), float(autograd)


def banded_ms(tree: Path, threads: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, str(tree / "bench" / "banded_speed.py"), "--windows", "168",
                          "--groups", "32", "--rounds", "3", "--steps", "4", "--threads", str(threads)],
                         capture_output=True, text=True, check=True, cwd=tree, env=env)
    match = ROW.search(out.stdout)
    if match is None:
        raise SystemExit(f"banded_speed.py of {tree} printed no 168/32 row:\n{out.stdout}{out.stderr}")
    return float(match["step"]), float(match["eval"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="root of the earlier checkout")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    p.add_argument("--images", type=int, default=20_000, help="images of the timed epoch (default: 20000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if not (args.before / "src" / "vaekit").is_dir():
        p.error(f"--before {args.before} is not the root of a vaekit checkout (no src/vaekit)")
    names = ("epoch s", "epoch s, autograd", "banded step ms", "banded eval ms")
    trees = {"before": args.before.resolve(), "after": ROOT}
    best: dict[str, list[float]] = {t: [float("inf")] * len(names) for t in trees}
    for r in range(args.rounds):
        for label, tree in trees.items():
            values = (*epoch_seconds(tree, args.images, args.threads), *banded_ms(tree, args.threads))
            best[label] = [min(a, b) for a, b in zip(best[label], values, strict=True)]
            print(f"round {r + 1} {label:<6} " + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, values,
                                                                                         strict=True))
                  + f" (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = [{"figure": n, "before": round(best["before"][i], 4),
                                   "after": round(best["after"][i], 4),
                                   "ratio": round(best["after"][i] / best["before"][i], 3)}
                                  for i, n in enumerate(names)]
    if args.json:
        print(json.dumps({"before": str(args.before), "threads": args.threads, "rows": rows}, indent=2))
        return 0
    print(f"best of {args.rounds} interleaved rounds, {args.threads} thread(s), {args.images:,} images")
    for row in rows:
        print(f"  {row['figure']:<20} before {row['before']:9.3f}  after {row['after']:9.3f}  "
              f"after/before {row['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
