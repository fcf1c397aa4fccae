"""Every setting, every way in: a value is either refused in one sentence or stored as given.

The settings are read from the configs themselves (`vaekit.config.settings_of`, the flag tables of
`vaekit.commands.tables`), so a new setting is fuzzed without a line here. Each example gives one
hostile value (NaN, inf, 10**20, negative, empty, blank, unicode, very long, the wrong type, a list,
a table) to one setting, through a TOML file's table (`config.apply`, then `validate`) or through its
flag (vaekit's own parser, then `apply`). Accepted, the stored value must be what an independent
reading of the input gives (`int(text)`, `float(text)`, the list split at commas, the duration
summed from its units): nothing silently dropped, rounded, clipped or replaced by a default.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit import config as cfg
from vaekit.classify import config as ccfg
from vaekit.cli import build_parser
from vaekit.commands import classify as classify_command
from vaekit.commands import train as train_command
from vaekit.commands.tables import given as given_flags
from vaekit.errors import ConfigError

CONFIGS = {"train": (cfg.TrainConfig, cfg.validate), "classify": (ccfg.ClassifierConfig, ccfg.validate)}
SETTINGS = [(command, key) for command, (make, _) in CONFIGS.items() for key in cfg.settings_of(make())]
EXPLORE = os.environ.get("HYPOTHESIS_PROFILE", "vaekit") != "vaekit"  # as tests/test_fuzz_cli.py
PROPERTY = settings(max_examples=300 if EXPLORE else 25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# ----------------------------------------------------------------------------- hostile values

HOSTILE_TEXT = st.one_of(
    st.sampled_from(["", " ", "nan", "-nan", "inf", "-inf", "1e999", "-1", "0", "1", "10", "1e20",
                     str(10**20), str(2**31), str(2**63), "0.5", "-0.5", "1,2", "512,,256", ",", "8, 16",
                     "60m", "1h30m", "0s", "-5m", "5x", "32x32", "auto", "epoch", "mlp", "conv", "adam",
                     "elbo", "digits", "none", "\x00", "é", "٣", "１", "a" * 300, "1" * 400, "true",
                     "1e-320", "-5e-324"]),
    st.text(max_size=12),
)
TOML_VALUES = st.one_of(
    st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 10**20, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), HOSTILE_TEXT,
    st.lists(st.one_of(st.integers(-5, 2**40), st.text(max_size=3), st.floats()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.none(),
)


# ----------------------------------------------------------------------------- the independent reading


_N = r"\d+(?:\.\d+)?"
DURATION = re.compile(rf"(?=.)(?:{_N}h)?(?:{_N}(?:min|m))?(?:{_N}s)?|{_N}")  # each unit once, in order
UNITS = {"h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0}


def seconds_of(text: str) -> float | None:
    """What a person means by a duration: '1h30m' 5400, '90' 90; None when it is not one."""
    t = text.strip().lower()
    if not DURATION.fullmatch(t):
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|min|m|s)", t))


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
    return None


def expected(field: Any, value: Any, from_flag: bool) -> Any:
    """What `value` given to `field` means, read without vaekit; `REFUSE` when it means nothing the
    field can hold."""
    t, kind = str(field.type), field.metadata.get("kind")
    if value is None:
        return None if "None" in t else REFUSE
    if t.startswith("list[int]"):
        if isinstance(value, str):
            if not from_flag:  # a file writes a list as a list
                return REFUSE
            if value.strip() == "none":  # no entry, asked for by its word
                return []
            if not value.strip():  # empty text means nothing, not an empty list
                return REFUSE
            parts = [as_int(p.strip()) for p in value.split(",")]
            return REFUSE if None in parts else parts
        if isinstance(value, list) and all(as_int(v) is not None and not isinstance(v, str) for v in value):
            return list(value)
        return REFUSE
    if t.startswith("list[str]"):
        return list(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else REFUSE
    if t.startswith("bool"):
        return value if isinstance(value, bool) else REFUSE
    if t.startswith("int"):
        n = as_int(value) if from_flag or not isinstance(value, str) else None
        return REFUSE if n is None else n
    if t.startswith("float"):
        if isinstance(value, str):
            if kind == "duration":
                s = seconds_of(value)
                return REFUSE if s is None else s
            if not from_flag:
                return REFUSE
            try:
                return float(value)
            except ValueError:
                return REFUSE
        if isinstance(value, bool) or not isinstance(value, int | float):
            return REFUSE
        return float(value)
    if t.startswith("str"):
        if kind in ("size", "interval") and not isinstance(value, bool) and isinstance(value, int | float):
            return str(value)
        if not isinstance(value, str):
            return REFUSE
        return value.strip() if kind == "size" and from_flag else value
    raise AssertionError(f"a setting of type {t}: teach this test how to read it")


REFUSE = object()


def check_outcome(key: str, field: Any, value: Any, stored: Any, error: ConfigError | None,
                  from_flag: bool, one_sentence: Any) -> None:
    want = expected(field, value, from_flag)
    if error is not None:
        one_sentence(str(error))
        return
    assert want is not REFUSE, f"{key} = {value!r} was accepted as {stored!r}; it means nothing {key} holds"
    if isinstance(want, float) and not math.isfinite(want):
        raise AssertionError(f"{key} = {value!r} was accepted: a non-finite number")
    assert stored == want and type(stored) is type(want), f"{key} = {value!r} was stored as {stored!r}"
    choices = field.metadata.get("choices")
    if choices and isinstance(stored, str):
        assert stored in choices, f"{key} = {value!r} is no choice of {choices} but was accepted"


def stored_value(config: Any, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


# ----------------------------------------------------------------------------- a TOML table


@pytest.mark.parametrize("command, key", SETTINGS, ids=[f"{c}:{k}" for c, k in SETTINGS])
@PROPERTY
@given(value=TOML_VALUES)
def test_every_config_key_refuses_or_stores_what_it_was_given(command: str, key: str, value: Any,
                                                              one_sentence: Any) -> None:
    make, validate = CONFIGS[command]
    field = cfg.settings_of(make())[key]
    section, name = key.split(".")
    stored, error = None, None
    try:
        config = validate(cfg.apply(make(), {section: {name: value}}, "c.toml"))
        stored = stored_value(config, key)
    except ConfigError as err:
        error = err
    check_outcome(key, field, value, stored, error, False, one_sentence)


# ----------------------------------------------------------------------------- a flag


def _table(command: str) -> dict[str, Any]:
    """The flag table `command` adds to its parser."""
    return train_command.FLAGS if command == "train" else classify_command.FLAGS


def flag_rows() -> list[tuple[str, str, str]]:
    """(command, flag, 'section.key') of every flag of a config's table that takes a value."""
    out = []
    for command in CONFIGS:
        for flag, (section, name, kind, _) in _table(command).items():
            if kind not in ("switch", "off", "layers"):
                out.append((command, flag, f"{section}.{name}"))
    return out


FLAGS = flag_rows()
PARSER = functools.cache(build_parser)  # parsing leaves the parser as it was


@pytest.mark.parametrize("command, flag, key", FLAGS, ids=[f"{c}:{f}" for c, f, _ in FLAGS])
@PROPERTY
@given(text=HOSTILE_TEXT)
def test_every_flag_refuses_or_stores_what_it_was_given(command: str, flag: str, key: str, text: str,
                                                        one_sentence: Any) -> None:
    make, validate = CONFIGS[command]
    field = cfg.settings_of(make())[key]
    err_out = io.StringIO()
    stored, error = None, None
    try:
        with contextlib.redirect_stderr(err_out):
            args = PARSER().parse_args([*command.split(), flag, text])
        table = {f: row for f, row in _table(command).items() if f == flag}
        config = validate(cfg.apply(make(), given_flags(args, table), "command line"))
        stored = stored_value(config, key)
    except SystemExit as exit_:
        assert exit_.code == 2
        line = err_out.getvalue().strip()
        assert line.count("\n") == 0 and flag in line, line
        error = ConfigError(line.split(": error: ", 1)[1].rsplit("; see `", 1)[0] + ".")
    except ConfigError as err:
        error = err
    check_outcome(key, field, text, stored, error, True, one_sentence)


