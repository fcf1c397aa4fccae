"""Seconds per training epoch on one CUDA device: vaekit's configs in float32 and bf16 against three
peers on the same GPU, and the seconds of a k = 5,000 evaluation there (`scripts/gpu-check.sh` runs
it).

(a) vaekit   the demo MLP VAE (`configs/fashion-mnist-mlp.toml`), the conv VAE
             (`configs/fashion-mnist-conv.toml`) and the best config (`configs/fashion-mnist-best.toml`),
             each with `config.train.precision` float32 and bf16, trained by
             `vaekit.train.fit.fit(..., device)` for `--epochs` epochs (no time budget, no early
             stopping). Seconds per epoch: the best and the mean of metrics.jsonl's `epoch_seconds`
             (the training pass alone), the first epoch (CUDA's warm-up) left out. Where the config
             has `train.cuda_graph` (the training step captured in a CUDA graph on CUDA), the demo MLP
             in float32 is also timed with cuda_graph = false: the eager step, so the graph's gain shows.
(b) peers    the demo's model written as a plain nn.Module (784-512-256-40, ReLU, Bernoulli decoder:
             BCE-with-logits summed plus the closed-form KL), batch 128, Adam lr 1e-3, one sample of z,
             dynamic binarization, on the 60,000 Fashion-MNIST training images, `--peer-epochs` epochs,
             the best epoch:
     examples   pytorch/examples' vae/main.py way: a Dataset that makes a PIL image per item and
                converts it as torchvision's ToTensor does (written out in numpy; no torchvision), a
                DataLoader(batch_size=128, shuffle=True, num_workers=1, pin_memory=True on CUDA), each
                batch moved to the device, `loss.item()` per step.
     eager      a careful eager loop: the whole set as one uint8 tensor on the device, a randperm on
                the device, each batch indexed from it, the loss summed on the device (no sync).
     graph      the same step (binarization, forward, backward, Adam(capturable=True)) captured once
                in a CUDA graph (warm-up on a side stream, as PyTorch's CUDA-graph notes say) and
                replayed per batch; the batch is gathered into the graph's static input buffer
                (index_select(out=)); the last partial batch is dropped (59,904 images an epoch).
                Not on the CPU (skipped, said so).
(c) eval     the seconds and the test NLL of `--eval-k` importance samples on the first
             `--eval-images` test images, on the device, for the best config's run of (a) at its own
             precision (bf16): `vaekit.evaluate.run.evaluate_run(..., device=)` where it takes a
             device, else the run's model moved to the device and `evaluate_model`. After 3 epochs the
             NLL is far from the hour's 226.66: it says the evaluation runs, not how good the model is.
(d) ratios   vaekit's demo MLP (float32) against each peer, per image (vaekit's epoch is its 55,000
             training images, the peers' 60,000), and bf16 against float32 per model.

A part that fails is recorded (its error in the JSON) and the others still run; the exit status is
then 1. With `--out FILE` everything measured is written there as JSON, after each part (a run
killed by a timeout keeps what it measured). No CUDA device (with --device cuda): one sentence and
exit status 2. `--device cpu --smoke`: the whole path on a tiny problem (1,000 training images, 2
epochs, k = 10 on 100 test images), for the tests of a machine without a GPU.
Run: PYTHONPATH=src python bench/gpu.py [--epochs 3] [--peer-epochs 2] [--eval-k 5000] [--out gpu.json]
Estimated on an H200: about 2 minutes (plus start-up).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"mlp": "configs/fashion-mnist-mlp.toml", "conv": "configs/fashion-mnist-conv.toml",
           "best": "configs/fashion-mnist-best.toml"}
PRECISIONS = ("float32", "bf16")
PEERS = ("examples", "eager", "graph")
BATCH, LR = 128, 1e-3
SIZES = (784, 512, 256, 40)  # the peers' encoder; the decoder mirrors it
FULL_TRAIN, FULL_TEST = 60_000, 10_000
MAX_K = 100_000  # vaekit's evaluate_run refuses more without force
SMOKE = {"epochs": 2, "peer_epochs": 2, "eval_k": 10, "eval_images": 100, "train_images": 1000}
DEFAULTS = {"epochs": 3, "peer_epochs": 2, "eval_k": 5000, "eval_images": FULL_TEST, "train_images": 0}


def note(message: str) -> None:
    """A progress line (stderr: stdout is the table or the JSON)."""
    print(message, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


# ----------------------------------------------------------------------------- (a) vaekit


def dataset_for(config: Any, train_images: int, cache: dict[Any, Any]) -> Any:
    """The config's dataset (loaded once per validation size), its training split cut to the first
    `train_images` images (0: all) and, when cut, its validation split to 250 images."""
    from vaekit.data.load import Split, load_configured

    key = config.data.val_size
    if key not in cache:
        cache[key] = load_configured(config.data)
    ds = cache[key]
    if not train_images:
        return ds
    config.data.val_size = None  # the smaller split is not the config's
    cut = lambda s, n: Split(s.images[:n], None if s.labels is None else s.labels[:n])  # noqa: E731
    return replace(ds, train=cut(ds.train, train_images), val=cut(ds.val, 250))


def vaekit_row(model: str, precision: str, args: argparse.Namespace, out: Path, cache: dict[Any, Any],
               cuda_graph: bool | None = None) -> dict[str, Any]:
    from vaekit.config import load_toml
    from vaekit.runs import read_metrics
    from vaekit.train.fit import fit

    config = load_toml(str(ROOT / CONFIGS[model]))
    t = config.train
    t.epochs, t.device, t.precision, t.time_budget, t.patience = args.epochs, args.device, precision, 0.0, 0
    if cuda_graph is not None:
        t.cuda_graph = cuda_graph
    ds = dataset_for(config, args.train_images, cache)
    run_dir = out / (f"{model}-{precision}" + ("" if cuda_graph is None else f"-graph-{cuda_graph}"))
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        fit(config, run_dir, show_bar=False, log=lambda _m: None, dataset=ds)
    finally:
        torch.set_num_threads(threads)  # fit sets the CPU threads for its run; the next part gets ours back
    wall = time.perf_counter() - t0
    seconds = [float(r["epoch_seconds"]) for r in read_metrics(run_dir)]
    timed = seconds[1:] or seconds
    return {"model": model, "config": CONFIGS[model], "precision": precision,
            "cuda_graph": getattr(t, "cuda_graph", None), "epochs": len(seconds),
            "train_images": len(ds.train), "epoch_seconds": seconds, "best_epoch_s": min(timed),
            "mean_epoch_s": statistics.fmean(timed), "fit_wall_s": wall, "run_dir": str(run_dir)}


# ----------------------------------------------------------------------------- (b) the peers


class PILImageDataset(torch.utils.data.Dataset):
    """torchvision.datasets.FashionMNIST's __getitem__ (uint8 row -> PIL image -> ToTensor), with
    torchvision.transforms.functional.to_tensor written out for a mode-L image."""

    def __init__(self, images: torch.Tensor) -> None:
        self.data = images  # (N, 28, 28) uint8, on the CPU

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        pic = Image.fromarray(self.data[index].numpy())  # a 2-D uint8 array: mode L
        tensor = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        tensor = tensor.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()  # (1, H, W)
        return tensor.to(dtype=torch.get_default_dtype()).div(255), 0


class PeerVAE(nn.Module):
    """784-512-256-40 MLP VAE with a Bernoulli decoder 40-256-512-784 (logits), ReLU."""

    def __init__(self) -> None:
        super().__init__()
        enc = list(SIZES[:-1])
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(enc[:-1], enc[1:], strict=True))
        self.mu, self.logvar = nn.Linear(enc[-1], SIZES[-1]), nn.Linear(enc[-1], SIZES[-1])
        dec = list(reversed(SIZES))
        self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec[:-1], dec[1:], strict=True))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = x
        for layer in self.enc:
            h = F.relu(layer(h))
        mu, logvar = self.mu(h), self.logvar(h)
        h = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterization
        for i, layer in enumerate(self.dec):
            h = layer(h) if i == len(self.dec) - 1 else F.relu(layer(h))
        return h, mu, logvar


def peer_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-ELBO summed over the batch: BCE with logits summed over pixels plus the closed-form KL."""
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def binarize(p: torch.Tensor) -> torch.Tensor:
    """Dynamic binarization: each pixel 1 with probability its grey level."""
    return (torch.rand_like(p) < p).to(p.dtype)


def peer_model(device: torch.device, capturable: bool = False) -> tuple[PeerVAE, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = PeerVAE().to(device)
    return model, torch.optim.Adam(model.parameters(), lr=LR, capturable=capturable)


def examples_epochs(images: torch.Tensor, device: torch.device, epochs: int) -> dict[str, Any]:
    """pytorch/examples vae/main.py's train(): a DataLoader over PIL images, .to(device) per batch."""
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(PILImageDataset(images), batch_size=BATCH, shuffle=True,
                                         num_workers=1, pin_memory=cuda)
    model, optimizer = peer_model(device)
    model.train()
    seconds = []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        train_loss = 0.0
        for data, _ in loader:
            data = binarize(data.to(device).view(-1, 784))
            optimizer.zero_grad()
            logits, mu, logvar = model(data)
            loss = peer_loss(logits, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        sync(device)
        seconds.append(time.perf_counter() - t0)
    return {"images": len(images), "epoch_seconds": seconds, "final_loss": train_loss / len(images)}


def eager_epochs(data: torch.Tensor, device: torch.device, epochs: int) -> dict[str, Any]:
    """The whole set on the device (uint8, (N, 784)), a randperm, batches indexed, no host sync."""
    model, optimizer = peer_model(device)
    n = data.shape[0]
    seconds = []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        total = torch.zeros((), device=device)
        perm = torch.randperm(n, device=device)
        for start in range(0, n, BATCH):
            x = binarize(data[perm[start : start + BATCH]].float().div_(255))
            logits, mu, logvar = model(x)
            loss = peer_loss(logits, x, mu, logvar)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        sync(device)
        seconds.append(time.perf_counter() - t0)
    return {"images": n, "epoch_seconds": seconds, "final_loss": float(total) / n}


def graph_epochs(data: torch.Tensor, device: torch.device, epochs: int) -> dict[str, Any]:
    """The eager step captured once in a CUDA graph (torch.cuda.graph) and replayed per batch."""
    model, optimizer = peer_model(device, capturable=True)
    n = data.shape[0]
    steps = n // BATCH  # the last partial batch is dropped: the graph's shapes are fixed
    static_u8 = data[:BATCH].clone()  # the graph's input: (BATCH, 784) uint8
    total = torch.zeros((), device=device)

    def step() -> torch.Tensor:
        x = binarize(static_u8.float().div_(255))
        logits, mu, logvar = model(x)
        loss = peer_loss(logits, x, mu, logvar)
        loss.backward()
        optimizer.step()
        return loss.detach()

    sync(device)
    t0 = time.perf_counter()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up: 3 eager steps on a side stream before the capture
        for i in range(3):
            first = torch.arange(i * BATCH, (i + 1) * BATCH, device=device)
            torch.index_select(data, 0, first, out=static_u8)
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # the backward in the graph allocates the gradients
    with torch.cuda.graph(graph, stream=side):  # captured on the stream that warmed up
        total.add_(step())
    sync(device)
    capture = time.perf_counter() - t0
    total.zero_()
    seconds = []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        for i in range(steps):
            torch.index_select(data, 0, perm[i * BATCH : (i + 1) * BATCH], out=static_u8)
            graph.replay()
        sync(device)
        seconds.append(time.perf_counter() - t0)
    return {"images": steps * BATCH, "epoch_seconds": seconds, "capture_s": capture,
            "final_loss": float(total) / (steps * BATCH * epochs)}


def peer_row(peer: str, images: torch.Tensor, device: torch.device, epochs: int) -> dict[str, Any]:
    if peer == "graph" and device.type != "cuda":
        return {"peer": peer, "skipped": "a CUDA graph needs a CUDA device; not timed on the CPU"}
    if peer == "examples":
        result = examples_epochs(images, device, epochs)
    else:
        on_device = images.reshape(images.shape[0], -1).to(device)
        result = (eager_epochs if peer == "eager" else graph_epochs)(on_device, device, epochs)
    result.update(peer=peer, epochs=epochs, best_epoch_s=min(result["epoch_seconds"]),
                  matmul_precision=torch.get_float32_matmul_precision())
    return result


# ----------------------------------------------------------------------------- (c) the evaluation


def evaluate_on_device(run_dir: Path, k: int, images: int, device: torch.device) -> dict[str, Any]:
    from vaekit.evaluate import run as ev

    sync(device)
    t0 = time.perf_counter()
    if "device" in inspect.signature(ev.evaluate_run).parameters:
        via = "evaluate_run(device=)"
        result = ev.evaluate_run(run_dir, k=k, limit=images, device=str(device), progress=False, probe=False)
        nll, n, inner = float(result["test_nll"]), int(result["images"]), result.get("seconds")
    else:
        via = "load_test_set + model.to(device) + evaluate_model (evaluate_run takes no device)"
        model, _config, x, _labels, _ds = ev.load_test_set(run_dir, limit=images)
        evaluation = ev.evaluate_model(model.to(device), x.to(device), k, progress=False)
        nll, n, inner = float(evaluation.nll.double().mean()), int(x.shape[0]), evaluation.seconds
    sync(device)
    return {"k": k, "images": n, "seconds": time.perf_counter() - t0, "evaluator_seconds": inner,
            "test_nll": nll, "via": via}


# ----------------------------------------------------------------------------- (d) ratios


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """vaekit's demo MLP (float32, its default step) against each peer, per image; bf16 against
    float32 per model; the CUDA graph's gain on the demo MLP. A figure that is missing: None."""
    rows = [r for r in report["vaekit"] if "best_epoch_s" in r]

    def row(model: str, precision: str, graph_off: bool = False) -> dict[str, Any] | None:
        return next((r for r in rows if r["model"] == model and r["precision"] == precision
                     and r.get("eager_row", False) == graph_off), None)

    def per_image(r: dict[str, Any] | None, images_key: str) -> float | None:
        return None if r is None else r["best_epoch_s"] / r[images_key]

    demo = per_image(row("mlp", "float32"), "train_images")
    out: dict[str, Any] = {"vaekit_demo_vs_peer": {}, "bf16_speedup": {}, "cuda_graph_gain": None}
    for peer in report["peers"]:
        theirs = per_image(peer if "best_epoch_s" in peer else None, "images")
        out["vaekit_demo_vs_peer"][peer["peer"]] = (theirs / demo if theirs and demo else None)
    for model in CONFIGS:
        f32, bf = row(model, "float32"), row(model, "bf16")
        out["bf16_speedup"][model] = f32["best_epoch_s"] / bf["best_epoch_s"] if f32 and bf else None
    eager, default = row("mlp", "float32", True), row("mlp", "float32")
    if eager and default:
        out["cuda_graph_gain"] = eager["best_epoch_s"] / default["best_epoch_s"]
    return out


# ----------------------------------------------------------------------------- the report


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """TimeoutError in this (main) thread after `seconds` (0: never), between two Python lines."""
    if seconds <= 0:
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"stopped after --eval-timeout {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def part(report: dict[str, Any], what: str) -> Iterator[None]:
    """Run one measurement; a failure is recorded in report['errors'] (and said), not raised."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - one part failing must not lose the others
        report["errors"].append({"part": what, "error": error_text(err)})
        note(f"  {what}: FAILED ({error_text(err)})")


def save(report: dict[str, Any], path: Path | None) -> None:
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(report: dict[str, Any]) -> str:
    load = f"load average {report['load_average'][0]:.2f} before, {report['load_average_after'][0]:.2f} after"
    smoke = "  SMOKE" if report["smoke"] else ""
    lines = [f"{report['device_name']}  torch {report['torch']}  ({load}){smoke}",
             "", f"(a) vaekit, {report['settings']['epochs']} epochs, the first left out",
             f"{'model':<6} {'precision':<9} {'graph':<6} {'images':>7} {'s/epoch best':>12} {'mean':>8}"]
    for r in report["vaekit"]:
        graph = "-" if r.get("cuda_graph") is None else str(r["cuda_graph"])
        lines.append(f"{r['model']:<6} {r['precision']:<9} {graph:<6} {r.get('train_images', 0):>7} "
                     f"{fmt(r.get('best_epoch_s')):>12} {fmt(r.get('mean_epoch_s')):>8}"
                     + ("  FAILED" if "best_epoch_s" not in r else ""))
    lines += ["", f"(b) peers, {report['settings']['peer_epochs']} epochs, the best",
              f"{'peer':<9} {'images':>7} {'s/epoch best':>12}  every epoch"]
    for p in report["peers"]:
        if "skipped" in p or "best_epoch_s" not in p:
            lines.append(f"{p['peer']:<9} {p.get('skipped', 'FAILED')}")
            continue
        extra = f"  (capture {p['capture_s']:.2f} s)" if "capture_s" in p else ""
        lines.append(f"{p['peer']:<9} {p['images']:>7} {p['best_epoch_s']:12.3f}  "
                     + " ".join(f"{s:.3f}" for s in p["epoch_seconds"]) + extra)
    e = report.get("eval")
    lines += ["", "(c) evaluation of the best config's run (bf16)"]
    if e and "seconds" in e:
        lines.append(f"k = {e['k']:,} on {e['images']:,} test images: {e['seconds']:.1f} s, test NLL "
                     f"{e['test_nll']:.2f} nats (after {report['settings']['epochs']} epochs)")
        lines.append(f"  via {e['via']}")
    else:
        lines.append("not measured" + (f": {e['error']}" if e and "error" in e else ""))
    r = report.get("ratios", {})
    lines += ["", "(d) ratios (best epochs; vaekit against the peers per image)"]
    for peer, x in r.get("vaekit_demo_vs_peer", {}).items():
        lines.append(f"vaekit demo MLP float32 vs the {peer} peer: "
                     + ("not measured" if x is None else f"{x:.2f}x the speed"))
    for model, x in r.get("bf16_speedup", {}).items():
        lines.append(f"{model}: bf16 " + ("not measured" if x is None else f"{x:.2f}x the speed of float32"))
    if r.get("cuda_graph_gain") is not None:
        lines.append(f"demo MLP float32: the CUDA graph {r['cuda_graph_gain']:.2f}x the speed of the "
                     "eager step")
    for err in report["errors"]:
        lines.append(f"FAILED {err['part']}: {err['error']}")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="device (default: cuda)")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run of the whole path (1,000 training images, 2 epochs, k = 10 on 100 "
                        "test images) unless the flags below say otherwise (default: off)")
    p.add_argument("--epochs", type=int,
                   help="epochs of each vaekit run, the first left out (default: 3; smoke: 2)")
    p.add_argument("--peer-epochs", type=int,
                   help="epochs of each peer, the best kept (default: 2; smoke: 2)")
    p.add_argument("--eval-k", type=int,
                   help="importance samples of the evaluation (default: 5000; smoke: 10)")
    p.add_argument("--eval-images", type=int, help="test images evaluated (default: 10000; smoke: 100)")
    p.add_argument("--eval-timeout", type=float, default=100.0,
                   help="seconds after which the evaluation is stopped and recorded as failed, 0 = "
                        "none (default: 100)")
    p.add_argument("--train-images", type=int,
                   help="training images of every run, 0 = all (default: 0; smoke: 1000)")
    p.add_argument("--out", type=Path, help="write everything measured to this JSON file (default: none)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    args = p.parse_args(argv)
    for key, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.epochs < 2:
        p.error(f"--epochs must be at least 2 (the first is left out as warm-up), got {args.epochs}")
    if args.peer_epochs < 1:
        p.error(f"--peer-epochs must be at least 1, got {args.peer_epochs}")
    if not 1 <= args.eval_k <= MAX_K:
        p.error(f"--eval-k must be in [1, {MAX_K:,}], got {args.eval_k}")
    if not 1 <= args.eval_images <= FULL_TEST:
        p.error(f"--eval-images must be in [1, {FULL_TEST:,}], got {args.eval_images}")
    if args.eval_timeout < 0:
        p.error(f"--eval-timeout must be at least 0 (0: none), got {args.eval_timeout}")
    if not 0 <= args.train_images <= FULL_TRAIN:
        p.error(f"--train-images must be in [0, {FULL_TRAIN:,}] (0: all), got {args.train_images}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: torch sees no CUDA device on this machine; run it where one is (or pass "
              "--device cpu --smoke).", file=sys.stderr)
        return 2
    from vaekit.config import TrainConfig
    from vaekit.data.load import load_dataset

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    report: dict[str, Any] = {
        "device": args.device, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "smoke": args.smoke, "load_average": list(os.getloadavg()),
        "settings": {k: getattr(args, k) for k in DEFAULTS},
        "has_cuda_graph_field": hasattr(TrainConfig().train, "cuda_graph"),
        "vaekit": [], "peers": [], "eval": None, "ratios": {}, "errors": []}
    note(f"bench/gpu.py on {name}, load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    cache: dict[Any, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vaekit-gpu-") as tmp:
        runs = [(m, q, None) for m in CONFIGS for q in PRECISIONS]
        if report["has_cuda_graph_field"]:
            runs.insert(1, ("mlp", "float32", False))
        for model, precision, graph in runs:
            what = f"vaekit {model} {precision}" + ("" if graph is None else f" cuda_graph={graph}")
            row: dict[str, Any] = {"model": model, "precision": precision, "eager_row": graph is False}
            with part(report, what):
                row.update(vaekit_row(model, precision, args, Path(tmp), cache, graph))
                note(f"  {what}: {row['best_epoch_s']:.3f} s/epoch best "
                     f"({time.perf_counter() - started:.0f} s in)")
            report["vaekit"].append(row)
            save(report, args.out)

        ds = load_dataset("fashion-mnist")
        images = torch.cat([ds.train.images, ds.val.images])[:, 0]  # the 60,000 (N, 28, 28) uint8
        if args.train_images:
            images = images[: args.train_images]
        del ds
        for peer in PEERS:
            prow: dict[str, Any] = {"peer": peer}
            with part(report, f"peer {peer}"):
                prow = peer_row(peer, images, device, args.peer_epochs)
                if "best_epoch_s" in prow:
                    note(f"  peer {peer}: {prow['best_epoch_s']:.3f} s/epoch best "
                         f"({time.perf_counter() - started:.0f} s in)")
            report["peers"].append(prow)
            save(report, args.out)
        report["ratios"] = ratios(report)
        save(report, args.out)

        best = next((r for r in report["vaekit"] if r["model"] == "best" and r["precision"] == "bf16"
                     and "run_dir" in r), None)
        if best is None:
            report["eval"] = {"error": "the best config's bf16 run did not train"}
        else:
            report["eval"] = {"model": "best", "precision": "bf16"}
            with part(report, "eval"), deadline(args.eval_timeout):
                report["eval"].update(evaluate_on_device(Path(best["run_dir"]), args.eval_k,
                                                         args.eval_images, device))
                note(f"  eval: {report['eval']['seconds']:.1f} s ({time.perf_counter() - started:.0f} s in)")
            if report["errors"] and report["errors"][-1]["part"] == "eval":
                report["eval"]["error"] = report["errors"][-1]["error"]
    report["load_average_after"] = list(os.getloadavg())
    report["total_seconds"] = time.perf_counter() - started
    for r in report["vaekit"]:
        r.pop("run_dir", None)  # a temporary directory, gone now
    save(report, args.out)
    print(json.dumps(report, indent=1) if args.json else table(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
