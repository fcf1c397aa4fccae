"""Flag tables: the flags of a config made of sections (`vaekit train`, `vaekit classify`), built from
its settings (`vaekit.config.setting`), added to a parser and read back; and the table several
commands share, a dataset's image options (`vaekit train`, `data`, `classify`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from vaekit import config as cfg
from vaekit.commands.flags import float_flag, int_flag, int_list_flag, parsed_flag, text_flag
from vaekit.config import (
    IMAGE_OPTIONS,
    TrainConfig,
    checkpoint_interval,
    parse_image_channels,
    parse_image_size,
    parse_positive_duration,
)

# A flag table's kinds (`vaekit.config.kind_of`): str, int, float, list (of ints, '512,256'), 'duration'
# ('60m'), 'size' ('32', '64x48'), 'positive' (an int of at least 1), 'channels' (0, 1 or 3), 'layers' (one
# or more words), 'switch' (no value: true), 'off' (no value: false). Rows: (section, key, kind, help).
Kind = type | str
PATH_FLAGS = ("--data", "--data-dir")  # the text flags of the tables that name a file or folder
Row = tuple[str, str, Kind, str]
_MAKERS: dict[Kind, Callable[[str], Callable[[str], Any]]] = {
    int: int_flag, float: float_flag, list: int_list_flag,
    "positive": lambda f: int_flag(f, 1), "channels": lambda f: parsed_flag(f, parse_image_channels),
    "duration": lambda f: parsed_flag(f, parse_positive_duration),
    "size": lambda f: parsed_flag(f, parse_image_size, keep_text=True),
    "interval": lambda f: parsed_flag(f, checkpoint_interval, keep_text=True)}


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
    if kind in _MAKERS:
        return {"type": _MAKERS[kind](flag)}
    return {"type": text_flag(flag, path=flag in PATH_FLAGS)}  # text: never empty


def given(args: argparse.Namespace, table: dict[str, Row]) -> dict[str, dict[str, Any]]:
    """The flags of `table` that were given, as {section: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for flag, (section, key, _, _) in table.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def check_device(config: Any, args: argparse.Namespace, toml_keys: set[str]) -> None:
    """cuda where torch sees none, refused before any data, named where it was asked for: the flag,
    else the TOML file's key, else the resumed run's config.json."""
    from vaekit.device import resolve_device  # torch: only for a command that trains
    source = (None if args.device is not None or not ("train.device" in toml_keys or args.resume)
              else args.config if "train.device" in toml_keys else f"{args.out}/config.json")
    device = config.train.device  # one not in cfg.DEVICES: named by the config's check (`validate`)
    if device in cfg.DEVICES:
        resolve_device(device, f'{source}: train.device "{device}"' if source else f"--device {device}")


def image_flags(section: str = "data") -> dict[str, Row]:
    """The flag rows of user images (`vaekit.data.folder`), the same for every command that loads data."""
    rows = {key: (flag, kind, text) for flag, (part, key, kind, text) in flag_table(TrainConfig()).items()
            if part == "data"}
    return {rows[key][0]: (section, key, rows[key][1], rows[key][2]) for key in IMAGE_OPTIONS}
