"""vaekit.config.spelling: a user's value quoted in an error sentence as TOML spells it, held to
tomllib's reading of that spelling; and the sentences of a bad config file that quote it."""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaekit.cli import main
from vaekit.config import load_toml, spell, spell_key
from vaekit.config.spelling import WIDTH
from vaekit.errors import ConfigError

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
LEAVES = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(),
                   st.datetimes(timezones=st.none() | OFFSETS), st.dates(), st.times())
TOML_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=20)


def same(a: Any, b: Any) -> bool:
    """`a == b` of the same types all the way down, a NaN equal to a NaN and offsets held too."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime) and (a.utcoffset() != b.utcoffset()):
        return False
    return bool(a == b)


def read_back(text: str) -> Any:
    return tomllib.loads(f"v = {text}\n")["v"]


@given(TOML_VALUES)
def test_tomllib_reads_a_spelling_back_as_the_value(value: Any) -> None:
    whole = spell(value, None)
    assert same(read_back(whole), value), whole
    short = spell(value)
    assert len(short) <= WIDTH, short
    if len(whole) <= WIDTH:
        assert short == whole


@given(st.dictionaries(st.text(max_size=12), st.integers(), min_size=1, max_size=3))
def test_a_key_is_spelled_as_tomllib_reads_it(table: dict[str, int]) -> None:
    text = "\n".join(f"{spell_key(k)} = {v}" for k, v in table.items())
    assert tomllib.loads(text) == table


def test_long_values_are_cut_short_and_say_so() -> None:
    for value, said in ((10**5000, "about 5,000 digits"), (-(10**120), "(121 digits)"),
                        ("x" * 10_000, "(10,000 characters)"), (list(range(10**6)), "(1,000,000 items)"),
                        ({str(i): i for i in range(1000)}, "(1,000 entries)")):
        text = spell(value)
        assert len(text) <= WIDTH and said in text, text
    nested: list[Any] = []
    nested.append(nested)  # built in Python: no spelling ends, a cut one does
    assert len(spell(nested)) <= WIDTH


def test_what_toml_has_no_word_for() -> None:
    """None as JSON's null (config.json's); a tuple as an array; a lone surrogate (JSON's "\\ud800")
    escaped, never written raw to a terminal that cannot encode it."""
    assert spell(None) == "null" and spell((1, 2)) == "[1, 2]"
    assert spell("\ud800").encode("ascii") == b'"\\uD800"'


@pytest.mark.parametrize("text, shown", [
    ("[optim]\nlr = true\n", "got true."),
    ("[model]\nhidden = [{ name = 'enc' }]\n", 'got [{ name = "enc" }].'),
    ("[train]\nseed = 1979-05-27T07:32:00Z\n", "got 1979-05-27T07:32:00+00:00."),
    ('[train]\nepochs = "a\\tb"\n', 'got "a\\tb".'),
    ("[optim]\nlr = -inf\n", "got -inf."),
    ('[model]\n"odd key" = 1\n', 'unknown key model."odd key";'),
])
def test_a_config_error_spells_the_value_as_the_file_does(tmp_path: Path, text: str, shown: str,
                                                         one_sentence: Callable[..., None]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    one_sentence(str(info.value), str(path), shown)


def test_the_command_line_says_true_as_the_file_does(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     one_sentence: Callable[..., None]) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nlr = true\n")
    status = main(["train", "--config", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("vaekit train: error: "), err
    one_sentence(err.removeprefix("vaekit train: error: "), str(path), "optim.lr", "got true.")
    assert "True" not in err and not (tmp_path / "run").exists()
