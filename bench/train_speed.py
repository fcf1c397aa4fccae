"""Seconds per training epoch: vaekit against the usual loop and against the compute bound.

The model is pytorch/examples' `vae/main.py` VAE (784-400-20-400-784, ReLU, Bernoulli/BCE loss),
batch 128, Adam lr 1e-3, one epoch over the 60,000 Fashion-MNIST training images, on all cores.
Measured in the same process, interleaved, best and median of `--repeats`:

  vaekit   `vaekit.train.loop.train_epoch` on the uint8 tensor: batches indexed from it, dynamic
           binarization, the one-sample -ELBO and its gradient derived by hand
           (`vaekit.vae.backprop`, the default engine for this model), fused Adam.
  vaekit, autograd engine   the same with `engine = "autograd"`: the loss of `vaekit.vae.prob` and
           its gradient by autograd (what every other model of vaekit trains with).
  (a)      the loop of pytorch/examples: a `torch.utils.data.DataLoader` (shuffle, batch 128, no
           workers as the example on CPU) over a Dataset that makes a PIL image per item and
           converts it as torchvision's `ToTensor` does (reimplemented in numpy; torchvision is not
           installed here), the example's model and loss, `loss.item()` per step.
  (b)      the matrix products of that epoch alone, on random data of the same shapes: per step,
           for each of the 5 linear layers, the forward product, the weight-gradient product and
           (but for the first layer) the input-gradient product. The compute bound.
  Pythae   `pythae.pipelines.TrainingPipeline` when the package is installed (a bench-only peer,
           not a vaekit dependency): its default MLP VAE 784-512-20, BCE loss, the epoch timed
           without the pipeline's set-up (see `pythae_epoch`).

Then the peak resident memory (VmHWM) of a separate `vaekit train` process: Fashion-MNIST,
this model, one epoch with validation and checkpoints.

Targets: vaekit >= 5x faster than (a), within 1.5x of (b), peak memory < 1 GB.
Run: .venv/bin/python bench/train_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaekit.config import TrainConfig
from vaekit.data.load import load_dataset
from vaekit.device import available_cores, set_threads
from vaekit.train.engines import make_engine
from vaekit.train.loop import Pixels, kl_weight, train_epoch
from vaekit.train.optim import make_optimizer
from vaekit.vae.models import MLPVAE

BATCH, HIDDEN, LATENT, LR = 128, 400, 20, 1e-3


# ----------------------------------------------------------------------------- (a) the usual loop


class PILImageDataset(torch.utils.data.Dataset):
    """torchvision.datasets.FashionMNIST's __getitem__ (uint8 tensor row -> PIL image -> ToTensor),
    with torchvision.transforms.functional.to_tensor written out for a mode-L image."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.data, self.targets = images, targets  # (N, 28, 28) uint8, (N,) int64

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img, target = self.data[index], int(self.targets[index])
        pic = Image.fromarray(img.numpy(), mode="L")
        # to_tensor(pic): np.array copy, view (H, W, C), permute to (C, H, W), float / 255
        tensor = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        tensor = tensor.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()  # (1, H, W)
        return tensor.to(dtype=torch.get_default_dtype()).div(255), target


class ExampleVAE(nn.Module):
    """pytorch/examples vae/main.py, verbatim apart from the names of nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(logvar) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def example_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
                 logvar: torch.Tensor) -> torch.Tensor:
    """vae/main.py's `loss_function`: BCE(recon, x) summed over pixels and images, plus the KL
    -1/2 sum(1 + logvar - mu^2 - exp(logvar)) (Kingma & Welling 2014, appendix B)."""
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def example_epoch(images: torch.Tensor, targets: torch.Tensor) -> float:
    torch.manual_seed(1)
    loader = torch.utils.data.DataLoader(PILImageDataset(images, targets), batch_size=BATCH, shuffle=True)
    model = ExampleVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    t0 = time.perf_counter()
    train_loss = 0.0
    log: list[str] = []  # the example prints this line every 10 batches; kept, not printed
    for batch_idx, (data, _) in enumerate(loader):
        optimizer.zero_grad()
        recon, mu, logvar = model(data)
        loss = example_loss(recon, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        if batch_idx % 10 == 0:
            log.append(f"Train Epoch: 1 [{batch_idx * len(data)}/{len(images)}]\t"
                       f"Loss: {loss.item() / len(data):.6f}")
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- vaekit


def vaekit_epoch(images: torch.Tensor, engine: str = "auto") -> float:
    config = TrainConfig()
    config.train.engine = engine
    config.model.hidden, config.model.latent, config.train.batch_size = [HIDDEN], LATENT, BATCH
    config.optim.lr = LR
    torch.manual_seed(1)
    model = MLPVAE((1, 28, 28), [HIDDEN], LATENT)
    optimizer = make_optimizer(model.parameters(), config.optim)
    engine = make_engine(model, config.train)
    generator = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    train_epoch(model, optimizer, engine, Pixels(images, "dynamic"), config.train.batch_size,
                config.train.epochs, config.optim, generator, 0, 1, kl_weight(config.train), show_bar=False)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- (b) the bound


def matmul_epoch(n: int) -> float:
    """The forward and backward matrix products of one epoch's linear layers, nothing else."""
    sizes = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]  # (in, out) per layer
    weights = [torch.randn(o, i) for i, o in sizes]
    batches = [BATCH] * (n // BATCH) + ([n % BATCH] if n % BATCH else [])
    inputs = {b: [torch.randn(b, i) for i, _ in sizes] for b in set(batches)}
    grads = {b: [torch.randn(b, o) for _, o in sizes] for b in set(batches)}
    t0 = time.perf_counter()
    for b in batches:
        for layer, w in enumerate(weights):
            x, g = inputs[b][layer], grads[b][layer]
            torch.mm(x, w.t())  # forward (B, out)
            torch.mm(g.t(), x)  # weight gradient (out, in)
            if layer > 0:
                torch.mm(g, w)  # input gradient (B, in)
    return time.perf_counter() - t0


def matmul_flops(n: int, first_input_grad: bool = False) -> float:
    """2 FLOPs per multiply-add; 3 products per layer (2 for the first, whose input needs no grad)."""
    sizes = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]
    per_image = sum((3 if k or first_input_grad else 2) * 2 * i * o for k, (i, o) in enumerate(sizes))
    return per_image * n


# ----------------------------------------------------------------------------- Pythae


def pythae_epoch(images: np.ndarray) -> float | None:
    """Seconds of one epoch of Pythae's `TrainingPipeline` (60,000 images, batch 128, Adam lr 1e-3),
    or None when pythae is not importable.

    The model is Pythae's default for `VAE` on (1, 28, 28): `Encoder_VAE_MLP` / `Decoder_AE_MLP`,
    784-512-20 (two heads) and 20-512-784 with a sigmoid, with `reconstruction_loss="bce"` (the
    Bernoulli likelihood of the other rows; Pythae's default is "mse"). The pipeline runs whole
    (data processing, checks, trainer set-up, one epoch, saving the final model); only the epoch,
    `BaseTrainer.train_step` (its DataLoader over the float images, forward, loss, backward, Adam,
    `loss.item()` and progress-bar callback per step), is timed, by wrapping that method.
    Pythae reads the images as given: scaled to [0, 1], not binarized.
    """
    try:
        from pythae.models import VAE, VAEConfig  # type: ignore[import-not-found]
        from pythae.pipelines import TrainingPipeline  # type: ignore[import-not-found]
        from pythae.trainers import BaseTrainer, BaseTrainerConfig  # type: ignore[import-not-found]
    except ImportError:
        return None
    import contextlib
    import io
    import logging

    data = images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    epochs: list[float] = []
    sizes: list[int] = []  # images the timed epoch went through
    original = BaseTrainer.train_step

    def timed_train_step(self: Any, epoch: int) -> Any:
        t0 = time.perf_counter()
        loss = original(self, epoch)
        epochs.append(time.perf_counter() - t0)
        sizes.append(len(self.train_loader.dataset))
        return loss

    loggers = [logging.getLogger(name) for name in ("pythae.pipelines.training",
                                                    "pythae.trainers.base_trainer.base_trainer")]
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = BaseTrainerConfig(output_dir=tmp, num_epochs=1, learning_rate=LR, optimizer_cls="Adam",
                                    per_device_train_batch_size=BATCH, no_cuda=True)
        model = VAE(model_config=VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT,
                                           reconstruction_loss="bce"))
        BaseTrainer.train_step = timed_train_step
        try:
            for lg in loggers:
                lg.setLevel(logging.WARNING)
            with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar and log lines
                TrainingPipeline(training_config=trainer, model=model)(train_data=data)
        finally:
            BaseTrainer.train_step = original
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
    assert len(epochs) == 1 and sizes == [len(data)], (epochs, sizes)
    return epochs[0]


# ----------------------------------------------------------------------------- memory


_REPORT_PEAK = """
import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def report():
    with open('/proc/self/status') as fh:
        peak = next(line.split()[1] for line in fh if line.startswith('VmHWM:'))
    with open(peak_file, 'w') as out:
        out.write(peak)
atexit.register(report)
sys.argv[0] = 'vaekit'
runpy.run_module('vaekit', run_name='__main__', alter_sys=True)
"""


def peak_memory_of_training_run() -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `vaekit train` on Fashion-MNIST, 1 epoch, in a child.

    The peak is the child's own VmHWM (/proc/self/status, read at its exit), not getrusage's
    maxrss: Linux carries a process's maxrss across exec, so a child forked from this process
    (which holds ~1 GB of images by then) would report this process's size, not its own.
    """
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        cmd = [sys.executable, "-c", _REPORT_PEAK, peak_file, "train", "--data", "fashion-mnist",
               "--epochs", "1", "--threads", str(torch.get_num_threads()),
               "--out", os.path.join(tmp, "run"), "--no-progress"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        with open(peak_file) as fh:
            peak_kib = int(fh.read())
    return peak_kib / 1024, seconds  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="epochs per system (default: 3)")
    parser.add_argument("--example-repeats", type=int, default=2,
                        help="epochs of the slow loop (a) and of Pythae (default: 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, 0 = all cores (default: 0)")
    args = parser.parse_args()
    threads = set_threads(args.threads or available_cores())
    ds = load_dataset("fashion-mnist")
    full = torch.cat([ds.train.images, ds.val.images])  # all 60,000 training images (N, 1, 28, 28)
    labels = torch.cat([ds.train.labels, ds.val.labels])  # type: ignore[list-item]
    n = full.shape[0]
    full_np = full[:, 0].numpy()  # (N, 28, 28)
    print(f"one epoch = {n:,} images, batch {BATCH}, {math.ceil(n / BATCH)} steps, torch "
          f"{torch.__version__}, {threads} thread(s), load average {os.getloadavg()[0]:.2f}")

    times: dict[str, list[float]] = {"vaekit": [], "vaekit, autograd": [], "(b) matmuls": [],
                                     "(a) example loop": [], "Pythae": []}
    runs: list[tuple[str, Callable[[], float]]] = [
        ("vaekit", lambda: vaekit_epoch(full)), ("vaekit, autograd", lambda: vaekit_epoch(full, "autograd")),
        ("(b) matmuls", lambda: matmul_epoch(n))]
    vaekit_epoch(full[:5000])  # warm-up of kernels and allocator
    vaekit_epoch(full[:5000], "autograd")
    has_pythae = pythae_epoch(full_np[:1280]) is not None  # also its warm-up
    for r in range(args.repeats):
        for name, fn in runs:
            times[name].append(fn())
        if r < args.example_repeats:
            times["(a) example loop"].append(example_epoch(full[:, 0], labels))
            if has_pythae:
                times["Pythae"].append(pythae_epoch(full_np) or math.nan)
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[r]:.2f} s" for k, v in times.items() if len(v) > r)
              + f" (load average {os.getloadavg()[0]:.2f})", flush=True)
    if not has_pythae:
        del times["Pythae"]

    best = {k: min(v) for k, v in times.items()}
    print("\nOther processes on a shared machine only ever slow a round down: the best round is the figure.")
    print(f"{'system':<20} {'best s/epoch':>12} {'median':>8}")
    for k, v in times.items():
        print(f"{k:<20} {min(v):12.2f} {statistics.median(v):8.2f}")
    if not has_pythae:
        print(f"{'Pythae':<20} not installed")
    gflop = matmul_flops(n) / 1e9
    print(f"\nmatrix products: {gflop:.0f} GFLOP per epoch (the products training computes; counting "
          f"the first layer's unneeded input gradient too: {matmul_flops(n, True) / 1e9:.0f}), "
          f"{gflop / best['(b) matmuls']:.0f} GFLOP/s")
    speedup = best["(a) example loop"] / best["vaekit"]
    over = best["vaekit"] / best["(b) matmuls"]
    print(f"vaekit vs (a): {speedup:.1f}x faster (target >= 5x): {'met' if speedup >= 5 else 'NOT met'}")
    print(f"vaekit / (b):  {over:.2f}x the bound (target <= 1.5x): {'met' if over <= 1.5 else 'NOT met'}")
    print(f"vaekit's hand-derived backward vs its autograd engine: "
          f"{best['vaekit, autograd'] / best['vaekit']:.2f}x faster")
    if has_pythae:
        print(f"vaekit vs Pythae: {best['Pythae'] / best['vaekit']:.1f}x faster")
    peak, seconds = peak_memory_of_training_run()
    print(f"peak memory of `vaekit train` (Fashion-MNIST, 1 epoch + validation + checkpoint, "
          f"{seconds:.1f} s wall): {peak:.0f} MB (target < 1024 MB): {'met' if peak < 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
