"""The importance-weighted estimate of -log p(x) (IWAE, Burda, Grosse & Salakhutdinov 2016, eq. 8)
in bounded memory and without Python work per sample:

    log p(x) ~ L_k(x) = log (1/k sum_{i=1..k} w_i),   w_i = p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x).

`estimate_batch` runs the encoder once, draws the k samples in chunks (eps, z and log w of a chunk
held at once, at most half of the memory budget), decodes each chunk a tile of about the target
rows of latents per call (at most the other half), and combines the chunks' logsumexps with a running
logaddexp. `vaekit.evaluate.run` uses it over a whole test set; tests/evaluate/test_evaluate.py holds
it against torch.distributions, `vaekit.vae.prob` and the exact log p(x) of a linear-Gaussian VAE.

Devices: the estimate is computed where the model is (its parameters' device), and every tensor it
makes is made there, except the eps: eps are drawn on the CPU from the seed and copied to the
device, so that a seed gives the same draws on every device (torch's CUDA generator draws other
numbers than the CPU's). The memory budget and the decoder's rows per call are the device's
(`sizing`): MEMORY_BUDGET and TARGET_ROWS on a CPU, larger on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vaekit.vae.prob import VAE, closed_form_kl, gaussian_kl_per_dim, log_weights, noise_dim, placement

MEMORY_BUDGET = 256 * 2**20  # bytes: half for a chunk's eps, z and log w, half for a decoder call
EPS_BLOCK = 32  # eps are drawn in blocks of this many samples: results do not depend on the chunk size
TARGET_ROWS = 4096  # latents decoded per call: the fastest of 1024..32768 on a 2-core CPU; larger
# tiles push the (rows x pixels) logits out of cache before log p(x|z) reads them (bench/eval_speed.py)
TEMPORARIES = 3  # tensors of (rows x pixels) alive at once: decoder output, flip * logits, one spare
CUDA_MEMORY_BUDGET = 4 * 2**30  # bytes on a CUDA device (at most a quarter of its memory: `sizing`)
CUDA_TARGET_ROWS = 65536  # latents decoded per call on a CUDA device: k = 5,000 on 10,000 images in
# batches of 100 is 800 decoder calls of 65,600 latents, where TARGET_ROWS makes 12,200 calls of 4,100


# ----------------------------------------------------------------------------- memory and chunks


def sizing(device: torch.device) -> tuple[int, int]:
    """(memory budget in bytes, target rows per decoder call) of an evaluation on `device`: on a CPU
    MEMORY_BUDGET and TARGET_ROWS; on a CUDA device CUDA_TARGET_ROWS and a budget of
    CUDA_MEMORY_BUDGET, at most a quarter of the device's memory,

        budget = min(CUDA_MEMORY_BUDGET, total_memory / 4).

    Neither changes the numbers: eps come in EPS_BLOCK blocks whatever the chunk, and a tile only
    says how many latents one decoder call takes."""
    if device.type != "cuda":
        return MEMORY_BUDGET, TARGET_ROWS
    total = torch.cuda.get_device_properties(device).total_memory
    return min(CUDA_MEMORY_BUDGET, total // 4), CUDA_TARGET_ROWS


def activation_elements(model: VAE, latent_dim: int) -> int:
    """Elements of every leaf module's output when decoding one latent: an upper bound on the
    decoder's live activations per sample (they are not all alive at once); with an autoregressive
    decoder, also its hidden units (twice) and its term per pixel of each sample. The probe latent
    z = 0 (1, latent_dim) is made with the model's dtype on its device."""
    total = 0
    hooks = []
    if isinstance(model, nn.Module):
        def count(_m: nn.Module, _i: Any, out: Any) -> None:
            nonlocal total
            total += sum(t.numel() for t in (out if isinstance(out, tuple) else (out,))
                         if isinstance(t, Tensor))
        hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        dtype, device = placement(model)
        with torch.inference_mode():
            probe = torch.zeros(1, latent_dim, dtype=dtype, device=device)
            out = getattr(model, "decode_net", model.decode)(probe)
    finally:
        for h in hooks:
            h.remove()
    mean = out[0] if isinstance(out, tuple) else out
    ar = getattr(model, "p_ar", None)
    return max(total, mean.numel()) + (2 * ar.units + ar.pixels if ar is not None else 0)


def tile_size(batch: int, pixels: int, activations: int = 0, budget: int = MEMORY_BUDGET,
              bytes_per_element: int = 4, target_rows: int = TARGET_ROWS) -> int:
    """Samples decoded per call for a batch of `batch` images: about `target_rows` latents, and at
    most what fits half the budget, at least 1:

        tile * batch * (activations + TEMPORARIES * pixels) * bytes <= budget / 2.
    """
    per_sample = batch * (activations + TEMPORARIES * pixels) * bytes_per_element
    return max(1, min(math.ceil(target_rows / batch), (budget // 2) // max(per_sample, 1)))


def chunk_size(k: int, batch: int, latent_dim: int, budget: int = MEMORY_BUDGET,
               bytes_per_element: int = 4) -> int:
    """Samples per chunk (eps, z and log w held at once) for a batch of `batch` images: the largest
    multiple of EPS_BLOCK, at least one block, no larger than k rounded up to a block, with

        chunk * batch * (2 * latent_dim + 4) * bytes <= budget / 2.
    """
    per_sample = batch * (2 * latent_dim + 4) * bytes_per_element
    chunk = min((budget // 2) // max(per_sample, 1), math.ceil(k / EPS_BLOCK) * EPS_BLOCK)
    return max(EPS_BLOCK, chunk // EPS_BLOCK * EPS_BLOCK)


def draw_eps_blocks(n_blocks: int, batch: int, latent_dim: int, generator: torch.Generator | None,
                    dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
    """eps ~ N(0, I) of shape (n_blocks * EPS_BLOCK, B, D), one normal draw per block, so that the
    draws of a seed are the same whatever the chunk size (torch's randn of a larger tensor is not
    the concatenation of smaller ones).

    The eps are drawn on the CPU from the seed (where `generator` is: the evaluators' are CPU
    generators; None: torch's global CPU generator) and copied to `device` (None: left there), so
    that a seed gives the same draws on every device; for a CUDA device they are drawn into pinned
    memory and copied without waiting, so the draws of the next chunk overlap the GPU's work."""
    source = generator.device if generator is not None else torch.device("cpu")
    target = source if device is None else torch.device(device)
    pinned = source.type == "cpu" and target.type == "cuda"
    eps = torch.empty((n_blocks * EPS_BLOCK, batch, latent_dim), dtype=dtype, device=source,
                      pin_memory=pinned)
    for i in range(0, eps.shape[0], EPS_BLOCK):
        eps[i : i + EPS_BLOCK].normal_(generator=generator)  # = torch.randn of the block's shape
    return eps.to(target, non_blocking=pinned)


# ----------------------------------------------------------------------------- one batch




@dataclass
class BatchEstimate:
    """Per-image results of `estimate_batch`, in nats: nll = -L_k (IWAE eq. 8); recon = -1/k sum_i
    log p(x|z_i) over the same k samples; kl (B,): KL(q(z|x) || p(z)), the sum of kl_per_dim (B, D)
    in closed form (sheet Ex.2 Q3) for one Gaussian layer against N(0, I), else the Monte-Carlo
    1/k sum_i [log q(z_i|x) - log p(z_i)] over the same k samples (kl_per_dim None); mu (B, D) of
    q(z|x) (of the top layer for two)."""

    nll: Tensor
    recon: Tensor
    kl: Tensor
    kl_per_dim: Tensor | None
    mu: Tensor

    @property
    def neg_elbo(self) -> Tensor:
        return self.recon + self.kl


def skip_batch_draws(k: int, b: int, d: int, generator: torch.Generator | None, chunk: int,
                     dtype: torch.dtype = torch.float32) -> None:
    """Advance `generator` past the eps `estimate_batch` would draw for a batch of b images (k
    samples, latent size d, chunks of `chunk`): the same `draw_eps_blocks` calls, nothing computed.
    A rank of a distributed evaluation skips the other ranks' batches this way, so that its own
    batches get the draws one process gives them."""
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        draw_eps_blocks(math.ceil(c / EPS_BLOCK), b, d, generator, dtype)


@torch.inference_mode()
def estimate_batch(x: Tensor, model: VAE, k: int, *, eps: Tensor | None = None,
                   generator: torch.Generator | None = None, chunk: int | None = None,
                   tile: int | None = None, budget: int | None = None) -> BatchEstimate:
    """-L_k(x) = -(logsumexp_i log w_i - log k) for a batch x (B, ...), in bounded memory.

        log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),  z_i = mu + sigma eps_i

    (IWAE eq. 8), each tile's log w from `prob.log_weights`: the densities are vaekit.vae.prob's and
    no one else's. The encoder runs once. Samples go in chunks of `chunk` (eps, z, log w of a
    chunk at once; chunks combine by a running logaddexp), and each chunk is decoded `tile`
    samples (tile * B latents) per call; unset, both come from `budget` (None: the device's, `sizing`).
    `eps` (k, B, noise_dim) fixes the samples; otherwise they come from `generator` in blocks of EPS_BLOCK.

    x is on the model's device, and so is every tensor made here; eps are drawn on the CPU from
    the seed and copied to the device, so that a seed gives the same draws on every device (a
    given `eps` is copied there too).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mu, logvar = model.encode(x)  # (B, D) each
    b, d = mu.shape[0], noise_dim(model)
    if eps is not None and eps.shape != (k, b, d):
        raise ValueError(f"eps must have shape {(k, b, d)}, got {tuple(eps.shape)}")
    own_budget, rows = sizing(mu.device)
    budget = own_budget if budget is None else budget
    if chunk is None:
        chunk = chunk_size(k, b, d, budget)
    if tile is None:
        tile = tile_size(b, x[0].numel(), activation_elements(model, model.latent_dim), budget,
                         target_rows=rows)
    lse = torch.full((b,), -math.inf, dtype=mu.dtype, device=mu.device)  # running logsumexp of log w, (B,)
    sum_log_px = torch.zeros(b, dtype=mu.dtype, device=mu.device)
    sum_log_w = torch.zeros(b, dtype=mu.dtype, device=mu.device)
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        if eps is not None:
            e = eps[start : start + c].to(mu.device)  # (c, B, D)
        else:
            e = draw_eps_blocks(math.ceil(c / EPS_BLOCK), b, d, generator, mu.dtype, mu.device)[:c]
        log_w = torch.empty((c, b), dtype=mu.dtype, device=mu.device)
        log_px = torch.empty_like(log_w)
        for t0 in range(0, c, tile):  # tile * B latents decoded per call
            lw, lpx = log_weights(x, model, mu, logvar, e[t0 : t0 + tile])  # (t, B) each
            log_w[t0 : t0 + tile], log_px[t0 : t0 + tile] = lw, lpx
        lse = torch.logaddexp(lse, torch.logsumexp(log_w, dim=0))
        sum_log_px += log_px.sum(dim=0)
        sum_log_w += log_w.sum(dim=0)
    nll = -(lse - math.log(k))
    if closed_form_kl(model):
        kl_d = gaussian_kl_per_dim(mu, logvar)
        return BatchEstimate(nll, -sum_log_px / k, kl_d.sum(dim=-1), kl_d, mu)
    # log q - log p = log p(x|z) - log w at each sample
    return BatchEstimate(nll, -sum_log_px / k, (sum_log_px - sum_log_w) / k, None, mu)
