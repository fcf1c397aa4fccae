"""Seconds per classifier epoch: vaekit against a plain PyTorch loop and against the compute bound.

The model is the `cnn` preset (`vaekit.classify.models.preset_layers("cnn", ...)`, built by
`Classifier`, the same initial weights for every contender), batch 128, Adam at `vaekit classify`'s
default learning rate (`ClassifierConfig().optim`; its cosine schedule moves it between epochs, not
within one), on the Fashion-MNIST training images (the train split after the
validation split: 55,000). Each contender runs `--steps` timed steps per round (after 2 untimed
warm-up steps) on the same seeded random subset of them; seconds per epoch are extrapolated:
seconds per step x ceil(N / 128) steps (430 for 55,000; the last batch has 88 images, so this
overstates an epoch by 0.07%). Measured in one process, the contenders alternated within each
round (their order reversed every other round), best and median of `--rounds`:

  vaekit        `vaekit.train.loop.train_epoch` with `ClassifierEngine` and `Labelled` batches (the
                uint8 training set indexed with a seeded permutation, x = pixel / 255), fused Adam
                (`vaekit.train.optim.make_optimizer`): what `vaekit classify` runs.
  (a) plain     the same network as an `nn.Sequential` of the torch.nn modules of the preset's layer
                text (`plain_network`: what one writes by hand; vaekit's initial weights), trained
                by the loop of pytorch/examples' `mnist/main.py` without torchvision: a Dataset whose
                `__getitem__` returns (uint8 image -> float / 255, int label), `DataLoader(batch_size
                =128, shuffle=True)` (no workers, as the example on CPU), `model.train()`, per step
                `optimizer.zero_grad()`, `F.cross_entropy`, `backward()`, `torch.optim.Adam` (its
                default, non-fused implementation) `.step()`, `loss.item()` every 10 steps.
  (a) batches   the same DataLoader iterated alone, no model: the plain loop's data cost.
  (b) bound     the convolutions and the Linear of that step alone, on random tensors of the shapes
                the model sees (found by hooks on the built model, so the bound follows the preset):
                per layer the forward (no bias), the weight gradient and, but for the first layer
                (whose input needs no gradient, which autograd skips too), the input gradient, by
                torch's own kernels (`conv2d`, `aten.convolution_backward`, `mm`). Timed with the
                tensors in the contiguous (NCHW) and in the channels_last memory format; the faster
                is the bound. No batch norm, ReLU, pooling, dropout, loss or optimizer.

Targets: vaekit >= 1.5x faster than (a); vaekit / (b) is reported, with no target.
Run: .venv/bin/python bench/classify_speed.py [--steps 20] [--rounds 3] [--threads 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.classify.config import ClassifierConfig
from vaekit.classify.data import Labelled
from vaekit.classify.loss import ClassifierEngine
from vaekit.classify.models import Classifier, preset_layers
from vaekit.data.load import load_dataset
from vaekit.device import available_cores, set_threads
from vaekit.train.loop import train_epoch
from vaekit.train.optim import make_optimizer

BATCH, PRESET, WARMUP_STEPS, LOG_INTERVAL = 128, "cnn", 2, 10


def build_model(image_shape: tuple[int, int, int], classes: int) -> Classifier:
    torch.manual_seed(0)  # the same initial weights for every contender
    return Classifier(preset_layers(PRESET, image_shape, classes), image_shape, classes)


def plain_network(model: Classifier) -> nn.Sequential:
    """The preset's layers as the torch.nn modules one writes by hand, called directly (without
    whatever vaekit's `Classifier` and its module builder do beyond torch.nn), their input sizes
    taken from vaekit's shape analysis and their initial weights and buffers from `model`."""
    modules: list[nn.Module] = []
    for row in model.rows:
        kind, p, size = row.spec.kind, dict(row.spec.params), row.input_shape[0]
        if kind == "Linear":
            modules.append(nn.Linear(size, p["out_features"], bias=p["bias"]))
        elif kind in ("Conv2d", "BatchNorm2d"):
            modules.append(getattr(nn, kind)(size, **p))
        elif kind == "Flatten":
            modules.append(nn.Flatten())
        else:
            modules.append(getattr(nn, kind)(**p))
    net = nn.Sequential(*modules)
    net.load_state_dict(model.net.state_dict())  # the same start as vaekit's (raises if they differ)
    return net


# ----------------------------------------------------------------------------- vaekit


def vaekit_step_seconds(images: Tensor, labels: Tensor, steps: int, classes: int) -> float:
    """Seconds per step of `train_epoch` over steps x BATCH images (after WARMUP_STEPS untimed ones
    on the same model and optimizer, which create Adam's state and oneDNN's primitives)."""
    model = build_model(tuple(images.shape[1:]), classes)
    optim = ClassifierConfig().optim
    optimizer = make_optimizer(model.parameters(), optim)
    engine = ClassifierEngine()
    generator = torch.Generator().manual_seed(0)
    warm = Labelled(images[: WARMUP_STEPS * BATCH], labels[: WARMUP_STEPS * BATCH])
    train_epoch(model, optimizer, engine, warm, BATCH, 1, optim, generator, 0, 1, show_bar=False)
    data = Labelled(images[: steps * BATCH], labels[: steps * BATCH])
    t0 = time.perf_counter()
    train_epoch(model, optimizer, engine, data, BATCH, 1, optim, generator, WARMUP_STEPS, 1, show_bar=False)
    return (time.perf_counter() - t0) / steps


# ----------------------------------------------------------------------------- (a) the plain loop


class ImageDataset(torch.utils.data.Dataset):
    """Images and labels one by one, as a torchvision dataset with `ToTensor()` gives them."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels  # (N, C, H, W) uint8, (N,) int64

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index].to(torch.float32).div(255), int(self.labels[index])  # (C, H, W)


def plain_step_seconds(images: Tensor, labels: Tensor, steps: int, classes: int) -> float:
    """Seconds per step of pytorch/examples' mnist `train()`, the first WARMUP_STEPS untimed."""
    model = plain_network(build_model(tuple(images.shape[1:]), classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=ClassifierConfig().optim.lr)
    torch.manual_seed(1)  # the loader's shuffle
    n = (steps + WARMUP_STEPS) * BATCH
    loader = torch.utils.data.DataLoader(ImageDataset(images[:n], labels[:n]), batch_size=BATCH, shuffle=True)
    model.train()
    log: list[str] = []  # the example prints a line every LOG_INTERVAL batches; kept, not printed
    t0 = 0.0
    for batch_idx, (data, target) in enumerate(loader):
        if batch_idx == WARMUP_STEPS:
            t0 = time.perf_counter()
        optimizer.zero_grad()
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % LOG_INTERVAL == 0:
            log.append(f"Train Epoch: 1 [{batch_idx * len(data)}/{n}]\tLoss: {loss.item():.6f}")
    return (time.perf_counter() - t0) / steps


def loader_step_seconds(images: Tensor, labels: Tensor, steps: int) -> float:
    """Seconds per batch of the plain loop's DataLoader alone."""
    torch.manual_seed(1)
    loader = torch.utils.data.DataLoader(ImageDataset(images[: steps * BATCH], labels[: steps * BATCH]),
                                         batch_size=BATCH, shuffle=True)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return (time.perf_counter() - t0) / steps


# ----------------------------------------------------------------------------- (b) the bound


@dataclass
class Product:
    """One layer's products: a Conv2d or a Linear, its input shape, whether its input needs a gradient."""

    layer: nn.Conv2d | nn.Linear
    input_shape: tuple[int, ...]
    input_grad: bool

    def macs(self) -> int:
        """Multiply-adds of the forward product of one batch (each backward product has as many)."""
        if isinstance(self.layer, nn.Linear):
            return self.input_shape[0] * self.layer.in_features * self.layer.out_features
        c = self.layer
        b, _, h, w = self.input_shape
        kh, kw = c.kernel_size
        ho = (h + 2 * c.padding[0] - c.dilation[0] * (kh - 1) - 1) // c.stride[0] + 1  # type: ignore[index]
        wo = (w + 2 * c.padding[1] - c.dilation[1] * (kw - 1) - 1) // c.stride[1] + 1  # type: ignore[index]
        return b * ho * wo * c.out_channels * (c.in_channels // c.groups) * kh * kw


def find_products(model: nn.Module, x: Tensor) -> list[Product]:
    """The Conv2d and Linear layers of `model` in the order a forward pass of x reaches them."""
    found: list[Product] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        found.append(Product(module, tuple(inputs[0].shape), inputs[0].requires_grad))  # type: ignore[arg-type]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        model.train()
        model(x)  # x needs no gradient: the first layer's input_grad is False, as in training
    finally:
        for h in handles:
            h.remove()
    return found


def product_flops(products: list[Product]) -> int:
    """FLOPs of one step's products: 2 per multiply-add, 3 products per layer (2 for the first)."""
    return sum(2 * (3 if p.input_grad else 2) * p.macs() for p in products)


def bound_runner(products: list[Product], memory_format: torch.memory_format) -> Callable[[int], float]:
    """A function of `steps` that times the forward and backward products of `steps` steps, on
    random tensors (in `memory_format` for the 4-d ones) of the model's shapes."""
    work: list[Callable[[], object]] = []
    for p in products:
        layer = p.layer
        x = torch.randn(p.input_shape)
        w = layer.weight.detach().clone()
        if isinstance(layer, nn.Conv2d):
            x, w = x.contiguous(memory_format=memory_format), w.contiguous(memory_format=memory_format)
            out = F.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
            g = torch.randn(out.shape).contiguous(memory_format=memory_format)  # (B, C_out, H_out, W_out)
            mask = [p.input_grad, True, False]  # input gradient, weight gradient, no bias

            def conv(x: Tensor = x, w: Tensor = w, layer: nn.Conv2d = layer) -> object:
                return F.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

            def conv_backward(x: Tensor = x, w: Tensor = w, g: Tensor = g, layer: nn.Conv2d = layer,
                              mask: list[bool] = mask) -> object:
                return torch.ops.aten.convolution_backward(
                    g, x, w, None, list(layer.stride), list(layer.padding),  # type: ignore[arg-type]
                    list(layer.dilation), False, [0, 0], layer.groups, mask)

            work += [conv, conv_backward]
        else:
            x = x.flatten(1)  # (B, in)
            g = torch.randn(x.shape[0], layer.out_features)  # (B, out)
            work += [lambda x=x, w=w: torch.mm(x, w.t()),  # forward (B, out)
                     lambda x=x, g=g: torch.mm(g.t(), x)]  # weight gradient (out, in)
            if p.input_grad:
                work.append(lambda g=g, w=w: torch.mm(g, w))  # input gradient (B, in)

    def run(steps: int) -> float:
        for fn in work:  # warm-up: oneDNN primitives, allocator
            fn()
        t0 = time.perf_counter()
        for _ in range(steps):
            for fn in work:
                fn()
        return (time.perf_counter() - t0) / steps

    return run


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20,
                        help="timed steps per contender and round, extrapolated to an epoch (default: 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is the figure (default: 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, 0 = all cores (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    threads = set_threads(args.threads or available_cores())
    ds = load_dataset("fashion-mnist")
    images, labels = ds.train.images, ds.train.labels  # (N, 1, 28, 28) uint8, (N,) int64
    assert labels is not None
    classes = len(ds.classes or ()) or int(labels.max()) + 1
    n = images.shape[0]
    epoch_steps = math.ceil(n / BATCH)
    if args.steps + WARMUP_STEPS > epoch_steps:
        parser.error(f"--steps must be at most {epoch_steps - WARMUP_STEPS} (one epoch has {epoch_steps}).")
    # a seeded random subset of the training set, the same for every contender
    used = (args.steps + WARMUP_STEPS) * BATCH
    subset = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:used]
    sub_images, sub_labels = images[subset], labels[subset]
    model = build_model(tuple(images.shape[1:]), classes)
    products = find_products(plain_network(model), sub_images[:BATCH].to(torch.float32).div(255))
    flops = product_flops(products)
    print(f"{PRESET} preset, {model.num_parameters():,} parameters; one epoch = {n:,} images, batch {BATCH}, "
          f"{epoch_steps} steps; torch {torch.__version__}, {threads} thread(s); {args.steps} timed steps "
          f"per contender and round, extrapolated to {epoch_steps}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)

    bound_nchw = bound_runner(products, torch.contiguous_format)
    bound_cl = bound_runner(products, torch.channels_last)
    runs: dict[str, Callable[[], float]] = {
        "vaekit": lambda: vaekit_step_seconds(sub_images, sub_labels, args.steps, classes),
        "(a) plain loop": lambda: plain_step_seconds(sub_images, sub_labels, args.steps, classes),
        "(a) batches alone": lambda: loader_step_seconds(sub_images, sub_labels, args.steps),
        "(b) bound, NCHW": lambda: bound_nchw(args.steps),
        "(b) bound, channels_last": lambda: bound_cl(args.steps),
    }
    seconds: dict[str, list[float]] = {k: [] for k in runs}  # per epoch, extrapolated
    loads: list[float] = []
    for r in range(args.rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds[name].append(runs[name]() * epoch_steps)
        loads.append(os.getloadavg()[0])
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[r]:.2f} s" for k, v in seconds.items())
              + f" (load average {loads[-1]:.2f})", flush=True)

    best = {k: min(v) for k, v in seconds.items()}
    layout = min(("NCHW", "channels_last"), key=lambda f: best[f"(b) bound, {f}"])
    bound = best[f"(b) bound, {layout}"]
    print("\nOther processes on a shared machine only ever slow a round down: the best round is the figure.")
    print(f"{'contender':<26} {'best s/epoch':>12} {'median':>8} {'ms/step':>8}")
    for k, v in seconds.items():
        print(f"{k:<26} {min(v):12.2f} {statistics.median(v):8.2f} {1e3 * min(v) / epoch_steps:8.1f}")
    print(f"(seconds per epoch extrapolated from {args.steps} steps x {epoch_steps}; "
          f"load average {min(loads):.2f}-{max(loads):.2f} over the rounds)")
    gflop = flops * epoch_steps / 1e9
    print(f"\nproducts: {gflop:.0f} GFLOP per epoch ({len(products)} layers: conv2d / linear forward, weight "
          f"and input gradient), {gflop / bound:.0f} GFLOP/s in the bound ({layout}), "
          f"{gflop / best['vaekit']:.0f} GFLOP/s of vaekit's epoch")
    speedup = best["(a) plain loop"] / best["vaekit"]
    over = best["vaekit"] / bound
    print(f"plain / vaekit: {speedup:.2f}x (target: vaekit >= 1.5x faster): "
          f"{'met' if speedup >= 1.5 else 'NOT met'}")
    print(f"vaekit / bound: {over:.2f}x the time of its convolutions and linear alone")
    print(f"the plain loop's batches alone: {best['(a) batches alone']:.2f} s per epoch, "
          f"{100 * best['(a) batches alone'] / best['(a) plain loop']:.0f}% of its best epoch")
    if args.json:
        result = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "threads": threads,
                  "preset": PRESET, "parameters": model.num_parameters(), "batch": BATCH,
                  "steps_timed": args.steps, "steps_per_epoch": epoch_steps, "rounds": args.rounds,
                  "load_average": loads, "seconds_per_epoch": seconds, "best": best,
                  "bound_layout": layout, "gflop_per_epoch": gflop,
                  "plain_over_vaekit": speedup, "vaekit_over_bound": over}
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
