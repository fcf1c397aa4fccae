"""Reading and checking a config made of sections (`TrainConfig`, or the classifier's): values
applied from a TOML file, a run's config.json or the command line (`apply`, `load_toml`,
`from_dict`), each checked against its setting's type and range as it is read and named with where
it came from; `validate`, every rule a VAE run's config keeps; `differences` between two configs.
"""

from __future__ import annotations

import copy
import dataclasses
import struct
import sys
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from vaekit.config.environ import DECIMAL
from vaekit.config.sections import IMAGE_CHANNELS, TrainConfig, check_image_shape, stride_problem
from vaekit.config.settings import Bound, flag_of, sections_of, settings_of
from vaekit.config.spelling import spell_key
from vaekit.config.values import (
    check_given_budget,
    checkpoint_interval,
    duration_value,
    interval_of_number,
    is_int,
    is_number,
    parse_image_size,
    parse_toml,
    show,
)
from vaekit.errors import ConfigError
from vaekit.regular import cannot_follow, open_regular

MAX_LAYERS = 1000  # entries of model.hidden and model.channels
MAX_TOML_BYTES = 1 << 20  # a config is a few lines; this keeps `--config /dev/zero` from filling memory
# the fix of a setting vaekit fills in from the data (model.image_shape, model.classes) that disagrees with it
FILLED_IN = ("leave {key} out of the config (it is filled in from the data), or give the data it was "
             "built for.")
COMMAND_LINE = "command line"  # the origin `apply` is given for flags: a choice is named by its flag

C = TypeVar("C")  # a config made of sections: TrainConfig, or the classifier's config


def check_value(key: str, value: Any, bound: Bound, origin: str | None = None) -> None:
    """Raise ConfigError unless the number (or each number of the list) `value` of `key`
    ('section.name') is in `bound`; the sentence names `origin` (a file, 'command line'), the key,
    the quantity, the broken bound and the value."""
    where = f"{origin}, " if origin else ""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_LAYERS:
        raise ConfigError(f"{where}{key} may list at most {MAX_LAYERS} sizes, got {len(items)}.")
    for item in items:
        problem = bound.problem(item)
        if problem:
            raise ConfigError(f"{where}{key}: {bound.what} {problem}, got {show(item)}.")
    if key == "model.image_shape":  # [C, H, W], of 1 or 3 channels
        check_image_shape(items, f"{where}{key}")


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
    if t.startswith("list[int]"):  # a list in a file ("8,8" or "" would be a string: refused)
        if not (isinstance(value, list | tuple) and all(is_int(v) for v in value)):
            raise ConfigError(f"{where}{key} must be a list of integers, got {show(value)}.")
        value = list(value)
    elif t.startswith("list[str]"):
        if not (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{where}{key} must be a list of strings, got {show(value)}.")
        if len(value) > MAX_LAYERS:
            raise ConfigError(f"{where}{key} may list at most {MAX_LAYERS} entries, got {len(value)}.")
        return list(value)
    elif t.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}{key} must be true or false, got {show(value)}.")
        return value
    elif t.startswith("int"):
        if not is_int(value):
            raise ConfigError(f"{where}{key} must be an integer, got {show(value)}.")
        if kind == "channels" and value not in IMAGE_CHANNELS:  # a few values, not a range
            raise ConfigError(f"{where}{channels_sentence(key, value)}.")
    elif t.startswith("float"):
        if kind == "duration":  # "60m" in a TOML file, or seconds: both held to the parser's bound
            value = duration_value(value, key, where)
        if not is_number(value):
            raise ConfigError(f"{where}{key} must be a number, got {show(value)}.")
        if isinstance(value, float) and is_subnormal(value):  # "0 or" only where 0 is in the key's range
            zero = "0 or " if (f.metadata.get("bound") or Bound("", 0, 0)).problem(0) is None else ""
            named = f"{flag_of(f)} ({key})" if origin == COMMAND_LINE and flag_of(f) else f"{where}{key}"
            raise ConfigError(f"{named} must be {zero}at least {sys.float_info.min:.4g} in size, got one "
                              "below (a subnormal float, or one that rounds to 0), which the CPU's "
                              "flush-to-zero mode reads as 0.")
    elif t.startswith("str"):
        if kind == "size" and is_int(value):  # image_size = 32 in a TOML file
            value = str(value)
        if kind == "interval" and is_number(value):  # checkpoint_every = 30 (seconds) in a TOML file
            try:
                value = interval_of_number(value)
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        if not isinstance(value, str):  # a size is written either way: say both
            what = 'a size such as 32 or "64x48"' if kind == "size" else "a string"
            raise ConfigError(f"{where}{key} must be {what}, got {show(value)}.")
        if not value.strip():  # no setting means anything by empty text: not "not given" either
            raise ConfigError(f"{where}{key} is empty; give a value, or leave it out for its default.")
        try:
            if kind == "size":
                parse_image_size(value, key)
            elif kind == "interval":
                checkpoint_interval(value)
        except ConfigError as err:
            raise ConfigError(f"{where}{err}") from None
        valid = f.metadata.get("choices")
        if valid and origin not in (None, COMMAND_LINE):  # a flag's value is named by the flag, later
            try:
                choice(key, value, valid)
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        return value
    else:
        raise AssertionError(f"unhandled type {t} of {key}")  # a bug in this file, not user input
    bound = f.metadata.get("bound")
    if bound is None:  # a bug in the setting's declaration, not user input
        raise AssertionError(f"the number {key} declares no bound")
    flag = flag_of(f) if origin == COMMAND_LINE else None  # a flag's value named by the flag typed
    check_value(f"{flag} ({key})" if flag else key, value, bound, None if flag else origin)  # ints exactly
    return float(value) if t.startswith("float") else value


def is_subnormal(x: float) -> bool:
    """Whether `x` is a subnormal float (0 < |x| < 2.2e-308), told by its bits: a comparison would
    read it as 0 while the CPU flushes denormals (`vaekit.device.flush_denormals`)."""
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    return (bits >> 52) & 0x7FF == 0 and bits & ((1 << 52) - 1) != 0


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
        raise ConfigError(f"{origin}: expected a table of sections, got {show(values)}.")
    out = copy.deepcopy(config)
    sections = sections_of(out)
    for section, entries in values.items():
        if section not in sections:
            raise ConfigError(f"{origin}: unknown key or section {spell_key(section)}; valid sections are "
                              f"{', '.join(sections)}.")
        if not isinstance(entries, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys, got {show(entries)}.")
        target = sections[section]
        by_name = {f.name: f for f in fields(target)}
        for key, value in entries.items():
            if key not in by_name:
                raise ConfigError(f"{origin}: unknown key {section}.{spell_key(key)}; valid keys of "
                                  f"[{section}] are {', '.join(by_name)}.")
            setattr(target, key, _coerce(section, by_name[key], value, origin))
    return out


def from_dict(d: dict[str, Any], origin: str = "config") -> TrainConfig:
    """Rebuild a TrainConfig from `asdict` output (config.json) over the defaults, every value
    checked as `apply` does."""
    return apply(TrainConfig(), d, origin)


def load_toml(path: str | Path, base: C | None = None, keys: set[str] | None = None) -> C:
    """Read a TOML file of [data]/[model]/[optim]/[train] tables over `base` (or the defaults);
    the 'section.key' names the file sets go into `keys` (what `check_used` holds as given).

    Any file that cannot be used is one ConfigError naming it: missing, a directory, unreadable,
    over MAX_TOML_BYTES, not UTF-8, not TOML, nested too deep for the parser; a bad value also
    names its key.
    """
    path = Path(path)
    try:  # a FIFO is refused unopened (opening it would wait for a writer), a device too
        with open_regular(path, "a TOML config file", ConfigError) as fh:
            data = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file.") from None
    except OSError as err:
        raise ConfigError(cannot_follow(path, err, "a TOML config file")) from None
    if len(data) > MAX_TOML_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_TOML_BYTES // 1024} KiB, too large for a config "
                          "file.")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}), "
                          "but a TOML file must be UTF-8.") from None
    try:
        values = parse_toml(text, path)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({str(err).rstrip('.')}).") from None
    except RecursionError:
        raise ConfigError(f"{path}: arrays or tables nested too deeply for the TOML parser.") from None
    except ValueError:  # Python reads no integer of more than 4,300 digits
        raise ConfigError(f"{path}: an integer of more than {sys.get_int_max_str_digits():,} digits, "
                          "which no setting takes.") from None
    config = TrainConfig() if base is None else base
    check_given_budget(config, values, path)
    if keys is not None:
        keys.update(given_keys(values))
    return apply(config, values, str(path))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- checking


def choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    """Raise ConfigError unless `value` of `key` is one of `valid`."""
    if value not in valid:
        raise ConfigError(f"unknown {key} {show(value)}; valid values are {', '.join(valid)}.")


def check_choices(config: Any, skip: tuple[str, ...] = ()) -> None:
    """Every setting of `config` that declares choices among them ('section.key' of `skip` aside);
    the error names the value by its flag, then its key ('unknown --image-fit "x" (data.image_fit)'):
    a file's values were named by the file and key when read (`_coerce`), so what is left here is a
    flag's."""
    for key, f in settings_of(config).items():
        if key not in skip:
            _check_choice(config, key, f)


def _check_choice(config: Any, key: str, f: dataclasses.Field) -> None:
    """The value of setting `f` ('section.key' `key`) of `config` among its choices, if it declares any."""
    valid = f.metadata.get("choices")
    value = getattr(getattr(config, key.split(".")[0]), f.name)
    if valid and value not in valid:
        raise ConfigError(f"unknown {flag_of(f)} {show(value)} ({key}); valid values are {', '.join(valid)}.")


def check_data_images(d: Any) -> None:
    """The image options of a data section (a VAE's or a classifier's): size and channels (the fit
    is a choice, `check_choices`)."""
    if d.image_size is not None:
        parse_image_size(d.image_size, "data.image_size")
    if d.image_channels not in IMAGE_CHANNELS:
        raise ConfigError(f"{channels_sentence('data.image_channels', d.image_channels)}.")


def channels_sentence(key: str, value: Any) -> str:
    """The sentence (without its full stop) of image channels `value`, given by `key` (a flag or a
    setting), that are none of IMAGE_CHANNELS."""
    return f"{key} must be 0 (the data's own), 1 (grey) or 3 (RGB), got {show(value)}"


def parse_image_channels(text: str, key: str = "--image-channels") -> int:
    """'1' -> 1: image channels as a flag gives them, one of IMAGE_CHANNELS; one sentence naming
    `key` for anything else (not an integer as a person types one: `DECIMAL`; another number)."""
    if not DECIMAL.fullmatch(text):
        raise ConfigError(f"{key} must be an integer, got {show(text)}.")
    value = int(text) if len(text) <= 19 else text
    if value not in IMAGE_CHANNELS:
        raise ConfigError(f"{channels_sentence(key, value)}.")
    return int(value)


def validate(config: TrainConfig, fix: str | None = None) -> TrainConfig:
    """Raise ConfigError (one sentence) for any value a run cannot use; return the config.

    The rules: every field of its declared type, every number finite and in its `BOUNDS` range
    (checked again here for configs built in Python); each choice among its valid values; then the
    combinations (a conv model needs channels, a Gaussian likelihood continuous pixels, the IWAE
    objective 2 samples or more and no beta, warm-up, free bits or score estimator, the score
    estimator no free bits, a conv model's kernel at least its stride), each named by its keys and
    flags, with the flags that fix it; or, for a file no flag changes (a run's config.json), `fix`.
    """
    m, t, d = config.model, config.train, config.data
    check_fields(config)
    check_choices(config)
    check_data_images(d)
    checkpoint_interval(t.checkpoint_every)
    rules = [
        (m.kind == "conv" and not m.channels, "model.channels (--channels) is empty, but a conv model needs "
         "one or more channel counts", "give --channels, such as 32,64"),
        (m.kind == "conv" and m.kernel_size < m.stride, stride_problem(m.kernel_size, m.stride),
         "use --kernel-size at least --stride"),
        (m.likelihood == "gaussian" and d.binarize in ("dynamic", "fixed"), "model.likelihood gaussian "
         f"(--likelihood) needs continuous pixels, but data.binarize (--binarize) is {d.binarize}",
         "use --binarize dequantize (or auto, or none) with --likelihood gaussian, or --likelihood "
         "bernoulli"),
        (m.autoregressive > 0 and m.likelihood != "bernoulli", "an autoregressive decoder "
         "(model.autoregressive, --autoregressive) is a Bernoulli decoder, but model.likelihood "
         f"(--likelihood) is {m.likelihood}", "use --likelihood bernoulli, or --autoregressive 0"),
        (m.likelihood == "bernoulli" and d.binarize == "dequantize", "data.binarize dequantize (--binarize) "
         "gives continuous pixels for a gaussian likelihood, but model.likelihood (--likelihood) is "
         "bernoulli", "use --likelihood gaussian, or --binarize dynamic (or auto) with --likelihood "
         "bernoulli"),
        (t.objective == "iwae" and t.samples < 2, "train.objective iwae (--objective) needs train.samples "
         f"(--samples) of at least 2, got {t.samples}: with one sample its bound is the ELBO (its KL "
         "estimated at the sample, not in closed form)", "use --samples 2 or more, or --objective elbo"),
        (t.objective == "iwae" and (t.beta != 1.0 or t.warmup or t.free_bits or t.estimator != "reparam"),
         "train.beta, warmup, free_bits and the score estimator apply to the elbo objective only, not to "
         "train.objective iwae (--objective)", "leave them out, or use --objective elbo"),
        ((m.prior != "standard" or m.stochastic_layers > 1) and (t.free_bits or t.estimator != "reparam"),
         "train.free_bits and the score estimator need the closed-form KL of one Gaussian layer against "
         "N(0, I), but the vamp prior and two stochastic layers estimate the KL by Monte Carlo",
         "use --free-bits 0 --estimator reparam"),
        (t.estimator == "score" and t.free_bits, "train.free_bits (--free-bits) is not supported with the "
         "score estimator (--estimator score)", "use --estimator reparam, or --free-bits 0"),
    ]
    for broken, problem, advice in rules:
        if broken:
            raise ConfigError(f"{problem}; {fix or advice}.")
    return config


# Settings that a config uses only with another setting: (key, whether it is used, what it is used
# with). Set anyway, such a value would be recorded in config.json as if it had been used.
_CONV = (lambda c: c.model.kind == "conv", "the conv model (--model conv)")
_AUTOREGRESSIVE = (lambda c: c.model.autoregressive > 0, "an autoregressive decoder (--autoregressive N)")
_STEP = (lambda c: c.optim.schedule == "step", "the step schedule (--schedule step)")


def _image_folder(name: str) -> bool:
    """Whether the data's name is a folder (of images: `vaekit.data.readers`); a path no file system
    holds is none."""
    try:
        return Path(name).is_dir()
    except (OSError, ValueError):
        return False


def _on_cuda(c: Any) -> bool:
    """Whether the run's device is a CUDA device: cuda, or auto where torch sees one (as
    `vaekit.device.resolve_device` resolves it)."""
    if c.train.device != "auto":
        return bool(c.train.device == "cuda")
    import torch  # asked only of a run that changed a CUDA-only setting

    return bool(torch.cuda.is_available())


# a setting of the layers' non-linearity acts where some layer has one: not an MLP of no hidden layer
_LAYERS = (lambda c: c.model.kind == "conv" or bool(c.model.hidden) or c.model.stochastic_layers > 1,
           "hidden layers (--hidden), a conv model or two stochastic layers, the layers it acts on")
_ELBO = (lambda c: c.train.objective == "elbo", "the elbo objective (--objective elbo)")

USED_WITH: tuple[tuple[str, Any, str], ...] = (
    ("model.channels", *_CONV), ("model.kernel_size", *_CONV), ("model.stride", *_CONV),
    ("model.pseudo_inputs", lambda c: c.model.prior == "vamp", "the vamp prior (--prior vamp)"),
    ("model.autoregressive_dropout", *_AUTOREGRESSIVE), ("model.autoregressive_window", *_AUTOREGRESSIVE),
    ("model.variance", lambda c: c.model.likelihood == "gaussian", "a gaussian likelihood (--likelihood "
     "gaussian)"),
    ("optim.momentum", lambda c: c.optim.name in ("sgd", "rmsprop"), "--optimizer sgd or rmsprop"),
    ("optim.step_size", *_STEP), ("optim.gamma", *_STEP),
    ("model.activation", *_LAYERS), ("model.gated", *_LAYERS),
    ("train.beta", *_ELBO), ("train.warmup", *_ELBO), ("train.free_bits", *_ELBO),
    ("train.estimator", *_ELBO),
    ("model.activation", lambda c: not c.model.gated, "ungated layers (no --gated; a gated layer's sigmoid "
     "gate is its non-linearity)"),
    ("train.free_bits", lambda c: c.train.beta > 0, "a KL weight above 0 (--beta), which scales the "
     "floored KL"),
    ("train.warmup", lambda c: c.train.beta > 0, "a KL weight above 0 (--beta), which the warm-up ramps "
     "up to from 0"),
    ("data.image_fit", lambda c: c.data.image_size is not None, "a resize (--image-size)"),
    ("data.skip_bad", lambda c: _image_folder(c.data.name), "a folder of images as the data"),
    ("train.cuda_graph", _on_cuda, "a CUDA device (--device cuda, or auto where torch sees one)"),
)


def given_keys(sections: dict[str, Any]) -> set[str]:
    """The 'section.key' names of settings given as {section: {key: value}} (flags, a TOML file)."""
    return {f"{s}.{k}" for s, table in sections.items() if isinstance(table, dict) for k in table}


def check_used(config: Any, base: Any, rules: tuple[tuple[str, Any, str], ...] | None = None,
               recorded: bool = True, given: set[str] | frozenset[str] = frozenset(),
               file: str | None = None, file_keys: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuse a setting this command changed from `base` (the defaults, or the config of the run it
    resumes), or gave (`given`: 'section.key' names of the flags, `file_keys` those of the TOML
    `file`, whatever their value, so `--momentum 0.9` too), that `config` does not use (`rules`, by
    default `USED_WITH`): `--momentum 0` with adam, `--channels 16` with the MLP. One sentence naming
    the key and its flag, or the file it came from; a value that is not among the setting's choices
    is named as unknown first (`--variance bogus`: fixing the other setting would only lead to that
    refusal). `recorded`: whether the command writes the config into a run (`data info` writes none)."""
    keys = settings_of(config)
    why = ("it would be recorded in config.json as if it had been used" if recorded
           else "it would change nothing")
    for key in dict.fromkeys([*differences(base, config), *sorted({*given, *file_keys})]):
        for name, used, what in USED_WITH if rules is None else rules:
            if name == key and name in keys and not used(config):
                _check_choice(config, key, keys[key])
                flag = flag_of(keys[key])
                named = (f"{file}: {key}" if key in file_keys and key not in given  # the flag's value wins
                         else f"{key}{f' ({flag})' if flag else ''}")
                raise ConfigError(f"{named} is used only with {what}, which is not the case here; leave it "
                                  f"out ({why}).")


def check_with_data(config: TrainConfig, data: str, pixels: int, train_images: int) -> None:
    """The settings that count what the data holds, once it is known: the VampPrior's
    pseudo-inputs against the `train_images` of `data`, the autoregressive window against the
    `pixels` of an image (each pixel has at most pixels - 1 before it; a window of all is 0)."""
    m = config.model
    if m.prior == "vamp" and m.pseudo_inputs > train_images:
        raise ConfigError(f"model.pseudo_inputs is {m.pseudo_inputs:,} (--pseudo-inputs), more than the "
                          f"{train_images:,} training images of {data}; the VampPrior's pseudo-inputs "
                          "summarise the data, so give at most that many (500 for 60,000).")
    if m.autoregressive_window > pixels - 1:
        raise ConfigError(f"model.autoregressive_window is {m.autoregressive_window:,} pixels "
                          f"(--autoregressive-window), more than the {pixels - 1:,} before the last pixel of "
                          f"the {pixels:,}-pixel images of {data}; give at most {pixels - 1:,}, or 0 for all "
                          "of them.")


def differences(a: Any, b: Any) -> list[str]:
    """The 'section.key' names whose values differ between two configs of the same kind."""
    da, db = sections_of(a), sections_of(b)
    return [f"{s}.{f.name}" for s in da for f in fields(da[s])
            if getattr(da[s], f.name) != getattr(db[s], f.name)]
