"""Training loop of the sheet's VAE (Ex.2 Q6: "any gradient descent algorithm"), as plain functions.

    fit(config, out_dir)      a whole run: data, model, optimizer, epochs, checkpoints, resume
    train_epoch(...)          one pass over the training images
    validate(model, x)        -ELBO, reconstruction and KL on fixed images, in nats per image

The training set stays in memory as one uint8 tensor (N, C, H, W) on the device; each batch is
indexed from it with a seeded permutation, scaled to [0, 1] and binarized afresh,
x ~ Bernoulli(pixel/255) (dynamic binarization). No DataLoader, no per-image Python objects.
Gradients come from `vaekit.mlp_backprop` (the MLP VAE's loss differentiated by hand) where it
applies and `engine` is 'auto', from autograd on `vaekit.prob` otherwise; Adam(W) steps go
straight to torch's fused kernel (`vaekit.adam_step`).
Every random draw of training (permutation, binarization, eps) comes from one `torch.Generator`
seeded with the run's seed, whose state goes into each checkpoint: a resumed run redraws exactly
what an uninterrupted one would, and ends with the same weights (same seed, CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from vaekit import mlp_backprop, runs
from vaekit.adam_step import fused_adam_step
from vaekit.config import RESUMABLE_CHANGES, LoopConfig, OptimConfig, TrainConfig, differences
from vaekit.config import validate as validate_config
from vaekit.data import Dataset, fixed_binarization, load_dataset, prepare
from vaekit.errors import CheckpointError, ConfigError, VaekitError
from vaekit.models import VAEBase, build_model
from vaekit.prob import Terms, negative_elbo, negative_iwae
from vaekit.threads import set_threads

VAL_BINARIZATION_SEED = 0  # validation (and test) images are binarized once, with this seed
VAL_EPS_SEED = 0  # eps of the validation -ELBO: the same draws each epoch, so epochs compare
VAL_BATCH = 1000
BASELINE_DECAY = 0.9  # score estimator: baseline <- 0.9 baseline + 0.1 mean reconstruction


class DivergenceError(VaekitError):
    """The loss became NaN or infinite."""


@dataclass
class Progress:
    """What a checkpoint must carry besides tensors to resume exactly."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best validation -ELBO (early stopping)
    baseline: float | None = None  # score estimator's moving-average baseline
    stopped: str | None = None  # why the run ended early, if it did


# ----------------------------------------------------------------------------- pieces


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device here.")
    return torch.device(name)


def make_optimizer(params: Any, cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    """adam | adamw | sgd (with momentum) | rmsprop. Adam(W) uses the fused kernel (one op for all
    parameters; CPU and CUDA since torch 2.4), the others the multi-tensor `foreach` path."""
    if cfg.name in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=True)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, foreach=True)
    raise ConfigError(f"unknown optimizer {cfg.name!r}; valid values are adam, adamw, sgd, rmsprop.")


def lr_at(epoch: int, cfg: OptimConfig, epochs: int) -> float:
    """Learning rate of epoch `epoch` (0-based), a function of the epoch alone (so resume is exact):

    none:   lr
    cosine: lr * (1 + cos(pi * epoch / epochs)) / 2   (Loshchilov & Hutter, SGDR, eq. 5, no restart)
    step:   lr * gamma ** floor(epoch / step_size)
    """
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (epoch // cfg.step_size)
    return cfg.lr


def beta_at(step: int, steps_per_epoch: int, loop: LoopConfig) -> float:
    """KL weight at optimizer step `step` (0-based): a linear warm-up from 0 to beta over `warmup`
    epochs (Bowman et al. 2016, "Generating sentences from a continuous space", KL annealing;
    Sonderby et al. 2016), then beta."""
    if loop.warmup <= 0:
        return loop.beta
    return loop.beta * min(1.0, (step + 1) / (loop.warmup * steps_per_epoch))


def binarize_batch(pixels: Tensor, generator: torch.Generator) -> Tensor:
    """Dynamic binarization of a uint8 batch: x = 1[r < 65536 pixel/255 - 32768.5] with r uniform
    on the 65,536 16-bit integers [-32768, 32767], so that

        P(x = 1) = round(65536 pixel / 255) / 65536,

    within 2^-17 (7.6e-6) of Bernoulli(pixel / 255), and exact for pixel 0 (never) and 255 (always):
    the same law as `data.binarize` up to that resolution (a float32 uniform has 2^-24), other draws.

    Four pixels' draws come from one 64-bit draw of the generator (`random_` over the full int64
    range, viewed as four int16): 4x fewer calls to torch's Mersenne Twister than `torch.rand`, the
    single-threaded part of a step. About 2x faster than a float uniform and 10x faster than
    `torch.bernoulli(pixel / 255)` on a CPU (docs/benchmarks.md).
    """
    bits = random_int16(pixels.numel(), generator, pixels.device).view(pixels.shape)
    threshold = (pixels * (65536 / 255)).sub_(32768.5)  # float32; the count of r below it is exact
    return torch.lt(bits, threshold, out=torch.empty(pixels.shape, device=pixels.device))


def random_int16(n: int, generator: torch.Generator, device: torch.device | None = None) -> Tensor:
    """n independent uniform draws on the int16 range, from ceil(n/4) 64-bit draws of `generator`."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # uniform over all 2^64 values
    return words.view(torch.int16)[:n]


def batch_terms(x: Tensor, model: VAEBase, loop: LoopConfig, beta: float, generator: torch.Generator,
                baseline: float | None) -> Terms:
    """The per-image terms of the chosen objective on one batch."""
    if loop.objective == "iwae":
        return negative_iwae(x, model, k=loop.samples, generator=generator)
    if loop.estimator == "score":
        from vaekit.estimators import score_negative_elbo  # written alongside; imported on use

        return score_negative_elbo(x, model, k=loop.samples, beta=beta, baseline=baseline,
                                   generator=generator)
    return negative_elbo(x, model, k=loop.samples, beta=beta, free_bits=loop.free_bits,
                         generator=generator)


# ----------------------------------------------------------------------------- epochs


def train_epoch(model: VAEBase, optimizer: torch.optim.Optimizer, images: Tensor, mode: str,
                config: TrainConfig, generator: torch.Generator, progress: Progress,
                show_bar: bool | None = None) -> dict[str, float]:
    """One epoch over `images` (uint8 (N, C, H, W)); updates `progress.step` and the baseline.

    Returns means per image of the loss, -ELBO, reconstruction and KL over the epoch. Sums stay on
    the device during the epoch (no host round-trip per step beyond the finiteness check).
    """
    loop, clip = config.train, config.optim.clip
    model.train()
    n, batch = images.shape[0], loop.batch_size
    steps = math.ceil(n / batch)
    epoch = progress.epoch + 1
    perm = torch.randperm(n, generator=generator, device=images.device)
    sums = torch.zeros(4, dtype=torch.float64, device=images.device)  # loss, -ELBO, recon, KL
    params = [p for p in model.parameters() if p.requires_grad]
    check_every = 1 if images.device.type == "cpu" else 50  # host sync per check on a GPU
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{loop.epochs}", unit="batch", leave=False,
               disable=None if show_bar is None else not show_bar,  # None: only on a terminal
               dynamic_ncols=True)
    by_hand = loop.engine == "auto" and mlp_backprop.supports(model, loop)
    seen = 0
    for i in range(steps):
        index = perm[i * batch : (i + 1) * batch]
        pixels = images.index_select(0, index)  # (b, C, H, W) uint8
        x = binarize_batch(pixels, generator) if mode == "dynamic" else prepare(pixels, mode)
        beta = beta_at(progress.step, steps, loop)
        if by_hand:  # the same loss and gradients as below, derived by hand (vaekit.mlp_backprop)
            eps = torch.randn((x.shape[0], model.latent_dim), generator=generator, device=x.device)
            batch_sums = mlp_backprop.backprop(model, x, eps, beta, loop.free_bits)  # type: ignore[arg-type]
            loss = batch_sums[0] / x.shape[0]
        else:
            terms = batch_terms(x, model, loop, beta, generator, progress.baseline)
            loss = terms.loss.mean()
        if i % check_every == 0 or i == steps - 1:
            value = float(loss.detach())
            if not math.isfinite(value):
                bar.close()
                raise DivergenceError(
                    f"the loss became {value} at epoch {epoch}, step {i + 1} of {steps}; training "
                    f"stopped and the last good checkpoint (epoch {progress.epoch}) is kept: try a "
                    "lower --lr or --clip."
                )
        if not by_hand:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                batch_sums = torch.stack([terms.loss.sum(), terms.neg_elbo.sum(), terms.recon.sum(),
                                          terms.kl.sum()])
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        fused_adam_step(optimizer)  # optimizer.step(), minus its Python bookkeeping for Adam(W)
        progress.step += 1
        sums += batch_sums
        seen += x.shape[0]
        if loop.estimator == "score":
            r = terms.recon.detach().mean().item()
            progress.baseline = r if progress.baseline is None else (
                BASELINE_DECAY * progress.baseline + (1 - BASELINE_DECAY) * r)
        if not bar.disable and (i % 20 == 19 or i == steps - 1):
            m = (sums / seen).tolist()
            bar.set_postfix_str(f"-ELBO {m[1]:.2f} recon {m[2]:.2f} KL {m[3]:.2f}", refresh=False)
            bar.update(i + 1 - bar.n)
    bar.close()
    loss_m, neg_elbo, recon, kl = (sums / n).tolist()
    return {"train_loss": loss_m, "train_neg_elbo": neg_elbo, "train_recon": recon, "train_kl": kl}


@torch.inference_mode()
def validate(model: VAEBase, x: Tensor, batch_size: int = VAL_BATCH, k: int = 1,
             seed: int = VAL_EPS_SEED) -> dict[str, float]:
    """Mean -ELBO, reconstruction and KL (nats per image) of float images `x` (N, C, H, W), with k
    reparameterized samples drawn from a generator seeded with `seed` (the same eps each call)."""
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        terms = negative_elbo(x[start : start + batch_size], model, k=k, generator=generator)
        sums += torch.stack([terms.neg_elbo.sum(), terms.recon.sum(), terms.kl.sum()])
    neg_elbo, recon, kl = (sums / x.shape[0]).tolist()
    return {"neg_elbo": neg_elbo, "recon": recon, "kl": kl}


def eval_images(images: Tensor, config: TrainConfig) -> Tensor:
    """Validation/test images as the model sees them: binarized once with a fixed seed when the run
    is binary (the published-NLL protocol, docs/anchors.md), else scaled to [0, 1]."""
    if config.resolved_binarize() == "none":
        return prepare(images, "none")
    return fixed_binarization(images, VAL_BINARIZATION_SEED)


# ----------------------------------------------------------------------------- a run


def _check_out_dir(out: Path, resume: bool) -> None:
    if resume:
        if not out.is_dir():
            raise CheckpointError(f"{out}: no such run directory to resume.")
        return
    if (out / runs.CHECKPOINT).exists():
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or another --out.")
    if (out / runs.CONFIG).exists():
        raise ConfigError(f"{out} holds a run that never finished an epoch (no checkpoint to resume); "
                          "delete it or choose another --out.")


def _load_resume_state(out: Path, config: TrainConfig) -> tuple[dict, dict, dict]:
    old = runs.read_config(out)
    changed = [d for d in differences(old, config) if d not in RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(
            f"{out} was trained with a different config ({', '.join(changed)} differ); --resume only "
            f"allows changing {', '.join(RESUMABLE_CHANGES)}."
        )
    return runs.load_checkpoint(out)


def fit(config: TrainConfig, out_dir: str | Path, resume: bool = False, show_bar: bool | None = None,
        log: Callable[[str], None] = print, dataset: Dataset | None = None) -> dict[str, Any]:
    """Train a run in `out_dir` (runs/NAME/), or resume it up to `config.train.epochs`.

    Everything that can fail on user input (config, data, checkpoint) is checked before the first
    byte is written. Returns a summary: best validation -ELBO and its epoch, epochs done, stop reason.
    """
    validate_config(config)
    out = Path(out_dir)
    _check_out_dir(out, resume)
    loop = config.train
    ds = dataset if dataset is not None else load_dataset(config.data.name, config.data.data_dir)
    shape = list(ds.image_shape)
    if config.model.image_shape is not None and list(config.model.image_shape) != shape:
        raise ConfigError(f"the model was built for images {config.model.image_shape}, but "
                          f"{config.data.name} has images {shape}.")
    config.model.image_shape = shape
    saved = _load_resume_state(out, config) if resume else None

    device = resolve_device(loop.device)
    kept = saved[2].get("threads") if saved is not None and loop.threads == 0 else None
    threads = set_threads(kept if isinstance(kept, int) and kept > 0 else loop.threads)
    torch.manual_seed(loop.seed)  # the initial weights
    model = build_model(config).to(device)
    optimizer = make_optimizer(model.parameters(), config.optim, device)
    generator = torch.Generator(device=device).manual_seed(loop.seed)
    progress = Progress()
    if saved is not None:
        model_t, optim_t, state = saved
        runs.load_weights(model, model_t, out / runs.CHECKPOINT)
        try:
            optimizer.load_state_dict(runs.optimizer_from_flat(optim_t, state["optimizer"]))
            generator.set_state(runs.decode_bytes(state["rng"]["generator"]))
            torch.set_rng_state(runs.decode_bytes(state["rng"]["torch"]))
            progress = Progress(**state["progress"])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{out / runs.CHECKPOINT}: the optimizer or RNG state cannot be "
                                  f"restored ({err}).") from None
        if progress.stopped:
            log(f"{out}: the run already ended at epoch {progress.epoch} ({progress.stopped}).")
            return _summary(out, progress)
        if progress.epoch >= loop.epochs:
            log(f"{out}: already trained for {progress.epoch} epochs (--epochs {loop.epochs}); "
                "nothing to do.")
            return _summary(out, progress)

    mode = config.resolved_binarize()
    train_images = ds.train.images.to(device)
    if mode == "fixed":  # one draw for the whole run, kept as uint8 {0, 255}
        train_images = (fixed_binarization(ds.train.images, loop.seed) * 255).to(torch.uint8).to(device)
        mode = "none"
    val_x = eval_images(ds.val.images, config).to(device)

    out.mkdir(parents=True, exist_ok=True)
    runs.write_config(out, config)
    if saved is not None:
        runs.truncate_metrics(out, progress.epoch)
    log(f"{type(model).__name__} {model.num_parameters():,} parameters | {ds.name} "
        f"{len(ds.train):,} train / {len(ds.val):,} val, x: {config.resolved_binarize()} | "
        f"{device.type}, {threads} thread{'s' if threads > 1 else ''}"
        + (" (auto: the idle cores)" if loop.threads == 0 and device.type == "cpu" else "") + f" | {out}"
        + (f" | resuming after epoch {progress.epoch}" if saved is not None else ""))

    for epoch in range(progress.epoch + 1, loop.epochs + 1):
        lr = lr_at(epoch - 1, config.optim, loop.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        stats = train_epoch(model, optimizer, train_images, mode, config, generator, progress, show_bar)
        seconds = time.perf_counter() - t0
        val = validate(model, val_x)
        progress.epoch = epoch
        improved = val["neg_elbo"] < progress.best_val
        if improved:
            progress.best_val, progress.best_epoch, progress.bad_epochs = val["neg_elbo"], epoch, 0
            runs.save_model(out / runs.MODEL, model)
        else:
            progress.bad_epochs += 1
        if loop.patience and progress.bad_epochs >= loop.patience:
            progress.stopped = f"early stopping: no better validation -ELBO for {loop.patience} epochs"
        row = {"epoch": epoch, "step": progress.step, **stats, "val_neg_elbo": val["neg_elbo"],
               "val_recon": val["recon"], "val_kl": val["kl"], "epoch_seconds": round(seconds, 4),
               "lr": lr, "beta": beta_at(progress.step - 1, math.ceil(len(ds.train) / loop.batch_size),
                                         loop)}
        runs.append_metrics(out, row)
        state = {"epoch": epoch, "progress": asdict(progress), "config": config.to_dict(),
                 "threads": threads,
                 "rng": {"generator": runs.encode_bytes(generator.get_state()),
                         "torch": runs.encode_bytes(torch.get_rng_state())}}
        runs.save_checkpoint(out, model, optimizer, state)
        log(f"epoch {epoch:3d}/{loop.epochs}  train -ELBO {stats['train_neg_elbo']:8.2f}  "
            f"val -ELBO {val['neg_elbo']:8.2f} (recon {val['recon']:7.2f}, KL {val['kl']:6.2f})  "
            f"lr {lr:.2e}  {seconds:5.1f} s" + ("  *best" if improved else ""))
        if progress.stopped:
            log(f"stopped after epoch {epoch}: {progress.stopped}.")
            break
    return _summary(out, progress)


def _summary(out: Path, progress: Progress) -> dict[str, Any]:
    return {"run_dir": str(out), "epochs": progress.epoch, "best_val_neg_elbo": progress.best_val,
            "best_epoch": progress.best_epoch, "stopped": progress.stopped}
