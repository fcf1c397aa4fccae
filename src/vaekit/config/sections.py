"""The VAE's configuration: its four sections (the tables of a TOML file and of a run's config.json),
each field declared with `setting`, the valid values of its strings, and `TrainConfig`, which holds
the four; the tables built from their declarations (`SECTIONS`, `BOUNDS`, `RESUMABLE_CHANGES`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vaekit.config.settings import Bound, bounds_of, resumable_of, setting
from vaekit.config.values import MAX_DURATION, show
from vaekit.errors import ConfigError

MODEL_KINDS = ("mlp", "conv")
PRIORS = ("standard", "vamp")  # p(z): N(0, I), or the VampPrior (a mixture of q(z|u_k), `vaekit.vae.priors`)
LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = ("pixel", "global")  # a Gaussian decoder's learned log-variance: one per pixel, or one
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("none", "cosine", "step")
OBJECTIVES = ("elbo", "iwae")
ESTIMATORS = ("reparam", "score")
ENGINES = ("auto", "autograd")
PRECISIONS = ("float32", "bf16")  # the hand-derived engine's matrix products: float32, or bfloat16 inputs
# 'dequantize': x = (pixel + u) / 256, u ~ U[0, 1) per pixel (a Gaussian decoder on 8-bit images)
BINARIZATIONS = ("auto", "dynamic", "fixed", "none", "dequantize")
IMAGE_FITS = ("crop", "pad")  # --image-size keeps the aspect: centre crop of the scaled image, or pad it
DEVICES = ("cpu", "cuda", "auto")
IMAGE_CHANNELS = (0, 1, 3)  # data.image_channels: the data's own, grey, RGB
# The user-image settings of a data section (`vaekit.data.folder`), in the order `vaekit data info`,
# `vaekit train` and `vaekit classify` list their flags
IMAGE_OPTIONS = ("image_size", "image_fit", "image_channels", "skip_bad")


# ----------------------------------------------------------------------------- ranges

MAX_SIZE = 2**31 - 1  # any integer size or count: larger is refused before anything is built
# torch.manual_seed(s) and torch.Generator().manual_seed(s) accept -2**63 <= s < 2**64 (a negative s
# is taken modulo 2**64; beyond, "Overflow when unpacking long long"), but the CPU generator
# (mt19937) keeps only s mod 2**32: seeds 0, 2**32 and 2**63 draw the same numbers. Seeds are
# therefore 0 ... 2**32 - 1, where distinct seeds give distinct draws.
SEED_MAX = 2**32 - 1
MAX_THREADS = 1024  # torch.set_num_threads(100_000) segfaults (torch 2.13)


@dataclass
class DataConfig:
    # registry name, a .npy/.npz path, or a folder of images
    name: str = setting("fashion-mnist", flag="--data", help="dataset name, .npy/.npz path or a folder "
                        "of images (default: {default})")
    # directory looked in first (data.py lookup order)
    data_dir: str | None = setting(None, resumable=True, help="directory holding the dataset files "
                                   "(default: lookup order of `vaekit data`)")
    # How uint8 pixels become x: 'dynamic' draws x ~ Bernoulli(pixel/255) afresh for each batch,
    # 'fixed' draws once with the seed, 'none' keeps pixel/255 in [0, 1]; 'auto' is dynamic for a
    # Bernoulli likelihood and dequantize ((pixel + u) / 256, u ~ U[0, 1) afresh, log-likelihoods of
    # the 8-bit images) for a Gaussian one. Validation and test are binarized (dequantized) once
    # with a fixed seed when training is binary (dequantized).
    binarize: str = setting("auto", choices=BINARIZATIONS, help="{choices}: dynamic x ~ Bernoulli(pixel/255) "
                            "per batch; dequantize x = (pixel + u)/256, bits/dim of 8-bit images; auto: "
                            "dynamic | dequantize by likelihood (default: {default})")
    # User images (`vaekit.data.folder`): resize every image to "S" (S x S) or "HxW" (None: keep the
    # size; a folder of mixed sizes needs one), how (crop: scale the shorter side, centre crop; pad:
    # scale the longer side, pad with black), the channels (0: the data's own, 1: grey, 3: RGB) and
    # whether unreadable files of a folder are skipped (and counted) instead of refused.
    image_size: str | None = setting(None, kind="size", help="resize every image to S x S or HxW pixels, "
                                     "aspect kept by --image-fit (default: the data's own size; a folder "
                                     "of mixed sizes needs it)")
    image_channels: int = setting(0, kind="channels",
                                  bound=Bound("the image channels (0 = the data's own, 1 or 3)", 0, 3),
                                  help="0 = the data's own (grey stays grey, colour stays colour), 1 = "
                                  "grey, 3 = RGB (default: {default})")
    image_fit: str = setting("crop", choices=IMAGE_FITS, help="how --image-size keeps the aspect: crop "
                             "(scale the shorter side, centre crop) | pad (scale the longer side, pad "
                             "with black) (default: {default})")
    skip_bad: bool = setting(False, help="skip files of an image folder that cannot be read, and say how "
                             "many (default: refuse them)")
    # Images of a built-in set's training file held out for validation (None: the set's own split,
    # 5,000 for the IDX sets); the rest train. The held-out images are a fixed seeded subset, and a
    # smaller split is a subset of a larger one. Folders and arrays split 80/10/10 instead.
    val_size: int | None = setting(None, bound=Bound("the validation images", 1, MAX_SIZE),
                                   help="images of a built-in set's training file held out for "
                                   "validation; the rest train (default: the set's own, 5000)")


@dataclass
class ModelConfig:
    kind: str = setting("mlp", flag="--model", choices=MODEL_KINDS, help="{choices} (default: {default})")
    # dense layers of q_enc (p_dec mirrors)
    hidden: list[int] = setting([400], bound=Bound("each hidden size", 1, MAX_SIZE),
                                help="dense hidden sizes, comma list, e.g. 512,256, or none for no hidden "
                                "layer (default: {default})")
    latent: int = setting(20, bound=Bound("the latent size", 1, MAX_SIZE),  # dimension of z
                          help="latent dimension of z (default: {default})")
    # bernoulli (logits) | gaussian (mean, learned log-variance)
    likelihood: str = setting("bernoulli", choices=LIKELIHOODS, help="{choices} (default: {default})")
    # gaussian only: learned log-variance per pixel or one global
    variance: str = setting("pixel", choices=VARIANCES,
                            help="gaussian decoder log-variance: {choices} (default: {default})")
    activation: str = setting("relu", choices=ACTIVATIONS, help="{choices} (default: {default})")
    # conv only: strided conv stack
    channels: list[int] = setting([32, 64], bound=Bound("each conv channel count", 1, MAX_SIZE),
                                  help="conv channels per strided conv, comma list (default: {default})")
    kernel_size: int = setting(4, bound=Bound("the conv kernel size", 1, MAX_SIZE))  # conv only
    stride: int = setting(2, bound=Bound("the conv stride", 1, MAX_SIZE))  # conv only
    # (C, H, W), filled in from the data at training time
    image_shape: list[int] | None = setting(None, bound=Bound("each image size of [C, H, W]", 1, MAX_SIZE))
    # The pieces of the best-NLL model (Tomczak & Welling 2018): gated layers
    # h = (W x + b) * sigmoid(V x + c) in place of linear + activation; the prior p(z); one or two
    # stochastic layers (z1 | z2, z2).
    gated: bool = setting(False, help="gated layers h = (Wx + b) * sigmoid(Vx + c) (default: off)")
    prior: str = setting("standard", choices=PRIORS, help="p(z): {choices} (vamp: the VampPrior, a mixture "
                         "of the posteriors of learned pseudo-inputs) (default: {default})")
    # vamp only: K learned pseudo-inputs u_k of p(z) = 1/K sum_k q(z|u_k)
    pseudo_inputs: int = setting(500, bound=Bound("the number of pseudo-inputs", 1, 100_000),
                                 help="VampPrior size (default: {default})")
    # 1: z; 2: the hierarchical VAE, z2 -> z1 -> x, each of size latent
    stochastic_layers: int = setting(1, flag="--layers", bound=Bound("the number of stochastic layers", 1, 2),
                                     help="stochastic layers: 1 (z), or 2 (the hierarchical VAE z2 -> z1 "
                                     "-> x) (default: {default})")
    # Units of the autoregressive decoder's masked layer (`vaekit.vae.autoregressive`: each pixel's
    # logit also sees the pixels before it, MADE over x given z); 0: the factorized decoder.
    autoregressive: int = setting(
        0, bound=Bound("the autoregressive decoder's units (0 = none)", 0, 1_000_000),
        help="autoregressive decoder's units (MADE given z; 0: factorized) (default: {default})")
    # fraction of its masked units dropped in training
    autoregressive_dropout: float = setting(
        0.0, bound=Bound("the autoregressive decoder's dropout", 0, 1, high_open=True),
        help="fraction of the AR units dropped in training (default: {default})")
    # pixels before each pixel that its term sees (0: all of them)
    autoregressive_window: int = setting(
        0, bound=Bound("the autoregressive decoder's window (0 = all pixels)", 0, MAX_SIZE),
        help="pixels before each pixel that its AR term sees, in raster order (0: all) (default: {default})")


@dataclass
class OptimConfig:
    name: str = setting("adam", flag="--optimizer", choices=OPTIMIZERS, help="{choices} (default: {default})")
    lr: float = setting(1e-3, bound=Bound("the learning rate", 0, 100, low_open=True),
                        help="learning rate (default: {default})")
    weight_decay: float = setting(0.0, bound=Bound("the weight decay", 0, 100),
                                  help="weight decay (default: {default})")
    momentum: float = setting(0.9, bound=Bound("the momentum", 0, 1, high_open=True),  # sgd and rmsprop
                              help="sgd/rmsprop momentum (default: {default})")
    # none | cosine (to 0 at the last epoch) | step
    schedule: str = setting("none", choices=SCHEDULES, help="lr schedule {choices} (default: {default})")
    # step schedule: epochs between decays
    step_size: int = setting(30, bound=Bound("the step schedule's epochs between decays", 1, MAX_SIZE))
    # step schedule: lr factor at each decay
    gamma: float = setting(0.1, bound=Bound("the step schedule's lr factor", 0, 1, low_open=True))
    # max global gradient norm; 0 = no clipping
    clip: float = setting(0.0, bound=Bound("the max gradient norm", 0, 1e12),
                          help="max gradient norm, 0 = off (default: {default})")


@dataclass
class LoopConfig:
    # elbo (k-sample ELBO) | iwae (IWAE-k bound)
    objective: str = setting("elbo", choices=OBJECTIVES, help="{choices} (default: {default})")
    # k, reparameterized samples per image (the sheet: 1)
    samples: int = setting(1, bound=Bound("the number of samples per image", 1, MAX_SIZE),
                           help="K samples per image (default: {default})")
    # weight of the KL term (beta-VAE); the target of the warm-up
    beta: float = setting(1.0, bound=Bound("the KL weight beta", 0, 1e4),
                          help="KL weight (default: {default})")
    # epochs over which beta ramps linearly from 0 to beta
    warmup: float = setting(0.0, bound=Bound("the KL warm-up in epochs", 0, MAX_SIZE),
                            help="epochs of linear KL warm-up from 0 to beta (default: {default})")
    # floor, in nats, of each latent dimension's KL in the objective
    free_bits: float = setting(0.0, bound=Bound("the free bits per latent dimension in nats", 0, 1e3),
                               help="KL floor per latent dim, nats (default: {default})")
    # reparam (pathwise) | score (score function, REINFORCE)
    estimator: str = setting("reparam", choices=ESTIMATORS,
                             help="gradient estimator: {choices} (default: {default})")
    batch_size: int = setting(128, bound=Bound("the batch size", 1, MAX_SIZE),
                              help="images per step (default: {default})")
    epochs: int = setting(10, bound=Bound("the number of epochs", 1, MAX_SIZE), resumable=True,
                          help="epochs in all; with --resume, train up to this many (default: {default})")
    # stop after this many epochs without a better validation -ELBO; 0 = never
    patience: int = setting(0, bound=Bound("the patience in epochs", 0, MAX_SIZE), resumable=True,
                            help="early stopping after this many epochs without a better validation "
                            "-ELBO, 0 = off (default: {default})")
    seed: int = setting(0, bound=Bound("the seed", 0, SEED_MAX),
                        help="seed of weights, batches, binarization and eps (default: {default})")
    device: str = setting("cpu", choices=DEVICES, resumable=True, help="{choices} (default: {default})")
    # torch CPU threads; 0 = the cores other processes leave idle, at least 1
    threads: int = setting(0, bound=Bound("the number of CPU threads", 0, MAX_THREADS), resumable=True,
                           help="CPU threads; 0 = the cores other processes leave idle, followed "
                           "during the run (default: {default})")
    # How gradients are computed: 'auto' uses the hand-derived backward of `vaekit.vae.backprop`
    # where it applies and is the faster (`backprop.faster`: an MLP VAE with a Bernoulli decoder,
    # ReLU/tanh layers, the reparameterized ELBO or IWAE), autograd elsewhere; 'autograd' always
    # uses autograd (the same loss; other rounding, so other numbers).
    engine: str = setting("auto", choices=ENGINES, help="gradients: auto = the hand-derived backward of the "
                          "MLP VAE where it applies (1.2-1.3x faster per epoch), else autograd; autograd = "
                          "always autograd (default: {default})")
    # Wall time of training in seconds (the default 0 = none; a budget given, by --time-budget or a
    # TOML file, is more than 0, and every one at most MAX_DURATION, the duration parser's bound): the
    # run plans its epochs (and the cosine decay, the warm-up) to end inside it, `vaekit.train.budget`;
    # `--time-budget 60m` on the command line.
    time_budget: float = setting(0.0, kind="duration",
                                 bound=Bound("the time budget in seconds", 0, MAX_DURATION),
                                 resumable=True, help="wall time of training, e.g. 60m, 1h30m, 90s: the run "
                                 "plans its epochs, cosine decay and warm-up to end inside it (replaces "
                                 "--epochs) (default: none)")
    # float32, or bf16: the hand-derived engine's (`vaekit.vae.backprop`) matrix products from
    # bfloat16 inputs, the autograd engine's forward under torch.autocast(bfloat16) (CPU or CUDA);
    # weights, gradients and sums stay float32.
    precision: str = setting("float32", choices=PRECISIONS, help="float32 | bf16 (bfloat16 products in the "
                             "hand-derived engine, else torch.autocast; float32 weights and sums) "
                             "(default: {default})")
    # Scalars per epoch and image grids (reconstructions, samples) in RUN/tensorboard beside
    # metrics.jsonl (`vaekit.train.tensorboard`; the optional extra vaekit[tensorboard]).
    tensorboard: bool = setting(False, resumable=True, help="also write scalars and image grids per epoch to "
                                "RUN/tensorboard (needs pip install 'vaekit[tensorboard]') (default: off)")
    # When checkpoints are written besides after the first and the last epoch: "epoch" (every
    # epoch), a duration ("30s", "5m", "90": at most one per that much wall time), or "auto" (as
    # often as keeps their writing under 5% of the run's time: every epoch on a CPU, every few
    # dozen of a GPU's sub-second epochs); `vaekit.train.checkpoints`.
    checkpoint_every: str = setting("auto", kind="interval", resumable=True,
                                    help="epoch, or at most one checkpoint per this much wall time (30s, "
                                    "5m), or auto: writing under 5%% of the run (default: {default})")
    # On CUDA, each training step (forward, backward, clip, Adam) captured once in a CUDA graph and
    # replayed (`vaekit.train.step`); false: launched op by op. Other devices ignore it.
    cuda_graph: bool = setting(True, flag="--no-cuda-graph", kind="off", resumable=True,
                               help="on CUDA, launch each step op by op instead of replaying it as one "
                               "captured CUDA graph (default: captured)")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_binarize(self) -> str:
        """The binarization actually used: 'auto' resolved against the likelihood."""
        if self.data.binarize != "auto":
            return self.data.binarize
        return "dequantize" if self.model.likelihood == "gaussian" else "dynamic"


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
                             "train": LoopConfig}

# Every int, float and list[int] field of the four sections, with the values a run can use (the
# settings' bounds). The upper bounds are far beyond any useful run; what fits in memory is
# `vaekit.train.memory`'s check.
BOUNDS: dict[str, Bound] = bounds_of(TrainConfig())
# Settings that may change when a run is resumed: how long it goes on and where it computes.
RESUMABLE_CHANGES: tuple[str, ...] = resumable_of(TrainConfig())


def check_image_shape(shape: list[int], said: str) -> None:
    """A ConfigError unless `shape` is [C, H, W] with C of 1 (grey) or 3 (RGB), the only images vaekit
    has: no model of other images is built, sampled or served. `said`: what the sentence names
    first ('config.json, model.image_shape')."""
    if len(shape) != 3:
        raise ConfigError(f"{said} must be [C, H, W], got {show(shape)}.")
    if shape[0] not in IMAGE_CHANNELS[1:]:
        raise ConfigError(f"{said} is {show(shape)}: images of {shape[0]} channels, but vaekit's images "
                          "are grey (1 channel) or RGB (3 channels).")


def check_conv_stride(kernel_size: int, stride: int) -> None:
    """A ConfigError unless a strided convolution's kernel covers its stride (kernel_size >= stride):
    a kernel of k at stride s > k reads k of every s pixels along each axis, so the first layer of a
    conv encoder would never see the other s - k, and a transposed convolution would leave them to
    its bias alone. The one rule of a conv VAE's kernel and stride (`validate`,
    `vaekit.vae.base.ConvGeometry.of`)."""
    if kernel_size < stride:
        raise ConfigError(f"{stride_problem(kernel_size, stride)}; use kernel_size >= stride.")


def stride_problem(kernel_size: int, stride: int) -> str:
    """What a kernel smaller than its stride leaves out (`check_conv_stride`), in a clause."""
    return (f"model.kernel_size is {kernel_size}, smaller than model.stride {stride}, so the conv encoder "
            f"would never see {stride - kernel_size} of every {stride} pixels along each axis")
