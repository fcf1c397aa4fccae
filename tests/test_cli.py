"""vaekit.cli: a flag value argparse cannot use is one line on stderr, `vaekit COMMAND: error:` and a
sentence naming the flag and the value that points at `--help`, exit status 2, no usage block and
no traceback; the same for every command, every typed flag of every command and argparse's other
errors (unknown flags, missing arguments)."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vaekit.cli import build_parser, explain, main
from vaekit.commands.flags import CONFIG_PATH, OUT_PATH, float_flag, int_flag, int_list_flag
from vaekit.commands.serve import host_flag
from vaekit.config import spell

OneSentence = Callable[..., None]
# A positional each command needs before its flags parse (eval, sample and report take a run).
POSITIONAL = {"evaluate": ["RUN"], "eval": ["RUN"], "sample": ["RUN"], "report": ["RUN"]}


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str], command: str,
                   one_sentence: OneSentence, *names: str) -> str:
    """Run `vaekit ARGV`: exit 2, nothing on stdout, exactly one line on stderr of the form
    `vaekit COMMAND: error: SENTENCE`, the sentence naming `names` and pointing at --help."""
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    assert "usage:" not in err and "Traceback" not in err, err
    prefix = f"vaekit {command}: error: "
    assert err.startswith(prefix), err
    message = err.removeprefix(prefix).strip()
    one_sentence(message, *names)
    assert message.endswith("--help`."), message
    return message


def subparsers(parser: argparse.ArgumentParser, words: list[str]) -> Iterator[
        tuple[list[str], argparse.ArgumentParser]]:
    """Every leaf parser of `vaekit` with the words that reach it (['data', 'info'], ...)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield words, parser
    for action in actions:
        for name, sub in action.choices.items():
            yield from subparsers(sub, [*words, name])


def typed_flags() -> list[tuple[list[str], str]]:
    """(words, flag) for every optional flag of every command that converts its value (int,
    float, a list, a choice; not a path or an address, whose converters refuse only empty text):
    read from the parser itself, so a new flag is tested too."""
    out, texts = [], (None, str, CONFIG_PATH, OUT_PATH, host_flag)
    for words, parser in subparsers(build_parser(), []):
        for action in parser._actions:
            text = action.type in texts or getattr(action.type, "__name__", "").startswith("text_flag")
            if action.option_strings and action.nargs is None and (action.choices is not None or not text):
                out.append((words, action.option_strings[-1]))
    return out


TYPED = typed_flags()


def test_the_typed_flags_are_found() -> None:
    flags = {(words[0], flag) for words, flag in TYPED}
    assert {("train", "--seed"), ("train", "--hidden"), ("train", "--lr"), ("eval", "--k"),
            ("sample", "-n"), ("report", "--seed"), ("check", "--seed"), ("data", "--binarize")} <= flags


@pytest.mark.parametrize("words, flag", TYPED, ids=[" ".join(w) + " " + f for w, f in TYPED])
def test_every_typed_flag_of_every_command_refuses_a_word_in_one_line(
        words: list[str], flag: str, capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    argv = [*words, *POSITIONAL.get(words[0], []), flag, "x1"]
    one_error_line(capsys, argv, words[0], one_sentence, flag, '"x1"', f"vaekit {' '.join(words)} --help")


# One wrong value for an int flag per command (data and arch have no int flag: a bad choice, an
# unknown flag), as a user types them.
PER_COMMAND = [
    (["data", "info", "--binarize", "sometimes"], "data", ['unknown --binarize "sometimes"', "fixed"]),
    (["arch", "--input", "3,8,8", "--depth", "3"], "arch", ["--depth"]),
    (["train", "--epochs", "ten"], "train", ["--epochs", '"ten"', "integer"]),
    (["eval", "RUN", "--k", "5k"], "eval", ["--k", '"5k"', "integer"]),
    (["sample", "RUN", "-n", "1.5"], "sample", ["-n", '"1.5"', "integer"]),
    (["report", "RUN", "--limit", "all"], "report", ["--limit", '"all"', "integer"]),
    (["check", "--steps", "1e3"], "check", ["--steps", '"1e3"', "integer"]),
]


@pytest.mark.parametrize("argv, command, names", PER_COMMAND, ids=[c for _, c, _ in PER_COMMAND])
def test_each_command_has_one_line_errors(argv: list[str], command: str, names: list[str],
                                          capsys: pytest.CaptureFixture[str],
                                          one_sentence: OneSentence) -> None:
    one_error_line(capsys, argv, command, one_sentence, *names)


@pytest.mark.parametrize("command", ["train", "eval", "sample", "report", "check"])
def test_seed_1e23_in_every_command(command: str, capsys: pytest.CaptureFixture[str],
                                    one_sentence: OneSentence) -> None:
    argv = [command, *POSITIONAL.get(command, []), "--seed", "1e23"]
    one_error_line(capsys, argv, command, one_sentence, "--seed", '"1e23"', "must be an integer")


def test_hidden_with_a_letter(capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    one_error_line(capsys, ["train", "--hidden", "1,a"], "train", one_sentence, "--hidden", '"1,a"',
                   "comma-separated list of integers")


def test_a_conv_model_of_no_channels_entry_names_the_flag(capsys: pytest.CaptureFixture[str],
                                                         one_sentence: OneSentence, tmp_path: Path) -> None:
    capsys.readouterr()
    assert main(["train", "--data", "digits", "--model", "conv", "--channels", "none",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vaekit train: error: "), err
    one_sentence(err.removeprefix("vaekit train: error: ").strip(), "model.channels (--channels) is empty")
    assert not (tmp_path / "run").exists()


def test_channels_names_channels_not_hidden(capsys: pytest.CaptureFixture[str],
                                            one_sentence: OneSentence) -> None:
    message = one_error_line(capsys, ["train", "--channels", "x"], "train", one_sentence, "--channels",
                             '"x"')
    assert "hidden" not in message


def test_check_seed_range(capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    one_error_line(capsys, ["check", "--seed", str(2**32)], "check", one_sentence, "--seed", "4294967295",
                   str(2**32))
    one_error_line(capsys, ["check", "--seed", "-1"], "check", one_sentence, "--seed", "at least 0")


@pytest.mark.parametrize("argv, command, names", [
    (["train", "--bogus", "3"], "train", ["unrecognized arguments: --bogus 3", "vaekit train --help"]),
    (["data", "info", "digits", "extra"], "data", ["unrecognized arguments: extra",
                                                   "vaekit data info --help"]),
    (["train", "--seed"], "train", ["--seed", "expected one argument"]),
    # a flag the command does not know, with its value, before any action: the flag is named, not
    # its value taken for an action ('unknown action "16"')
    (["classify", "--data", "digits", "--hidden", "16", "--epochs", "1"], "classify",
     ["unrecognized arguments: --hidden", "vaekit classify --help"]),
    (["data", "--latent=2", "info", "digits"], "data", ["unrecognized arguments: --latent=2"]),
    (["data"], "data", ["required", "ACTION"]),
    (["eval"], "eval", ["required", "RUN_DIR"]),
    (["nope"], "", ['unknown command "nope"', "train"]),
    ([], "", ["required", "COMMAND", "vaekit --help"]),
])
def test_other_argparse_errors(argv: list[str], command: str, names: list[str],
                               capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    prefix = f"vaekit {command}: error: " if command else "vaekit: error: "
    assert out == "" and err.count("\n") == 1 and err.startswith(prefix) and "usage:" not in err, err
    one_sentence(err.removeprefix(prefix), *names)


def test_nothing_is_written_before_a_flag_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                one_sentence: OneSentence) -> None:
    out = tmp_path / "run"
    one_error_line(capsys, ["train", "--data", "digits", "--out", str(out), "--latent", "4.5"], "train",
                   one_sentence, "--latent")
    assert not out.exists()


def test_help_still_exits_0_with_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0 and "usage: vaekit train" in capsys.readouterr().out


def test_converters_raise_argparse_errors_naming_their_flag() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"^--channels must be a comma-separated"):
        int_list_flag("--channels")("3,x")
    with pytest.raises(argparse.ArgumentTypeError, match=r'^--seed must be an integer, got "1e23"$'):
        int_flag("--seed")("1e23")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^--seed must be at most 9, got 10$"):
        int_flag("--seed", 0, 9)("10")
    with pytest.raises(argparse.ArgumentTypeError, match=r'^--lr must be a number, got "fast"$'):
        float_flag("--lr")("fast")
    for text in ("1e400", "-2E999"):  # overflows to inf: quoted as written, with the largest float
        said = (f"--lr must be a finite number, got {text}, larger in size than the largest float, "
                f"{sys.float_info.max:.4g}")
        with pytest.raises(argparse.ArgumentTypeError, match="^" + re.escape(said) + "$"):
            float_flag("--lr")(text)
    assert float_flag("--lr")("inf") == math.inf  # 'inf' as written: the config's range check names it
    assert float_flag("--lr")("0e-400") == 0.0 and float_flag("--lr")("2.3e-308") == 2.3e-308
    assert int_list_flag("--hidden")("512, 256") == [512, 256] and int_list_flag("--hidden")("none") == []
    assert int_flag("--k")("12") == 12 and float_flag("--lr")("1e-3") == 1e-3


def test_explain_rewrites_argparse_messages() -> None:
    assert explain("argument --k: invalid int value: 'x'") == "--k must be an integer, got 'x'"
    assert explain("argument --lr: invalid float value: 'x'") == "--lr must be a number, got 'x'"
    assert explain("argument --binarize: invalid choice: 'x' (choose from 'none', 'fixed')") == (
        "--binarize got 'x', expected one of 'none', 'fixed'")
    own = "argument --seed: --seed must be at least 0, got -1."  # a converter's sentence, kept
    assert explain(own) == "--seed must be at least 0, got -1"
    assert explain("argument -n: expected one argument") == "-n: expected one argument"
    assert len(explain("argument --k: invalid int value: '" + "9x" * 50_000 + "'")) < 400


@pytest.mark.parametrize("argv", [["train", "--time-budget", "0"], ["train", "--time-budget", "0s"],
                                  ["train", "--time-budget", "0h0m"], ["train", "--time-budget=-5"],
                                  ["train", "--time-budget=-5m"], ["train", "--time-budget", "nan"]])
def test_a_time_budget_of_nothing_is_refused_not_ignored(capsys: pytest.CaptureFixture[str],
                                                         one_sentence: OneSentence, argv: list[str]) -> None:
    """--time-budget 0 trained the plain epochs: no budget is the flag left out."""
    message = one_error_line(capsys, argv, "train", one_sentence, "--time-budget")
    assert "more than 0 seconds" in message


@pytest.mark.parametrize(("command", "flag"), [("train", "--out"), ("train", "--config"),
                                               ("classify", "--out"), ("classify", "--config")])
def test_an_empty_path_is_refused_not_read_as_not_given(
        capsys: pytest.CaptureFixture[str], one_sentence: OneSentence, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, command: str, flag: str) -> None:
    """`--out ''` trained into the default directory; `--config ''` ran without a config file."""
    monkeypatch.chdir(tmp_path)
    message = one_error_line(capsys, [command, flag, " ", "--data", "digits", "--epochs", "1"], command,
                             one_sentence, flag)
    assert "is empty" in message and not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["train", "classify"])
@pytest.mark.parametrize("device", ["tpu", "CPU", "cuda:0", "meta"])
def test_a_device_of_no_kind_is_one_sentence(capsys: pytest.CaptureFixture[str], one_sentence: OneSentence,
                                             tmp_path: Path, command: str, device: str) -> None:
    """`--device tpu` reached torch.device before the config's check: a traceback."""
    out = tmp_path / "run"
    capsys.readouterr()
    assert main([command, "--data", "digits", "--epochs", "1", "--out", str(out), "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix(f"vaekit {command}: error: "), device)
    assert not out.exists()


def test_an_empty_flag_without_a_default_is_not_sent_to_one(capsys: pytest.CaptureFixture[str],
                                                            one_sentence: OneSentence) -> None:
    """`check --figures ''` was told to leave --figures out "for its default", which it has none of."""
    message = one_error_line(capsys, ["check", "--figures", ""], "check", one_sentence, "--figures is empty")
    assert "default" not in message, message


def test_classify_eval_help_prints_a_percent_sign(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["classify", "eval", "--help"])
    out = capsys.readouterr().out
    assert "95%" in out and "%%" not in out


@pytest.mark.parametrize("words, flag", TYPED, ids=[" ".join(w) + " " + f for w, f in TYPED])
def test_a_negative_infinity_is_judged_by_the_flag_not_read_as_a_flag(
        words: list[str], flag: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--lr -inf`: argparse alone reads '-inf' as a flag and says '--lr: expected one argument';
    vaekit gives the value to the flag, whose check (or the config's) refuses it by its value."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    status = main([*words, *POSITIONAL.get(words[0], []), flag, "-inf"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and err.count("\n") == 1, err
    assert "expected one argument" not in err and "inf" in err.removeprefix(f"vaekit {words[0]}: error:"), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, said", [
    (["train", "--lr", "-1e-3"], "the learning rate must be greater than 0, got -0.001"),
    (["sample", "RUN", "-n", "-nan"], '-n must be an integer, got "-nan"'),  # '-n' is a flag too
    (["train", "--lr=-1", "-2"], "unrecognized arguments: -2"),
    (["arch", "--input", "3,8,8", "--", "-1"], "layer 1 `-1` is not a layer call"),  # after --: a word
    (["train", "--no-progress", "--lr", "-inf"], "must be a finite number in (0, 100], got -inf"),
])
def test_a_negative_number_goes_to_the_flag_before_it_only(
        argv: list[str], said: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag's negative value reaches the flag's own check, whose sentence names it; a value after
    a flag that already has one, or after `--`, is a word of its own."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err


@pytest.mark.parametrize("flag", ["--out", "--config"])
def test_a_path_no_file_system_holds_is_one_sentence(flag: str, capsys: pytest.CaptureFixture[str],
                                                      one_sentence: OneSentence, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for path in ["a" * 256, "runs/" + "é" * 128, "a/" * 2100]:  # a name of 256 bytes; of 256 in UTF-8; 4,200
        message = one_error_line(capsys, ["train", "--data", "digits", flag, path], "train", one_sentence,
                                 flag, "255 bytes")
        assert "too long" in message
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_on_a_path_is_one_sentence_wherever_it_surfaces(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The last net: an OSError about a path (here ENAMETOOLONG raised inside a command) is one
    sentence naming the path and exit 2; other OSErrors are not hidden."""
    import errno

    from vaekit.commands import arch

    def too_long(_: argparse.Namespace) -> int:
        raise OSError(errno.ENAMETOOLONG, "File name too long", "b" * 300)

    monkeypatch.setattr(arch, "run", too_long)
    capsys.readouterr()
    assert main(["arch", "conv3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vaekit arch: error: bbbb") and "file name too long" in err

    def no_memory(_: argparse.Namespace) -> int:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(arch, "run", no_memory)
    with pytest.raises(OSError):
        main(["arch", "conv3"])


@pytest.mark.parametrize("argv", [["--data", "a" * 300], ["--data", "fashion-mnist", "--data-dir", "b" * 300],
                                  ["--data", "c/" * 2100 + "x.npz"]])
def test_a_dataset_path_no_file_system_holds_is_one_sentence(
        argv: list[str], capsys: pytest.CaptureFixture[str], one_sentence: OneSentence, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["train", *argv, "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too long a path" in err and "255 bytes" in err, err
    one_sentence(err.removeprefix("vaekit train: error: "))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("written", ["1e-320", "1e-400", "-1e-400"])  # 1e-400 rounds to 0: was 'got 0.0'
@pytest.mark.parametrize(("flag", "zero_allowed"), [("--lr", False), ("--weight-decay", True),
                                                     ("--autoregressive-dropout", True)])
def test_a_subnormal_number_is_refused_not_read_as_zero(flag: str, zero_allowed: bool, written: str,
                                                       capsys: pytest.CaptureFixture[str],
                                                       one_sentence: OneSentence, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands run with denormals flushed to zero, where 1e-320 compares equal to 0: it would
    be refused as 'not greater than 0, got 0.0', or stored as 0.0 where 0 is allowed. The sentence
    names the flag and offers 0 only where the setting takes it (--lr 0 is refused)."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["train", "--data", "digits", flag, written, "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "subnormal" in err and f"error: {flag} (" in err, err
    assert ("must be 0 or at least" in err) == zero_allowed, err
    one_sentence(err.removeprefix("vaekit train: error: "))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, flag", [
    (["train", "--lr", "0.1", "--lr", "0.002"], "--lr"),
    (["train", "--lr=0.1", "--lr", "0.002"], "--lr"),
    (["train", "--config", "a.toml", "--config", "b.toml"], "--config"),
    (["sample", "RUN", "-n", "2", "-n", "3"], "-n"),
    (["train", "--no-progress", "--no-progress"], "--no-progress"),
    # abbreviated once (argparse takes a unique prefix): the same flag, named in full and as typed
    (["eval", "RUN", "--limit", "20", "--lim", "5"], "--limit is given twice (as --limit and --lim)"),
    (["sample", "RUN", "--nc", "2", "--ncols", "4"], "--ncols is given twice (as --nc and --ncols)"),
    (["classify", "--epochs", "3", "--epo", "4"], "--epochs is given twice"),
    (["classify", "eval", "RUN", "--json", "--json"], "--json is given twice"),  # the action's own flag
])
def test_a_flag_given_twice_is_refused_not_the_last_kept(argv: list[str], flag: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          one_sentence: OneSentence) -> None:
    message = one_error_line(capsys, argv, argv[0], one_sentence, flag)
    assert "given twice" in message
    switch = argv.count(argv[-1]) == 2 and argv[-1] in ("--no-progress", "--json")  # the same switch twice
    assert ("would count" in message) != switch, message  # no value of a switch given twice is dropped
    if argv[:2] == ["classify", "eval"]:
        assert message.endswith("`vaekit classify eval --help`."), message


@pytest.mark.parametrize("argv", [["data", "info", "--data", "digits"], ["data", "fetch", "--data", "digits"],
                                  ["data", "list", "--data=x"]])
def test_another_command_s_flag_is_not_read_as_the_flag_it_abbreviates(
        argv: list[str], capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    """`data info --data digits` (train's --data) was read as --data-dir digits, and the default set
    described from a folder named digits: refused, naming what the user typed and what it would be."""
    message = one_error_line(capsys, argv, "data", one_sentence, "--data is not a flag of", "--data-dir")
    assert f"`vaekit data {argv[1]}`" in message


@pytest.mark.parametrize(("flags", "words"), [
    (["--epochs", "1", "--warmup", "3"],
     ["train.warmup is 3 epochs (--warmup)", "run's 1 epoch (train.epochs, --epochs)", "at most 1 epoch,"]),
    (["--prior", "vamp", "--pseudo-inputs", "2000"], ["model.pseudo_inputs is 2,000 (--pseudo-inputs)"]),
    (["--autoregressive", "8", "--autoregressive-window", "64"],
     ["model.autoregressive_window is 64 pixels (--autoregressive-window)", "at most 63"]),
    (["--val-size", "5"], ["data.val_size (--val-size) applies to the downloaded sets", "leave it out"]),
])
def test_a_refusal_of_a_flag_names_the_flag(flags: list[str], words: list[str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            one_sentence: OneSentence) -> None:
    """A value the user typed as a flag is named by that flag beside its key, as the patience and the
    unused settings are."""
    capsys.readouterr()
    argv = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--out", str(tmp_path / "r"),
            *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix("vaekit train: error: "), *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, flag, helped", [
    (["train", "--data", "digits", "--out=--"], "--out", "train"),
    (["sample", "RUN", "--out=--"], "--out", "sample"),
    (["classify", "eval", "RUN", "--limit=--"], "--limit", "classify eval"),
    (["eval", "RUN", "--k=--"], "--k", "eval"),
    (["classify", "--epochs=--", "eval", "RUN"], "--epochs", "classify"),
])
def test_a_flag_given_the_end_of_options_as_its_value_is_refused(
        argv: list[str], flag: str, helped: str, capsys: pytest.CaptureFixture[str],
        one_sentence: OneSentence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out=--`: argparse drops the `--` and reads the flag as given nothing, whose default would
    then be taken without a word (a run trained into runs/...); refused naming the flag, nothing
    written, and pointing at the help of the parser the flag is of (an action's own flag: the
    action's)."""
    monkeypatch.chdir(tmp_path)
    message = one_error_line(capsys, argv, argv[0], one_sentence, flag)
    assert "'--'" in message and list(tmp_path.iterdir()) == []
    assert message.endswith(f"see `vaekit {helped} --help`."), message
    assert ("./--" in message) == (flag == "--out"), message  # named as a path only for a path's flag


@pytest.mark.parametrize("argv, flag", [
    (["train", "--lr", "١"], "--lr"), (["train", "--lr", "1_0"], "--lr"), (["train", "--lr", " 1"], "--lr"),
    (["train", "--hidden", "٣,4"], "--hidden"), (["train", "--hidden", "1_0"], "--hidden"),
    (["train", "--time-budget", "٣m"], "--time-budget"), (["train", "--image-size", "٣٢"], "--image-size"),
    (["train", "--time-budget", "1" + "0" * 400], "--time-budget"),
    (["train", "--checkpoint-every", "9" * 400], "--checkpoint-every"),
    (["train", "--epochs", "9" * 5000], "--epochs"), (["train", "--seed", "-" + "9" * 5000], "--seed"),
    (["train", "--image-size", "9" * 5000], "--image-size"),  # past the 4,300 digits int() reads
    # whitespace other than ASCII spaces inside a size or a list: a newline, an em space, a tab, a
    # no-break space (str.strip and a regex's \s read them all as spaces)
    (["train", "--image-size", "8\nx8"], "--image-size"),
    (["train", "--image-size", "8\u2003x8"], "--image-size"),
    (["train", "--hidden", "16,\u00a08"], "--hidden"), (["train", "--channels", "8\t,16"], "--channels"),
    (["classify", "--compare", "--sides", "8\t,16"], "--sides"),
])
def test_numbers_are_read_as_a_person_types_them(argv: list[str], flag: str,
                                                 capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's int() and float() also read other scripts' digits, underscores and spaces, and
    400 digits as infinity; vaekit's numbers are ASCII decimals within their bounds."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main([*argv, "--data", "digits", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err, err
    assert list(tmp_path.iterdir()) == []


def train_number_flags() -> list[tuple[str, str]]:
    """Each number flag of train (integers, numbers, integer lists, sizes, durations, the checkpoint
    interval), read from its flag table, with a value it takes."""
    from vaekit.commands.train import FLAGS

    values: dict[Any, str] = {int: "1", "positive": "1", float: "0.5", list: "8", "size": "8",
                              "duration": "60m", "interval": "30s"}
    found = [(flag, values[kind]) for flag, (_, _, kind, _) in FLAGS.items() if kind in values]
    assert {"--lr", "--epochs", "--hidden", "--image-size", "--time-budget", "--checkpoint-every"} \
        <= {flag for flag, _ in found}
    return found


@pytest.mark.parametrize(("flag", "value"), train_number_flags())
def test_every_number_flag_refuses_spaces_around_its_number(
        flag: str, value: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--lr ' 0.01'` was refused while `--hidden ' 16'` and `--image-size ' 8'` were read as 16 and
    8: one rule for every number flag, the float flags' sentence ('must be ..., got " 0.01"'); the
    value itself is taken."""
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    parser.parse_args(["train", flag, value])  # the value as typed is read
    for text in (f" {value}", f"{value} ", f"\t{value}"):
        capsys.readouterr()
        # data no machine holds: a value taken would be refused there, not trained on
        assert main(["train", flag, text, "--data", "no-such-data", "--out", "run"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "must be" in err and f"got {spell(text)}" in err, err
        assert flag in err or flag.lstrip("-").replace("-", "_") in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["eval", "RUN", "--batch-size", str(10**20)], ["eval", "RUN", "--k", "0"],
                                  ["report", "RUN", "--limit", str(10**20)]])
def test_eval_and_report_sizes_are_bounded(argv: list[str], capsys: pytest.CaptureFixture[str],
                                           one_sentence: OneSentence) -> None:
    """An absurd --batch-size was accepted and written into eval.json as if used."""
    one_error_line(capsys, argv, argv[0], one_sentence, argv[2])


ALLOCATOR = ("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory: you tried "
             "to allocate 8192000000 bytes.")


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError(ALLOCATOR)])
def test_running_out_of_memory_is_one_sentence(error: Exception, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's MemoryError and torch's allocator failure (sizes a user asked for): exit 2, one line."""
    from vaekit.commands import arch

    def fail(_args: object) -> int:
        raise error

    monkeypatch.setattr(arch, "run", fail)
    capsys.readouterr()
    assert main(["arch", "Linear(3)", "--input", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ran out of memory" in err and "Traceback" not in err, err


@pytest.mark.parametrize("command", ["train", "eval", "classify", "arch", "sample"])
def test_the_out_of_memory_sentence_names_only_flags_the_command_has(command: str) -> None:
    """Each flag the sentence offers is one `vaekit COMMAND --help` lists (train has no --limit)."""
    from vaekit.cli import SIZE_FLAGS, out_of_memory

    parser = build_parser()
    sentence = out_of_memory(parser, command)
    help_text = parser._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]
    for flag in SIZE_FLAGS:
        listed = re.search(rf"(?<![-\w]){re.escape(flag)}(?![-\w])", help_text) is not None
        assert (flag in sentence) == listed, (command, flag, sentence)


def test_another_runtime_error_is_not_called_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.commands import arch

    def fail(_args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(arch, "run", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["arch", "Linear(3)", "--input", "4"])


@pytest.mark.parametrize(("argv", "names"), [
    (["train", "--skip-bad"], ["data.skip_bad", "a folder of images"]),
    (["classify", "--skip-bad"], ["data.skip_bad", "a folder of images"]),
    (["train", "--no-cuda-graph"], ["train.cuda_graph", "a CUDA device"]),
    (["train", "--epochs", "2", "--warmup", "5"], ["train.warmup", "2 epochs"]),
    (["train", "--epochs", "3", "--patience", "3"], ["train.patience", "3 epochs"]),
    (["classify", "--patience", "8"], ["train.patience", "8 epochs"]),  # the classifier's default epochs
    (["train", "--beta", "0", "--free-bits", "0.5"], ["train.free_bits", "--beta"]),  # 0 * max(KL_d, 0.5)
    (["train", "--beta", "0", "--warmup", "3"], ["train.warmup", "--beta"]),  # a ramp from 0 to 0
    (["train", "--schedule", "step"], ["optim.step_size is 30 epochs", "10 epochs"]),  # the defaults
    (["train", "--gated", "--activation", "tanh"], ["model.activation", "--gated"]),
    (["train", "--hidden", ""], ["--hidden", "none"]),
    (["train", "--autoregressive", "8", "--autoregressive-window", str(10**6)],
     ["model.autoregressive_window", "64-pixel images of digits", "63"]),
])
def test_a_setting_that_would_do_nothing_is_refused(argv: list[str], names: list[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str],
                                                    one_sentence: OneSentence) -> None:
    """Each was accepted and did nothing: --skip-bad on a set that is no image folder, --no-cuda-graph
    on a CPU, a warm-up the run never finishes, '' read as no hidden layer, a window past the pixels."""
    monkeypatch.chdir(tmp_path)
    status = main([*argv, "--data", "digits", "--out", "run", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0, err
    one_sentence(err.split(": error: ", 1)[1], *names)
    assert list(tmp_path.iterdir()) == []


def _demo_train_argv(epochs: str) -> list[str]:
    """The `vaekit train` command of scripts/demo.sh (`make demo`), its lines joined and $EPOCHS given."""
    import shlex

    text = (Path(__file__).parents[1] / "scripts" / "demo.sh").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if "-m vaekit train " in x)
    return shlex.split(line.split("-m vaekit ", 1)[1].replace('"$EPOCHS"', epochs).replace('"$RUN"', "run"))


@pytest.mark.parametrize("epochs", ["15", "2"])  # the demo's default (DEMO_EPOCHS) and its shortest
def test_the_demo_command_passes_the_checks_of_its_settings(epochs: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` trains configs/fashion-mnist-mlp.toml (warm-up 5, patience 15) for DEMO_EPOCHS
    epochs: its flags must leave no setting the run's epochs make do nothing (check_warmup,
    check_epochs), or the demo ends in a refusal before it trains."""
    from vaekit.commands import train

    argv = _demo_train_argv(epochs)
    assert argv[:3] == ["train", "--config", "configs/fashion-mnist-mlp.toml"] and "--epochs" in argv
    monkeypatch.chdir(Path(__file__).parents[1])
    config, _ = train.build_config(build_parser().parse_args(argv))
    assert config.train.epochs == int(epochs)


def test_compare_refuses_more_training_images_than_the_data_has(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                one_sentence: OneSentence) -> None:
    from vaekit.data.load import load_dataset

    n = len(load_dataset("digits").train)
    status = main(["classify", "--compare", "--data", "digits", "--train-images", str(10**9),
                   "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    one_sentence(err.split(": error: ", 1)[1], "--train-images", f"{n:,} training images of digits")
    assert not (tmp_path / "c").exists()


def test_data_info_refuses_an_image_fit_without_a_size(capsys: pytest.CaptureFixture[str],
                                                       one_sentence: OneSentence) -> None:
    """As `vaekit train` does: --image-fit says how --image-size keeps the aspect."""
    assert main(["data", "info", "digits", "--image-fit", "pad"]) == 2
    one_sentence(capsys.readouterr().err.split(": error: ", 1)[1], "data.image_fit", "--image-size")
    assert main(["data", "info", "digits", "--skip-bad"]) == 2
    one_sentence(capsys.readouterr().err.split(": error: ", 1)[1], "data.skip_bad", "a folder of images")
    assert main(["data", "info", "digits", "--image-fit", "pad", "--image-size", "4"]) == 0
    assert "images       1x4x4" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["data", "info", "digits"], ["train", "--data", "digits"],
                                     ["classify", "--data", "digits"]])
@pytest.mark.parametrize("value", ["2", "5", "-1"])
def test_bad_image_channels_name_the_flag(command: list[str], value: str, capsys: pytest.CaptureFixture[str],
                                          one_sentence: OneSentence, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`data info --image-channels 2` said "image channels must be ...", naming no input, and train
    the key data.image_channels: each names the flag given, as every other image flag does."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main([*command, f"--image-channels={value}"]) == 2
    err = capsys.readouterr().err.strip().split(": error: ", 1)[1]
    one_sentence(err, f"--image-channels must be 0 (the data's own), 1 (grey) or 3 (RGB), got {value}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "value", "argv"), [
    ("VAEKIT_DIST_TIMEOUT", "abc", ["train", "--data", "digits", "--epochs", "1", "--out", "run"]),
    ("VAEKIT_DIST_TIMEOUT", "0", ["eval", "run"]),
    ("VAEKIT_ALLOW_MODIFIED_DATA", "yes", ["data", "info", "digits"]),
])
def test_a_bad_environment_variable_is_refused_in_one_process(
        name: str, value: str, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], one_sentence: OneSentence) -> None:
    """Read only under torchrun (or for a set with published sums), a bad value passed unseen."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert main(argv) == 2
    one_sentence(capsys.readouterr().err.split(": error: ", 1)[1], name, f'"{value}"')
    assert list(tmp_path.iterdir()) == []
    assert main(["arch", "--input", "4", "Linear(2)"]) == 0  # a command that reads neither


def test_a_long_bad_choice_is_one_cut_sentence(capsys: pytest.CaptureFixture[str],
                                               one_sentence: OneSentence) -> None:
    """argparse quoted the value whole; cut at 300 characters, the line lost its valid values."""
    message = one_error_line(capsys, ["data", "info", "--binarize", "x" * 400], "data", one_sentence,
                             'unknown --binarize "xxx', "valid values are none, dynamic, fixed")
    assert len(message) < 200


def test_skip_bad_refused_for_a_built_in_set_that_a_folder_in_the_directory_shares_a_name_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        one_sentence: OneSentence) -> None:
    """`--data digits` reads the built-in set even where ./digits is a folder: --skip-bad would do
    nothing, and the loader, which knows which it reads, says so."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    capsys.readouterr()
    assert main(["train", "--data", "digits", "--skip-bad", "--epochs", "1", "--hidden", "8",
                 "--out", str(tmp_path / "r")]) == 2
    one_sentence(capsys.readouterr().err.split(": error: ", 1)[1], "--skip-bad", "digits is a built-in set")
    assert not (tmp_path / "r").exists()


def test_a_help_names_only_flags_its_command_has() -> None:
    """Every --flag a help page names (outside a quoted `vaekit ...` command) is one of its command's,
    or of a command under it: `report --help` once offered --force, which only eval has."""
    def flags(parser: argparse.ArgumentParser) -> set[str]:
        own = {o for a in parser._actions for o in a.option_strings}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                own |= {f for sub in action.choices.values() for f in flags(sub)}
        return own

    def pages(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
        found = [(name, parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    found += pages(sub, f"{name} {sub_name}")
        return found

    named = 0
    for name, parser in pages(build_parser(), "vaekit"):
        text = re.sub(r"`[^`]*`", "", parser.format_help())
        said = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
        assert said <= flags(parser), (name, sorted(said - flags(parser)))
        named += len(said)
    assert named > 100  # the pages were read
