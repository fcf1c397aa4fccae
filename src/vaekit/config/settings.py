"""How a config field declares itself: `setting` puts its default and, in the field's metadata, its
flag and help text, how the flag is read (`KINDS`), its valid choices, its range (a `Bound`) and
whether a resumed run may change it; `shared` declares a setting of one config's section again for
another config. The tables of a config made of sections are built from those declarations:
`settings_of`, `bounds_of`, `resumable_of`, and a setting's `flag_of` and `kind_of`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Bound:
    """The values a numeric key accepts: finite, low <= value <= high (strict where `*_open`)."""

    what: str  # the quantity, as the error sentence names it
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def interval(self) -> str:
        """'[1, 2147483647]', '(0, 100]', '[0, 1)': the range in interval notation."""
        return (f"{'(' if self.low_open else '['}{_bound_text(self.low)}, "
                f"{_bound_text(self.high)}{')' if self.high_open else ']'}")

    def problem(self, value: int | float) -> str | None:
        """What is wrong with `value` ('must be at least 1'), or None when it is in range."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number in {self.interval()}"
        if value < self.low or (self.low_open and value == self.low):
            return f"must be {'greater than' if self.low_open else 'at least'} {_bound_text(self.low)}"
        if value > self.high or (self.high_open and value == self.high):
            return f"must be {'less than' if self.high_open else 'at most'} {_bound_text(self.high)}"
        return None


def _bound_text(x: float) -> str:
    """A bound as written in a sentence: 100, 1e-12, 2147483647."""
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return repr(x)


# ----------------------------------------------------------------------------- settings

# A flag's kinds beyond its field's type (str, int, float, list of ints, bool = 'switch'): 'duration'
# ('60m', also in a TOML file), 'size' ('32', '64x48', also an integer in a TOML file), 'off' (a
# bool whose flag, given, sets it false), 'positive' (an int flag of at least 1), 'layers' (one or
# more words: a network in the layer language of `vaekit arch`), 'interval' (auto, epoch or a duration:
# `checkpoint_interval`; a number of seconds in a TOML file), 'channels' (an int flag among
# IMAGE_CHANNELS: `channels_sentence`). `vaekit.commands.flags` converts them.
KINDS = ("duration", "size", "switch", "off", "positive", "layers", "interval", "channels")


def setting(default: Any, *, help: str | None = None, flag: str | None = None,  # noqa: A002
            kind: str | None = None, choices: tuple[str, ...] | None = None, bound: Bound | None = None,
            resumable: bool = False) -> Any:
    """A config field that declares itself: `dataclasses.field` with its default (a list is copied
    for each instance) and, in its metadata, what the rest of the configuration is built from:

    help       the flag's help text; None: the field has no flag. "{default}" is filled in with the
               command's default ("512,256" for a list), "{choices}" with the choices ("mlp|conv").
    flag       the flag's name, when it is not the field's ('--data' for data.name); choice errors
               then name the value by it ("unknown model 'x'"), else by the field's name.
    kind       how the flag (and a TOML string) is read, when not by the field's type: one of KINDS.
    choices    the valid values of a string (`validate` refuses others).
    bound      the range of a number, or of each number of a list (`BOUNDS`); every number has one.
    resumable  whether a resumed run may change it (`RESUMABLE_CHANGES`).
    """
    assert kind is None or kind in KINDS, kind
    metadata = {"help": help, "flag": flag, "kind": kind, "choices": choices, "bound": bound,
                "resumable": resumable}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def shared(section: type, name: str, **changes: Any) -> Any:
    """The setting `name` of the section class `section` declared again for another config's section
    (the classifier's data and loop settings are the VAE's): the same default, help, flag, choices,
    bound and resumability but for `changes` (default=..., help=...)."""
    f = {f.name: f for f in fields(section)}[name]
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    return setting(**{"default": default, **f.metadata, **changes})


def flag_of(f: dataclasses.Field) -> str | None:
    """The flag of a setting ('--data-dir' for data_dir, or its declared one), None without help."""
    if f.metadata.get("help") is None:
        return None
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def kind_of(f: dataclasses.Field) -> str | type:
    """How a setting is read from a flag: its declared kind, else by its type: str, int, float,
    list (of ints, '512,256') or 'switch' (a bool: given means true)."""
    if f.metadata.get("kind"):
        return f.metadata["kind"]
    t = str(f.type).split(" ")[0]
    kinds: dict[str, str | type] = {"str": str, "int": int, "float": float, "list[int]": list,
                                    "bool": "switch"}
    return kinds[t]


def sections_of(config: Any) -> dict[str, Any]:
    """{section name: section} of a config made of sections (TrainConfig, or the classifier's
    `vaekit.classify.config.ClassifierConfig`)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def settings_of(config: Any) -> dict[str, dataclasses.Field]:
    """{'section.key': field} of every setting of a config made of sections."""
    return {f"{section}.{f.name}": f for section, part in sections_of(config).items() for f in fields(part)}


def bounds_of(config: Any) -> dict[str, Bound]:
    """The range table of a config's numbers, from its settings: {'section.key': Bound}."""
    return {key: f.metadata["bound"] for key, f in settings_of(config).items()
            if f.metadata.get("bound") is not None}


def resumable_of(config: Any) -> tuple[str, ...]:
    """The 'section.key' names a resumed run of this kind of config may change."""
    return tuple(key for key, f in settings_of(config).items() if f.metadata.get("resumable"))
