"""argparse `type=` converters that name their flag: a value they cannot convert or out of range
raises `argparse.ArgumentTypeError`, one sentence that `vaekit.cli.VaekitParser` prints as the
command's one error line. `vaekit.commands.tables` builds the flag tables of config sections on them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from vaekit import config as cfg
from vaekit.config import BEYOND_FLOAT, DECIMAL, NUMBER, given_text, parse_int_list
from vaekit.errors import ConfigError


def short(value: object) -> str:
    """A value as a config file spells it (`config.spell`: "text", not 'text'), cut short."""
    return cfg.spell(value)


def int_flag(flag: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type=` for the integer flag `flag`: int(text), within [low, high] when given;
    otherwise ArgumentTypeError with a sentence naming the flag and the text."""
    def convert(text: str) -> int:
        if not DECIMAL.fullmatch(text):  # int() also takes ' 80', '+0', '1_000' and other scripts' digits
            raise argparse.ArgumentTypeError(f"{flag} must be an integer, got {short(text)}")
        if len(text.lstrip("-0")) > 1000:  # past any bound, and towards what int() refuses (4,300 digits)
            bound = (f"at least {low}" if text.startswith("-") and low is not None else f"at most {high}"
                     if not text.startswith("-") and high is not None else "at most 1000 digits long")
            raise argparse.ArgumentTypeError(f"{flag} must be {bound}, got {short(text)}")
        value = int(text)
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{flag} must be at most {high}, got {short(value)}")
        return value

    convert.__name__ = f"int_flag({flag})"
    return convert


def add_device_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """`--device cpu|cuda|auto` (default cpu, as `vaekit train --device`): where `what`. Another
    name is argparse's error line; cuda where torch sees none is `vaekit.runs.device_named`'s."""
    parser.add_argument("--device", choices=cfg.DEVICES, default="cpu", metavar="DEVICE",
                        help=f"where {what}: {' | '.join(cfg.DEVICES)} (auto: cuda where torch sees a "
                        "CUDA device, else cpu) (default: cpu)")


def float_flag(flag: str) -> Callable[[str], float]:
    """An argparse `type=` for a number flag: float(text), or ArgumentTypeError naming the flag.
    Its range (finite, bounds) is the config's check, which also names where the value came from."""
    def convert(text: str) -> float:
        if not NUMBER.fullmatch(text):  # float() also takes ' 1', '1_0' and other scripts' digits
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {short(text)}")
        value = cfg.float_of(text)  # 1e-400 too is refused, by the config's check
        if abs(value) == float("inf") and "inf" not in text.lower():  # 1e400: quoted as written, not 'inf'
            raise argparse.ArgumentTypeError(f"{flag} must be a finite number, got {text}, {BEYOND_FLOAT}")
        return value

    convert.__name__ = f"float_flag({flag})"
    return convert


def parsed_flag(flag: str, parse: Callable[[str, str], Any], keep_text: bool = False) -> Callable[[str], Any]:
    """An argparse `type=` from a parser (text, flag) -> value of `vaekit.config`, naming its flag:
    a comma list of integers, a duration ('60m', in seconds), an image size ('64x48', kept as text)."""
    def convert(text: str) -> Any:
        try:
            value = parse(text, flag)
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err).rstrip(".")) from None
        return text.strip() if keep_text else value

    convert.__name__ = f"parsed_flag({flag})"
    return convert


def text_flag(flag: str, path: bool = True) -> Callable[[str], str]:
    """An argparse `type=` for a path (or, `path` False, a name or word): the text as given (spaces
    kept); empty text, or a path no file system holds, is one sentence (`config.given_text`)."""
    def convert(text: str) -> str:
        try:
            return given_text(text, flag) if path else given_text(text, flag, path=False)
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err).rstrip(".")) from None

    convert.__name__ = f"text_flag({flag})"
    return convert


CONFIG_PATH, OUT_PATH = text_flag("--config"), text_flag("--out")  # `type=` of --config and --out
run_dir_argument = text_flag("RUN_DIR")  # empty: one sentence, not the current directory


def int_list_flag(flag: str) -> Callable[[str], list[int]]:
    """A comma list of integers ('512,256'; '' is [])."""
    return parsed_flag(flag, parse_int_list)
