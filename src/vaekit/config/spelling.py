"""A value as a TOML file spells it, for the sentences that quote a user's value: `spell` (true, not
True; "text" with TOML's escapes; [arrays]; { inline = tables }; inf and nan; dates and times in
TOML's form), cut short where the value is long; `spell_key`, a key as TOML writes it.

What TOML has no word for, a config read from JSON or built in Python may still hold: None is spelled
as JSON's null (config.json's), a tuple or a set as an array, anything else by its Python repr.
"""

from __future__ import annotations

import datetime as dt
import re
import reprlib
from typing import Any

WIDTH = 100  # characters of a spelling at most; a longer one ends in '...'
ITEMS, ENTRIES, DEPTH, TEXT, DIGITS = 6, 4, 3, 40, 40  # what a cut spelling keeps of each part
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_REPR = reprlib.Repr()  # short for any other object
_REPR.maxlevel, _REPR.maxother, _REPR.maxstring = 2, 60, 60


def spell(value: Any, width: int | None = WIDTH) -> str:
    """`value` as TOML spells it, so that `tomllib.loads("v = " + spell(value))["v"] == value` for any
    value tomllib makes, unless the spelling is cut: with a `width` (None: never cut), a value whose
    whole spelling is longer than `width` characters is cut: a string keeps its first TEXT
    characters, an integer its first DIGITS digits (each said how long it is), an array its first
    ITEMS items, a table its first ENTRIES, nothing nests deeper than DEPTH, and what is still longer
    ends in '...'."""
    if width is None or _few(value, width):
        whole = _spell(value, False, 0)
        if width is None or len(whole) <= width:
            return whole
    text = _spell(value, True, 0)
    return text if len(text) <= width else text[:width - 3] + "..."


def _few(value: Any, width: int) -> bool:
    """Whether `value` might be spelled whole in `width` characters, told without spelling it: at
    most `width` parts (each spelled in one character or more), none longer than `width`."""
    todo, parts = [value], 0
    while todo:
        v = todo.pop()
        parts += 1
        if parts > width or (isinstance(v, str | list | tuple | set | frozenset | dict) and len(v) > width):
            return False
        if isinstance(v, int) and v.bit_length() > 4 * width:  # 4 bits a digit, or more
            return False
        if isinstance(v, dict):
            todo += [*v.keys(), *v.values()]
        elif isinstance(v, list | tuple | set | frozenset):
            todo += v
    return True


def spell_key(key: Any, cut: bool = True) -> str:
    """A key as TOML writes it: bare (`max_epochs`) where it may be, else a quoted string."""
    if isinstance(key, str) and _BARE_KEY.fullmatch(key) and (len(key) <= TEXT or not cut):
        return key
    return _spell(str(key), cut, 0)


def _string(s: str) -> str:
    """A basic string: TOML's escapes, and \\uXXXX for any character a terminal would not show."""
    return '"' + "".join(_ESCAPES.get(c) or (c if c.isprintable() else f"\\u{ord(c):04X}" if ord(c) < 0x10000
                                             else f"\\U{ord(c):08X}") for c in s) + '"'


def _long_int(value: int) -> str:
    """An integer of more than DIGITS digits: its first DIGITS and how many there are (past 4,300
    digits, which str() refuses, only about how many)."""
    n = abs(value)
    if n.bit_length() > 14_000:
        about = int(n.bit_length() * 0.30103)  # log10(2)
        return f"{'a negative' if value < 0 else 'an'} integer of about {about:,} digits"
    digits = str(n)
    return f"{'-' if value < 0 else ''}{digits[:DIGITS]}... ({len(digits):,} digits)"


def _spell(value: Any, cut: bool, depth: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value) if not cut or -(10**DIGITS) < value < 10**DIGITS else _long_int(value)
    if isinstance(value, float):
        return "nan" if value != value else float.__repr__(value)  # inf, -inf, 1e+16: TOML's words too
    if isinstance(value, str):
        if cut and len(value) > TEXT:
            return f"{_string(value[:TEXT])}... ({len(value):,} characters)"
        return _string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset | dict):
        return _container(value, cut, depth)
    return _REPR.repr(value)


def _container(value: Any, cut: bool, depth: int) -> str:
    """An array or an inline table, cut (`cut`) to its first items and to DEPTH levels."""
    table = isinstance(value, dict)
    open_, close = ("{ ", " }") if table else ("[", "]")
    if not value:
        return "{}" if table else "[]"
    if cut and depth >= DEPTH:
        return f"{open_}...{close}"
    keep = len(value) if not cut else ENTRIES if table else ITEMS
    parts = []
    for i, item in enumerate(value.items() if table else value):
        if i == keep:
            parts.append(f"... ({len(value):,} {'entries' if table else 'items'})")
            break
        parts.append(f"{spell_key(item[0], cut)} = {_spell(item[1], cut, depth + 1)}" if table
                     else _spell(item, cut, depth + 1))
    return open_ + ", ".join(parts) + close
