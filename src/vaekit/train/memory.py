"""How much memory a run needs, estimated before anything is allocated, and the check that it fits.

The estimate, in bytes (float32 everywhere, 4 bytes a number):

    run_bytes = 4 * 4 * P  +  4 * A

    P  the model's parameters, counted by building it on torch's `meta` device (shapes only,
       nothing allocated). Each is held 4 times: the weight, its gradient and Adam's two moments
       m and v (SGD and RMSprop keep at most two buffers, so this bounds them too).
    A  the most numbers one step holds besides them, the larger of a training step and a
       validation batch:

           training    COPIES * B * (D + E + K * (L + G + D))
           validation  VAL_BATCH * (D + E + L + G + D)        (no gradients: one copy)

       D = C*H*W pixels of an image, E = the numbers every layer of the encoder (q_enc, q_mu,
       q_logvar) outputs for one image, L = the latent size (z), G = the numbers every layer of the
       decoder p_dec outputs for one z (and an autoregressive decoder's term), the last D =
       log p(x|z) per pixel; B = batch size, K = samples per image. E and G come from one forward
       pass on the meta device. COPIES = 3: a layer's output, what autograd saves of it for the
       backward pass, and its gradient.

It is an order of magnitude, meant to be at or above what torch allocates: it leaves out the
dataset (already in memory when the check runs), torch's own few hundred MB, and the allocator's
rounding; it counts a view (Flatten) as free and each activation three times. `check_fits`
refuses a run whose estimate is over the memory available (MemAvailable of /proc/meminfo, or the
cgroup's limit if lower, or os.sysconf; free memory of the GPU for a CUDA run) with one sentence
that says both, before a byte of the model is allocated: a 10^10-wide layer or an MLP on 4000x4000
images is a sentence, not an allocator error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from vaekit.config import TrainConfig
from vaekit.device import format_bytes, host_available_bytes
from vaekit.errors import ConfigError
from vaekit.train.loop import VAL_BATCH
from vaekit.vae.models import VAEBase, build_model

FLOAT_BYTES = 4  # float32
STATE_COPIES = 4  # weight, gradient, Adam's m and v
COPIES = 3  # per activation in a training step: output, saved for backward, gradient
_VIEWS = (nn.Flatten, nn.Unflatten)  # reshape without new memory


@dataclass(frozen=True)
class Estimate:
    """The parts of `run_bytes`: parameters P, the bytes of their four copies, of the largest
    step's activations, and the total."""

    parameters: int
    state_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes


def _meta_model(config: TrainConfig, image_shape: Sequence[int]) -> VAEBase:
    """The model of `config` for images `image_shape` (C, H, W), built on the meta device."""
    model_config = dataclasses.replace(config.model, image_shape=[int(s) for s in image_shape])
    try:
        with torch.device("meta"):
            return build_model(model_config)
    except (RuntimeError, OverflowError) as err:  # e.g. "Storage size calculation overflowed"
        raise ConfigError(f"a model of these sizes on images {'x'.join(map(str, image_shape))} cannot "
                          f"even be counted ({str(err).splitlines()[0].rstrip('.')}); use smaller "
                          "sizes.") from None


def _layer_outputs(model: VAEBase) -> tuple[int, int]:
    """(E, G): the numbers the encoder's and the decoder's layers output, one image and one z."""
    counts = {"n": 0}

    def count(_: nn.Module, __: object, output: object) -> None:
        outputs = output if isinstance(output, tuple) else (output,)
        counts["n"] += sum(o.numel() for o in outputs if isinstance(o, torch.Tensor))

    leaves = [m for m in model.modules() if not any(m.children()) and not isinstance(m, _VIEWS)]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model.encode(torch.empty(1, *model.image_shape, device="meta"))  # (1, C, H, W)
            encoder, counts["n"] = counts["n"], 0
            model.decode_net(torch.empty(1, model.latent_dim, device="meta"))  # (1, L)
            decoder = counts["n"]
            if model.p_ar is not None:  # the autoregressive term: U z, its hidden units, a per pixel
                decoder += 2 * model.p_ar.units + model.p_ar.pixels
    finally:
        for handle in handles:
            handle.remove()
    return encoder, decoder


def estimate(config: TrainConfig, image_shape: Sequence[int]) -> Estimate:
    """P, the bytes of weights + gradients + Adam's moments (4 * 4 * P) and of the largest step's
    activations (4 * A), as in the module's docstring; nothing is allocated."""
    model = _meta_model(config, image_shape)
    parameters = sum(p.numel() for p in model.parameters())
    try:
        e, g = _layer_outputs(model)
    except RuntimeError as err:
        raise ConfigError(f"a model of these sizes on images {'x'.join(map(str, image_shape))} cannot "
                          f"even be run on paper ({str(err).splitlines()[0].rstrip('.')}); use smaller "
                          "sizes.") from None
    d, latent = 1, model.latent_dim
    for size in image_shape:
        d *= int(size)
    b, k = config.train.batch_size, config.train.samples
    training = COPIES * b * (d + e + k * (latent + g + d))
    validation = VAL_BATCH * (d + e + latent + g + d)
    return Estimate(parameters, FLOAT_BYTES * STATE_COPIES * parameters,
                    FLOAT_BYTES * max(training, validation))


def run_bytes(config: TrainConfig, image_shape: Sequence[int]) -> int:
    """Bytes a run of `config` on images `image_shape` (C, H, W) needs, about (an upper-bound-ish
    order of magnitude): 16 P + 4 A, P the parameters and A the largest step's activations (see the
    module's docstring for A)."""
    return estimate(config, image_shape).total


# ----------------------------------------------------------------------------- what is there


def available_bytes(device: str) -> tuple[int | None, str]:
    """(bytes free, where) for a run on `device` ('cpu', 'cuda', 'auto'): the GPU's free memory
    when the run computes on CUDA, the host's otherwise."""
    if device in ("cuda", "auto") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return int(free), "the CUDA device"
    return host_available_bytes(), "this machine"


def check_fits(config: TrainConfig, image_shape: Sequence[int], available: int | None = None) -> int:
    """Raise ConfigError (one sentence: what the run would need and what there is) if
    `run_bytes(config, image_shape)` is more than `available` bytes (default: what
    `available_bytes(config.train.device)` reads; no check if it cannot be read). Returns the
    estimate. Call it once the image shape is known, before the model is built."""
    parts = estimate(config, image_shape)
    where = "this machine"
    if available is None:
        available, where = available_bytes(config.train.device)
        if available is None:
            return parts.total
    if parts.total > available:
        raise ConfigError(
            f"this run would need about {format_bytes(parts.total)} of memory ({parts.parameters:,} "
            f"parameters, each 16 bytes with its gradient and Adam's two moments, plus "
            f"{format_bytes(parts.activation_bytes)} of activations in one step on "
            f"{'x'.join(map(str, image_shape))} images), but {where} has {format_bytes(available)} "
            "available; use smaller --hidden, --latent or --channels, fewer --samples or a smaller "
            "--batch-size."
        )
    return parts.total
