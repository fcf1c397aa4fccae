"""vaekit.config: every number finite and in range, seeds that torch tells apart, and TOML files that
cannot be used, each one sentence naming the file (or "command line"), the key and the value."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torch_reference import lr_changes, lr_flushed
from vaekit import runs
from vaekit.config import (
    BOUNDS,
    RESUMABLE_CHANGES,
    SECTIONS,
    SEED_MAX,
    Bound,
    TrainConfig,
    apply,
    bounds_of,
    check_choices,
    flag_of,
    from_dict,
    load_toml,
    resumable_of,
    setting,
    settings_of,
    spell,
    validate,
)
from vaekit.errors import CheckpointError, ConfigError
from vaekit.vae.models import build_model

OneSentence = Callable[..., None]


def refused(call: Callable[[], Any], one_sentence: OneSentence, *names: str) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    one_sentence(message, *names)
    return message


def toml_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "c.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# ----------------------------------------------------------------------------- numbers


def numeric_keys() -> list[str]:
    """The int, float and list[int] fields of the four sections, read from the dataclasses."""
    keys = []
    for section, cls in SECTIONS.items():
        for f in cls.__dataclass_fields__.values():
            if str(f.type).split(" ")[0] in ("int", "float", "list[int]"):
                keys.append(f"{section}.{f.name}")
    return keys


def test_every_number_of_the_config_has_a_range() -> None:
    assert sorted(numeric_keys()) == sorted(BOUNDS)
    assert "train.seed" in BOUNDS and "optim.gamma" in BOUNDS  # the list above is not empty


# The ranges as the issue asks for them, written out here rather than read from BOUNDS.
FLOAT_KEYS = {"optim.lr": (0.0, False), "optim.weight_decay": (0.0, True), "optim.momentum": (0.0, True),
              "optim.gamma": (0.0, False), "optim.clip": (0.0, True), "train.beta": (0.0, True),
              "train.warmup": (0.0, True), "train.free_bits": (0.0, True)}  # key -> (low, low allowed)


@pytest.mark.parametrize("key", sorted(FLOAT_KEYS))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_naming_the_origin(key: str, value: float,
                                                          one_sentence: OneSentence) -> None:
    section, name = key.split(".")
    message = refused(lambda: apply(TrainConfig(), {section: {name: value}}, "c.toml"),
                      one_sentence, "c.toml", key, repr(value))
    assert "must be a finite number in " in message  # and the range, in interval notation
    flag = flag_of(settings_of(TrainConfig())[key])  # the command line's value: by its flag, then the key
    refused(lambda: apply(TrainConfig(), {section: {name: value}}, "command line"), one_sentence,
            f"{flag} ({key})" if flag else f"command line, {key}", repr(value))


@pytest.mark.parametrize("key", sorted(FLOAT_KEYS))
def test_float_lower_bounds(key: str, one_sentence: OneSentence) -> None:
    section, name = key.split(".")
    low, allowed = FLOAT_KEYS[key]
    below = low if not allowed else -1e-9
    refused(lambda: apply(TrainConfig(), {section: {name: below}}, "command line"), one_sentence, key)
    config = apply(TrainConfig(), {section: {name: 0.5}}, "command line")  # inside every range
    assert getattr(getattr(config, section), name) == 0.5


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_learning_rate_accepted_exactly_when_finite_positive_and_at_most_100(lr: float) -> None:
    ok = math.isfinite(lr) and sys.float_info.min <= lr <= 100  # a subnormal lr is refused too
    try:
        config = apply(TrainConfig(), {"optim": {"lr": lr}}, "command line")
    except ConfigError:
        assert not ok, lr
    else:
        assert ok and config.optim.lr == lr


def test_gamma_nan_in_toml_names_the_file_and_the_key(tmp_path: Path, one_sentence: OneSentence) -> None:
    path = toml_file(tmp_path, "[optim]\nschedule = 'step'\ngamma = nan\n")
    message = refused(lambda: load_toml(path), one_sentence, str(path), "optim.gamma", "nan")
    assert "(0, 1]" in message


def test_inf_in_toml(tmp_path: Path, one_sentence: OneSentence) -> None:
    path = toml_file(tmp_path, "[train]\nwarmup = inf\n")
    refused(lambda: load_toml(path), one_sentence, str(path), "train.warmup", "inf")
    for written, key, number in (("[optim]\nlr = 1e400", "optim.lr", "1e400"),
                                 ("[model]\nhidden = [8, -2_0E99_9]", "model.hidden[1]", "-20E999"),
                                 ('[data]\n"x y" = {z = [[1.8e308]]}', 'data."x y".z[0][0]', "1.8e308")):
        path = toml_file(tmp_path, written + "\n")  # float() reads each as inf: quoted as written, by key
        refused(lambda: load_toml(path), one_sentence,  # noqa: B023 (called at once)
                f"{path}, {key}: {number} must be a finite number", "larger in size than the largest float")


@pytest.mark.parametrize("written", ["1e-320", "-4.9e-324", "1e-400", "0.000_000_1e-310"])
def test_toml_float_below_the_smallest_normal_is_refused_even_under_flush_to_zero(
        tmp_path: Path, one_sentence: OneSentence, written: str) -> None:
    from vaekit.device import flush_denormals
    path = toml_file(tmp_path, f"[optim]\nclip = {written}\n")
    number = written.replace("_", "")
    refused(lambda: load_toml(path), one_sentence, f"{path}, optim.clip: {number} must be 0")
    with flush_denormals():  # as the CLI parses a config: the float alone would be 0.0 there
        refused(lambda: load_toml(path), one_sentence, str(path), written.replace("_", ""))


@pytest.mark.parametrize("written", ["0.0", "-0.0", "2.3e-308", "1_000.5", "5e-1"])
def test_toml_floats_at_or_above_the_smallest_normal_read_as_python_reads_them(tmp_path: Path,
                                                                                 written: str) -> None:
    path = toml_file(tmp_path, f"[optim]\nclip = {written}\n")
    assert load_toml(path).optim.clip == abs(float(written.replace("_", "")))


@pytest.mark.parametrize("key", ["model.latent", "model.hidden", "train.samples", "train.batch_size",
                                 "model.channels", "train.epochs"])
@pytest.mark.parametrize("size", [2**31, 10**10, 10**30])
def test_sizes_beyond_2_to_the_31_are_refused(key: str, size: int, one_sentence: OneSentence) -> None:
    section, name = key.split(".")
    value: Any = [size] if key in ("model.hidden", "model.channels") else size
    refused(lambda: apply(TrainConfig(), {section: {name: value}}, "command line"), one_sentence,
            key, str(size)[:10], "2147483647")
    ok = apply(TrainConfig(), {section: {name: [2**31 - 1] if isinstance(value, list) else 2**31 - 1}},
               "command line")
    assert getattr(ok.model if section == "model" else ok.train, name) in (2**31 - 1, [2**31 - 1])


def test_too_many_layers(one_sentence: OneSentence) -> None:
    refused(lambda: apply(TrainConfig(), {"model": {"hidden": [8] * 1001}}, "command line"),
            one_sentence, "model.hidden", "1001")


def test_iwae_with_one_sample_is_refused_as_the_elbo_it_is(one_sentence: OneSentence) -> None:
    """IWAE-1's bound is log p(x, z) - log q(z | x) at one z ~ q: the ELBO; K = 2 is IWAE proper."""
    config = apply(TrainConfig(), {"train": {"objective": "iwae"}}, "command line")
    assert config.train.samples == 1
    refused(lambda: validate(config), one_sentence, "train.objective iwae (--objective)",
            "train.samples (--samples) of at least 2", "ELBO", "use --samples 2 or more")
    config.train.samples = 2
    assert validate(config) is config


def test_cli_iwae_with_one_sample_exits_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    from vaekit.cli import main

    out = tmp_path / "r"
    status = main(["train", "--data", "digits", "--epochs", "1", "--objective", "iwae", "--out", str(out),
                   "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and not out.exists()
    one_sentence(err.removeprefix("vaekit train: error: "), "train.objective iwae (--objective)",
                 "train.samples (--samples) of at least 2")


def test_validate_checks_configs_built_in_python(one_sentence: OneSentence) -> None:
    config = TrainConfig()
    config.train.free_bits = math.nan
    refused(lambda: validate(config), one_sentence, "train.free_bits", "nan")
    config = TrainConfig()
    config.train.seed = 2**63
    refused(lambda: validate(config), one_sentence, "train.seed", str(2**63))
    config = TrainConfig()
    config.model.hidden = [400, 0]
    refused(lambda: validate(config), one_sentence, "model.hidden", "got 0")
    config = TrainConfig()
    config.train.threads = 100_000  # torch.set_num_threads(100_000) segfaults
    refused(lambda: validate(config), one_sentence, "train.threads")
    assert validate(TrainConfig()) is not None


# ----------------------------------------------------------------------------- seeds


def draws(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What a run draws from a seed: its initial weights (torch.manual_seed, then the model, as
    vaekit.train.fit does) and its first batch draws (a torch.Generator seeded alike)."""
    config = TrainConfig()
    config.model.image_shape, config.model.hidden, config.model.latent = [1, 4, 4], [3], 2
    torch.manual_seed(seed)
    weights = torch.cat([p.detach().flatten() for p in build_model(config).parameters()])
    return weights, torch.rand(8, generator=torch.Generator().manual_seed(seed))


def test_torch_keeps_only_the_low_32_bits_of_a_cpu_seed() -> None:
    """Why the range stops at 2**32 - 1: beyond it, seeds alias (torch 2.x's mt19937)."""
    zero = draws(0)
    for alias in (2**32, 2**63):
        assert all(torch.equal(a, b) for a, b in zip(draws(alias), zero, strict=True))


def test_two_seeds_at_the_top_of_the_range_draw_differently() -> None:
    top, below = draws(SEED_MAX), draws(SEED_MAX - 1)
    assert not torch.equal(top[0], below[0]) and not torch.equal(top[1], below[1])
    assert not torch.equal(top[0], draws(0)[0])
    assert validate(apply(TrainConfig(), {"train": {"seed": SEED_MAX}}, "command line"))


@pytest.mark.parametrize("seed", [2**32, 2**63, 2**64, -1, 10**30])
def test_seeds_outside_the_range_are_refused(seed: int, one_sentence: OneSentence) -> None:
    message = refused(lambda: apply(TrainConfig(), {"train": {"seed": seed}}, "command line"),
                      one_sentence, "--seed (train.seed)")
    assert str(SEED_MAX) in message or "at least 0" in message


# ----------------------------------------------------------------------------- TOML files


def test_non_utf8_bytes(tmp_path: Path, one_sentence: OneSentence) -> None:
    head = b"[model]\nlatent = 4\n# caf"
    path = toml_file(tmp_path, head + b"\xe9\n")  # 'café' in Latin-1
    refused(lambda: load_toml(path), one_sentence, str(path), "UTF-8", "0xe9", f"offset {len(head)}")


def test_a_directory_as_config(tmp_path: Path, one_sentence: OneSentence) -> None:
    refused(lambda: load_toml(tmp_path), one_sentence, str(tmp_path), "directory")


def test_arrays_nested_thousands_deep(tmp_path: Path, one_sentence: OneSentence) -> None:
    path = toml_file(tmp_path, "[model]\nhidden = " + "[" * 5000 + "]" * 5000 + "\n")
    refused(lambda: load_toml(path), one_sentence, str(path), "nested too deeply")


def test_arrays_nested_a_little_are_named_shortly(tmp_path: Path, one_sentence: OneSentence) -> None:
    path = toml_file(tmp_path, "[model]\nhidden = " + "[" * 200 + "1" + "]" * 200 + "\n")
    message = refused(lambda: load_toml(path), one_sentence, str(path), "model.hidden", "list of integers")
    assert len(message) < 200 + len(str(path))


@pytest.mark.parametrize("key, value", [("train.seed", "99999999999999999999999"),
                                        ("train.epochs", str(2**64)),
                                        ("optim.lr", "1" + "0" * 400),  # float(10**400) overflows
                                        ("model.latent", "-" + "9" * 30)])
def test_integers_beyond_64_bits(tmp_path: Path, key: str, value: str, one_sentence: OneSentence) -> None:
    section, name = key.split(".")
    path = toml_file(tmp_path, f"[{section}]\n{name} = {value}\n")
    message = refused(lambda: load_toml(path), one_sentence, str(path), key)
    assert len(message) < 300 + len(str(path))


@pytest.mark.parametrize("text, names", [
    ("[train]\nepochs = 0\n", ["train.epochs", "at least 1", "got 0"]),
    ("[train]\nepochs = 'three'\n", ["train.epochs must be an integer", 'got "three".']),
    ("model = 3\n", ["[model] must be a table", "3"]),
    ("model = [1, 2]\n", ["[model] must be a table"]),
    ("[optim]\nlr = [0.1]\n", ["optim.lr must be a number", "[0.1]"]),
    ("[optim]\nlr = '0.1'\n", ["optim.lr must be a number", 'got "0.1".']),
    ("[optim]\nlr = true\n", ["optim.lr must be a number", "got true."]),
    ("[model]\nhidden = 400\n", ["model.hidden must be a list of integers", "400"]),
    ("[model]\nhidden = [400, 'a']\n", ["model.hidden must be a list of integers"]),
    ("[model]\nhidden = '1,a'\n", ["model.hidden must be a list of integers", '"1,a"']),  # a list, not text
    ("[data]\nname = 7\n", ["data.name must be a string", "7"]),
    # a size is a TOML integer or a string: both named, not "must be a string" of an accepted 8
    ("[data]\nimage_size = [8, 8]\n", ['data.image_size must be a size such as 32 or "64x48"', "[8, 8]"]),
    ("[train]\nseed = 1979-05-27\n", ["train.seed must be an integer", "got 1979-05-27."]),
    ("lr = 0.1\n", ["unknown key or section lr;", "data, model, optim, train"]),
    ("[model\n", ["not valid TOML", "line 1"]),
    ("[model]\nkind = 'MLP'\n", ["model.kind", '"MLP"', "mlp, conv"]),  # a choice: by its key, not its flag
    ("[optim]\nname = 'lion'\n", ["optim.name", '"lion"', "adam"]),
    ("[data]\nimage_channels = 2\n", ["data.image_channels must be 0", "1 (grey) or 3 (RGB)", "got 2."]),
])
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, text: str, names: list[str],
                                              one_sentence: OneSentence) -> None:
    path = toml_file(tmp_path, text)
    refused(lambda: load_toml(path), one_sentence, str(path), *names)


def test_missing_file_and_a_file_too_large(tmp_path: Path, one_sentence: OneSentence) -> None:
    refused(lambda: load_toml(tmp_path / "none.toml"), one_sentence, str(tmp_path / "none.toml"))
    path = toml_file(tmp_path, "# " + "x" * (1 << 20) + "\n")
    refused(lambda: load_toml(path), one_sentence, str(path), "KiB")


def test_a_good_file_still_loads_also_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = toml_file(tmp_path, "\ufeff[model]\nhidden = [64, 32]\n[optim]\nlr = 3e-3\n[train]\nseed = 7\n")
    config = load_toml(path)
    assert config.model.hidden == [64, 32] and config.optim.lr == 3e-3 and config.train.seed == 7


def test_from_dict_names_its_origin(one_sentence: OneSentence) -> None:
    refused(lambda: from_dict({"train": {"seed": -1}}, "runs/x/config.json"), one_sentence,
            "runs/x/config.json", "train.seed", "-1")
    refused(lambda: from_dict({"model": "mlp"}, "runs/x/config.json"), one_sentence,
            "runs/x/config.json", "[model] must be a table")


def test_a_run_config_json_with_a_bad_number(tmp_path: Path, one_sentence: OneSentence) -> None:
    config = TrainConfig().to_dict()
    config["optim"]["lr"] = float("nan")  # json.dumps writes NaN; vaekit reads strict JSON
    (tmp_path / runs.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        runs.read_config(tmp_path)
    one_sentence(str(info.value), str(tmp_path / runs.CONFIG), "optim.lr", "NaN")  # as the file writes it


def test_apply_leaves_its_input_alone() -> None:
    base = TrainConfig()
    changed = apply(base, {"model": {"hidden": [8]}, "train": {"seed": 3}}, "command line")
    assert base.model.hidden == [400] and base.train.seed == 0
    assert changed.model.hidden == [8] and changed.train.seed == 3


# ----------------------------------------------------------------------------- settings


def test_a_setting_declares_its_choices_range_flag_and_help() -> None:
    """One declaration gives the flag row (help with the default and the choices filled in), the range
    and the choice check; a field without help has no flag."""
    from vaekit.commands.tables import flag_table

    @dataclass
    class Extra:
        mode: str = setting("a", choices=("a", "b"), help="{choices} (default: {default})")
        level: int = setting(1, flag="--lvl", bound=Bound("the level", 0, 3), help="level", resumable=True)
        sizes: list[int] = setting([2, 3], bound=Bound("each size", 1, 9))

    @dataclass
    class Tiny:
        extra: Extra = field(default_factory=Extra)

    assert flag_table(Tiny()) == {"--mode": ("extra", "mode", str, "a|b (default: a)"),
                                  "--lvl": ("extra", "level", int, "level")}
    assert bounds_of(Tiny()) == {"extra.level": Bound("the level", 0, 3),
                                 "extra.sizes": Bound("each size", 1, 9)}
    assert resumable_of(Tiny()) == ("extra.level",)
    assert Tiny().extra.sizes == [2, 3] and Tiny().extra.sizes is not Tiny().extra.sizes
    with pytest.raises(ConfigError, match=r'^unknown --mode "c" \(extra\.mode\); valid values are a, b\.$'):
        check_choices(apply(Tiny(), {"extra": {"mode": "c"}}, "command line"))
    with pytest.raises(ConfigError, match=r"^--lvl \(extra.level\): the level must be at most 3, "
                                          r"got 4\.$"):  # a flag's value: named by the flag, then the key
        apply(Tiny(), {"extra": {"level": 4}}, "command line")
    with pytest.raises(ConfigError, match=r"^x.toml, extra.level: the level must be at most 3, got 4\.$"):
        apply(Tiny(), {"extra": {"level": 4}}, "x.toml")


def test_the_commands_flags_are_built_from_the_settings() -> None:
    from vaekit.classify import compare
    from vaekit.commands.classify import FLAGS as CLASSIFY_FLAGS
    from vaekit.commands.train import FLAGS

    assert FLAGS["--prior"] == ("model", "prior", str, "p(z): standard|vamp (vamp: the VampPrior, a "
                                "mixture of the posteriors of learned pseudo-inputs) (default: standard)")
    assert FLAGS["--no-cuda-graph"][:3] == ("train", "cuda_graph", "off")
    assert FLAGS["--time-budget"][2] == "duration" and FLAGS["--image-size"][2] == "size"
    assert FLAGS["--hidden"][2:] == (list, "dense hidden sizes, comma list, e.g. 512,256, or none for no "
                                     "hidden layer (default: 400)")
    assert FLAGS["--layers"][:2] == ("model", "stochastic_layers") and FLAGS["--gated"][2] == "switch"
    # the classifier's own defaults in the help of the settings it shares with the VAE
    assert FLAGS["--lr"][3] == "learning rate (default: 0.001)"
    assert CLASSIFY_FLAGS["--lr"][3] == "learning rate (default: 0.002)"
    assert CLASSIFY_FLAGS["--epochs"][3] == f"epochs in all (default: 8; --compare: {compare.EPOCHS})"
    assert CLASSIFY_FLAGS["--side"][2] == "positive" and CLASSIFY_FLAGS["--layers"][:3] == ("model", "layers",
                                                                                            "layers")
    image = ["--image-size", "--image-fit", "--image-channels", "--skip-bad"]
    assert all(FLAGS[f] == CLASSIFY_FLAGS[f] for f in image)


def test_resumable_changes_and_the_classifiers_ranges_come_from_the_settings() -> None:
    from vaekit.classify import config as ccfg

    assert set(RESUMABLE_CHANGES) == {"train.epochs", "train.patience", "train.device", "train.threads",
                                      "data.data_dir", "train.time_budget", "train.tensorboard",
                                      "train.checkpoint_every", "train.cuda_graph"}
    assert set(ccfg.RESUMABLE_CHANGES) == {"train.epochs", "train.patience", "train.device", "train.threads",
                                           "data.data_dir"}
    shared_keys = ["train.batch_size", "train.epochs", "train.patience", "train.seed", "train.threads",
                   "data.image_channels", "model.image_shape", *(k for k in BOUNDS if k.startswith("optim."))]
    assert {k: ccfg.CLASSIFY_BOUNDS[k] for k in shared_keys} == {k: BOUNDS[k] for k in shared_keys}
    assert set(ccfg.CLASSIFY_BOUNDS) == {*shared_keys, "data.side", "data.crop", "model.classes",
                                         "train.label_smoothing"}
    config = ccfg.ClassifierConfig()  # the classifier's defaults where they differ from the VAE's
    assert (config.train.epochs, config.optim.lr, config.optim.schedule) == (8, 2e-3, "cosine")


@pytest.mark.parametrize("text", ["512,,256", ",,,", ",", "512,", ",512", "512, ,256"])
def test_an_empty_entry_of_an_integer_list_is_refused_not_dropped(text: str) -> None:
    """'512,,256' was read as [512, 256] and ',,,' as no layer: a typo silently changed the network."""
    from vaekit.config import parse_int_list

    with pytest.raises(ConfigError, match="has an empty entry"):
        parse_int_list(text, "--hidden")


def test_an_integer_list_reads_its_integers_and_none_as_no_entry() -> None:
    from vaekit.config import parse_int_list

    assert parse_int_list("512, 256") == [512, 256] and parse_int_list("7") == [7]
    assert parse_int_list("none") == []
    for text in (" 7 ", " none "):  # spaces around a number are refused, as --lr's are
        with pytest.raises(ConfigError, match="must be a comma-separated list of integers"):
            parse_int_list(text)


@pytest.mark.parametrize("space", ["\t", "\n", "\u00a0", "\u2003", "\u3000"])
def test_sizes_and_lists_take_ascii_spaces_alone(tmp_path: Path, space: str,
                                                 one_sentence: OneSentence) -> None:
    """A tab, a newline or a Unicode space inside a size or a list was read as a space; the flag
    and the TOML key read the one parser, so both refuse it in the sentence of a bad value."""
    from vaekit.classify.compare_plan import parse_sides
    from vaekit.config import parse_image_size, parse_int_list

    assert parse_image_size("8 x 16") == (8, 16) and parse_int_list("8 , 4") == [8, 4]
    assert parse_sides("8, 16") == [8, 16]
    for parse, text in ((parse_image_size, f"8{space}x8"), (parse_int_list, f"16,{space}8"),
                        (parse_int_list, f"16{space},8"), (parse_sides, f"8{space},16")):
        refused(lambda: parse(text, "--key"), one_sentence, "--key", spell(text))  # noqa: B023
    path = toml_file(tmp_path, f"[data]\nimage_size = {json.dumps(f'8{space}x8')}\n")
    refused(lambda: load_toml(path), one_sentence, str(path), "data.image_size")


def test_a_fifo_as_config_is_one_sentence_not_a_hang(tmp_path: Path) -> None:
    """`--config FIFO` waited forever for a writer: a file that is not regular is refused unopened."""
    import os

    from vaekit.config import load_toml

    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_toml(fifo)


# A setting changed without the setting that uses it (its value), and the settings that use it.
UNUSED: dict[str, tuple[Any, dict[str, Any]]] = {
    "model.channels": ([16], {"model.kind": "conv"}),
    "model.kernel_size": (3, {"model.kind": "conv"}),
    "model.stride": (1, {"model.kind": "conv"}),
    "model.pseudo_inputs": (10, {"model.prior": "vamp"}),
    "model.autoregressive_dropout": (0.1, {"model.autoregressive": 16}),
    "model.autoregressive_window": (5, {"model.autoregressive": 16}),
    "model.variance": ("global", {"model.likelihood": "gaussian", "data.binarize": "none"}),
    "optim.momentum": (0.0, {"optim.name": "sgd"}),
    "optim.step_size": (3, {"optim.schedule": "step"}),
    "optim.gamma": (0.5, {"optim.schedule": "step"}),
    "data.image_fit": ("pad", {"data.image_size": "8"}),
    "data.skip_bad": (True, {"data.name": str(Path(__file__).parent)}),  # a folder
    "train.cuda_graph": (False, {"train.device": "cuda"}),
    "train.free_bits": (0.5, {"train.beta": 0.5}),
    "model.activation": ("tanh", {"model.gated": False}),
    "train.warmup": (3.0, {"train.beta": 0.5}),
    "model.gated": (True, {"model.hidden": [16]}),
    "train.beta": (0.5, {"train.objective": "elbo"}),
    "train.estimator": ("score", {"train.objective": "elbo"}),
}
# What leaves a setting unused where the defaults use it: a KL weight of 0 scales the floored KL away
# and leaves the warm-up a ramp from 0 to 0 (`vaekit.train.optim.beta_at`);
# gated layers have their gate in place of the activation; an MLP of no hidden layer has no layer
# that a gate or an activation acts on; the IWAE objective has no KL weight and no estimator choice.
IWAE = {"train.objective": "iwae", "train.samples": 2}
WITHOUT: dict[str, dict[str, Any]] = {"train.free_bits": {"train.beta": 0.0},
                                      "model.activation": {"model.gated": True},
                                      "train.warmup": {"train.beta": 0.0},
                                      "model.gated": {"model.hidden": []},
                                      "train.beta": IWAE, "train.estimator": IWAE}


def _table(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        out.setdefault(section, {})[name] = value
    return out


def test_every_used_with_rule_has_a_case() -> None:
    from vaekit.config.read import USED_WITH

    assert {key for key, _, _ in USED_WITH} == set(UNUSED)


@pytest.mark.parametrize("key", sorted(UNUSED))
def test_a_setting_nothing_uses_is_refused_and_taken_with_what_uses_it(key: str,
                                                                       one_sentence: OneSentence) -> None:
    """`--momentum 0` with adam trained exactly as without it and recorded momentum 0 in config.json."""
    from vaekit.config import check_used

    value, partner = UNUSED[key]
    alone = apply(TrainConfig(), _table({**WITHOUT.get(key, {}), key: value}), "c.toml")
    with pytest.raises(ConfigError) as info:
        check_used(alone, TrainConfig())
    one_sentence(str(info.value), key)
    both = apply(TrainConfig(), _table({key: value, **partner}), "c.toml")
    check_used(both, TrainConfig())
    check_used(alone, alone)  # a resumed run's own values are not this command's


@pytest.mark.parametrize("key", sorted(UNUSED))
def test_a_setting_given_at_its_default_is_refused_where_nothing_uses_it(key: str,
                                                                          one_sentence: OneSentence) -> None:
    """`--momentum 0.9` with adam: given, it is refused as `--momentum 0.5` is, though it equals
    the default; the same key given beside what uses it is taken."""
    from vaekit.config import check_used

    section, name = key.split(".")
    default = getattr(getattr(TrainConfig(), section), name)
    alone = apply(TrainConfig(), _table(WITHOUT.get(key, {})), "c.toml")
    check_used(alone, TrainConfig())  # not given: nothing to refuse
    with pytest.raises(ConfigError) as info:
        check_used(alone, TrainConfig(), given={key})
    one_sentence(str(info.value), key)
    both = apply(TrainConfig(), _table({key: default, **UNUSED[key][1]}), "c.toml")
    check_used(both, TrainConfig(), given={key, *UNUSED[key][1]})


@pytest.mark.parametrize(("where", "named"), [
    ("flag", "optim.momentum (--momentum)"),
    ("toml", "c.toml: optim.momentum"),  # named where the user wrote it, not by a flag never typed
    ("both", "optim.momentum (--momentum)"),  # the flag's value is the one used
])
def test_momentum_at_its_default_with_adam_is_refused_from_flags_and_toml(
        where: str, named: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("[optim]\nmomentum = 0.9\n")
    given = {"flag": ["--momentum", "0.9"], "toml": ["--config", "c.toml"],
             "both": ["--config", "c.toml", "--momentum", "0.5"]}[where]
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", "run", *given]) == 2
    assert f"error: {named} is used only with --optimizer sgd" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_a_classifier_preset_in_a_toml_file_beside_layers_names_the_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        one_sentence: OneSentence) -> None:
    """A TOML's model.preset with a --layers flag: refused (a layer list replaces the preset) naming
    the file and the key, not the --preset flag the user never typed."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('[model]\npreset = "dense"\n')
    assert main(["classify", "--data", "digits", "--epochs", "1", "--out", "run", "--config", "c.toml",
                 "--layers", "Flatten()", "Linear(10)"]) == 2
    err = capsys.readouterr().err.strip().removeprefix("vaekit classify: error: ")
    one_sentence(err, "c.toml: model.preset is used only with", "leave it out")
    assert "--preset" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_an_image_shape_the_data_does_not_have_names_the_key(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        one_sentence: OneSentence) -> None:
    """model.image_shape, filled in from the data, given otherwise in a TOML file: one sentence
    naming the key, both shapes and the fix; nothing written."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("[model]\nimage_shape = [3, 8, 8]\n")
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", "run", "--config", "c.toml"]) == 2
    message = capsys.readouterr().err.strip().removeprefix("vaekit train: error: ")
    one_sentence(message, "model.image_shape is [3, 8, 8]", "[1, 8, 8]", "leave model.image_shape out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize(("flags", "words"), [
    (["--image-fit", "bogus"], ['unknown --image-fit "bogus" (data.image_fit)', "crop, pad"]),
    (["--variance", "bogus"], ['unknown --variance "bogus" (model.variance)', "pixel, global"]),
])
def test_an_unknown_value_of_an_unused_setting_is_named_unknown_first(
        flags: list[str], words: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, one_sentence: OneSentence) -> None:
    """Told 'used only with a resize', a user adding --image-size would then read that 'bogus' is
    unknown: the value is the first problem."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", "run", *flags]) == 2
    err = capsys.readouterr().err.strip().removeprefix("vaekit train: error: ")
    one_sentence(err, *words)
    assert "used only with" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_refuses_momentum_with_adam(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "digits", "--momentum", "0", "--out", "run"]) == 2
    assert "optim.momentum (--momentum) is used only with --optimizer sgd" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("toml", "flags", "k", "s"), [
    ('[model]\nkind = "conv"\nkernel_size = 1\n', [], 1, 2),
    ('[model]\nkind = "conv"\nkernel_size = 3\nstride = 5\n', [], 3, 5),
    ("[model]\nkernel_size = 1\nstride = 8\n", ["--model", "conv"], 1, 8),  # conv by its flag
])
def test_a_conv_stride_past_its_kernel_is_refused_from_toml_and_flags(
        toml: str, flags: list[str], k: int, s: int, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, one_sentence: OneSentence) -> None:
    """Such an encoder never sees s - k of every s pixels (`tests/vae/test_models.py` counts them):
    one sentence naming both and the rule, exit 2, before the data is read and nothing written."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    toml_file(tmp_path, toml)
    assert main(["train", "--config", "c.toml", "--data", "digits", "--epochs", "1", "--out", "run",
                 *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix("vaekit train: error: "), f"model.kernel_size is {k}",
                 f"model.stride {s}", "--kernel-size at least --stride")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
    config = apply(TrainConfig(), {"model": {"kind": "conv", "kernel_size": k, "stride": s}}, "c.toml")
    refused(lambda: validate(config), one_sentence, "--kernel-size at least --stride")
    config.model.kernel_size = s
    assert validate(config) is config


@pytest.mark.parametrize("text", ["[train]\nepochs = " + "9" * 5000,
                                  '[data]\nimage_size = "' + "9" * 5000 + '"'])
def test_a_toml_integer_past_what_python_reads_is_one_sentence(tmp_path: Path, text: str) -> None:
    """tomllib raises a plain ValueError past 4,300 digits: the file and what is wrong, not a traceback."""
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert str(path) in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("cuda", [False, True])
def test_no_cuda_graph_with_device_auto_follows_what_torch_sees(monkeypatch: pytest.MonkeyPatch,
                                                                 cuda: bool) -> None:
    """--device auto is cuda where torch sees a CUDA device (`vaekit.device.resolve_device`): there
    --no-cuda-graph is used; on a CPU it would do nothing."""
    import torch

    from vaekit.config import check_used
    from vaekit.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    config = apply(TrainConfig(), {"train": {"device": "auto", "cuda_graph": False}}, "c.toml")
    assert (resolve_device("auto").type == "cuda") is cuda
    if cuda:
        check_used(config, TrainConfig())
    else:
        with pytest.raises(ConfigError, match=r"train.cuda_graph \(--no-cuda-graph\) is used only with a"):
            check_used(config, TrainConfig())


def refused_exactly(refused: bool, one_sentence: OneSentence, names: tuple[str, ...],
                    check: Callable[..., None], *args: Any) -> None:
    """check(*args) raises a ConfigError of one sentence naming `names` where `refused`, and returns
    quietly where not."""
    if refused:
        with pytest.raises(ConfigError) as info:
            check(*args)
        one_sentence(str(info.value), *names)
    else:
        check(*args)


@pytest.mark.parametrize(("values", "base", "refused"), [
    ({"warmup": 5.0, "epochs": 2}, None, True),  # the KL weight would stop at 2/5 of beta
    ({"warmup": 2.5, "epochs": 2}, None, True),
    ({"warmup": 2.0, "epochs": 2}, None, False),  # beta reached at the last step
    ({"warmup": 5.0, "epochs": 2, "time_budget": 60.0}, None, False),  # the budget plans both
    ({"warmup": 5.0, "epochs": 20}, {"warmup": 5.0, "epochs": 4}, False),  # a resume with more epochs
    ({"warmup": 5.0, "epochs": 4}, {"warmup": 5.0, "epochs": 4}, False),  # a run's own values, as recorded
    ({"warmup": 5.0, "epochs": 3}, {"warmup": 5.0, "epochs": 10}, True),  # a resume cut below the warm-up
])
def test_a_warmup_longer_than_the_run_is_refused(values: dict[str, Any], base: dict[str, Any] | None,
                                                  refused: bool, one_sentence: OneSentence) -> None:
    """beta_at's weight after the run's last step, from its own closed form: min(1, steps / (W steps
    per epoch)) < 1 exactly when W > epochs."""
    from vaekit.config import check_warmup
    from vaekit.train.optim import beta_at

    config = apply(TrainConfig(), {"train": values}, "c.toml")
    start = TrainConfig() if base is None else apply(TrainConfig(), {"train": base}, "config.json")
    if not values.get("time_budget") and base is None:
        assert (beta_at(config.train.epochs * 10 - 1, 10, config.train) < 1.0) is refused
    refused_exactly(refused, one_sentence, ("train.warmup", f"{config.train.epochs} epochs"),
                    check_warmup, config, start)


def _stops_within(patience: int, epochs: int) -> bool:
    """Whether `EarlyStopping` can stop a run of `epochs`: the scores that stop it soonest, a best
    first epoch and worse ones after."""
    from vaekit.train.early_stopping import EarlyStopping
    from vaekit.train.resume import Progress

    rule, progress = EarlyStopping(patience, "score"), Progress()
    for epoch in range(1, epochs + 1):
        progress.epoch = epoch
        rule.record(progress, float(epoch))
    return progress.stopped is not None


@pytest.mark.parametrize(("values", "base", "refused"), [
    ({"patience": 5, "epochs": 5}, None, True),
    ({"patience": 9, "epochs": 5}, None, True),
    ({"patience": 1, "epochs": 1}, None, True),
    ({"patience": 4, "epochs": 5}, None, False),  # four worse epochs after the first: it stops
    ({"patience": 0, "epochs": 1}, None, False),  # off
    ({"patience": 9, "epochs": 5, "time_budget": 60.0}, None, False),  # the budget plans the epochs
    ({"patience": 9, "epochs": 5}, {"patience": 9, "epochs": 5}, False),  # a run's own values, as recorded
    ({"patience": 9, "epochs": 20}, {"patience": 9, "epochs": 5}, False),  # a resume with more epochs
    ({"patience": 9, "epochs": 5}, {"patience": 9, "epochs": 20}, True),  # a resume cut to the patience
])
def test_a_patience_that_could_never_stop_the_run_is_refused(
        values: dict[str, Any], base: dict[str, Any] | None, refused: bool, one_sentence: OneSentence,
) -> None:
    """Refused exactly where `EarlyStopping` itself never stops the run's epochs."""
    from vaekit.config import check_epochs

    config = apply(TrainConfig(), {"train": values}, "c.toml")
    start = TrainConfig() if base is None else apply(TrainConfig(), {"train": base}, "config.json")
    if not values.get("time_budget") and base is None and values["patience"]:
        assert _stops_within(values["patience"], values["epochs"]) is not refused
    refused_exactly(refused, one_sentence, ("train.patience", f"run's {config.train.epochs} epoch"),
                    check_epochs, config, start)


@pytest.mark.parametrize(("optim", "train", "base", "refused"), [
    ({"schedule": "step"}, {"epochs": 10}, None, True),  # the default step size, 30 epochs
    ({"schedule": "step", "step_size": 5}, {"epochs": 5}, None, True),
    ({"schedule": "step", "step_size": 4}, {"epochs": 5}, None, False),  # decays before the last epoch
    ({"schedule": "step", "step_size": 4, "gamma": 1.0}, {"epochs": 5}, None, True),  # decays by 1
    ({"schedule": "step"}, {"epochs": 31}, None, False),
    ({"schedule": "step"}, {"epochs": 10, "time_budget": 60.0}, None, False),  # the budget plans the epochs
    ({"schedule": "step", "gamma": 1.0}, {"epochs": 40, "time_budget": 60.0}, None, True),  # at any length
    ({"schedule": "step", "step_size": 5}, {"epochs": 20}, {"epochs": 4}, False),  # a resume with more epochs
    ({"schedule": "step", "step_size": 5}, {"epochs": 4}, {"epochs": 4}, False),  # a run's own, as recorded
    ({"schedule": "step", "step_size": 5}, {"epochs": 4}, {"epochs": 20}, True),  # a resume cut below a step
])
def test_a_step_schedule_that_never_decays_is_refused(
        optim: dict[str, Any], train: dict[str, Any], base: dict[str, Any] | None, refused: bool,
        one_sentence: OneSentence,
) -> None:
    """Refused exactly where torch's StepLR, over the run's epochs, never changes the rate."""
    from vaekit.config import check_epochs

    config = apply(TrainConfig(), {"optim": optim, "train": train}, "c.toml")
    start = TrainConfig() if base is None else apply(TrainConfig(), {"optim": optim, "train": base}, "c.json")
    o = config.optim
    if not train.get("time_budget") and base is None:
        assert lr_changes(o.step_size, o.gamma, config.train.epochs) is not refused
    refused_exactly(refused, one_sentence, ("optim.gamma is 1" if o.gamma == 1.0 else "optim.step_size",),
                    check_epochs, config, start)


@pytest.mark.parametrize(("optim", "epochs", "flushed"), [
    ({"gamma": 1e-300, "step_size": 1}, 3, 2),  # 1e-3, then 1e-303
    ({"gamma": 1e-30, "step_size": 1}, 2, None),  # 1e-3, 1e-33
    ({"gamma": 1e-30, "step_size": 1}, 3, 3),  # then 1e-63
    ({"gamma": 1e-10, "step_size": 1}, 4, None),  # 1e-3, 1e-13, 1e-23, 1e-33
    ({"gamma": 1e-10, "step_size": 1}, 5, 5),  # then 1e-43
    ({"gamma": 1e-20, "step_size": 2}, 5, 5),  # 1e-3, 1e-3, 1e-23, 1e-23, 1e-43
    ({"gamma": 1e-20, "step_size": 2, "lr": 1e-18}, 3, 3),  # 1e-18, 1e-18, 1e-38 (below 1.18e-38)
    ({"gamma": 0.1, "step_size": 1}, 35, None),  # 1e-3 * 0.1 ** 34 = 1e-37 at epoch 35
    ({"gamma": 0.1, "step_size": 1}, 36, 36),  # then 1e-38
    ({"gamma": 0.5}, 3510, None),  # 1e-3 * 0.5 ** 116 = 1.2e-38 from epoch 116 * 30 + 1
    ({"gamma": 0.5}, 3600, 3511),  # 1e-3 * 0.5 ** 117 = 6.0e-39 from epoch 117 * 30 + 1
])
def test_a_step_schedule_that_flushes_the_learning_rate_to_0_is_refused(
        optim: dict[str, Any], epochs: int, flushed: int | None, one_sentence: OneSentence) -> None:
    """Refused exactly where torch's own StepLR, over the run's epochs, gives a float32 learning rate
    below float32's smallest normal number, naming gamma, the step and the epoch where it happens."""
    from vaekit.config import check_epochs

    config = apply(TrainConfig(), {"optim": {"schedule": "step", **optim}, "train": {"epochs": epochs}},
                   "c.toml")
    o = config.optim
    assert lr_flushed(o.lr, o.step_size, o.gamma, epochs) is (flushed is not None)
    if flushed is None:
        check_epochs(config, TrainConfig())
        return
    refused(lambda: check_epochs(config, TrainConfig()), one_sentence, f"optim.gamma {o.gamma:g}",
            f"optim.step_size of {o.step_size} epoch", f"at epoch {flushed} of the run's {epochs} epochs")


def test_every_fix_a_step_schedule_refusal_offers_is_accepted() -> None:
    """The step schedule's refusals (a step never reached, a rate flushed to 0) offer fixes: each
    one, applied, passes (30-epoch steps over 1 epoch asked for 2 epochs, and one step that flushes
    offered fewer epochs, which the first rule then refuses)."""
    from vaekit.config import check_epochs

    tried = 0
    for step_size in (1, 2, 3, 30):
        for gamma in (1e-35, 1e-20, 1e-10, 0.1):
            for epochs in range(1, 9):
                optim = {"schedule": "step", "step_size": step_size, "gamma": gamma}
                config = apply(TrainConfig(), {"optim": optim, "train": {"epochs": epochs}}, "c.toml")
                try:
                    check_epochs(config, TrainConfig())
                    continue
                except ConfigError as err:
                    message = str(err)
                fixes: list[dict[str, dict[str, Any]]] = []
                gamma_too = {"gamma": 0.9} if "give a larger gamma (" in message else {}  # both changes
                for below in re.findall(r"a step size below (\d+)", message):
                    fixes.append({"optim": {"step_size": int(below) - 1, **gamma_too}})
                for least in re.findall(r"at least (\d+) epochs?", message):
                    fixes.append({"train": {"epochs": int(least)}, "optim": gamma_too})
                if "fewer epochs" in message:
                    fixes.append({"train": {"epochs": int(re.findall(r"at epoch (\d+)", message)[0]) - 1}})
                if message.startswith("optim.gamma ") and "give a larger gamma" in message:  # the flush rule
                    fixes.append({"optim": {"gamma": 0.9}})
                if "larger gamma or step size" in message:
                    fixes.append({"optim": {"step_size": epochs - 1}})
                if "--schedule none" in message:
                    fixes.append({"optim": {"schedule": "none"}})
                assert fixes, message
                for fix in fixes:
                    fixed = apply(config, fix, "the fix")
                    check_epochs(fixed, TrainConfig())  # accepted, as the sentence says
                    tried += 1
    assert tried > 50


@pytest.mark.parametrize(("command", "flags"), [("train", ["--epochs", "3"]),
                                                ("train", ["--schedule", "step", "--epochs", "3"]),
                                                ("classify", ["--epochs", "3"])])
def test_a_step_schedule_flushing_the_rate_is_refused_from_toml_and_flags(
        command: str, flags: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, one_sentence: OneSentence) -> None:
    """optim.gamma = 1e-300 trained on with lr 0.00e+00 from epoch 2: one sentence, exit 2, nothing
    written, whether the step schedule comes from the file or from --schedule."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    schedule = "" if "--schedule" in flags else 'schedule = "step"\n'
    toml_file(tmp_path, f"[optim]\n{schedule}gamma = 1e-300\nstep_size = 1\n")
    assert main([command, "--config", "c.toml", "--data", "digits", "--out", "run", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix(f"vaekit {command}: error: "), "optim.gamma 1e-300", "optim.step_size of 1",
                 "at epoch 2 of the run's 3 epochs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_an_empty_list_is_asked_for_by_its_word_not_by_empty_text(one_sentence: OneSentence) -> None:
    """`--hidden ''` built an MLP with no hidden layer: empty text means nothing; `none` is no layer."""
    from vaekit.config import parse_int_list

    assert parse_int_list("none", "--hidden") == [] and parse_int_list("8, 4", "--hidden") == [8, 4]
    for text in ("", " "):
        with pytest.raises(ConfigError) as info:
            parse_int_list(text, "--hidden")
        one_sentence(str(info.value), "--hidden", "none")


@pytest.mark.parametrize(("window", "pixels", "refused"),
                         [(63, 64, False), (64, 64, True), (10**6, 784, True)])
def test_an_autoregressive_window_past_the_pixels_is_refused(window: int, pixels: int, refused: bool,
                                                             one_sentence: OneSentence) -> None:
    """The last of D pixels has D - 1 before it: through `made_masks`, a window of D - 1 already lets
    each pixel's term reach every pixel before it (M2 M1 > 0 is the strict lower triangle), and one
    of D - 2 does not."""
    from vaekit.config import check_with_data
    from vaekit.vae.autoregressive import made_masks

    before = torch.ones(pixels, pixels).tril(-1).bool()
    for w, every in ((pixels - 1, True), (pixels - 2, False)):
        m1, m2 = made_masks(pixels, 2 * pixels, w)
        assert bool(((m2 @ m1 > 0) == before).all()) is every
    config = apply(TrainConfig(), {"model": {"autoregressive": 8, "autoregressive_window": window}}, "c.toml")
    names = ("model.autoregressive_window", f"{pixels:,}-pixel", f"{pixels - 1:,}")
    refused_exactly(refused, one_sentence, names, check_with_data, config, "digits", pixels, 1437)


def test_a_file_s_epochs_under_a_time_budget_flag_are_said_not_to_be_used() -> None:
    """`--config h.toml --time-budget 20s` with `[train] epochs = 1` in h.toml trained 1,311 epochs
    without a word: the file's epochs are its run without a budget, so not refused, but said unused."""
    from vaekit.config import TrainConfig, check_planned_epochs

    start = TrainConfig()
    toml = TrainConfig()
    toml.train.epochs = 1
    config = TrainConfig()
    config.train.epochs, config.train.time_budget = 1, 20.0
    notes = check_planned_epochs(config, start, toml, {"train.time_budget"}, {"train.epochs"}, "h.toml")
    assert notes == ["h.toml: train.epochs = 1 is not used; --time-budget plans the run's epochs."]
    assert check_planned_epochs(toml, start, toml, set(), {"train.epochs"}, "h.toml") == []  # no budget
    budget = TrainConfig()
    budget.train.time_budget = 20.0
    assert check_planned_epochs(budget, start, start, {"train.time_budget"}) == []  # no file's epochs


def test_epochs_on_a_resume_of_a_budgeted_run_advise_a_longer_budget(one_sentence: OneSentence) -> None:
    """A run trained under a time budget, resumed with --epochs alone, was told to 'leave one of the
    two out' of --epochs and --time-budget, a flag not given: its budget is in config.json, and
    what trains it on is a longer --time-budget."""
    from vaekit.config import check_planned_epochs

    start = TrainConfig()
    start.train.time_budget = 14.0
    config = apply(start, {"train": {"epochs": 84}}, "command line")
    with pytest.raises(ConfigError) as err:
        check_planned_epochs(config, start, start, {"train.epochs"})
    one_sentence(str(err.value), "the time budget the resumed run records", "14 s", "config.json",
                 "give a longer --time-budget")
    assert "leave one of the two out" not in str(err.value)


def test_epochs_given_beside_a_time_budget_on_a_resume_are_refused_whatever_their_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    """`--resume --epochs 2 --time-budget 20s` of a run of 2 epochs: the --epochs equal to the
    recorded ones was dropped for the budget's plan without a word; it is refused as any --epochs
    beside a budget is, and the run is left as it was."""
    from vaekit.cli import main

    run = tmp_path / "run"
    base = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64", "--threads",
            "1", "--no-progress", "--out", str(run)]
    assert main([*base, "--epochs", "2"]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([*base, "--resume", "--epochs", "2", "--time-budget", "20s"]) == 2
    err = capsys.readouterr().err.strip().removeprefix("vaekit train: error: ")
    one_sentence(err, "train.epochs (--epochs) is planned by the time budget (train.time_budget, "
                 "--time-budget)")  # both settings by their flags, as typed
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("given, key", [
    (["--hidden", "none", "--gated"], "model.gated (--gated)"),
    (["--hidden", "none", "--activation", "tanh"], "model.activation (--activation)"),
    (["--objective", "iwae", "--samples", "2", "--beta", "1.0"], "train.beta (--beta)"),
    (["--objective", "iwae", "--samples", "2", "--warmup", "0"], "train.warmup (--warmup)"),
    (["--objective", "iwae", "--samples", "2", "--free-bits", "0"], "train.free_bits (--free-bits)"),
])
def test_a_setting_with_nothing_to_act_on_is_refused_whatever_its_value(
        given: list[str], key: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, one_sentence: OneSentence) -> None:
    """An MLP of no hidden layer has no non-linearity for --gated or --activation to choose; the
    IWAE objective has no KL weight, warm-up or floor: each given is refused naming the key and
    its flag (at its default too), nothing written."""
    from vaekit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", "run", *given]) == 2
    message = capsys.readouterr().err.strip().removeprefix("vaekit train: error: ")
    one_sentence(message, key, "is used only with")
    assert list(tmp_path.iterdir()) == []
