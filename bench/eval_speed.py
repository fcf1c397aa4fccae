"""Seconds for the published evaluation: IWAE with k = 5,000 over the 10,000 test images, against
the matrix-product bound of the same work.

The model is the trainer's default MLP VAE (784-400-20-400-784, ReLU, Bernoulli), with random
weights (the work does not depend on them) or a trained run's weights with `--run RUN_DIR`. Test
images: Fashion-MNIST's test set, binarized once with the fixed seed (random binary images if the
dataset is not on this machine). Measured in the same process, interleaved batch by batch (so that
other processes on a shared machine slow all rows alike), best of `--repeats` per batch:

  vaekit   `vaekit.evaluate.run.evaluate_model` (encoder once per batch, k samples decoded in chunks,
           log p(x|z), running logsumexp, plus the reconstruction at z = mu).
  bound    the matrix products of the same work alone, on random inputs of the same shapes and the
           model's own weights: per batch, the encoder's linear layers on the batch, and the
           decoder's linear layers on k * batch latents, with no activation, no likelihood, no
           logsumexp. Timed with the evaluator's rows per call and with 16,384 rows per call; the
           faster of the two is the bound.

With an autoregressive decoder (`--autoregressive UNITS` on the default model, or a run that has
one), the bound also holds its products: the pixel part (M1 . W) x once per image, U z and
(M2 . V) r for every latent (`vaekit.vae.autoregressive`, dense as the evaluator runs them).

With `--images N` < 10,000 both are timed on the first N images and extrapolated linearly to 10,000
(labelled as such). Target: vaekit within 1.5x of the bound.
Run: .venv/bin/python bench/eval_speed.py [--images 500] [--repeats 2] [--threads N] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.config import TrainConfig
from vaekit.data.binarize import eval_images
from vaekit.device import set_threads
from vaekit.evaluate import iwae
from vaekit.evaluate import run as ev
from vaekit.runs import load_run
from vaekit.vae.models import build_model

FULL_TEST = 10_000


def default_model(autoregressive: int = 0) -> Any:
    config = TrainConfig()
    config.model.image_shape = [1, 28, 28]
    config.model.autoregressive = autoregressive
    torch.manual_seed(0)
    return build_model(config).eval()


def test_images(config: TrainConfig | None, n: int) -> tuple[torch.Tensor, str]:
    from vaekit.data.load import load_dataset
    from vaekit.errors import DataError

    config = config or TrainConfig()
    try:
        ds = load_dataset(config.data.name, config.data.data_dir, download=False)
        x = eval_images(ds.test.images[:n], config.resolved_binarize())
        return x, f"{ds.name} test set, fixed binarization"
    except DataError:
        g = torch.Generator().manual_seed(0)
        return torch.bernoulli(torch.full((n, 1, 28, 28), 0.3), generator=g), "random binary images"


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def per_image_linears(model: Any) -> list[nn.Linear]:
    """The products run once per image: the encoder's, and an autoregressive decoder's pixel part."""
    ar = getattr(model, "p_ar", None)
    return linears(model.q_enc) + [model.q_mu, model.q_logvar] + ([ar.x_in] if ar is not None else [])


def per_latent_linears(model: Any) -> list[nn.Linear]:
    """The products run for every latent: the decoder's, and an autoregressive decoder's U z and V r."""
    ar = getattr(model, "p_ar", None)
    return linears(model.p_dec) + ([ar.z_in, ar.out] if ar is not None else [])


@torch.inference_mode()
def matmul_bound(model: Any, n_images: int, k: int, batch: int, rows_per_call: int) -> float:
    """Seconds of the linear layers' products alone for the work of evaluating n_images with k."""
    enc, dec = per_image_linears(model), per_latent_linears(model)
    g = torch.Generator().manual_seed(0)
    enc_in = {id(m): torch.randn(batch, m.in_features, generator=g) for m in enc}
    dec_in = {id(m): torch.randn(rows_per_call, m.in_features, generator=g) for m in dec}
    total_rows = k * batch
    t0 = time.perf_counter()
    for start in range(0, n_images, batch):
        b = min(batch, n_images - start)
        for m in enc:
            F.linear(enc_in[id(m)][:b], m.weight, m.bias)
        rows = total_rows if b == batch else k * b
        for r0 in range(0, rows, rows_per_call):
            r = min(rows_per_call, rows - r0)
            for m in dec:
                F.linear(dec_in[id(m)][:r], m.weight, m.bias)
    return time.perf_counter() - t0


def flops(model: Any, n_images: int, k: int) -> float:
    per_image = sum(2 * m.in_features * m.out_features for m in per_image_linears(model))
    per_sample = sum(2 * m.in_features * m.out_features for m in per_latent_linears(model))
    return n_images * (per_image + k * per_sample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=FULL_TEST, help="test images timed (default: 10000)")
    ap.add_argument("--k", type=int, default=5000, help="importance samples (default: 5000)")
    ap.add_argument("--batch-size", type=int, default=100, help="images per batch (default: 100)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repetitions (default: 1)")
    ap.add_argument("--rows", type=int, default=iwae.TARGET_ROWS,
                    help=f"latents decoded per call by the evaluator (default: {iwae.TARGET_ROWS})")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads, 0 = the cores other processes leave idle (default: 0)")
    ap.add_argument("--run", help="a run directory: time its trained model (default: random weights)")
    ap.add_argument("--autoregressive", type=int, default=0, metavar="UNITS",
                    help="the default model with an autoregressive decoder of UNITS masked units "
                    "(default: 0)")
    args = ap.parse_args()

    threads = set_threads(args.threads)
    config = None
    model: Any
    if args.run:
        run = load_run(args.run)
        model, config = run.model, run.config
    else:
        model = default_model(args.autoregressive)
    x, source = test_images(config, args.images)
    n, k, b = x.shape[0], args.k, args.batch_size
    tile = iwae.tile_size(b, x[0].numel(), iwae.activation_elements(model, model.latent_dim),
                        target_rows=args.rows)
    sizes = [linears(model.q_enc)[0].in_features] + [m.out_features for m in linears(model.q_enc)]
    sizes.append(model.latent_dim)
    weights = "run " + args.run if args.run else "random weights"
    ar = getattr(model, "p_ar", None)
    decoder = f" with an autoregressive decoder of {ar.units} units" if ar is not None else ""
    print(f"model: {'-'.join(map(str, sizes))} MLP VAE{decoder} ({weights}), {threads} threads; {n:,} images "
          f"({source}); k = {k:,}; batch {b}, {tile} samples = {tile * b:,} latents per decoder call")
    scale = FULL_TEST / n
    work = flops(model, n, k)
    names = ("vaekit", "bound (evaluator's rows)", "bound (16384 rows)")
    per_batch: dict[str, list[float]] = {name: [] for name in names}  # seconds, one entry per batch
    nll_sum = 0.0
    t_start = time.perf_counter()
    for i, start in enumerate(range(0, n, b)):  # interleaved batch by batch: other load hits all rows
        xb = x[start : start + b]
        m = xb.shape[0]
        best = dict.fromkeys(names, math.inf)
        for _ in range(args.repeats):
            best["bound (evaluator's rows)"] = min(best["bound (evaluator's rows)"],
                                                   matmul_bound(model, m, k, b, tile * b))
            t0 = time.perf_counter()
            result = ev.evaluate_model(model, xb, k, batch_size=b, seed=i, progress=False,
                                       target_rows=args.rows)
            best["vaekit"] = min(best["vaekit"], time.perf_counter() - t0)
            best["bound (16384 rows)"] = min(best["bound (16384 rows)"], matmul_bound(model, m, k, b, 16384))
        nll_sum += float(result.nll.sum())
        for name in names:
            per_batch[name].append(best[name])
        if (i + 1) % 10 == 0 or start + b >= n:
            done = min(start + b, n)
            print(f"{done:6,} images, {time.perf_counter() - t_start:7.1f} s: " + ", ".join(
                f"{name} {sum(t):.1f} s" for name, t in per_batch.items()), flush=True)
    total = {name: sum(t) for name, t in per_batch.items()}
    bound_name = min(names[1:], key=lambda name: total[name])
    ratios = [v / w for v, w in zip(per_batch["vaekit"], per_batch[bound_name], strict=True)]
    label = "" if n == FULL_TEST else f"   (extrapolated x{scale:g} from {n:,} images)"
    print(f"\nmean -L_k over these images: {nll_sum / n:.2f} nats")
    print(f"work: {work / 1e12:.2f} TFLOP of matrix products for {n:,} images")
    print(f"seconds for the 10,000 test images{label}, best of {args.repeats} per batch:")
    for name in names:
        print(f"  {name:26s} {total[name] * scale:8.1f} s   {work / total[name] / 1e9:6.1f} GFLOP/s")
    print(f"  ratio vaekit / bound       {total['vaekit'] / total[bound_name]:8.2f}x   (target <= 1.5x); "
          f"per batch: median {statistics.median(ratios):.2f}x, "
          f"min {min(ratios):.2f}x, max {max(ratios):.2f}x")

if __name__ == "__main__":
    main()
