"""argparse `type=` converters that name their flag: a value they cannot convert (or that is out
of range) raises `argparse.ArgumentTypeError` with one sentence, which `vaekit.cli.VaekitParser`
prints as the command's one error line. Shared by the commands."""

from __future__ import annotations

import argparse
import reprlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from vaekit import config as cfg
from vaekit.config import parse_duration, parse_image_size, parse_int_list
from vaekit.errors import ConfigError

_REPR = reprlib.Repr()  # a bad value of 100,000 characters is named by its first few dozen
_REPR.maxstring, _REPR.maxlong = 60, 40


def short(value: object) -> str:
    """A value as repr() writes it, cut to a few dozen characters."""
    return _REPR.repr(value)


def int_flag(flag: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type=` for the integer flag `flag`: int(text), within [low, high] when given;
    otherwise ArgumentTypeError with a sentence naming the flag and the text."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer, got {short(text)}") from None
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
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {short(text)}") from None

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


def int_list_flag(flag: str) -> Callable[[str], list[int]]:
    """A comma list of integers ('512,256'; '' is [])."""
    return parsed_flag(flag, parse_int_list)


# A flag table's kinds (`vaekit.config.kind_of`): str, int, float, list (of ints, '512,256'),
# 'duration' ('60m'), 'size' ('32', '64x48'), 'positive' (an int of at least 1), 'layers' (one or more
# words), 'switch' (no value: given means true), 'off' (no value: given means false). Table rows are
# (section, key, kind, help).
Kind = type | str
Row = tuple[str, str, Kind, str]
_MAKERS: dict[Kind, Callable[[str], Callable[[str], Any]]] = {
    int: int_flag, float: float_flag, list: int_list_flag,
    "positive": lambda f: int_flag(f, 1),
    "duration": lambda f: parsed_flag(f, parse_duration),
    "size": lambda f: parsed_flag(f, parse_image_size, keep_text=True)}


def flag_table(config: Any, **fill: Any) -> dict[str, Row]:
    """The flag table of a config made of sections (a TrainConfig, a ClassifierConfig), built from
    its settings (`vaekit.config.setting`): a row for each field with help text, in field order,
    the help's "{default}" filled in from `config` (its defaults), "{choices}" from the setting's
    choices, and any other "{name}" from `fill`."""
    rows: dict[str, Row] = {}
    for section, part in cfg.sections_of(config).items():
        for f in fields(part):
            flag = cfg.flag_of(f)
            if flag is None:
                continue
            value = getattr(part, f.name)
            default = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            text = f.metadata["help"].format(default=default, choices="|".join(f.metadata["choices"] or ()),
                                             **fill)
            rows[flag] = (section, f.name, cfg.kind_of(f), text)
    return rows


def add_table(parser: argparse.ArgumentParser, table: dict[str, Row]) -> None:
    """One argument per row of `table`, each defaulting to None ("not given"), converted by the
    converter of its kind (a value it cannot convert is one sentence naming the flag)."""
    for flag, (_, _, kind, text) in table.items():
        parser.add_argument(flag, default=None, help=text, **argument_of(flag, kind))


def argument_of(flag: str, kind: Kind) -> dict[str, Any]:
    """argparse keywords of a flag of `kind`: a switch stores True, an 'off' False, 'layers' takes
    one or more words, the others convert their text."""
    if kind in ("switch", "off"):
        return {"action": "store_const", "const": kind == "switch"}
    if kind == "layers":
        return {"nargs": "+", "metavar": "LAYER"}
    return {"type": _MAKERS[kind](flag) if kind in _MAKERS else str}


def given(args: argparse.Namespace, table: dict[str, Row]) -> dict[str, dict[str, Any]]:
    """The flags of `table` that were given, as {section: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for flag, (section, key, _, _) in table.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out
