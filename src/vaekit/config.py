"""Training configuration: one dataclass per component, each with its defaults.

A run is described by a `TrainConfig` made of four sections, the same four as in a TOML file:

    [data]   which images and how they are turned into x      (DataConfig)
    [model]  the VAE: kind, sizes, likelihood                  (ModelConfig)
    [optim]  optimizer, learning rate and its schedule         (OptimConfig)
    [train]  objective, samples, beta, epochs, seed, device    (LoopConfig)

Each field declares itself with `setting`: its default, and where it has them its valid choices, its
range (a `Bound`), its command-line flag with the help text, and whether a resumed run may change it.
Everything else is built from those declarations: `BOUNDS`, the choice checks of `validate`,
`RESUMABLE_CHANGES`, the reading of TOML files and config.json (`apply`), and the flag tables of
`vaekit train` and `vaekit classify` (`vaekit.commands.flags.flag_table`). The classifier's config
(`vaekit.classify.config`) uses `OptimConfig` as it is and takes the data and loop settings it shares
with the VAE from these sections (`shared`).

Precedence: the defaults below < a `--config FILE.toml` < command-line flags. A key that does not
exist, a value of the wrong type or out of range is a `ConfigError`: one sentence naming where the
value came from (the TOML file, "command line", a run's config.json), the key, what was expected and
the value. Every number is checked against its bound (finite, within its range: seeds within
0 ... 2**32 - 1, sizes below 2**31) as it is read and again by `validate`; whether a run fits in
memory is `vaekit.train.memory.check_fits`. `config.json` of a run is `asdict(config)`, and
`from_dict` reads it back.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import reprlib
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

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
MAX_LAYERS = 1000  # entries of model.hidden and model.channels
# torch.manual_seed(s) and torch.Generator().manual_seed(s) accept -2**63 <= s < 2**64 (a negative s
# is taken modulo 2**64; beyond, "Overflow when unpacking long long"), but the CPU generator
# (mt19937) keeps only s mod 2**32: seeds 0, 2**32 and 2**63 draw the same numbers. Seeds are
# therefore 0 ... 2**32 - 1, where distinct seeds give distinct draws.
SEED_MAX = 2**32 - 1
MAX_THREADS = 1024  # torch.set_num_threads(100_000) segfaults (torch 2.13)
MAX_TOML_BYTES = 1 << 20  # a config is a few lines; this keeps `--config /dev/zero` from filling memory


@dataclass(frozen=True)
class Bound:
    """The values a numeric key accepts: finite, low <= value <= high (strict where `*_open`)."""

    what: str  # the quantity, as the error sentence names it
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def interval(self) -> str:
        """'[1, 2147483647]', '(0, 100]', '[0, 1)': the range in interval notation."""
        return (f"{'(' if self.low_open else '['}{_bound_text(self.low)}, "
                f"{_bound_text(self.high)}{')' if self.high_open else ']'}")

    def problem(self, value: int | float) -> str | None:
        """What is wrong with `value` ('must be at least 1'), or None when it is in range."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number in {self.interval()}"
        if value < self.low or (self.low_open and value == self.low):
            return f"must be {'greater than' if self.low_open else 'at least'} {_bound_text(self.low)}"
        if value > self.high or (self.high_open and value == self.high):
            return f"must be {'less than' if self.high_open else 'at most'} {_bound_text(self.high)}"
        return None


# Every int, float and list[int] field of the four sections, with the values a run can use. The

def _bound_text(x: float) -> str:
    """A bound as written in a sentence: 100, 1e-12, 2147483647."""
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return repr(x)



# ----------------------------------------------------------------------------- settings

# A flag's kinds beyond its field's type (str, int, float, list of ints, bool = 'switch'): 'duration'
# ('60m', also in a TOML file), 'size' ('32', '64x48', also an integer in a TOML file), 'off' (a
# bool whose flag, given, sets it false), 'positive' (an int flag of at least 1), 'layers' (one or
# more words: a network in the layer language of `vaekit arch`), 'interval' (auto, epoch or a duration:
# `checkpoint_interval`; a number of seconds in a TOML file). `vaekit.commands.flags` converts them.
KINDS = ("duration", "size", "switch", "off", "positive", "layers", "interval")


def setting(default: Any, *, help: str | None = None, flag: str | None = None,  # noqa: A002
            kind: str | None = None, choices: tuple[str, ...] | None = None, bound: Bound | None = None,
            resumable: bool = False) -> Any:
    """A config field that declares itself: `dataclasses.field` with its default (a list is copied
    for each instance) and, in its metadata, what the rest of the configuration is built from:

    help       the flag's help text; None: the field has no flag. "{default}" is filled in with the
               command's default ("512,256" for a list), "{choices}" with the choices ("mlp|conv").
    flag       the flag's name, when it is not the field's ('--data' for data.name); choice errors
               then name the value by it ("unknown model 'x'"), else by the field's name.
    kind       how the flag (and a TOML string) is read, when not by the field's type: one of KINDS.
    choices    the valid values of a string (`validate` refuses others).
    bound      the range of a number, or of each number of a list (`BOUNDS`); every number has one.
    resumable  whether a resumed run may change it (`RESUMABLE_CHANGES`).
    """
    assert kind is None or kind in KINDS, kind
    metadata = {"help": help, "flag": flag, "kind": kind, "choices": choices, "bound": bound,
                "resumable": resumable}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def shared(section: type, name: str, **changes: Any) -> Any:
    """The setting `name` of the section class `section` declared again for another config's section
    (the classifier's data and loop settings are the VAE's): the same default, help, flag, choices,
    bound and resumability but for `changes` (default=..., help=...)."""
    f = {f.name: f for f in fields(section)}[name]
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    return setting(**{"default": default, **f.metadata, **changes})


def flag_of(f: dataclasses.Field) -> str | None:
    """The flag of a setting ('--data-dir' for data_dir, or its declared one), None without help."""
    if f.metadata.get("help") is None:
        return None
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def kind_of(f: dataclasses.Field) -> str | type:
    """How a setting is read from a flag: its declared kind, else by its type: str, int, float,
    list (of ints, '512,256') or 'switch' (a bool: given means true)."""
    if f.metadata.get("kind"):
        return f.metadata["kind"]
    t = str(f.type).split(" ")[0]
    kinds: dict[str, str | type] = {"str": str, "int": int, "float": float, "list[int]": list,
                                    "bool": "switch"}
    return kinds[t]


def sections_of(config: Any) -> dict[str, Any]:
    """{section name: section} of a config made of sections (TrainConfig, or the classifier's
    `vaekit.classify.config.ClassifierConfig`)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def settings_of(config: Any) -> dict[str, dataclasses.Field]:
    """{'section.key': field} of every setting of a config made of sections."""
    return {f"{section}.{f.name}": f for section, part in sections_of(config).items() for f in fields(part)}


def bounds_of(config: Any) -> dict[str, Bound]:
    """The range table of a config's numbers, from its settings: {'section.key': Bound}."""
    return {key: f.metadata["bound"] for key, f in settings_of(config).items()
            if f.metadata.get("bound") is not None}


def resumable_of(config: Any) -> tuple[str, ...]:
    """The 'section.key' names a resumed run of this kind of config may change."""
    return tuple(key for key, f in settings_of(config).items() if f.metadata.get("resumable"))


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
    image_channels: int = setting(0, bound=Bound("the image channels (0 = the data's own, 1 or 3)", 0, 3),
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
                                help="dense hidden sizes, comma list, e.g. 512,256 (default: {default})")
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
                           help="CPU threads; 0 = the cores other processes leave idle, chosen at the "
                           "start (default: {default})")
    # How gradients are computed: 'auto' uses the hand-derived backward of `vaekit.vae.backprop`
    # where it applies and is the faster (`backprop.faster`: an MLP VAE with a Bernoulli decoder,
    # ReLU/tanh layers, the reparameterized ELBO or IWAE), autograd elsewhere; 'autograd' always
    # uses autograd (the same loss; other rounding, so other numbers).
    engine: str = setting("auto", choices=ENGINES, help="gradients: auto = the hand-derived backward of the "
                          "MLP VAE where it applies (1.2-1.3x faster per epoch), else autograd; autograd = "
                          "always autograd (default: {default})")
    # Wall time of training in seconds (0 = none): the run plans its epochs (and the cosine decay,
    # the warm-up) to end inside it, `vaekit.train.budget`; `--time-budget 60m` on the command line.
    time_budget: float = setting(0.0, kind="duration", bound=Bound("the time budget in seconds", 0, 1e8),
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


C = TypeVar("C")  # a config made of sections: TrainConfig, or the classifier's config

SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
                             "train": LoopConfig}

# Every int, float and list[int] field of the four sections, with the values a run can use (the
# settings' bounds). The upper bounds are far beyond any useful run; what fits in memory is
# `vaekit.train.memory`'s check.
BOUNDS: dict[str, Bound] = bounds_of(TrainConfig())
# Settings that may change when a run is resumed: how long it goes on and where it computes.
RESUMABLE_CHANGES: tuple[str, ...] = resumable_of(TrainConfig())


_REPR = reprlib.Repr()  # short and safe for any value: lists nested 1,000 deep, 10,000-digit ints
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxlong = 2, 6, 4, 60, 40
_REPR.maxother = 60


def _show(value: Any) -> str:
    return _REPR.repr(value)


def is_int(value: Any) -> TypeGuard[int]:
    """Whether a value read from JSON, TOML or a layer's text is an integer (True is not 1 here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """Whether a value read from JSON, TOML or a layer's text is a number: an int or a float, not a
    bool (Python's True is an int, JSON's true is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(key: str, value: Any, bound: Bound, origin: str | None = None) -> None:
    """Raise ConfigError unless the number (or each number of the list) `value` of `key`
    ('section.name') is in `bound`; the sentence names `origin` (a file, 'command line'), the key,
    the quantity, the broken bound and the value."""
    where = f"{origin}, " if origin else ""
    items = value if isinstance(value, list) else [value]
    if key == "model.image_shape" and len(items) != 3:
        raise ConfigError(f"{where}{key} must be [C, H, W], got {_show(value)}.")
    if len(items) > MAX_LAYERS:
        raise ConfigError(f"{where}{key} may list at most {MAX_LAYERS} sizes, got {len(items)}.")
    for item in items:
        problem = bound.problem(item)
        if problem:
            raise ConfigError(f"{where}{key}: {bound.what} {problem}, got {_show(item)}.")


# ----------------------------------------------------------------------------- reading


def _coerce(section: str, f: dataclasses.Field, value: Any, origin: str | None = None) -> Any:
    """Check/convert one value against the setting `f`: its declared type (strings in
    annotations), its kind ('60m' for a duration, 32 for a size) and, for numbers, its bound;
    errors name `origin` (the file or 'command line')."""
    key = f"{section}.{f.name}"
    t, kind = str(f.type), f.metadata.get("kind")
    where = f"{origin}: " if origin else ""
    if value is None:
        if "None" in t:
            return None
        raise ConfigError(f"{where}{key} may not be empty.")
    if t.startswith("list[int]"):
        if isinstance(value, str):
            try:
                value = parse_int_list(value, key)
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        elif not (isinstance(value, list | tuple) and all(is_int(v) for v in value)):
            raise ConfigError(f"{where}{key} must be a list of integers, got {_show(value)}.")
        value = list(value)
    elif t.startswith("list[str]"):
        if not (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{where}{key} must be a list of strings, got {_show(value)}.")
        if len(value) > MAX_LAYERS:
            raise ConfigError(f"{where}{key} may list at most {MAX_LAYERS} entries, got {len(value)}.")
        return list(value)
    elif t.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}{key} must be true or false, got {_show(value)}.")
        return value
    elif t.startswith("int"):
        if not is_int(value):
            raise ConfigError(f"{where}{key} must be an integer, got {_show(value)}.")
    elif t.startswith("float"):
        if kind == "duration" and isinstance(value, str):  # "60m" in a TOML file
            try:
                value = parse_duration(value, key)
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        if not is_number(value):
            raise ConfigError(f"{where}{key} must be a number, got {_show(value)}.")
    elif t.startswith("str"):
        if kind == "size" and is_int(value):  # image_size = 32 in a TOML file
            value = str(value)
        if kind == "interval" and is_number(value):  # checkpoint_every = 30 (seconds) in a TOML file
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}{key} must be a string, got {_show(value)}.")
        try:
            if kind == "size":
                parse_image_size(value, key)
            elif kind == "interval":
                checkpoint_interval(value)
        except ConfigError as err:
            raise ConfigError(f"{where}{err}") from None
        return value
    else:
        raise AssertionError(f"unhandled type {t} of {key}")  # a bug in this file, not user input
    bound = f.metadata.get("bound")
    if bound is None:  # a bug in the setting's declaration, not user input
        raise AssertionError(f"the number {key} declares no bound")
    check_value(key, value, bound, origin)  # ints compared exactly, so 10**400 is refused, not overflowed
    return float(value) if t.startswith("float") else value


def checkpoint_interval(text: str) -> float | None:
    """train.checkpoint_every as seconds between checkpoints: "epoch" 0.0, a duration its seconds,
    "auto" None; one sentence for anything else."""
    if text in ("auto", "epoch"):
        return None if text == "auto" else 0.0
    try:
        return parse_duration(text, "train.checkpoint_every")
    except ConfigError:
        raise ConfigError(f"train.checkpoint_every must be auto, epoch or a duration such as 30s, 5m or "
                          f"90 (seconds), got {text!r}.") from None


DURATION_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|min|m|s)")


def parse_duration(text: str, flag: str = "--time-budget") -> float:
    """'60m' -> 3600.0; '1h30m', '90s', '2.5h', '3600' (seconds). One sentence naming `flag` for
    anything else (negative, empty, an unknown unit, nan)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not t or pos != len(t):
        raise ConfigError(f"{flag} must be a duration such as 60m, 1h30m, 90s or 3600 (seconds), "
                          f"got {text!r}.")
    return total


def format_duration(seconds: float) -> str:
    """Seconds as a person reads them, the inverse of `parse_duration` in spirit: 9.5 -> '9.5 s';
    65 -> '1 min 05 s'; 3725 -> '1 h 02 min 05 s' (whole seconds from a minute on)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


MAX_IMAGE_SIDE = 8192  # --image-size: larger sides are refused (a 60k-image set of them fills any memory)


def parse_image_size(text: str, key: str = "--image-size") -> tuple[int, int]:
    """'32' -> (32, 32); '32x48' -> (32, 48) as (height, width). One sentence naming `key` for
    anything else (zero, negative, more than MAX_IMAGE_SIDE, not numbers)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    size = None if m is None else (int(m.group(1)), int(m.group(2) or m.group(1)))
    if size is None or not all(1 <= side <= MAX_IMAGE_SIDE for side in size):
        raise ConfigError(f"{key} must be a size S or HxW in pixels, each side from 1 to {MAX_IMAGE_SIDE} "
                          f"(32 or 64x48), got {_show(text)}.")
    return size


def check_data_images(d: Any) -> None:
    """The image options of a data section (a VAE's or a classifier's): size and channels (the fit
    is a choice, `check_choices`)."""
    if d.image_size is not None:
        parse_image_size(d.image_size, "data.image_size")
    if d.image_channels not in IMAGE_CHANNELS:
        raise ConfigError(f"data.image_channels must be 0 (the data's own), 1 (grey) or 3 (RGB), got "
                          f"{_show(d.image_channels)}.")


def parse_int_list(text: str, key: str = "hidden") -> list[int]:
    """'512,256' -> [512, 256]; '' -> []. `key` names the input in the error ('model.hidden',
    '--channels')."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{key} must be a comma-separated list of integers, got {_show(text)}.") from None


def check_fields(config: Any) -> None:
    """Every field of every section of `config` of its declared type and in its range (for
    configs built in Python, which `apply` never saw)."""
    for section, part in sections_of(config).items():
        for f in fields(part):
            _coerce(section, f, getattr(part, f.name))


def apply(config: C, values: dict[str, Any], origin: str) -> C:
    """A copy of `config` (a TrainConfig or another config of sections) with `values`
    ({section: {key: value}}) applied, each value checked (type and range) and named with `origin`
    in errors; unknown sections and keys refused."""
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: expected a table of sections, got {_show(values)}.")
    out = copy.deepcopy(config)
    sections = sections_of(out)
    for section, entries in values.items():
        if section not in sections:
            raise ConfigError(f"{origin}: unknown key or section {_show(section)}; valid sections are "
                              f"{', '.join(sections)}.")
        if not isinstance(entries, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys, got {_show(entries)}.")
        target = sections[section]
        by_name = {f.name: f for f in fields(target)}
        for key, value in entries.items():
            if key not in by_name:
                raise ConfigError(f"{origin}: unknown key {section}.{key}; valid keys of [{section}] "
                                  f"are {', '.join(by_name)}.")
            setattr(target, key, _coerce(section, by_name[key], value, origin))
    return out


def from_dict(d: dict[str, Any], origin: str = "config") -> TrainConfig:
    """Rebuild a TrainConfig from `asdict` output (config.json) over the defaults, every value
    checked as `apply` does."""
    return apply(TrainConfig(), d, origin)


def load_toml(path: str | Path, base: C | None = None) -> C:
    """Read a TOML file of [data]/[model]/[optim]/[train] tables over `base` (or the defaults).

    Any file that cannot be used is one ConfigError naming it: missing, a directory, unreadable,
    over MAX_TOML_BYTES, not UTF-8, not TOML, nested too deep for the parser; a bad value also
    names its key.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a TOML config file.") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err}).") from None
    if len(data) > MAX_TOML_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_TOML_BYTES // 1024} KiB, too large for a config "
                          "file.")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}), "
                          "but a TOML file must be UTF-8.") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({str(err).rstrip('.')}).") from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested too deeply for the TOML parser.") from None
    return apply(TrainConfig() if base is None else base, values, str(path))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- checking


def choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    """Raise ConfigError unless `value` of `key` is one of `valid`."""
    if value not in valid:
        raise ConfigError(f"unknown {key} {_show(value)}; valid values are {', '.join(valid)}.")


def check_choices(config: Any, skip: tuple[str, ...] = ()) -> None:
    """Every setting of `config` that declares choices among them ('section.key' of `skip` aside);
    the error names the value by its flag's name where the setting declares one ('unknown model'),
    else by the setting's ('unknown image_fit')."""
    for key, f in settings_of(config).items():
        valid = f.metadata.get("choices")
        if valid and key not in skip:
            part = getattr(config, key.split(".")[0])
            choice((f.metadata.get("flag") or f.name).lstrip("-"), getattr(part, f.name), valid)


def validate(config: TrainConfig) -> TrainConfig:
    """Raise ConfigError (one sentence) for any value a run cannot use; return the config.

    The rules: every field of its declared type, every number finite and in its `BOUNDS` range
    (checked again here for configs built in Python); each choice among its valid values; then the
    combinations (a conv model needs channels, a Gaussian likelihood continuous pixels, the IWAE
    objective no beta, warm-up, free bits or score estimator, the score estimator no free bits).
    """
    m, t, d = config.model, config.train, config.data
    check_fields(config)
    check_choices(config)
    check_data_images(d)
    checkpoint_interval(t.checkpoint_every)
    if m.kind == "conv" and not m.channels:
        raise ConfigError("model.channels: a conv model needs one or more channel counts, got [].")
    if m.likelihood == "gaussian" and d.binarize in ("dynamic", "fixed"):
        raise ConfigError(
            f"a gaussian likelihood needs continuous pixels, but binarize is {d.binarize!r}; "
            "use --binarize dequantize (or auto, or none) with --likelihood gaussian, or --likelihood "
            "bernoulli."
        )
    if m.autoregressive and m.likelihood != "bernoulli":
        raise ConfigError("an autoregressive decoder is a Bernoulli decoder; use --likelihood bernoulli, "
                          "or --autoregressive 0 with a gaussian likelihood.")
    if m.likelihood == "bernoulli" and d.binarize == "dequantize":
        raise ConfigError("binarize dequantize gives continuous pixels for a gaussian likelihood; use "
                          "--likelihood gaussian, or --binarize dynamic (or auto) with --likelihood "
                          "bernoulli.")
    if t.objective == "iwae" and (t.beta != 1.0 or t.warmup or t.free_bits or t.estimator != "reparam"):
        raise ConfigError("beta, warmup, free_bits and the score estimator apply to the elbo objective "
                          "only, not to iwae.")
    if (m.prior != "standard" or m.stochastic_layers > 1) and (t.free_bits or t.estimator != "reparam"):
        raise ConfigError("free bits and the score estimator need the closed-form KL of one Gaussian layer "
                          "against N(0, I); the vamp prior and two stochastic layers estimate the KL by "
                          "Monte Carlo: use --free-bits 0 --estimator reparam.")
    if t.estimator == "score" and t.free_bits:
        raise ConfigError("free_bits is not supported with the score estimator; use --estimator reparam.")
    return config


def differences(a: Any, b: Any) -> list[str]:
    """The 'section.key' names whose values differ between two configs of the same kind."""
    da, db = sections_of(a), sections_of(b)
    return [f"{s}.{f.name}" for s in da for f in fields(da[s])
            if getattr(da[s], f.name) != getattr(db[s], f.name)]
