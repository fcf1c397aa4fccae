"""Honest evaluation of a VAE on held-out images: -ELBO, the importance-weighted -log p(x), and
what the latent code holds.

    evaluate_model(model, x, k)   -L_k, reconstruction, KL per latent dim and latent means over many
                                  images (`vaekit.evaluate.iwae.estimate_batch`), with a progress bar
    evaluate_run(run_dir, k)      all of it on a run's test set, with the active units and the
                                  probe of `vaekit.evaluate.latents`, written to RUN_DIR/eval.json

The log-likelihood is estimated as published tables do (docs/anchors.md): each test image binarized
once with a fixed seed (for a Gaussian decoder: dequantized once, x = (pixel + u)/256, and the
-D log 256 of `vaekit.data.binarize.log_px_offset` inside log p(x|z), so that nats and bits per
dimension are those of the 8-bit images), and

    log p(x) ~ L_k(x) = log (1/k sum_{i=1..k} w_i),   w_i = p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)

(IWAE, Burda, Grosse & Salakhutdinov 2016, eq. 8), with k = 5,000, averaged over the images in nats
(and bits per dimension: nats / (D ln 2)). L_1 is the ELBO, E[L_k] <= E[L_{k+1}] <= log p(x), and
L_k -> log p(x) as k grows (IWAE theorem 1), so -L_k is an upper bound on the NLL in expectation.

Memory stays bounded whatever k and the batch size are (`vaekit.evaluate.iwae`: chunks and tiles).
Devices: the evaluation runs where the model is (`evaluate_run(device=...)`, `vaekit eval --device`
cpu | cuda | auto): each batch of images is copied there and every tensor is made there, except
the eps, which are drawn on the CPU from the seed and copied to the device, so that a seed gives
the same draws on every device. On CUDA, float32 products are computed in full float32 (TF32 off)
while `evaluate_model` runs, so that the device's numbers are the CPU's up to float rounding.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit import distributed, runs
from vaekit.config import SEED_MAX, TrainConfig
from vaekit.data.binarize import eval_images
from vaekit.data.dataset import check_limit
from vaekit.data.folder import MixedSizes
from vaekit.data.image_files import Unreadable
from vaekit.data.load import Dataset, load_configured, same_source, user_data_path, uses_data_dir
from vaekit.device import progress_bar, set_threads
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.evaluate.eval_json import REQUIRED_FIELDS as REQUIRED_FIELDS
from vaekit.evaluate.eval_json import check_eval as check_eval
from vaekit.evaluate.eval_json import check_eval_of_run as check_eval_of_run
from vaekit.evaluate.eval_json import kl_estimate_of, protocol_of
from vaekit.evaluate.eval_json import read_eval as read_eval
from vaekit.evaluate.iwae import (
    activation_elements,
    chunk_size,
    estimate_batch,
    sizing,
    skip_batch_draws,
    tile_size,
)
from vaekit.evaluate.latents import PROBE_TRAIN_IMAGES, active_units, probe_accuracy
from vaekit.train.resume import TEST_KEY, check_trained_data, sha256_of_test
from vaekit.vae.models import VAEBase
from vaekit.vae.prob import VAE, closed_form_kl, decoder_mean, noise_dim, placement

EVAL_JSON = runs.EVAL
MAX_K = 100_000  # more importance samples than this need force=True (`vaekit eval --force`)
MAX_FORCED_K = 10**9  # and none more: a billion decoder passes an image, days on any machine
CPU_MACS_PER_SECOND = 5e9  # for cost estimates only: what the IWAE evaluation of a 784-400-20 MLP
# achieves on a 2-core CPU (bench/eval_rate.py: 3.7e9 on one thread of a busy machine; small decoders
# achieve less, as the likelihood and the draws are not counted)
# the results that must be finite, in the order a sentence names the first that is not
FINITE_FIELDS = {"test_neg_elbo": "test -ELBO", "test_nll": "test -log p(x)",
                 "test_recon": "reconstruction term", "test_kl": "KL term",
                 "bits_per_dim": "bits per dimension", "mse": "reconstruction error",
                 "test_nll_stderr": "standard error of -log p(x)", "kl_per_dim": "KL per dimension",
                 "latent_mean_variance": "variance of the latent means"}


# ----------------------------------------------------------------------------- many images


@dataclass
class Evaluation:
    """Per-image results over a set of images (nats), and the latent means."""

    nll: Tensor  # (N,)
    recon: Tensor  # (N,)
    kl: Tensor  # (N,) closed form, or Monte Carlo over the k samples (`kl_per_dim` None)
    kl_per_dim: Tensor | None  # (N, D) closed form, one Gaussian layer against N(0, I)
    mu: Tensor  # (N, D)
    sq_error: Tensor  # (N,) mean over pixels of (E[x|z=mu] - x)^2
    k: int
    seconds: float

    def summary(self, pixels: int) -> dict[str, Any]:
        n = int(self.nll.shape[0])
        nll = float(self.nll.double().mean())
        kl = float(self.kl.double().mean())
        recon = float(self.recon.double().mean())
        count, variances = active_units(self.mu)
        return {
            "test_neg_elbo": recon + kl, "test_recon": recon, "test_kl": kl, "test_nll": nll,
            "k": self.k, "bits_per_dim": nll / (pixels * math.log(2.0)), "active_units": count,
            "latent_dim": int(self.mu.shape[1]), "images": n,
            "test_nll_stderr": float(self.nll.double().std() / math.sqrt(n)) if n > 1 else None,
            "kl_per_dim": None if self.kl_per_dim is None else self.kl_per_dim.double().mean(dim=0).tolist(),
            "kl_estimate": kl_estimate_of(self.kl_per_dim is not None, self.k),
            "latent_mean_variance": variances.tolist(),
            "mse": float(self.sq_error.double().mean()),
            "seconds": round(self.seconds, 3),
        }


@contextlib.contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """On a CUDA device: float32 matrix products and convolutions in float32, not TF32 (cuDNN's
    convolutions use TF32 by default, 10 bits of mantissa), restored afterwards; elsewhere nothing."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.inference_mode()
def evaluate_model(model: VAE, x: Tensor, k: int, batch_size: int = 100, seed: int = 0,
                   budget: int | None = None, progress: bool | None = None,
                   target_rows: int | None = None, world: distributed.World | None = None) -> Evaluation:
    """`estimate_batch` over float images x (N, C, H, W), batch by batch, eps from one CPU
    generator seeded with `seed` (same seed and batch size, same numbers). Also the squared error of
    the reconstruction at z = mu. `progress`: a tqdm bar of images done (None: only on a terminal).
    `budget` and `target_rows` size the chunks and tiles (None: the device's, `iwae.sizing`).

    Devices: x may be anywhere; each batch is copied to the model's device, where the results are;
    eps are drawn on the CPU (the same on every device); on CUDA in full float32 (`full_float32`).

    With a `world` of several ranks (torchrun), rank r computes batches r, r + size, ... and
    skips the others' draws (`iwae.skip_batch_draws`), so each image gets the eps one process
    gives it; the per-image results are then summed over the ranks into one table (each row is
    non-zero on one rank only: the sum is exact), and every rank holds what one process would."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if isinstance(model, nn.Module):
        model.eval()
    dtype, device = placement(model)
    with full_float32(device):
        return _evaluate_model(model, x, k, batch_size, seed, dtype, device, budget, progress, target_rows,
                               world)


def _evaluate_model(model: VAE, x: Tensor, k: int, batch_size: int, seed: int, dtype: torch.dtype,
                    device: torch.device, budget: int | None, progress: bool | None,
                    target_rows: int | None, world: distributed.World | None) -> Evaluation:
    t0 = time.perf_counter()
    own_budget, own_rows = sizing(device)
    budget = own_budget if budget is None else budget
    target_rows = own_rows if target_rows is None else target_rows
    generator = torch.Generator(device="cpu").manual_seed(seed)  # eps: drawn on the CPU, then copied
    n, pixels = x.shape[0], x[0].numel()
    b = min(batch_size, n)
    d, e = model.latent_dim, noise_dim(model)
    dk = d if closed_form_kl(model) else 0  # columns of the closed-form KL per dimension
    chunk = chunk_size(k, b, e, budget)
    tile = tile_size(b, pixels, activation_elements(model, d), budget, target_rows=target_rows)
    parts: list[Tensor] = []  # one table (b, 4 + dk + d) per batch
    with progress_bar(n, f"eval k={k}", "img", progress, dynamic_ncols=True) as bar:
        for i, start in enumerate(range(0, n, b)):
            count = min(b, n - start)
            if world is not None and i % world.size != world.rank:
                skip_batch_draws(k, count, e, generator, chunk)
                parts.append(torch.zeros((count, 4 + dk + d), dtype=dtype, device=device))
                continue
            xb = x[start : start + b].to(device)
            est = estimate_batch(xb, model, k, generator=generator, chunk=chunk, tile=tile)
            mean = decoder_mean(model.decode(est.mu)).reshape(xb.shape[0], -1)
            sq = (mean - xb.reshape(xb.shape[0], -1)).pow(2).mean(dim=1)
            per_dim = est.kl_per_dim if est.kl_per_dim is not None else est.mu[:, :0]
            parts.append(torch.cat([est.nll[:, None], est.recon[:, None], est.kl[:, None], sq[:, None],
                                    per_dim, est.mu], dim=1))
            bar.update(xb.shape[0])
    table = torch.cat(parts)  # (N, 4 + dk + d): nll, recon, kl, sq, kl per dim, mu
    if world is not None:  # the process group is gloo's: the sum goes through the CPU
        table = world.all_reduce(table.cpu()).to(device)
    nll, recon, kl, sq, kl_per_dim, mu = table.split([1, 1, 1, 1, dk, d], dim=1)
    return Evaluation(nll[:, 0], recon[:, 0], kl[:, 0], kl_per_dim if dk else None, mu, sq[:, 0], k=k,
                      seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------- a run


def load_test_set(run_dir: str | Path, dataset: str | None = None, data_dir: str | None = None,
                  limit: int | None = None, device: str | torch.device = "cpu",
                  ) -> tuple[VAEBase, TrainConfig, Tensor, Tensor | None, Dataset]:
    """(model, config, x, labels, dataset) for a run: its model on `device` (`runs.load_run`), its
    test images as the model sees them (binarized once on the CPU with the evaluation seed, or
    continuous), the first `limit`, on the CPU; its own data changed since training is refused."""
    run = runs.load_run(run_dir, "vae", device)
    model, config = run.model, run.config
    name = dataset or config.data.name
    # the run's data directory belongs to its own set: not carried to one that uses none (--dataset)
    place = data_dir if data_dir is not None else config.data.data_dir if uses_data_dir(name) else None
    own = same_source(name, config.data.name)  # the run's data, split as trained on (the same test set)
    split = config.data.val_size if own else None
    data = replace(config.data, name=name, data_dir=place, val_size=split)
    try:  # the run's own data read as the run reads it, with its sentences for a folder changed since
        ds = runs.load_run_data(data, Path(run_dir)) if own else load_configured(data)
    except Unreadable as err:  # other data; eval and report have no --skip-bad
        raise err.advising(f"remove it from {name} first (eval and report read every file of a "
                           "folder)") from None
    except MixedSizes as err:  # other data; eval and report have no --image-size
        size = "x".join(map(str, (config.model.image_shape or [0, 0, 0])[1:]))
        raise DataError(f"{err.said}, but the model of {run_dir} takes images of {size}: eval and report "
                        f"read other data at its own size, so give every image of {name} that size "
                        "first.") from None
    if own:
        check_trained_data(Path(run_dir), ds, name, f"evaluate other data with `vaekit eval {run_dir} "
                           "--dataset DATA`" if dataset is None else "give --dataset a copy of it at another "
                           "path, which is read as other data")  # the run's own path: its own data
    expected = tuple(config.model.image_shape or ())
    if ds.image_shape != expected:
        c, h, w = ds.image_shape
        raise DataError(
            f"{name} has images of {c}x{h}x{w} (channels x height x width) but the model of {run_dir} "
            f"was trained on {'x'.join(map(str, expected))} images of {config.data.name}."
        )
    images, labels = ds.test.images, ds.test.labels
    check_limit(limit, len(images), name)
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    return model, config, eval_images(images, config.resolved_binarize()), labels, ds


def evaluate_run(run_dir: str | Path, k: int = 5000, limit: int | None = None, batch_size: int = 100,
                 seed: int = 0, data_dir: str | None = None, dataset: str | None = None,
                 progress: bool | None = None, probe: bool = True, write: bool = True,
                 threads: int = 0, force: bool = False, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Evaluate a run's best model on its test set and write RUN_DIR/eval.json.

    Fields (nats per image): test_neg_elbo, test_recon, test_kl, test_nll (-L_k), k, bits_per_dim
    (of test_nll), active_units, latent_dim, images; and kl_per_dim, mse, probe_accuracy, seconds,
    model_sha256 and the protocol (dataset; data_source, the absolute path of a user's file
    or folder, else null; test_sha256, the SHA-256 of its test split, `sha256_of_test`;
    binarization, seeds). `threads`: torch CPU threads, 0 =
    the cores other processes leave idle (`vaekit.device.choose_threads`: all of them on a quiet
    machine); the previous setting is restored afterwards. `device`: where the model and the
    images are and the evaluation computes, cpu, cuda or auto (cuda where torch sees one); eps are
    drawn on the CPU from the seed and copied there, so a seed gives the same draws on every device
    (eval.json `device` says which one). More than MAX_K importance samples need `force` (the
    cost is said, on stderr before it runs), which fewer refuse; more than MAX_FORCED_K none take.
    With `write`, the run directory is held for writing (`runs.locked`) from the first read of the
    model to the write of eval.json: not while it trains."""
    if not 1 <= k <= MAX_FORCED_K:
        raise ConfigError(f"--k must be 1 to {MAX_FORCED_K:,} importance samples (more than {MAX_K:,} with "
                          f"--force), got {k:,}.")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 image, got {limit}.")
    if force and k <= MAX_K:
        raise ConfigError(f"--force allows more than {MAX_K:,} importance samples; --k {k:,} needs no "
                          "--force, so leave it out.")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}.")
    if threads < 0:
        raise ConfigError(f"--threads must be 0 (idle cores) or more, got {threads}.")
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"--seed must be an integer in [0, {SEED_MAX}], got {seed}.")
    where = runs.device_named(device)
    run_dir = Path(run_dir)
    w = distributed.world()  # under torchrun: the images split over the ranks, rank 0 writes
    if w is not None and not w.writer:
        write, probe, progress = False, False, False
    with runs.locked(run_dir) if write else contextlib.nullcontext():
        return _evaluate_run(run_dir, k, limit, batch_size, seed, data_dir, dataset, progress, probe,
                             write, threads, force, where)


def decoder_macs(model: VAE, images: int, k: int) -> int:
    """Multiply-adds of decoding k latents for each of `images` images: the decoder's parameters once
    per latent (a lower bound: the likelihood, the log-weights and the draws come on top)."""
    return images * k * sum(p.numel() for p in getattr(model, "p_dec", model).parameters())  # type: ignore[union-attr]


def _cost(model: VAE, images: int, k: int) -> str:
    latents = images * k
    macs = decoder_macs(model, images, k)
    seconds = macs / CPU_MACS_PER_SECOND
    took = (f"{seconds:,.1f} seconds" if seconds < 60 else f"{seconds / 60:,.1f} minutes" if seconds < 3600
            else f"{seconds / 3600:,.1f} hours")
    return (f"{latents:,} decoder passes, about {macs:.1e} multiply-adds (an estimate: ~{took} at "
            f"{CPU_MACS_PER_SECOND:.0e} per second, longer on a busy machine or with a small decoder)")


def _evaluate_run(run_dir: Path, k: int, limit: int | None, batch_size: int, seed: int,
                  data_dir: str | None, dataset: str | None, progress: bool | None, probe: bool,
                  write: bool, threads: int, force: bool, device: torch.device) -> dict[str, Any]:
    w = distributed.world()
    model, config, x, labels, ds = load_test_set(run_dir, dataset, data_dir, limit, device)
    if k > MAX_K:
        images = f"{x.shape[0]:,} image" + ("s" if x.shape[0] != 1 else "")
        cost = f"k = {k:,} importance samples on {images} would take {_cost(model, x.shape[0], k)}"
        if not force:
            raise ConfigError(f"{cost}; pass --force to run it anyway, or a k of at most {MAX_K:,}.")
        print(f"vaekit eval: {cost}; running it, as --force asks.", file=sys.stderr, flush=True)
    fingerprint = runs.model_fingerprint(run_dir)
    if write:  # a user's eval.json, a directory that takes no file: said before the minutes of evaluation
        runs.check_eval_replaceable(run_dir, "vaekit eval")
    previous = torch.get_num_threads()
    threads = set_threads(threads)
    try:
        ev = evaluate_model(model, x, k, batch_size, seed, progress=progress, world=distributed.world())
    finally:
        torch.set_num_threads(previous)
    result = ev.summary(x[0].numel())
    check_finite(result, run_dir / runs.MODEL)
    result.update({
        "dataset": ds.name, "data_source": user_data_path(dataset or config.data.name),
        **protocol_of(config.resolved_binarize()),
        "seed": seed, "batch_size": batch_size, "threads": threads, "model_sha256": fingerprint,
        "probe_accuracy": None, "probe_train_images": None, "world_size": 1 if w is None else w.size,
        "device": str(device), TEST_KEY: sha256_of_test(ds),
    })
    if probe and labels is not None and ds.train.labels is not None and len(set(labels.tolist())) > 1:
        result.update(_probe(model, config, ds, ev.mu, labels, seed))
    if write:
        runs.write_eval(run_dir, result, "vaekit eval")
    return result


def check_finite(result: dict[str, Any], model_path: Path) -> None:
    """Every number of `FINITE_FIELDS` in an evaluation is finite: a model whose weights overflow on
    the test images is a CheckpointError naming its file, never an eval.json of inf and NaN."""
    for field, words in FINITE_FIELDS.items():
        value = result.get(field)
        values = value if isinstance(value, list) else [] if value is None else [value]
        bad = next((v for v in values if not math.isfinite(v)), None)
        if bad is not None:
            raise CheckpointError(f"{model_path}: the model's {words} is not finite ({bad}): its "
                                  "weights overflow on the test images, so it is not evaluated; train "
                                  "the run again.")


def _probe(model: VAE, config: TrainConfig, ds: Dataset, test_mu: Tensor, test_labels: Tensor,
           seed: int) -> dict[str, Any]:
    """Fit the probe on the latent means of a seeded subsample of the (labelled) training split."""
    assert ds.train.labels is not None
    n = len(ds.train)
    g = torch.Generator(device="cpu").manual_seed(seed)
    index = torch.randperm(n, generator=g, device="cpu")[:PROBE_TRAIN_IMAGES].sort().values
    if len(set(ds.train.labels[index].tolist())) < 2:  # a classifier needs two classes to separate
        return {"probe_accuracy": None, "probe_train_images": None}
    x = eval_images(ds.train.images[index], config.resolved_binarize())
    device = placement(model)[1]
    with torch.inference_mode():
        mu = torch.cat([model.encode(x[i : i + 1000].to(device))[0] for i in range(0, x.shape[0], 1000)])
    acc = probe_accuracy(mu, ds.train.labels[index], test_mu, test_labels, seed)
    return {"probe_accuracy": acc, "probe_train_images": int(index.shape[0])}
