"""Seconds per epoch on a CUDA device, float32 against bfloat16 autocast, and the test NLL of each
after the same epochs (issue 16's GPU check, prepared for a session that has a GPU).

For each model, the demo's MLP VAE (`configs/fashion-mnist-mlp.toml`) and the conv VAE
(`configs/fashion-mnist-conv.toml`), and each precision (float32; `--precision bf16`: the
hand-derived engine's bfloat16 products for the MLP, torch.autocast(bfloat16) for the conv VAE),
a run of `--epochs` epochs is trained with `vaekit.train.fit.fit(..., device cuda)`; its seconds per
epoch are the best and the mean of metrics.jsonl's `epoch_seconds` (the first epoch, which warms
CUDA up, left out), and its test -log p(x) is `evaluate_model` with k = `--k` on the first
`--images` test images binarized once (a small-k estimate, said as such, not the k = 5,000
protocol). The criterion of the issue: bf16 may become a default where its NLL is within 0.1 nats
of float32's at the same budget.

No CUDA device: one sentence and exit status 2.
Run: .venv/bin/python bench/gpu.py [--epochs 10] [--k 100] [--images 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from vaekit.config import load_toml
from vaekit.data.binarize import eval_images
from vaekit.data.load import load_configured
from vaekit.evaluate.run import evaluate_model
from vaekit.runs import load_run, read_metrics
from vaekit.train.fit import fit

CONFIGS = {"mlp (demo)": "configs/fashion-mnist-mlp.toml", "conv": "configs/fashion-mnist-conv.toml"}


def one(name: str, path: str, precision: str, epochs: int, k: int, images: int, out: Path) -> dict[str, Any]:
    config = load_toml(path)
    config.train.epochs, config.train.device, config.train.precision = epochs, "cuda", precision
    config.train.time_budget, config.train.patience = 0.0, 0
    run_dir = out / f"{name.split()[0]}-{precision}"
    fit(config, run_dir, show_bar=False, log=lambda _m: None)
    seconds = [float(r["epoch_seconds"]) for r in read_metrics(run_dir)][1:] or [float("nan")]
    run = load_run(run_dir, "vae")
    ds = load_configured(run.config.data)
    x = eval_images(ds.test.images[:images], run.config.resolved_binarize())
    ev = evaluate_model(run.model, x, k, progress=False)
    return {"model": name, "precision": precision, "epochs": epochs, "best_epoch_s": min(seconds),
            "mean_epoch_s": statistics.fmean(seconds), "test_nll": float(ev.nll.double().mean()), "k": k,
            "images": int(x.shape[0])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default: 10)")
    p.add_argument("--k", type=int, default=100, help="importance samples of the NLL (default: 100)")
    p.add_argument("--images", type=int, default=2000, help="test images evaluated (default: 2000)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu.py: torch sees no CUDA device on this machine; run it where one is.",
              file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in CONFIGS.items():
            for precision in ("float32", "bf16"):
                rows.append(one(name, path, precision, args.epochs, args.k, args.images, Path(tmp)))
    if args.json:
        print(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}))
        return 0
    print(f"{torch.cuda.get_device_name()}  (load average {os.getloadavg()[0]:.2f})")
    print(f"{'model':<12} {'precision':<9} {'s/epoch best':>12} {'mean':>8} "
          f"{'test NLL (k=' + str(args.k) + ')':>18}")
    for r in rows:
        print(f"{r['model']:<12} {r['precision']:<9} {r['best_epoch_s']:12.3f} {r['mean_epoch_s']:8.3f} "
              f"{r['test_nll']:18.2f}")
    for name in CONFIGS:
        f32, bf = (next(r for r in rows if r["model"] == name and r["precision"] == q)
                   for q in ("float32", "bf16"))
        print(f"{name}: bf16 - float32 = {bf['test_nll'] - f32['test_nll']:+.2f} nats, "
              f"{f32['mean_epoch_s'] / bf['mean_epoch_s']:.2f}x the speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
