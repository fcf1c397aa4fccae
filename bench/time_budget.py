"""How close `vaekit train --time-budget T` ends to T: the whole command's wall time against T.

For each budget, `python -m vaekit train --config CONFIG --time-budget T --device DEVICE` runs as a
subprocess in a fresh directory, with `--patience 0` so that no early stop ends it before T (the
interpreter's start, the imports, the data, the probe, every epoch, validation and checkpoint, and
the exit all counted); printed: the command's seconds, their
ratio to T, the epochs it trained and its mean epoch. The target: within 5% of T, on a CPU and on
CUDA (where a budget of T ends before T minus one epoch only when the plan is wrong).

Run: .venv/bin/python bench/time_budget.py [--budgets 60,120] [--config configs/fashion-mnist-mlp.toml]
     [--device cpu|cuda] [--json]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _budgets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budgets must be seconds separated by commas, got {text!r}"
                                         ) from None
    if not values or any(not 1 <= v <= 86_400 for v in values):
        raise argparse.ArgumentTypeError(f"--budgets must each be 1 to 86400 seconds, got {text!r}")
    return values


def one(config: str, budget: float, device: str, out: Path) -> dict[str, Any]:
    """One budgeted command, timed from outside."""
    run_dir = out / f"budget-{budget:g}"
    argv = [sys.executable, "-m", "vaekit", "train", "--config", config, "--time-budget", f"{budget:g}",
            "--device", device, "--out", str(run_dir), "--no-progress", "--patience", "0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"budget": budget, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    epoch = sum(r["epoch_seconds"] for r in rows) / max(len(rows), 1)
    return {"budget": budget, "command_seconds": round(seconds, 2), "ratio": round(seconds / budget, 4),
            "epochs": len(rows), "mean_epoch_seconds": round(epoch, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=_budgets, default=[60.0, 120.0],
                   help="budgets in seconds, comma-separated (default: 60,120)")
    p.add_argument("--config", default="configs/fashion-mnist-mlp.toml",
                   help="training config (default: configs/fashion-mnist-mlp.toml, the demo's)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default: cpu)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    if not (ROOT / args.config).is_file() and not Path(args.config).is_file():
        p.error(f"--config {args.config}: no such file")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one(args.config, b, args.device, Path(tmp)) for b in args.budgets]
    if args.json:
        print(json.dumps({"device": args.device, "config": args.config, "load": os.getloadavg()[0],
                          "rows": rows}))
        return 0 if all("error" not in r for r in rows) else 1
    print(f"{args.config} on {args.device} (load average {os.getloadavg()[0]:.2f})")
    print(f"{'budget s':>9} {'command s':>10} {'ratio':>7} {'epochs':>7} {'s/epoch':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['budget']:9.0f}  failed: {r['error']}")
        else:
            print(f"{r['budget']:9.0f} {r['command_seconds']:10.2f} {r['ratio']:7.3f} {r['epochs']:7d} "
                  f"{r['mean_epoch_seconds']:8.2f}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
