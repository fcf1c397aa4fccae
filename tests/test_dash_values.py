"""A dash-led value (`--input -3,10,10`, `--checkpoint-every -1s`) is given to the flag that takes
it, for every flag of every command read from the parser itself, so that the flag's own check
judges it; argparse alone reads such a word as a flag and says 'expected one argument'."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from vaekit.cli import build_parser

DASHED = "-7x"  # no flag of vaekit, not a number


def leaves(parser: argparse.ArgumentParser, words: list[str]) -> Iterator[
        tuple[list[str], argparse.ArgumentParser]]:
    """Every parser of `vaekit` with the words that reach it (['data', 'info'], ...)."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaves(sub, [*words, name])


def value_flags() -> list[tuple[list[str], str]]:
    """(words, flag) for every flag that takes one value, each of its spellings."""
    return [(words, flag) for words, parser in leaves(build_parser(), []) for action in parser._actions
            if action.nargs in (None, "?") and action.option_strings for flag in action.option_strings]


FLAGS = value_flags()


def test_the_value_flags_are_found() -> None:
    found = {(" ".join(words), flag) for words, flag in FLAGS}
    assert {("arch", "--input"), ("train", "--checkpoint-every"), ("sample", "-n"), ("eval", "--limit"),
            ("data info", "--data-dir"), ("serve", "--port")} <= found


def _parse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[argparse.Namespace | None, str]:
    try:
        return build_parser().parse_args(argv), ""
    except SystemExit:
        return None, capsys.readouterr().err


@pytest.mark.parametrize("words, flag", FLAGS, ids=[" ".join([*w, f]) for w, f in FLAGS])
def test_a_dash_led_value_is_judged_by_its_flag(words: list[str], flag: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    parsed, err = _parse([*words, flag, DASHED], capsys)
    assert "expected one argument" not in err and "unrecognized" not in err, err
    if parsed is not None:  # a text flag takes it as given
        action = next(a for _, p in leaves(build_parser(), []) for a in p._actions if flag in a.option_strings
                      and p.prog.split()[1:] == words)
        assert getattr(parsed, action.dest) is not None


@pytest.mark.parametrize("argv, reason", [
    (["arch", "--input", "--json"], "expected one argument"),  # a flag of its own: the value is missing
    (["arch", "--input", "3,8,8", "--", "--json"], ""),  # after `--`: a LAYER, not a value
])
def test_a_flag_is_not_taken_for_a_value(argv: list[str], reason: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    parsed, err = _parse(argv, capsys)
    assert reason in err
    if parsed is not None:
        assert parsed.layers == ["--json"] and not parsed.json


def test_an_abbreviated_flag_takes_its_dash_led_value(capsys: pytest.CaptureFixture[str]) -> None:
    _, err = _parse(["eval", "RUN", "--lim", "-5"], capsys)
    assert "--limit" in err and "-5" in err and "expected one argument" not in err
