"""Training configuration: one dataclass per component, each with its defaults.

A run is described by a `TrainConfig` made of four sections, the same four as in a TOML file:

    [data]   which images and how they are turned into x      (DataConfig)
    [model]  the VAE: kind, sizes, likelihood                  (ModelConfig)
    [optim]  optimizer, learning rate and its schedule         (OptimConfig)
    [train]  objective, samples, beta, epochs, seed, device    (LoopConfig)

Precedence: the defaults below < a `--config FILE.toml` < command-line flags. A key that does not
exist, a value of the wrong type or out of range is a `ConfigError` naming the key and what was
expected. `config.json` of a run is `asdict(config)`, and `from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vaekit.errors import ConfigError

MODEL_KINDS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = ("pixel", "global")  # a Gaussian decoder's learned log-variance: one per pixel, or one
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("none", "cosine", "step")
OBJECTIVES = ("elbo", "iwae")
ESTIMATORS = ("reparam", "score")
ENGINES = ("auto", "autograd")
BINARIZATIONS = ("auto", "dynamic", "fixed", "none")
DEVICES = ("cpu", "cuda", "auto")


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # registry name or a .npy/.npz path
    data_dir: str | None = None  # directory looked in first (data.py lookup order)
    # How uint8 pixels become x: 'dynamic' draws x ~ Bernoulli(pixel/255) afresh for each batch,
    # 'fixed' draws once with the seed, 'none' keeps pixel/255 in [0, 1]; 'auto' is dynamic for a
    # Bernoulli likelihood and none for a Gaussian one. Validation and test are always binarized
    # once with a fixed seed when training is binary.
    binarize: str = "auto"


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
    # How gradients are computed: 'auto' uses the hand-derived backward of `vaekit.mlp_backprop`
    # where it applies (MLP, Bernoulli, ReLU/tanh, one-sample reparameterized ELBO), autograd
    # elsewhere; 'autograd' always uses autograd (the same loss; other rounding, so other numbers).
    engine: str = "auto"


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
        return "none" if self.model.likelihood == "gaussian" else "dynamic"


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
                             "train": LoopConfig}


# ----------------------------------------------------------------------------- reading


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    """Check/convert one value against the field's declared type (strings in annotations)."""
    key = f"{section}.{f.name}"
    t = str(f.type)
    if value is None:
        if "None" in t:
            return None
        raise ConfigError(f"{key} may not be empty.")
    if t.startswith("list[int]"):
        if isinstance(value, str):
            return parse_int_list(value, key)
        if isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool)
                                                    for v in value):
            return list(value)
        raise ConfigError(f"{key} must be a list of integers, got {value!r}.")
    if t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}.")
        return value
    if t.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}.")
        return float(value)
    if t.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}.")
        return value
    raise AssertionError(f"unhandled type {t} of {key}")  # a bug in this file, not user input


def parse_int_list(text: str, key: str = "hidden") -> list[int]:
    """'512,256' -> [512, 256]; '' -> []."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{key} must be a comma-separated list of integers, got {text!r}.") from None


def apply(config: TrainConfig, values: dict[str, Any], origin: str) -> TrainConfig:
    """A copy of `config` with `values` ({section: {key: value}}) applied; unknown keys refused."""
    for section, entries in values.items():
        if section not in SECTIONS:
            raise ConfigError(f"{origin}: unknown key or section {section!r}; valid sections are "
                              f"{', '.join(SECTIONS)}.")
        if not isinstance(entries, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys.")
    merged = config.to_dict()
    for section, entries in values.items():
        merged.setdefault(section, {}).update(entries)
    return from_dict(merged, origin)


def from_dict(d: dict[str, Any], origin: str = "config") -> TrainConfig:
    """Rebuild a TrainConfig from `asdict` output (config.json), refusing unknown keys."""
    out = TrainConfig()
    for section, entries in d.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{origin}: unknown section [{section}]; valid sections are {', '.join(SECTIONS)}."
            )
        target = getattr(out, section)
        by_name = {f.name: f for f in fields(target)}
        for key, value in entries.items():
            if key not in by_name:
                raise ConfigError(f"{origin}: unknown key {section}.{key}; valid keys of [{section}] "
                                  f"are {', '.join(by_name)}.")
            setattr(target, key, _coerce(section, by_name[key], value))
    return out


def load_toml(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a TOML file of [data]/[model]/[optim]/[train] tables over `base` (or the defaults)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            values = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}).") from None
    return apply(base or TrainConfig(), values, str(path))


# ----------------------------------------------------------------------------- checking


def _choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {key} {value!r}; valid values are {', '.join(valid)}.")


def validate(config: TrainConfig) -> TrainConfig:
    """Raise ConfigError (one sentence) for any value a run cannot use; return the config."""
    m, o, t, d = config.model, config.optim, config.train, config.data
    _choice("model", m.kind, MODEL_KINDS)
    _choice("likelihood", m.likelihood, LIKELIHOODS)
    _choice("variance", m.variance, VARIANCES)
    _choice("activation", m.activation, ACTIVATIONS)
    _choice("optimizer", o.name, OPTIMIZERS)
    _choice("schedule", o.schedule, SCHEDULES)
    _choice("objective", t.objective, OBJECTIVES)
    _choice("estimator", t.estimator, ESTIMATORS)
    _choice("engine", t.engine, ENGINES)
    _choice("binarize", d.binarize, BINARIZATIONS)
    _choice("device", t.device, DEVICES)
    if m.latent < 1:
        raise ConfigError(f"latent size must be at least 1, got {m.latent}.")
    if any(h < 1 for h in m.hidden):
        raise ConfigError(f"hidden sizes must be at least 1, got {m.hidden}.")
    if m.kind == "conv" and (not m.channels or any(c < 1 for c in m.channels)):
        raise ConfigError(f"conv channels must be one or more positive integers, got {m.channels}.")
    if m.kind == "conv" and (m.kernel_size < 1 or m.stride < 1):
        raise ConfigError(f"conv kernel_size and stride must be >= 1, got {m.kernel_size}, {m.stride}.")
    if m.likelihood == "gaussian" and d.binarize in ("dynamic", "fixed"):
        raise ConfigError(
            f"a gaussian likelihood needs continuous pixels, but binarize is {d.binarize!r}; "
            "use --binarize none (or auto) with --likelihood gaussian, or --likelihood bernoulli."
        )
    if t.samples < 1:
        raise ConfigError(f"samples must be at least 1, got {t.samples}.")
    if t.batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {t.batch_size}.")
    if t.epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {t.epochs}.")
    if t.beta < 0 or t.warmup < 0 or t.free_bits < 0 or t.patience < 0 or t.threads < 0:
        raise ConfigError("beta, warmup, free_bits, patience and threads must not be negative.")
    if o.lr <= 0 or o.weight_decay < 0 or o.clip < 0 or o.momentum < 0:
        raise ConfigError(f"lr must be > 0 and weight_decay, clip, momentum >= 0, got lr={o.lr}.")
    if o.schedule == "step" and (o.step_size < 1 or o.gamma <= 0):
        raise ConfigError(f"the step schedule needs step_size >= 1 and gamma > 0, got {o.step_size}, "
                          f"{o.gamma}.")
    if t.objective == "iwae" and (t.beta != 1.0 or t.warmup or t.free_bits or t.estimator != "reparam"):
        raise ConfigError("beta, warmup, free_bits and the score estimator apply to the elbo objective "
                          "only, not to iwae.")
    if t.estimator == "score" and t.free_bits:
        raise ConfigError("free_bits is not supported with the score estimator; use --estimator reparam.")
    return config


# Settings that may change when a run is resumed: how long it goes on and where it computes.
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.device", "train.threads", "data.data_dir")


def differences(a: TrainConfig, b: TrainConfig) -> list[str]:
    """The 'section.key' names whose values differ between two configs."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{s}.{k}" for s in SECTIONS for k in da[s] if da[s][k] != db[s][k]]
