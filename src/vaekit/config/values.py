"""Values of settings as they are read from text, a TOML file or JSON: numbers that are not bools
(`is_int`, `is_number`), durations (`parse_duration`, and `format_duration` to print one), image
sizes, comma lists of integers and train.checkpoint_every, each refused in one sentence naming its
key; `show` quotes a value in such a sentence as TOML spells it (`vaekit.config.spelling`);
`parse_toml`, a TOML text whose every float is one a float holds as written.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tomllib
from decimal import Decimal
from typing import Any, TypeGuard, TypeVar

from vaekit.config.spelling import spell, spell_key
from vaekit.errors import ConfigError

C = TypeVar("C")  # a config made of sections


def show(value: Any) -> str:
    """A value as an error sentence quotes it: as TOML spells it, cut short (`spelling.spell`)."""
    return spell(value)


def is_int(value: Any) -> TypeGuard[int]:
    """Whether a value read from JSON, TOML or a layer's text is an integer (True is not 1 here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """Whether a value read from JSON, TOML or a layer's text is a number: an int or a float, not a
    bool (Python's True is an int, JSON's true is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def checkpoint_interval(text: str, name: str = "train.checkpoint_every") -> float | None:
    """train.checkpoint_every as seconds between checkpoints: "epoch" 0.0, a duration its seconds,
    "auto" None (the words in any case, as a duration's units); one sentence naming `name` (the key,
    or the flag --checkpoint-every) for anything else."""
    if text.lower() in ("auto", "epoch"):
        return None if text.lower() == "auto" else 0.0
    try:
        return parse_duration(text, name)
    except (DurationTooLong, DurationUnits):
        raise
    except ConfigError:
        raise not_an_interval(text, name) from None


def not_an_interval(given: Any, name: str = "train.checkpoint_every") -> ConfigError:
    """The sentence of a train.checkpoint_every that is none of its forms, quoting it as given."""
    return ConfigError(f"{name} must be auto, epoch or a duration such as 30s, 5m or 90 (seconds), got "
                       f"{show(given)}.")


def interval_of_number(seconds: int | float) -> str:
    """train.checkpoint_every given as a number of seconds (`checkpoint_every = 30` in a TOML file)
    as the text the setting holds: 30 -> "30", 1e-05 -> "0.00001" (a duration's digits, not
    "1e-05"). A negative number or nan is `not_an_interval`, quoting the number as written (-3, not
    "-3"); one past MAX_DURATION (inf too) the duration's bound (`check_duration_bound`)."""
    if not seconds >= 0:
        raise not_an_interval(seconds)
    check_duration_bound(seconds, "train.checkpoint_every", seconds)
    return str(seconds) if is_int(seconds) else format(Decimal(repr(abs(seconds))), "f")


class DurationTooLong(ConfigError):
    """A duration past MAX_DURATION: a duration still, so its sentence names the bound."""


class DurationUnits(ConfigError):
    """A duration whose units repeat or come out of order ('1h1h', '30m1h'): its sentence names the
    order, not the forms a duration takes."""


MAX_DURATION = 1e9  # seconds: any duration a run or a checkpoint interval could mean
DURATION_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_UNIT_RANK = {"h": 0, "m": 1, "min": 1, "s": 2}  # the order a duration gives its units in, each once
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|min|m|s)")


def parse_duration(text: str, flag: str = "--time-budget") -> float:
    """'60m' -> 3600.0; '1h30m', '90s', '2.5h', '3600' or '3.6e3' (seconds). One sentence naming `flag` for
    anything else (negative, empty, an unknown unit, nan, a unit given twice or out of the order h,
    m, s: '1h1h' and '30m1h' are typos, not sums; spaces around it, as a number's, ' 60m')."""
    t = text.lower()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?", t):  # seconds, 3600 or 1e3 as a TOML number
        total = float(t)
    else:
        pos, total, rank = 0, 0.0, -1
        for m in _DURATION_PART.finditer(t):
            if m.start() != pos:
                break
            if _UNIT_RANK[m.group(2)] <= rank:
                raise DurationUnits(f"{flag} gives each unit at most once, hours then minutes then "
                                    f"seconds (such as 1h30m10s), got {show(text)}.")
            rank = _UNIT_RANK[m.group(2)]
            total += float(m.group(1)) * DURATION_UNITS[m.group(2)]
            pos = m.end()
        if not t or pos != len(t):
            raise ConfigError(f"{flag} must be a duration such as 60m, 1h30m, 90s or 3600 (seconds), "
                              f"got {show(text)}.")
    check_duration_bound(total, flag, text)
    return total


def check_duration_bound(seconds: float, flag: str, given: Any, where: str = "") -> None:
    """The one limit of a duration, MAX_DURATION, in one sentence naming `flag` (after `where`, a
    file) and the value as `given` ('2000000000s' on the command line, 2e9 in a TOML file): the text
    the parser read and the number a file or the Python API set are held to the same bound in the
    same words (the setting's Bound is MAX_DURATION too, left to name nan and negatives)."""
    if seconds > MAX_DURATION:  # 400 digits read as inf, too
        raise DurationTooLong(f"{where}{flag} must be a duration of at most {MAX_DURATION:.0e} seconds "
                              f"(about 30 years), got {show(given)}.")


def duration_value(value: Any, key: str, where: str = "") -> Any:
    """A duration setting's value as a file or the Python API gives it: text ("60m") parsed to its
    seconds, a number of seconds held to the parser's bound (`check_duration_bound`); anything else
    returned as it is, for the caller's type check. Sentences name `key` after `where`."""
    if isinstance(value, str):
        try:
            return parse_duration(value, key)
        except ConfigError as err:
            raise type(err)(f"{where}{err}") from None
    if is_number(value):
        check_duration_bound(value, key, value, where)
    return value


def check_given_budget(config: Any, values: dict[str, Any], path: Any) -> None:
    """The train.time_budget of the TOML file `path`, whose tables are `values`, read over `config`
    (a classifier's has no such key, left to its unknown-key sentence), refused as
    `--time-budget 0` is (`zero_budget`) where it is 0 or less, or nan (`not_positive_budget`): no
    budget is the key left out, so the default 0 of a config built in Python or read from
    config.json means none, a file's 0 or -5 a budget that cannot be kept. Anything else is left
    to the setting's own check."""
    train = values.get("train")
    if (isinstance(train, dict) and "time_budget" in train and hasattr(getattr(config, "train", None),
                                                                        "time_budget")
            and not_positive_budget(train["time_budget"])):
        raise zero_budget("train.time_budget", train["time_budget"], f"{path}: ")


def not_positive_budget(given: Any) -> bool:
    """Whether a time budget as given, seconds (-5, nan) or text ("0s", "-5m", "nan"), is no
    duration of more than 0 seconds though written as one: refused in `zero_budget`'s sentence,
    not in the sentence of the lower bound of the setting, 0, which a given budget is refused."""
    if is_number(given):
        return not given > 0  # nan too
    if not isinstance(given, str):
        return False
    text = given.lower()
    if text.lstrip("+-") == "nan":
        return True
    try:
        return parse_duration(text.removeprefix("-"), "") <= 0 or text.startswith("-")
    except DurationTooLong:
        return text.startswith("-")
    except ConfigError:
        return False


def parse_positive_duration(text: str, flag: str = "--time-budget") -> float:
    """`parse_duration`, more than 0 seconds: a budget of 0, -5 or nan given on the command line is
    a typo (no budget is the flag left out), not the plain epochs; a TOML file's is refused alike
    (`check_given_budget`)."""
    if not_positive_budget(text):
        raise zero_budget(flag, text)
    return parse_duration(text, flag)


def zero_budget(flag: str, given: Any, where: str = "") -> ConfigError:
    """The sentence for a time budget of 0 given by `flag` (--time-budget, or the train.time_budget
    of the file `where`): no budget is the setting left out, its default 0 (none)."""
    return ConfigError(f"{where}{flag} must be more than 0 seconds, got {show(given)}; leave {flag} out for "
                       "no budget.")


def given_text(text: str, flag: str, path: bool = True) -> str:
    """A path or name given on the command line: empty or blank text is one sentence (it used to
    mean "not given", so `--out ''` trained into the default directory); a path (`path`) no file
    system holds too (`check_path_length`)."""
    if not text.strip():
        if not flag.startswith("-"):  # an argument, not a flag: it has no default
            raise ConfigError(f"{flag} is empty; give the path of a run directory.")
        raise ConfigError(f"{flag} is empty; give a value, or leave {flag} out.")
    if path:
        check_path_length(text, flag)
    return text


NAME_MAX, PATH_MAX = 255, 4095  # bytes: POSIX file systems' limits on one name and a whole path


def check_path_length(text: str, what: str) -> None:
    """A path no file system can hold is one sentence naming `what`, not ENAMETOOLONG later: each
    name at most NAME_MAX bytes, the whole at most PATH_MAX (as the file system encodes them)."""
    raw = os.fsencode(text)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > NAME_MAX or len(raw) > PATH_MAX:
        raise ConfigError(f"{what} is too long a path ({len(raw):,} bytes, its longest name {longest:,}); "
                          f"a file system takes names of up to {NAME_MAX} bytes and paths of up to "
                          f"{PATH_MAX:,}.")


def format_duration(seconds: float) -> str:
    """Seconds as a person reads them, the inverse of `parse_duration` in spirit: 9.5 -> '9.5 s';
    65 -> '1 min 05 s'; 3725 -> '1 h 02 min 05 s' (whole seconds from a minute on)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


MAX_IMAGE_SIDE = 8192  # --image-size: larger sides are refused (a 60k-image set of them fills any memory)


def spaced_parts(text: str, separators: str) -> list[str] | None:
    """`text` split at each character of `separators`, each part with the ASCII spaces around it
    taken off ('1, 28 ,28' -> ['1', '28', '28']); None where the text starts or ends with
    whitespace (' 28', refused as around any number) or holds whitespace other than the ASCII space
    (a tab, a newline, a no-break space): the one rule of spaces in a size or a list of numbers."""
    if text != text.strip() or any(ch.isspace() and ch != " " for ch in text):
        return None
    return [part.strip(" ") for part in re.split(f"[{re.escape(separators)}]", text)]


def parse_image_size(text: str, key: str = "--image-size") -> tuple[int, int]:
    """'32' -> (32, 32); '32x48' -> (32, 48) as (height, width). One sentence naming `key` for
    anything else (zero, negative, more than MAX_IMAGE_SIDE, not numbers, whitespace around it as
    around any number: ' 32', or other than ASCII spaces inside: `spaced_parts`; '32 x 48' is a size)."""
    parts = spaced_parts(text, "xX")
    ok = parts is not None and len(parts) <= 2 and all(re.fullmatch(r"[0-9]{1,18}", p) for p in parts)
    size = None if not ok or parts is None else (int(parts[0]), int(parts[-1]))
    if size is None or not all(1 <= side <= MAX_IMAGE_SIDE for side in size):
        raise ConfigError(f"{key} must be a size S or HxW in pixels, each side from 1 to {MAX_IMAGE_SIDE} "
                          f"(32 or 64x48), got {show(text)}.")
    return size


def parse_int_list(text: str, key: str = "hidden") -> list[int]:
    """'512,256' -> [512, 256]; 'none' -> [] (no layer: asked for by its word, as empty text means
    nothing). `key` names the input in the error ('model.hidden', '--channels'); empty text, or an
    empty entry ('512,,256', ','), is one, not a layer left out. Whitespace around the list is refused
    as around any number (' 16'); ASCII spaces around a comma are read ('8, 4'), no other
    whitespace (`spaced_parts`)."""
    if not text.strip():
        raise ConfigError(f"{key} is empty; give a comma-separated list of integers such as 512,256, or "
                          "none for an empty list (no layer).")
    parts = spaced_parts(text, ",")
    if parts is None:
        raise ConfigError(f"{key} must be a comma-separated list of integers, got {show(text)}.")
    if text == "none":
        return []
    if not all(parts):
        raise ConfigError(f"{key} must be a comma-separated list of integers, got {show(text)}, which "
                          "has an empty entry.")
    if not all(re.fullmatch(r"-?[0-9]+", p) for p in parts):  # int() reads '1_0' and '٣' too
        raise ConfigError(f"{key} must be a comma-separated list of integers, got {show(text)}.")
    return [int(p) for p in parts]


BEYOND_FLOAT = f"larger in size than the largest float, {sys.float_info.max:.4g}"  # what 1e400 is


class _Unheld(Exception):
    """A TOML float that no float holds as written (its text in args[0])."""


def float_of(written: str) -> float:
    """float(written), except that a number that is not 0 but rounds to 0 (1e-400) is the smallest
    float of its sign, a subnormal, which the config's check refuses as such (`config.read`): read
    as 0.0 it would be taken where 0 is allowed, or refused as 'got 0.0', which was not written."""
    value = float(written)
    return math.copysign(5e-324, value) if value == 0 and is_tiny(written) else value


def is_tiny(written: str) -> bool:
    """Whether the number written `written` is not 0 but below 2.2e-308 in size: a subnormal, or
    1e-400's 0.0, which it may be parsed into while the CPU flushes denormals
    (`vaekit.device.flush_denormals`), so that `is_subnormal` would see only the 0.0. Told from the
    text with `Decimal`, exactly."""
    exact = Decimal(written.replace("_", ""))
    return exact.is_finite() and 0 < abs(exact) < Decimal(sys.float_info.min)


def _toml_float(written: str) -> float:
    """A TOML float from its text, refused (`_Unheld`) when it is tiny (`is_tiny`), or when it is
    finite as written but float() reads it as inf (1e400)."""
    value = float(written.replace("_", ""))
    if is_tiny(written) or (math.isinf(value) and Decimal(written.replace("_", "")).is_finite()):
        raise _Unheld(written)
    return value


def _key_of(text: str, written: str) -> str | None:
    """The key ('optim.lr', 'model.hidden[1]') of the first float written `written` in the TOML
    `text`, parsed again with every float kept as its text; None where it cannot be told."""
    class Written(str):
        pass

    try:
        stack: list[tuple[Any, str]] = [(tomllib.loads(text, parse_float=Written), "")]
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None
    while stack:  # depth first, in the order of the file
        node, key = stack.pop()
        if isinstance(node, Written) and node == written:
            return key
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        named = [(v, f"{key}[{k}]" if isinstance(k, int) else f"{key}.{spell_key(k)}" if key
                  else spell_key(k)) for k, v in items]
        stack.extend(reversed(named))
    return None


def parse_toml(text: str, path: Any) -> dict[str, Any]:
    """`tomllib.loads(text)`, every float one a float holds as written: one that is not is a
    ConfigError naming the file (`path`) and its key (`_toml_float`). The parser's own errors
    (TOMLDecodeError, RecursionError, ValueError) are left to the caller."""
    try:
        return tomllib.loads(text, parse_float=_toml_float)
    except _Unheld as err:
        written = err.args[0]
        key, digits = _key_of(text, written), written.replace("_", "")
        where = f"{path}, {key}" if key else str(path)
        if math.isinf(float(digits)):
            raise ConfigError(f"{where}: {digits} must be a finite number, {BEYOND_FLOAT}.") from None
        raise ConfigError(f"{where}: {digits} must be 0 or at least {sys.float_info.min:.4g} in size, as a "
                          "float holds it only as a subnormal number or 0, and the CPU's flush-to-zero mode "
                          "reads it as 0.") from None
