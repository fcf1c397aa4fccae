"""Milliseconds per training step and per evaluation pass: the masks' bands against dense products.

The autoregressive term's masked products run on `vaekit.vae.banded.Band`s, row groups
of the mask with only the columns they reach. One group is the dense product with the full masked
matrix (the code before bands). For one config (default configs/fashion-mnist-best.toml, its
precision and engine as `train.engine = "auto"` picks it) and each window W given, this times

- one training step, the engine's `loss_and_grads` on a batch of `train.batch_size` binarized
  Fashion-MNIST-shaped images (random pixels at density 0.3), the optimizer step left out (the same
  for both), and
- one evaluation pass: the term's `teacher_forced` logits for `--eval-k` samples of z for each of
  `--eval-images` images, float32, no gradient (what `vaekit eval`'s k = 5,000 repeats),

for each number of groups given, rounds interleaved, the best of `--rounds` rounds of `--steps`
calls (a CPU shared with another process slows a step 10-40x: the best is the figure), with the
load average before and after, the band's density (the fraction of the dense multiply-adds it
makes) and the ratio to one group.

    .venv/bin/python bench/banded_speed.py [--config TOML] [--windows 0,168] [--groups 1,16,32]
        [--threads 2] [--rounds 5] [--steps 4] [--eval-k 500] [--eval-images 4]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from engine_speed import best_ms  # noqa: E402
from vaekit.config import TrainConfig, load_toml, validate  # noqa: E402
from vaekit.device import flush_denormals, set_threads  # noqa: E402
from vaekit.errors import ConfigError  # noqa: E402
from vaekit.train.engines import make_engine  # noqa: E402
from vaekit.vae.models import build_model  # noqa: E402

MAX_EVAL_ROWS = 20_000  # rows of one evaluation pass: z, logits and the (rows, units) activations


def parse_ints(text: str, flag: str, low: int) -> list[int]:
    """'0,168' -> [0, 168]; ValueError (one sentence) unless every item is an integer >= low."""
    items = [part.strip() for part in text.split(",")]
    if not all(item.isdigit() and int(item) >= low for item in items):
        raise ValueError(f"{flag}: expected comma-separated integers >= {low}, got {text!r}")
    return [int(item) for item in items]


def measure(config: TrainConfig, window: int, groups: list[int], rounds: int, steps: int,
            eval_k: int, eval_images: int) -> list[tuple[int, float, float, float]]:
    """(groups, density, step ms, eval ms) for each number of groups, at this window."""
    config.model.autoregressive_window = window
    validate(config)
    torch.manual_seed(0)
    model = build_model(config)
    ar = model.p_ar
    if ar is None:
        raise ConfigError("the config's model has no autoregressive term (model.autoregressive = 0): "
                          "nothing to band")
    torch.nn.init.normal_(ar.out.weight, std=0.01)  # a trained term's products, not zeros
    engine = make_engine(model, config.train)
    g = torch.Generator().manual_seed(0)
    shape = tuple(model.image_shape)
    x = (torch.rand((config.train.batch_size, *shape), generator=g) < 0.3).float()
    xe = (torch.rand((eval_images, *shape), generator=g) < 0.3).float()
    z = torch.randn(eval_k, eval_images, ar.z_in.in_features, generator=g)
    base = torch.zeros(eval_k, *xe.shape)

    def step() -> object:
        return engine.loss_and_grads(model, x, 1.0, g)

    @torch.no_grad()
    def evaluate() -> object:
        return ar.teacher_forced(base, xe, z)

    best = {n: [float("inf"), float("inf")] for n in groups}
    for _ in range(2):  # two interleaved passes
        for n in groups:
            ar.regroup(n)
            model.train()
            best[n][0] = min(best[n][0], best_ms(step, rounds, steps))
            model.eval()
            best[n][1] = min(best[n][1], best_ms(evaluate, rounds, steps))
    rows = []
    for n in groups:
        ar.regroup(n)
        rows.append((n, (ar.band1.density + ar.band2.density) / 2, best[n][0], best[n][1]))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "fashion-mnist-best.toml")
    parser.add_argument("--windows", default="0,168", help="autoregressive windows (0: the full one)")
    parser.add_argument("--groups", default="1,16,32", help="row groups of the bands (1: dense)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--eval-k", type=int, default=500, help="samples of z per image (default 500)")
    parser.add_argument("--eval-images", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        windows = parse_ints(args.windows, "--windows", 0)
        groups = parse_ints(args.groups, "--groups", 1)
        config = load_toml(args.config)
        config.model.image_shape = config.model.image_shape or [1, 28, 28]
        validate(config)
    except (ConfigError, ValueError) as e:
        parser.error(str(e))
    if min(args.rounds, args.steps, args.eval_k, args.eval_images) < 1:
        parser.error("--rounds, --steps, --eval-k and --eval-images must be at least 1")
    if args.eval_k * args.eval_images > MAX_EVAL_ROWS:
        parser.error(f"--eval-k x --eval-images must be at most {MAX_EVAL_ROWS:,} rows (the evaluator "
                     f"scores k samples in batches of that order), got {args.eval_k * args.eval_images:,}")
    if args.threads < 0:
        parser.error(f"--threads must be at least 0 (0: the cores other processes leave idle), "
                     f"got {args.threads}")
    set_threads(args.threads)
    print(f"{args.config.name}: batch {config.train.batch_size}, {config.train.precision} products, "
          f"engine {config.train.engine}, eval {args.eval_k} x {args.eval_images} rows float32, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'window':>6} {'groups':>6} {'density':>8} {'step ms':>8} {'x dense':>8} {'eval ms':>8} "
          f"{'x dense':>8}")
    for window in windows:
        try:
            rows = measure(config, window, groups, args.rounds, args.steps, args.eval_k, args.eval_images)
        except ConfigError as e:
            parser.error(str(e))
        dense = next((r for r in rows if r[0] == 1), None)
        for n, density, t_step, t_eval in rows:
            ratio_s = f"{dense[2] / t_step:7.2f}x" if dense else "       -"
            ratio_e = f"{dense[3] / t_eval:7.2f}x" if dense else "       -"
            print(f"{window:>6} {n:>6} {density:8.3f} {t_step:8.2f} {ratio_s} {t_eval:8.2f} {ratio_e}",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    with flush_denormals():  # every thread: before torch's first parallel op
        main()
