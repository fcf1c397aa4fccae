"""Milliseconds per training step: the hand-derived engine against autograd, per objective and K.

IWAE-K and the K-sample ELBO go through `vaekit.vae.backprop` (the hand-derived engine)
under `train.engine = "auto"` only where this measures it faster than autograd
(`vaekit.vae.backprop.faster`). For one config
(default: configs/fashion-mnist-best.toml, its precision) and each objective:K given, one training
step on a batch of binarized Fashion-MNIST-shaped images (`train.batch_size` of the config, random
pixels at density 0.3), the engine's `loss_and_grads` and nothing else (the optimizer step is the
same for both). Rounds interleave the two engines; each prints the best of `--rounds` rounds of
`--steps` steps (a CPU shared with another process slows a step 10-40x: the best is the figure), and
the load average before and after.

    .venv/bin/python bench/engine_speed.py [--config TOML] [--cases elbo:1,iwae:2,iwae:3]
        [--threads 2] [--rounds 5] [--steps 6] [--precision float32|bf16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vaekit.config import TrainConfig, load_toml, validate  # noqa: E402
from vaekit.device import flush_denormals, set_threads  # noqa: E402
from vaekit.errors import ConfigError  # noqa: E402
from vaekit.train.engines import BackpropEngine, Engine, make_engine  # noqa: E402
from vaekit.vae import backprop  # noqa: E402
from vaekit.vae.models import build_model  # noqa: E402

OBJECTIVES = ("elbo", "iwae")


def parse_cases(text: str) -> list[tuple[str, int]]:
    """'elbo:1,iwae:2' -> [('elbo', 1), ('iwae', 2)]; ValueError (one sentence) otherwise."""
    cases = []
    for part in text.split(","):
        objective, sep, k = part.strip().partition(":")
        if objective not in OBJECTIVES or not sep or not k.isdigit() or int(k) < 1:
            raise ValueError(f"--cases: expected OBJECTIVE:K with OBJECTIVE elbo or iwae and K >= 1, "
                             f"got {part.strip()!r}")
        cases.append((objective, int(k)))
    return cases


def best_ms(step: Callable[[], object], rounds: int, steps: int) -> float:
    """The best over `rounds` of the mean milliseconds of `steps` calls (after one warm-up call)."""
    step()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps * 1e3)
    return min(times)


def engines_for(config: TrainConfig, objective: str, k: int) -> tuple[torch.nn.Module, Engine, Engine]:
    """The model (seed 0) and its two engines for objective:K, the config's precision."""
    config.train.objective, config.train.samples = objective, k
    if objective == "iwae":
        config.train.warmup, config.train.beta, config.train.free_bits = 0.0, 1.0, 0.0
    torch.manual_seed(0)
    model = build_model(config)
    if not backprop.supports(model, config.train):  # type: ignore[arg-type]
        raise ConfigError(f"{objective}:{k}: the hand-derived engine does not apply to this model "
                          f"(vaekit.vae.backprop.supports)")
    low = torch.bfloat16 if config.train.precision == "bf16" else None
    hand = BackpropEngine(model, config.train.free_bits, low, objective, k)  # type: ignore[arg-type]
    config.train.engine = "autograd"
    return model, hand, make_engine(model, config.train)


def step_ms(model: torch.nn.Module, hand: Engine, auto: Engine, x: torch.Tensor, rounds: int,
            steps: int) -> tuple[float, float]:
    """Each engine's best milliseconds per step, in two interleaved passes."""
    g = torch.Generator().manual_seed(1)
    t_hand = t_auto = float("inf")
    for _ in range(2):
        t_hand = min(t_hand, best_ms(lambda: hand.loss_and_grads(model, x, 1.0, g), rounds, steps))
        t_auto = min(t_auto, best_ms(lambda: auto.loss_and_grads(model, x, 1.0, g), rounds, steps))
    return t_hand, t_auto


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "fashion-mnist-best.toml")
    parser.add_argument("--cases", default="elbo:1,iwae:2,iwae:3",
                        help="objective:K pairs, comma-separated (default: elbo:1,iwae:2,iwae:3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precision", choices=("float32", "bf16"), default=None,
                        help="the products' precision (default: the config's)")
    args = parser.parse_args(argv)
    try:
        cases = parse_cases(args.cases)
        config = load_toml(args.config)
        if args.precision:
            config.train.precision = args.precision
        config.model.image_shape = config.model.image_shape or [1, 28, 28]
        validate(config)
    except (ConfigError, ValueError) as e:
        parser.error(str(e))
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    if args.threads < 0:
        parser.error(f"--threads must be at least 0 (0: the cores other processes leave idle), "
                     f"got {args.threads}")
    set_threads(args.threads)
    shape = tuple(config.model.image_shape)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((config.train.batch_size, *shape), generator=g) < 0.3).float()
    print(f"{args.config.name}: batch {config.train.batch_size}, {config.train.precision} products, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'objective':>10} {'K':>3} {'hand ms':>9} {'autograd ms':>12} {'autograd / hand':>16}")
    for objective, k in cases:
        try:
            model, hand, auto = engines_for(config, objective, k)
        except ConfigError as e:
            parser.error(str(e))
        t_hand, t_auto = step_ms(model, hand, auto, x, args.rounds, args.steps)
        print(f"{objective:>10} {k:>3} {t_hand:9.2f} {t_auto:12.2f} {t_auto / t_hand:15.2f}x", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    with flush_denormals():  # every thread: before torch's first parallel op
        main()
