"""The environment variables vaekit reads, each as strictly as a flag's value: an integer is ASCII
digits with an optional minus sign (`DECIMAL`), a number is `NUMBER`'s text (no '1_0', no other
scripts' digits, no spaces), a switch one of its documented values. Anything else is a ConfigError,
one sentence naming the variable and what it expects. Unset is the default (and so is a switch set
to nothing; an empty number is refused)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vaekit.config.values import show
from vaekit.errors import ConfigError

DECIMAL = re.compile(r"-?[0-9]+")  # an integer as a person types one: ASCII digits, a minus sign
RANK_ERRORS_ENV = "VAEKIT_RANK_ERRORS"  # set by `vaekit.distributed.launch` alone: 'PID:FOLDER', see below
NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?(inf|infinity|nan)", re.I)


def env_int(name: str, low: int, high: int | None = None) -> int | None:
    """$name as an integer in [low, high] (high None: no upper bound), None when unset."""
    text = os.environ.get(name)
    if text is None:
        return None
    value = int(text) if DECIMAL.fullmatch(text) and len(text) <= 19 else None  # int() stops at 4,300 digits
    if value is None or value < low or (high is not None and value > high):
        within = f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}"
        raise ConfigError(f"the environment variable {name} must be an integer {within} (ASCII digits), "
                          f"got {show(text)}.")
    return value


def env_seconds(name: str, low: float, high: float, default: float) -> float:
    """$name as a number of seconds in [low, high], `default` when unset."""
    return seconds_of(name, os.environ.get(name), low, high, default)


def seconds_of(name: str, text: str | None, low: float, high: float, default: float) -> float:
    """`text`, the value of the variable `name` (None: unset), as `env_seconds` reads it."""
    if text is None:
        return default
    value = float(text) if NUMBER.fullmatch(text) else None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name} must be a number of seconds from {low:g} to {high:,.0f} (written "
                          f"in ASCII, such as 60, 2.5 or 1e2), got {show(text)}.")
    return value


def env_switch(name: str, values: dict[str, bool]) -> bool:
    """$name as one of its documented `values` (text -> on/off); off when unset or empty."""
    text = os.environ.get(name, "")
    if not text:
        return False
    if text not in values:
        raise ConfigError(f"the environment variable {name} must be {' or '.join(map(show, values))} "
                          f"(or unset), got {show(text)}.")
    return values[text]


def rank_errors_value(folder: str) -> str:
    """RANK_ERRORS_ENV's value for the ranks this process starts (`vaekit.distributed.launch`):
    'PID:FOLDER', PID this process's, which `rank_error_file` holds against the rank's parent."""
    return f"{os.getpid()}:{folder}"


def rank_error_file() -> Path | None:
    """The file a rank started by `vaekit.distributed.launch` leaves its error sentence in (named
    by its RANK), for the launcher to say once; None where the sentence is to be printed: the
    variable unset, or not naming this process's parent (a value a user set, or one inherited
    through a process other than the launcher's torchrun agent, which runs in the launcher)."""
    pid, _, folder = os.environ.get(RANK_ERRORS_ENV, "").partition(":")
    if not folder or not DECIMAL.fullmatch(pid) or len(pid) > 19 or int(pid) != os.getppid():
        return None
    rank = os.environ.get("RANK", "")
    ranked = rank.isascii() and rank.isdigit() and len(rank) <= 19
    return Path(folder, f"rank-{rank}" if ranked else f"pid-{os.getpid()}")
