"""Seconds per Fashion-MNIST epoch of the demo model (configs/fashion-mnist-mlp.toml: 784-512-256-40
MLP VAE, batch 128, the hand-derived engine) trained by 2 processes x 1 thread under torchrun
(gloo) against 1 process x 2 threads, in one run, best of --rounds (alternating); and the share of a
distributed step spent in the all-reduce of its flat gradient buffer (measured by a torchrun'd
probe all-reducing a buffer of the model's parameter count, --reduces times).

    .venv/bin/python bench/distributed_speed.py [--rounds 2] [--reduces 200] [--json PATH]

Each contender trains one epoch with `vaekit train` into a fresh directory and the figure is
metrics.jsonl's epoch_seconds (validation apart).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fashion-mnist-mlp.toml"
PROBE = """
import sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
n, reps = int(sys.argv[1]), int(sys.argv[2])
buf = torch.randn(n)
for _ in range(10):
    dist.all_reduce(buf)
dist.barrier()
t0 = time.perf_counter()
for _ in range(reps):
    dist.all_reduce(buf)
ms = (time.perf_counter() - t0) / reps * 1e3
if dist.get_rank() == 0:
    print(ms)
dist.destroy_process_group()
"""


def train_args(threads: int, out: Path) -> list[str]:
    """`vaekit train`'s arguments for one contender's epoch: no KL warm-up and no early stopping,
    which change no step's work and which the config's values (5 and 15 epochs) would make one
    epoch refuse as doing nothing."""
    return ["train", "--config", str(CONFIG), "--epochs", "1", "--threads", str(threads), "--warmup", "0",
            "--patience", "0", "--no-progress", "--out", str(out)]


def epoch_seconds(nproc: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = train_args(threads, out)
        if nproc > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={nproc}", "-m", "vaekit", *args]
        else:
            command = [sys.executable, "-m", "vaekit", *args]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(command, check=True, capture_output=True, env=env)
        return float(json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["epoch_seconds"])


def reduce_ms(numel: int, reps: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(PROBE)
    try:
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node=2", fh.name, str(numel), str(reps)],
                              check=True, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        return float(done.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(fh.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reduces", type=int, default=200)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from vaekit.config import load_toml
    from vaekit.vae.models import build_model

    config = load_toml(CONFIG)
    config.model.image_shape = [1, 28, 28]
    params = sum(p.numel() for p in build_model(config).parameters())
    steps = -(-55_000 // config.train.batch_size)
    best = {"1x2": float("inf"), "2x1": float("inf")}
    for r in range(args.rounds):
        order = [("1x2", 1, 2), ("2x1", 2, 1)][:: 1 if r % 2 == 0 else -1]
        for name, nproc, threads in order:
            best[name] = min(best[name], epoch_seconds(nproc, threads))
            print(f"round {r + 1}: {name} {best[name]:.2f} s (best so far)", flush=True)
    ms = reduce_ms(params + 4, args.reduces)  # the gradients and the 4 batch sums' worth
    step_ms = best["2x1"] / steps * 1e3
    load = os.getloadavg()
    result = {"params": params, "steps_per_epoch": steps, "epoch_seconds_1proc_2threads": best["1x2"],
              "epoch_seconds_2proc_1thread": best["2x1"], "ratio": best["1x2"] / best["2x1"],
              "all_reduce_ms": ms, "step_ms_2proc": step_ms, "all_reduce_share": ms / step_ms,
              "load_average": load, "date": time.strftime("%Y-%m-%d %H:%M")}
    print(f"demo model, {params:,} parameters, {steps} steps per epoch, load average {load[0]:.2f}")
    print(f"1 process x 2 threads   {best['1x2']:7.2f} s per epoch")
    print(f"2 processes x 1 thread  {best['2x1']:7.2f} s per epoch   (1x2 / 2x1 = {result['ratio']:.2f}x)")
    print(f"all-reduce of {params + 4:,} float32 (gloo, 2 ranks): {ms:.2f} ms = "
          f"{100 * result['all_reduce_share']:.1f}% of a {step_ms:.1f} ms distributed step")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
