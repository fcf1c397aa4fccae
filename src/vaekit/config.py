"""Training configuration: one dataclass per component, each with its defaults.

A run is described by a `TrainConfig` made of four sections, the same four as in a TOML file:

    [data]   which images and how they are turned into x      (DataConfig)
    [model]  the VAE: kind, sizes, likelihood                  (ModelConfig)
    [optim]  optimizer, learning rate and its schedule         (OptimConfig)
    [train]  objective, samples, beta, epochs, seed, device    (LoopConfig)

Precedence: the defaults below < a `--config FILE.toml` < command-line flags. A key that does not
exist, a value of the wrong type or out of range is a `ConfigError`: one sentence naming where the
value came from (the TOML file, "command line", a run's config.json), the key, what was expected and
the value. Every number is checked against `BOUNDS` (finite, within its range: seeds within
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
from dataclasses import asdict, dataclass, field, fields
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


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # registry name, a .npy/.npz path, or a folder of images
    data_dir: str | None = None  # directory looked in first (data.py lookup order)
    # How uint8 pixels become x: 'dynamic' draws x ~ Bernoulli(pixel/255) afresh for each batch,
    # 'fixed' draws once with the seed, 'none' keeps pixel/255 in [0, 1]; 'auto' is dynamic for a
    # Bernoulli likelihood and dequantize ((pixel + u) / 256, u ~ U[0, 1) afresh, log-likelihoods of
    # the 8-bit images) for a Gaussian one. Validation and test are binarized (dequantized) once
    # with a fixed seed when training is binary (dequantized).
    binarize: str = "auto"
    # User images (`vaekit.data.folder`): resize every image to "S" (S x S) or "HxW" (None: keep the
    # size; a folder of mixed sizes needs one), how (crop: scale the shorter side, centre crop; pad:
    # scale the longer side, pad with black), the channels (0: the data's own, 1: grey, 3: RGB) and
    # whether unreadable files of a folder are skipped (and counted) instead of refused.
    image_size: str | None = None
    image_channels: int = 0
    image_fit: str = "crop"
    skip_bad: bool = False
    # Images of a built-in set's training file held out for validation (None: the set's own split,
    # 5,000 for the IDX sets); the rest train. The held-out images are a fixed seeded subset, and a
    # smaller split is a subset of a larger one. Folders and arrays split 80/10/10 instead.
    val_size: int | None = None


@dataclass
class ModelConfig:
    kind: str = "mlp"  # mlp | conv
    hidden: list[int] = field(default_factory=lambda: [400])  # dense layers of q_enc (p_dec mirrors)
    latent: int = 20  # dimension of z
    likelihood: str = "bernoulli"  # bernoulli (logits) | gaussian (mean, learned log-variance)
    variance: str = "pixel"  # gaussian only: learned log-variance per pixel or one global
    activation: str = "relu"
    channels: list[int] = field(default_factory=lambda: [32, 64])  # conv only: strided conv stack
    kernel_size: int = 4  # conv only
    stride: int = 2  # conv only
    image_shape: list[int] | None = None  # (C, H, W), filled in from the data at training time
    # The pieces of the best-NLL model (Tomczak & Welling 2018): gated layers
    # h = (W x + b) * sigmoid(V x + c) in place of linear + activation; the prior p(z); one or two
    # stochastic layers (z1 | z2, z2).
    gated: bool = False
    prior: str = "standard"  # standard | vamp
    pseudo_inputs: int = 500  # vamp only: K learned pseudo-inputs u_k of p(z) = 1/K sum_k q(z|u_k)
    stochastic_layers: int = 1  # 1: z; 2: the hierarchical VAE, z2 -> z1 -> x, each of size latent
    # Units of the autoregressive decoder's masked layer (`vaekit.vae.autoregressive`: each pixel's
    # logit also sees the pixels before it, MADE over x given z); 0: the factorized decoder.
    autoregressive: int = 0
    autoregressive_dropout: float = 0.0  # fraction of its masked units dropped in training
    autoregressive_window: int = 0  # pixels before each pixel that its term sees (0: all of them)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd | rmsprop
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd and rmsprop
    schedule: str = "none"  # none | cosine (to 0 at the last epoch) | step
    step_size: int = 30  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: lr factor at each decay
    clip: float = 0.0  # max global gradient norm; 0 = no clipping


@dataclass
class LoopConfig:
    objective: str = "elbo"  # elbo (k-sample ELBO) | iwae (IWAE-k bound)
    samples: int = 1  # k, reparameterized samples per image (the sheet: 1)
    beta: float = 1.0  # weight of the KL term (beta-VAE); the target of the warm-up
    warmup: float = 0.0  # epochs over which beta ramps linearly from 0 to beta
    free_bits: float = 0.0  # floor, in nats, of each latent dimension's KL in the objective
    estimator: str = "reparam"  # reparam (pathwise) | score (score function, REINFORCE)
    batch_size: int = 128
    epochs: int = 10
    patience: int = 0  # stop after this many epochs without a better validation -ELBO; 0 = never
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto
    threads: int = 0  # torch CPU threads; 0 = the cores other processes leave idle, at least 1
    # How gradients are computed: 'auto' uses the hand-derived backward of `vaekit.vae.backprop`
    # where it applies and is the faster (`backprop.faster`: an MLP VAE with a Bernoulli decoder,
    # ReLU/tanh layers, the reparameterized ELBO or IWAE), autograd elsewhere; 'autograd' always
    # uses autograd (the same loss; other rounding, so other numbers).
    engine: str = "auto"
    # Wall time of training in seconds (0 = none): the run plans its epochs (and the cosine decay,
    # the warm-up) to end inside it, `vaekit.train.budget`; `--time-budget 60m` on the command line.
    time_budget: float = 0.0
    # float32, or bf16: the hand-derived engine's (`vaekit.vae.backprop`) matrix products from
    # bfloat16 inputs, the autograd engine's forward under torch.autocast(bfloat16) (CPU or CUDA);
    # weights, gradients and sums stay float32.
    precision: str = "float32"
    # Scalars per epoch and image grids (reconstructions, samples) in RUN/tensorboard beside
    # metrics.jsonl (`vaekit.train.tensorboard`; the optional extra vaekit[tensorboard]).
    tensorboard: bool = False
    # When checkpoints are written besides after the first and the last epoch: "epoch" (every
    # epoch), a duration ("30s", "5m", "90": at most one per that much wall time), or "auto" (as
    # often as keeps their writing under 5% of the run's time: every epoch on a CPU, every few
    # dozen of a GPU's sub-second epochs); `vaekit.train.checkpoints`.
    checkpoint_every: str = "auto"
    # On CUDA, each training step (forward, backward, clip, Adam) captured once in a CUDA graph and
    # replayed (`vaekit.train.step`); false: launched op by op. Other devices ignore it.
    cuda_graph: bool = True


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
# upper bounds are far beyond any useful run; what fits in memory is `vaekit.train.memory`'s check.
BOUNDS: dict[str, Bound] = {
    "data.image_channels": Bound("the image channels (0 = the data's own, 1 or 3)", 0, 3),
    "data.val_size": Bound("the validation images", 1, MAX_SIZE),
    "model.hidden": Bound("each hidden size", 1, MAX_SIZE),
    "model.latent": Bound("the latent size", 1, MAX_SIZE),
    "model.channels": Bound("each conv channel count", 1, MAX_SIZE),
    "model.kernel_size": Bound("the conv kernel size", 1, MAX_SIZE),
    "model.stride": Bound("the conv stride", 1, MAX_SIZE),
    "model.image_shape": Bound("each image size of [C, H, W]", 1, MAX_SIZE),
    "model.pseudo_inputs": Bound("the number of pseudo-inputs", 1, 100_000),
    "model.stochastic_layers": Bound("the number of stochastic layers", 1, 2),
    "model.autoregressive": Bound("the autoregressive decoder's units (0 = none)", 0, 1_000_000),
    "model.autoregressive_dropout": Bound("the autoregressive decoder's dropout", 0, 1, high_open=True),
    "model.autoregressive_window": Bound("the autoregressive decoder's window (0 = all pixels)", 0, MAX_SIZE),
    "optim.lr": Bound("the learning rate", 0, 100, low_open=True),
    "optim.weight_decay": Bound("the weight decay", 0, 100),
    "optim.momentum": Bound("the momentum", 0, 1, high_open=True),
    "optim.step_size": Bound("the step schedule's epochs between decays", 1, MAX_SIZE),
    "optim.gamma": Bound("the step schedule's lr factor", 0, 1, low_open=True),
    "optim.clip": Bound("the max gradient norm", 0, 1e12),
    "train.samples": Bound("the number of samples per image", 1, MAX_SIZE),
    "train.beta": Bound("the KL weight beta", 0, 1e4),
    "train.warmup": Bound("the KL warm-up in epochs", 0, MAX_SIZE),
    "train.free_bits": Bound("the free bits per latent dimension in nats", 0, 1e3),
    "train.batch_size": Bound("the batch size", 1, MAX_SIZE),
    "train.epochs": Bound("the number of epochs", 1, MAX_SIZE),
    "train.patience": Bound("the patience in epochs", 0, MAX_SIZE),
    "train.seed": Bound("the seed", 0, SEED_MAX),
    "train.threads": Bound("the number of CPU threads", 0, MAX_THREADS),
    "train.time_budget": Bound("the time budget in seconds", 0, 1e8),
}


def _bound_text(x: float) -> str:
    """A bound as written in a sentence: 100, 1e-12, 2147483647."""
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return repr(x)


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


def check_value(key: str, value: Any, origin: str | None = None,
                bounds: dict[str, Bound] | None = None) -> None:
    """Raise ConfigError unless the number (or each number of the list) `value` of `key`
    ('section.name') is in `bounds[key]` (default `BOUNDS`); the sentence names `origin` (a file,
    'command line'), the key, the quantity, the broken bound and the value."""
    where = f"{origin}, " if origin else ""
    bound = (BOUNDS if bounds is None else bounds)[key]
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


def _coerce(section: str, f: dataclasses.Field, value: Any, origin: str | None = None,
            bounds: dict[str, Bound] | None = None) -> Any:
    """Check/convert one value against the field's declared type (strings in annotations) and,
    for numbers, its range in `bounds` (default BOUNDS); errors name `origin` (the file or
    'command line')."""
    key = f"{section}.{f.name}"
    t = str(f.type)
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
        if key == "train.time_budget" and isinstance(value, str):  # "60m" in a TOML file
            try:
                value = parse_duration(value, key)
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        if not is_number(value):
            raise ConfigError(f"{where}{key} must be a number, got {_show(value)}.")
    elif t.startswith("str"):
        if f.name == "image_size" and is_int(value):  # image_size = 32 in a TOML file
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}{key} must be a string, got {_show(value)}.")
        if f.name == "image_size":
            try:
                parse_image_size(value, key)
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        return value
    else:
        raise AssertionError(f"unhandled type {t} of {key}")  # a bug in this file, not user input
    check_value(key, value, origin, bounds)  # ints compared exactly, so 10**400 is refused, not overflowed
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


IMAGE_CHANNELS = (0, 1, 3)  # data.image_channels: the data's own, grey, RGB


def check_data_images(d: Any) -> None:
    """The image options of a data section (a VAE's or a classifier's): size, channels, fit."""
    if d.image_size is not None:
        parse_image_size(d.image_size, "data.image_size")
    if d.image_channels not in IMAGE_CHANNELS:
        raise ConfigError(f"data.image_channels must be 0 (the data's own), 1 (grey) or 3 (RGB), got "
                          f"{_show(d.image_channels)}.")
    choice("image_fit", d.image_fit, IMAGE_FITS)


def parse_int_list(text: str, key: str = "hidden") -> list[int]:
    """'512,256' -> [512, 256]; '' -> []. `key` names the input in the error ('model.hidden',
    '--channels')."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{key} must be a comma-separated list of integers, got {_show(text)}.") from None


def sections_of(config: Any) -> dict[str, Any]:
    """{section name: section} of a config made of sections (TrainConfig, or the classifier's
    `vaekit.classify.config.ClassifierConfig`)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def bounds_of(config: Any) -> dict[str, Bound]:
    """The range table of a config's numbers: its class's `BOUNDS`, else this module's."""
    return getattr(type(config), "BOUNDS", BOUNDS)


def check_fields(config: Any) -> None:
    """Every field of every section of `config` of its declared type and in its range (for
    configs built in Python, which `apply` never saw)."""
    bounds = bounds_of(config)
    for section, part in sections_of(config).items():
        for f in fields(part):
            _coerce(section, f, getattr(part, f.name), bounds=bounds)


def apply(config: C, values: dict[str, Any], origin: str) -> C:
    """A copy of `config` (a TrainConfig or another config of sections) with `values`
    ({section: {key: value}}) applied, each value checked (type and range) and named with `origin`
    in errors; unknown sections and keys refused."""
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: expected a table of sections, got {_show(values)}.")
    out = copy.deepcopy(config)
    sections, bounds = sections_of(out), bounds_of(out)
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
            setattr(target, key, _coerce(section, by_name[key], value, origin, bounds))
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


def validate(config: TrainConfig) -> TrainConfig:
    """Raise ConfigError (one sentence) for any value a run cannot use; return the config.

    The rules: each choice among its valid values; every field of its declared type, every number
    finite and in its `BOUNDS` range (checked again here for configs built in Python); then the
    combinations (a conv model needs channels, a Gaussian likelihood continuous pixels, the IWAE
    objective no beta, warm-up, free bits or score estimator, the score estimator no free bits).
    """
    m, t, d = config.model, config.train, config.data
    check_fields(config)
    choice("model", m.kind, MODEL_KINDS)
    choice("likelihood", m.likelihood, LIKELIHOODS)
    choice("variance", m.variance, VARIANCES)
    choice("activation", m.activation, ACTIVATIONS)
    choice("prior", m.prior, PRIORS)
    choice("optimizer", config.optim.name, OPTIMIZERS)
    choice("schedule", config.optim.schedule, SCHEDULES)
    choice("objective", t.objective, OBJECTIVES)
    choice("estimator", t.estimator, ESTIMATORS)
    choice("engine", t.engine, ENGINES)
    choice("precision", t.precision, PRECISIONS)
    choice("binarize", d.binarize, BINARIZATIONS)
    check_data_images(d)
    choice("device", t.device, DEVICES)
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


# Settings that may change when a run is resumed: how long it goes on and where it computes.
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.device", "train.threads", "data.data_dir",
                     "train.time_budget", "train.tensorboard", "train.checkpoint_every", "train.cuda_graph")


def differences(a: Any, b: Any) -> list[str]:
    """The 'section.key' names whose values differ between two configs of the same kind."""
    da, db = sections_of(a), sections_of(b)
    return [f"{s}.{f.name}" for s in da for f in fields(da[s])
            if getattr(da[s], f.name) != getattr(db[s], f.name)]
