"""The CLI against random input: random flag values, random TOML
documents, and random edits of a real run's JSON and safetensors files. Every run must end with
exit 0, or exit 2 with at most 3 lines on stderr and no traceback; and when it exits 2, the run
directory it was pointed at is byte for byte as it was.

The examples are derandomized and bounded for CI (a few hundred commands in all);
HYPOTHESIS_PROFILE=explore searches with fresh examples, ten times as many.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import struct
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vaekit import runs
from vaekit.cli import main

EXPLORE = os.environ.get("HYPOTHESIS_PROFILE", "vaekit") != "vaekit"
FUZZ = settings(max_examples=600 if EXPLORE else 60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in this process, its output captured; torch's thread count restored after."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse's --help and errors
                status = int(exc.code or 0)
    finally:
        torch.set_num_threads(threads)
    return status, out.getvalue(), err.getvalue()


def assert_clean(argv: list[str], status: int, err: str) -> None:
    assert status in (0, 2), (argv, status, err)
    assert "Traceback" not in err, (argv, err)
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert 1 <= len(lines) <= 3, (argv, err)
        assert "error:" in lines[-1], (argv, err)


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()} if path.is_dir() else {}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 images of 4x4: any setting trains in milliseconds, so that a valid example costs little."""
    g = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=g.integers(0, 256, (20, 4, 4), dtype=np.uint8), labels=np.arange(20) % 2)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    status, _, err = run_cli(["train", "--data", str(tiny), "--hidden", "8", "--latent", "2", "--epochs", "1",
                              "--threads", "1", "--no-progress", "--out", str(out)])
    assert status == 0, err
    status, _, err = run_cli(["eval", str(out), "--k", "2", "--no-progress"])
    assert status == 0, err
    return out


# ----------------------------------------------------------------------------- flag values

NUMBERS = st.one_of(
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "1e23", "-0", "0", "1", "2", "0.5", "1e-300",
                     str(2**31), str(2**32), str(2**63), str(2**64)]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789,.-eE x", max_size=8),
)
TRAIN_FLAGS = ["--hidden", "--latent", "--samples", "--beta", "--warmup", "--free-bits", "--lr",
               "--weight-decay", "--momentum", "--clip", "--batch-size", "--seed", "--channels",
               "--threads"]
CHOICE_FLAGS = {"--model": ["mlp", "conv", "resnet", ""], "--objective": ["elbo", "iwae", "x"],
                "--estimator": ["reparam", "score", "?"], "--optimizer": ["adam", "sgd", "adamx"],
                "--schedule": ["none", "cosine", "step", "linear"], "--likelihood": ["bernoulli", "gaussian"],
                "--binarize": ["auto", "dynamic", "fixed", "none", "maybe"], "--engine": ["auto", "autograd"]}


@st.composite
def train_flags(draw: Any) -> list[str]:
    flags: list[str] = []
    for flag in draw(st.lists(st.sampled_from(TRAIN_FLAGS), max_size=4, unique=True)):
        flags += [flag, draw(NUMBERS)]
    for flag in draw(st.lists(st.sampled_from(sorted(CHOICE_FLAGS)), max_size=2, unique=True)):
        flags += [flag, draw(st.sampled_from(CHOICE_FLAGS[flag]))]
    return flags


@FUZZ
@given(flags=train_flags())
def test_train_with_random_flag_values(tiny: Path, tmp_path: Path, flags: list[str]) -> None:
    out = tmp_path / f"run{abs(hash(tuple(flags)))}"
    argv = ["train", "--data", str(tiny), "--epochs", "1", "--no-progress", "--out", str(out), *flags]
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    if status == 0:
        config = json.loads((out / runs.CONFIG).read_text())
        for section in config.values():  # what was accepted is finite and stored as given
            for value in section.values():
                assert not (isinstance(value, float) and not math.isfinite(value)), config
        train = config["train"]  # and does what it says: a KL warm-up the run finishes
        assert train["warmup"] <= train["epochs"], config


EVAL_LIKE = {"eval": ["--k", "--limit", "--batch-size", "--seed", "--threads"],
             "sample": ["-n", "--seed", "--ncols"], "report": ["--k", "--limit", "--seed"]}


@FUZZ
@given(command=st.sampled_from(sorted(EVAL_LIKE)), data=st.data())
def test_eval_sample_report_with_random_flag_values(trained: Path, tmp_path: Path, command: str,
                                                    data: Any) -> None:
    flags: list[str] = []
    for flag in data.draw(st.lists(st.sampled_from(EVAL_LIKE[command]), min_size=1, max_size=3, unique=True)):
        flags += [flag, data.draw(NUMBERS)]
    if command == "sample":
        flags += ["--out", str(tmp_path / "s.png")]
    if command == "eval":
        flags += ["--no-progress", "--no-probe"]
    before = snapshot(trained)
    argv = [command, str(trained), *flags]
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    if status == 2:
        assert snapshot(trained) == before
    elif command != "sample":  # eval and report rewrite their own files only
        after = snapshot(trained)
        assert {k: v for k, v in after.items() if k not in (runs.EVAL, runs.REPORT)} == {
            k: v for k, v in before.items() if k not in (runs.EVAL, runs.REPORT)}


ARCH_ARGS = st.one_of(NUMBERS, st.sampled_from(["3", "1,28,28", "3x10x10", "(3, 10, 10)", "", "a"]))


LAYER_NUMBERS = st.one_of(NUMBERS, st.sampled_from(["1e-320", "-5e-324", "2.5e-310", "1e-400", "７", "٣2",
                                                     "0.01", "1e-30"]))


def means_what_was_written(text: str) -> bool:
    """Whether a number's text is one a float holds as written: ASCII digits (int() also reads
    '７'), and 0 or at least float's smallest normal (a subnormal is 0 to a CPU that flushes them)."""
    if any(ch.isdigit() and not ch.isascii() for ch in text):
        return False
    try:
        written = abs(Decimal(text))
    except InvalidOperation:
        return True  # not a number: the parser's own refusal
    return not 0 < written < Decimal(sys.float_info.min)


@FUZZ
@example(shape="4", a="1e-320", b="1", layer="LeakyReLU({a})")  # read as 0 under flush-to-zero
@example(shape="4", a="７", b="1", layer="Linear({a})")
@given(shape=ARCH_ARGS, a=LAYER_NUMBERS, b=LAYER_NUMBERS, layer=st.sampled_from(
    ["Conv2d({a}, {b})", "Conv2d(8, 3, stride={a}, padding={b})", "Linear({a})", "MaxPool2d({a}, {b})",
     "Upsample(scale_factor={a})", "ConvTranspose2d({a}, 3, output_padding={b})", "Flatten()",
     "LeakyReLU({a})", "Dropout({a})", "ELU(alpha={b})"]))
def test_arch_with_random_sizes(shape: str, a: str, b: str, layer: str) -> None:
    argv = ["arch", "--input", shape, layer.format(a=a, b=b)]
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    if status == 0:  # accepted: every number it read is the one written
        used = [x for x, name in ((a, "{a}"), (b, "{b}")) if name in layer]
        assert all(means_what_was_written(x) for x in used), argv


def choice_flags() -> list[tuple[list[str], str, tuple[str, ...]]]:
    """(words, flag, choices) of every flag of every command that argparse holds to its choices."""
    from vaekit.cli import build_parser

    out, todo = [], [([], build_parser())]
    while todo:
        words, parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [([*words, name], sub) for name, sub in action.choices.items()]
            elif action.option_strings and action.choices is not None:
                out.append((words, action.option_strings[-1], tuple(map(str, action.choices))))
    return out


CHOICES = choice_flags()


@FUZZ
@given(which=st.sampled_from(range(len(CHOICES))), text=st.one_of(
    st.text(min_size=1, max_size=30), st.sampled_from(["x" * 400, "é" * 200, "none ", "CPU"])))
def test_every_choice_flag_refuses_a_bad_value_in_one_cut_sentence(which: int, text: str) -> None:
    """argparse's own line quoted the value whole, and a long one was cut before the valid values."""
    words, flag, valid = CHOICES[which]
    if text in valid or text.startswith("-"):
        return
    argv = [*words, f"{flag}={text}"]
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    assert status == 2 and len(err) < 400, (argv, err)
    assert f"unknown {flag} " in err and f"valid values are {', '.join(valid)};" in err, (argv, err)


# ----------------------------------------------------------------------------- TOML documents

TOML_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.sampled_from(["nan", "inf", "-inf", "true", "1e999", '"x"',
                                                            "[1, 2]", "[[[1]]]", "{a = 1}", "3.5", '""']),
    st.floats(allow_nan=False, allow_infinity=False).map(repr))
TOML_KEYS = {"data": ["name", "binarize", "data_dir", "x"], "model": ["kind", "hidden", "latent", "channels",
                                                                      "likelihood", "kernel_size"],
             "optim": ["name", "lr", "gamma", "clip", "step_size"],
             "train": ["samples", "beta", "warmup", "free_bits", "seed", "batch_size", "epochs"],
             "extra": ["a"]}


@st.composite
def toml_documents(draw: Any) -> bytes:
    if draw(st.integers(0, 9)) == 0:  # now and then: not TOML at all
        return draw(st.binary(max_size=200))
    lines = []
    for section in draw(st.lists(st.sampled_from(sorted(TOML_KEYS)), max_size=3, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(TOML_KEYS[section]), max_size=3, unique=True)):
            value = draw(TOML_VALUES)
            if section == "train" and key == "epochs":
                value = draw(st.sampled_from(["1", "0", "-1", "1.5", '"1"']))  # a valid run stays short
            lines.append(f"{key} = {value}")
    if draw(st.booleans()):
        lines.append("deep = " + "[" * 3000 + "]" * 3000)
    return "\n".join(lines).encode()


@FUZZ
@given(document=toml_documents())
def test_train_with_random_toml_documents(tiny: Path, tmp_path: Path, document: bytes) -> None:
    config = tmp_path / "c.toml"
    config.write_bytes(document)
    out = tmp_path / f"run{abs(hash(document))}"
    argv = ["train", "--config", str(config), "--data", str(tiny), "--no-progress", "--out", str(out)]
    if b"epochs" not in document:
        argv += ["--epochs", "1"]
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)


# ----------------------------------------------------------------------------- run files


def _random_json(draw: Any) -> Any:
    return draw(st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=5)),
        lambda children: st.one_of(st.lists(children, max_size=3),
                                   st.dictionaries(st.text(max_size=5), children, max_size=3)),
        max_leaves=6))


@st.composite
def json_edits(draw: Any) -> tuple[str, Any]:
    """(file, a function that edits its parsed JSON)."""
    name = draw(st.sampled_from([runs.CONFIG, runs.EVAL, runs.CHECKPOINT_JSON, runs.METRICS]))
    mode = draw(st.sampled_from(["replace", "delete", "add", "whole"]))
    value = _random_json(draw)
    pick = draw(st.integers(0, 10**6))
    return name, (mode, value, pick)


def _edit(obj: Any, how: tuple[str, Any, int]) -> Any:
    mode, value, pick = how
    if mode == "whole" or not isinstance(obj, dict) or not obj:
        return value
    target = obj
    while True:  # walk down a random path of nested objects
        keys = sorted(target)
        key = keys[pick % len(keys)]
        pick //= max(len(keys), 1)
        if isinstance(target[key], dict) and target[key] and pick % 2:
            target = target[key]
            continue
        break
    if mode == "replace":
        target[key] = value
    elif mode == "delete":
        del target[key]
    else:
        target[f"extra{pick % 7}"] = value
    return obj


COMMANDS = [["eval", "{run}", "--k", "2", "--no-progress", "--no-probe"], ["report", "{run}", "--k", "2"],
            ["sample", "{run}", "-n", "2", "--out", "{tmp}/s.png"],
            ["train", "--out", "{run}", "--resume", "--epochs", "2", "--no-progress", "--threads", "1"]]


def run_and_check(run: Path, tmp_path: Path, command: int) -> None:
    """COMMANDS[command] on the (damaged) run: exit 0, or exit 2 and the run byte for byte as it was."""
    before = snapshot(run)
    argv = [a.format(run=run, tmp=tmp_path) for a in COMMANDS[command]]
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    if status == 2:
        assert snapshot(run) == before


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    run.mkdir()
    for path in trained.iterdir():
        if path.is_file():
            (run / path.name).write_bytes(path.read_bytes())
    return run


@FUZZ
@given(edit=json_edits(), command=st.sampled_from(range(len(COMMANDS))))
def test_commands_on_randomly_edited_run_json(trained: Path, tmp_path: Path, edit: tuple[str, Any],
                                              command: int) -> None:
    run = _copy_run(trained, tmp_path)
    name, how = edit
    path = run / name
    if name == runs.METRICS:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows[0] = _edit(rows[0], how)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(_edit(json.loads(path.read_text()), how)))
    run_and_check(run, tmp_path, command)


@st.composite
def safetensors_edits(draw: Any) -> tuple[str, str, int, int]:
    name = draw(st.sampled_from([runs.MODEL, runs.CHECKPOINT]))
    mode = draw(st.sampled_from(["flip-byte", "truncate", "header-json", "values"]))
    return name, mode, draw(st.integers(0, 10**9)), draw(st.integers(0, 255))


@FUZZ
@given(edit=safetensors_edits(), command=st.sampled_from(range(len(COMMANDS))))
def test_commands_on_randomly_edited_safetensors(trained: Path, tmp_path: Path,
                                                 edit: tuple[str, str, int, int], command: int) -> None:
    run = _copy_run(trained, tmp_path)
    name, mode, where, byte = edit
    path = run / name
    data = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    if mode == "flip-byte":
        data[where % len(data)] ^= byte or 1
    elif mode == "truncate":
        data = data[: where % len(data)]
    elif mode == "header-json":  # a byte inside the JSON header: shapes, dtypes, offsets, metadata
        data[8 + where % header_len] = byte
    else:  # the tensor bytes: NaN, inf, or any other float
        start = 8 + header_len + (where % max(len(data) - 8 - header_len - 4, 1)) // 4 * 4
        data[start : start + 4] = struct.pack("<f", [math.nan, math.inf, -1e38, float(byte)][where % 4])
    path.write_bytes(bytes(data))
    run_and_check(run, tmp_path, command)
