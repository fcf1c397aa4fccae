"""The `vaekit` command: a thin layer that parses, calls the library and prints.

Each subcommand lives in `vaekit.commands.<name>` and exposes `register(subparsers)`, which adds its
parser and sets `func`. Errors a user can cause print one line, `vaekit COMMAND: error: SENTENCE.`,
and exit 2: a `VaekitError` raised by the command, and every error of argparse itself (a flag of the
wrong type, an unknown flag, a missing argument), which `VaekitParser.error` writes without the usage
block. A `type=` converter raises `argparse.ArgumentTypeError` with a sentence naming its flag:
`vaekit.commands.flags` makes them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from vaekit.commands.flags import int_flag
from vaekit.config import choice, rank_error_file
from vaekit.errors import LOST_PEER_STATUS, ConfigError, PeerLost, VaekitError
from vaekit.version import __version__

# Order is the order shown by `vaekit --help`.
COMMANDS: tuple[str, ...] = ("data", "arch", "train", "classify", "evaluate", "sample", "report", "serve",
                             "check", "sheet")
DISTRIBUTED = ("train", "classify")  # the commands `--nproc N` starts under torchrun
MAX_NPROC = 256

_ARGUMENT = re.compile(r"argument (?P<name>[^:]+): (?P<rest>.*)", re.DOTALL)
_BAD_TYPE = re.compile(r"invalid (?P<type>int|float) value: (?P<value>.*)", re.DOTALL)
_BAD_CHOICE = re.compile(r"invalid choice: (?P<value>.*) \(choose from (?P<valid>.*)\)", re.DOTALL)
def explain(message: str) -> str:
    """An argparse error message as one clause that starts with the flag it is about:

    'argument --seed: invalid int value: '1e23''  ->  "--seed must be an integer, got '1e23'"
    'argument --seed: --seed must be ...'         ->  '--seed must be ...' (a converter's own sentence)
    """
    message = " ".join(message.split()).rstrip(".")
    if len(message) > 300:  # argparse quotes a bad value whole
        message = message[:280] + "..."
    match = _ARGUMENT.fullmatch(message)
    if not match:
        return message
    name, rest = match["name"], match["rest"]
    if bad := _BAD_TYPE.fullmatch(rest):
        kind = "an integer" if bad["type"] == "int" else "a number"
        return f"{name} must be {kind}, got {bad['value']}"
    if bad := _BAD_CHOICE.fullmatch(rest):
        return f"{name} got {bad['value']}, expected one of {bad['valid']}"
    if rest.startswith(tuple(name.split("/"))):  # a converter's sentence already names the flag
        return rest
    return f"{name}: {rest}"


class VaekitParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2, no usage block:

        vaekit COMMAND: error: <what was wrong>; see `vaekit COMMAND [ACTION] --help`.

    Passed to every subparser (`add_subparsers(parser_class=...)`, inherited below that).
    """

    def error(self, message: str) -> NoReturn:
        command = " ".join(self.prog.split()[:2])  # 'vaekit data', also for 'vaekit data info'
        self.exit(2, f"{command}: error: {explain(message)}; see `{self.prog} --help`.\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside a flag's (or a positional's) choices in the words of the config's choice
        errors (`config.choice`: `unknown --binarize "xyz"; valid values are ...`), its text cut
        short, not argparse's raw line, which quotes it whole and is then cut mid-sentence."""
        if action.choices is not None and value not in action.choices:
            positional = str(action.metavar or action.dest).lower()  # COMMAND, ACTION
            name = action.option_strings[-1] if action.option_strings else positional
            try:
                choice(name, value, tuple(map(str, action.choices)))
            except ConfigError as err:
                raise argparse.ArgumentError(None, str(err).rstrip(".")) from None

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[Any, list[str]]:
        """As argparse's, but a subcommand's parser refuses the arguments it does not know itself,
        so that the error line names the subcommand (`vaekit train: error: unrecognized ...`)."""
        if args is not None:
            args = self.dash_values_joined(args)
            if " " in self.prog:  # a command's parser, named in the sentence
                self.refuse_separator_value(args)
            self.refuse_repeated(args)
            self.refuse_foreign_abbreviation(args)
            self.refuse_unknown_before_action(args)
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and " " in self.prog:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def own_arguments(self, args: Sequence[str]) -> Iterator[str]:
        """ARGS up to `--` or an action's name (`classify eval`): what this parser reads itself; the
        rest is its action's parser's."""
        actions = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
        for arg in args:
            if arg == "--" or arg in actions:
                return
            yield arg

    def refuse_separator_value(self, args: Sequence[str]) -> None:
        """A flag given `--` as its value (`--out=--`) is refused: argparse drops a `--` wherever it
        finds one among a flag's values (Python 3.11), so the flag would be read as given nothing and
        its default taken without a word. The arguments past an action are its parser's to refuse."""
        for arg in self.own_arguments(args):
            flag, equals, value = arg.partition("=")
            if arg.startswith("-") and equals and value == "--":
                action = self._action_of(flag)  # a path's flag (`text_flag`) may name ./--
                path = getattr(getattr(action, "type", None), "__name__", "").startswith("text_flag")
                self.error(f"argument {flag}: '--' marks the end of the options, not a value"
                           + (" (./-- names a file or folder of that name)" if path else ""))

    def refuse_unknown_before_action(self, args: Sequence[str]) -> None:
        """In a parser with actions (`vaekit classify [ACTION]`), a flag it does not know, before
        any action, is refused as unrecognized: argparse would take the flag's value for the action
        (`classify --hidden 16`: 'unknown action "16"'), naming what the user did not type."""
        if not any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            return
        for arg in self.own_arguments(args):
            if (arg.startswith("-") and not _is_negative_number(arg) and arg not in ("-h", "--help")
                    and self._action_of(arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]) is None):
                self.error(f"unrecognized arguments: {arg}")

    def dash_values_joined(self, args: Sequence[str]) -> list[str]:
        """ARGS with a dash-led value joined to this parser's flag that takes it: `--input -3,10,10`
        -> `--input=-3,10,10`, `-n -x` -> `-n-x`. argparse reads any word that starts with '-' as a
        flag of its own and would say the flag 'expected one argument'; joined, the flag's own
        check names the value. A word that is one of this parser's flags (`--input --json`), what
        follows `--`, and a flag already given its value (`--lr=-1`) are left as they are; a
        negative number is a value even where its first letters name a short flag (`-n -nan`)."""
        out: list[str] = []
        ended = False
        for arg in args:
            ended = ended or arg == "--"
            flag = out[-1] if out else ""
            action = self._action_of(flag)
            if (ended or action is None or action.nargs not in (None, "?") or not arg.startswith("-")
                    or (not _is_negative_number(arg)
                        and self._action_of(arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]))):
                out.append(arg)
            else:
                out[-1] = f"{flag}={arg}" if flag.startswith("--") else flag + arg
        return out

    def _action_of(self, flag: str) -> argparse.Action | None:
        """This parser's flag named `flag`, or one it abbreviates (`--lim` for `--limit`); else None."""
        if not flag.startswith("-"):
            return None
        if flag in self._option_string_actions:
            return self._option_string_actions[flag]
        if not (self.allow_abbrev and flag.startswith("--")):
            return None
        found = {a for name, a in self._option_string_actions.items() if name.startswith(flag)}
        return found.pop() if len(found) == 1 else None

    foreign: frozenset[str] = frozenset()  # the flags of vaekit's other parsers (`build_parser`)

    def refuse_foreign_abbreviation(self, args: Sequence[str]) -> None:
        """A flag of another command that abbreviates one of this parser's is refused, not read as
        that one: `data info --data digits` (`train`'s --data) would be --data-dir."""
        for arg in self.own_arguments(args):
            name = arg.split("=", 1)[0]
            meant = self._action_of(name) if name in self.foreign else None
            if meant is not None:
                self.error(f"{name} is not a flag of `{self.prog}`, where it would be read as "
                           f"{meant.option_strings[-1]}, which it abbreviates; give that in full if meant")

    def refuse_repeated(self, args: Sequence[str]) -> None:
        """A flag of this parser given twice, in full or abbreviated, is an error (argparse keeps the
        last without a word: `--lr 0.1 --lr 0.002`, `--limit 20 --lim 5`, two --config files of
        which one is ignored)."""
        seen: dict[str, tuple[str, argparse.Action]] = {}  # a flag's dest -> how it was first typed
        for arg in self.own_arguments(args):
            typed = arg.split("=", 1)[0] if arg.startswith("--") else arg
            action = self._action_of(typed) if arg.startswith("--") else self._option_string_actions.get(arg)
            if action is None or isinstance(action, argparse._AppendAction | argparse._CountAction):
                continue
            if action.dest in seen:
                first, earlier = seen[action.dest]
                flag = action.option_strings[-1]
                both = "" if first == typed == flag else f" (as {first} and {typed})"
                same = earlier is action and action.nargs == 0  # a switch twice: no value dropped
                self.error(f"{flag} is given twice{both}; give it once" + ("" if same else " (only the last "
                           "would count, the other dropped without a word)"))
            seen[action.dest] = typed, action


# ----------------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    parser = VaekitParser(
        prog="vaekit",
        description="CNN layer arithmetic and variational autoencoders, from the TD-2 sheet.",
    )
    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=VaekitParser)
    for name in COMMANDS:
        importlib.import_module(f"vaekit.commands.{name}").register(sub)
    for name in DISTRIBUTED:
        sub.choices[name].add_argument(
            "--nproc", type=int_flag("--nproc", 1, MAX_NPROC), default=1,
            help="processes on this machine: starts `torchrun --standalone --nproc_per_node N -m vaekit "
            "...` (torch.distributed, gloo on a CPU); several machines: run torchrun yourself "
            "(README) (default: 1)")
    parsers = list(_parsers(parser))
    flags = {f for p in parsers for f in p._option_string_actions if f.startswith("--")}
    for p in parsers:
        p.foreign = frozenset(flags - set(p._option_string_actions))
    return parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[VaekitParser]:
    """`parser` and every parser of its actions, and theirs (`vaekit classify eval`)."""
    if isinstance(parser, VaekitParser):
        yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def without_nproc(argv: Sequence[str]) -> list[str]:
    """ARGV less `--nproc N` / `--nproc=N`: what each torchrun process is given."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a == "--nproc":
            skip = i + 1 < len(argv)
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


# What a path a user gave can do to a file system call: one sentence naming the path, not a
# traceback, wherever in a command it surfaces (the commands check what they can before this).
PATH_ERRORS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EACCES,
                         errno.EPERM, errno.EROFS})


def path_sentence(err: OSError) -> str:
    """An OSError on a path as one sentence: 'PATH: cannot use it (file name too long).'"""
    path = str(err.filename)
    if len(path) > 120:
        path = path[:100] + "..."
    return f"{path}: cannot use it ({(err.strerror or str(err)).lower()})."


def _is_negative_number(text: str) -> bool:
    if not text.startswith("-"):
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


# The commands that wait on other ranks (train and evaluate under torchrun: VAEKIT_DIST_TIMEOUT);
# every command but `arch` may load a dataset (VAEKIT_ALLOW_MODIFIED_DATA).
TIMEOUT_READERS = ("train", "classify", "eval", "report", "sheet")


def check_environment(command: str) -> None:
    """vaekit's environment variables that `command` reads, each checked before it starts: a bad
    value is one sentence even where this run would not come to read it (one process never reads
    the timeout; a set without published sums never the checksum switch)."""
    from vaekit.data.load import allow_modified_data  # torch: the command loads it anyway
    from vaekit.distributed import TIMEOUT_ENV, timeout_seconds  # torch: as above

    if command in TIMEOUT_READERS:
        timeout_seconds(os.environ.get(TIMEOUT_ENV))
    if command != "arch":
        allow_modified_data()


def launch_ranks(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`--nproc N`: what one process can check is checked first and said once (the config, the
    data's name, the score estimator, N against the CPU cores), then N processes under torchrun
    (`vaekit.distributed.launch`), which turns the sentences the ranks leave into one VaekitError."""
    from vaekit.data.load import check_source  # checked here before torchrun
    from vaekit.distributed import check_estimator, check_nproc, launch  # torch, only for --nproc

    if getattr(args, "action", None) is not None:  # `vaekit classify eval`: ranks would lock the run apart
        raise ConfigError(f"--nproc starts processes that train; `vaekit {args.command} {args.action}` runs "
                          "in one process, so leave --nproc out.")
    check_environment(args.command)  # once here, not refused by each rank
    config, _ = importlib.import_module(f"vaekit.commands.{args.command}").build_config(args)
    check_source(config.data.name, config.data.data_dir)
    check_estimator(getattr(config.train, "estimator", ""))
    check_nproc(args.nproc, config.train.device)
    return launch(args.nproc, without_nproc(argv), config.train.threads)


def say(command: str, sentence: str) -> None:
    """A command's error: `vaekit COMMAND: error: SENTENCE` on stderr; in a rank started by
    `--nproc`, left in the launcher's folder instead (`config.rank_error_file`), which says it once."""
    where = rank_error_file()
    if where is not None:
        with contextlib.suppress(OSError):
            where.write_text(sentence)
            return
    print(f"vaekit {command}: error: {sentence}", file=sys.stderr)


SIZE_FLAGS = ("--image-size", "--side", "--batch-size", "--limit", "--k")  # what an out-of-memory names


def out_of_memory(parser: argparse.ArgumentParser, command: str) -> str:
    """The sentence for running out of memory, naming the flags of `command` that ask for less."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = set(subparsers[0].choices[command]._option_string_actions) if subparsers else set()
    flags = [f for f in SIZE_FLAGS if f in options]
    smaller = f"a smaller {', '.join(flags)} or model" if flags else "a smaller model or input"
    return (f"ran out of memory: what was asked for needs more than this machine has free; ask for less "
            f"({smaller}), or free memory.")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `vaekit ARGV`; return the exit status (2 for any error a user can cause). `--help` and
    `--version` exit 0 through SystemExit, as argparse does."""
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:
        if done.code == 2:  # VaekitParser.error has printed its line
            return 2
        raise
    world = os.environ.get("WORLD_SIZE")
    if getattr(args, "nproc", 1) > 1 and world is not None:  # the ranks vaekit starts get no --nproc
        print(f"vaekit {args.command}: error: --nproc {args.nproc} starts processes of its own, but "
              f"WORLD_SIZE is set ({world[:40]!r}), as a launcher such as torchrun sets it in each process "
              "it starts; unset WORLD_SIZE, or leave --nproc out.", file=sys.stderr)
        return 2
    if getattr(args, "nproc", 1) > 1:
        try:
            return launch_ranks(args, sys.argv[1:] if argv is None else argv)
        except VaekitError as err:  # found before torchrun starts, or the ranks' sentences: said once
            print(f"vaekit {args.command}: error: {err}", file=sys.stderr)
            return 2
    from vaekit.device import flush_denormals  # before torch's first parallel op: see its docstring

    try:
        check_environment(args.command)
        with flush_denormals():
            status: Any = args.func(args)
        sys.stdout.flush()  # here, where a reader that left is caught, not at the interpreter's exit
    except BrokenPipeError:  # `vaekit ... | head`: the reader left. As the Python docs' "Note on
        # SIGPIPE" has it: the rest of the output to os.devnull (so the flush at exit cannot fail
        # again), status 1. What the command had saved stays as it was.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except VaekitError as err:
        say(args.command, str(err))
        return 2
    except OSError as err:
        if err.errno not in PATH_ERRORS or err.filename is None:
            raise
        say(args.command, path_sentence(err))
        return 2
    except MemoryError:  # numpy's and Python's; sizes a user asked for, past this machine's memory
        say(args.command, out_of_memory(parser, args.command))
        return 2
    except RuntimeError as err:  # torch's CPU allocator says it in its own words
        if "can't allocate memory" not in str(err):
            raise
        say(args.command, out_of_memory(parser, args.command))
        return 2
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        return 130
    except PeerLost as lost:  # another rank ended: under --nproc the launcher names it
        if rank_error_file() is None:
            print(f"vaekit {args.command}: error: {lost}", file=sys.stderr)
        return LOST_PEER_STATUS
    return int(status or 0)


def _import_numpy_and_torch() -> None:
    for name in ("numpy", "torch"):
        importlib.import_module(name)


HEAVY_IMPORTS = _import_numpy_and_torch  # a test may put a slower import here


def heavy_imports_loaded() -> bool:
    """Import numpy and torch with SIGINT held (noted, not raised); False if one came meanwhile.
    In the main thread only (Python delivers signals there): elsewhere the imports are plain."""
    if threading.current_thread() is not threading.main_thread():
        HEAVY_IMPORTS()
        return True
    came: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        HEAVY_IMPORTS()
    finally:
        signal.signal(signal.SIGINT, previous)
    return not came


def entry() -> None:
    """The `vaekit` program: `main`, then the exit without the interpreter's last collection of
    cyclic garbage (`gc.freeze`): torch's, matplotlib's and scikit-learn's objects took 0.4-1 s of
    it after a run, past the end of a `--time-budget`. Files are closed, the lock released and
    the output flushed by then; only the cycle collector is skipped. A Ctrl-C while numpy and
    torch load is held until they have (cut in half, numpy's import left a broken module behind
    and the command went on to a RecursionError), then said as any other interrupt."""
    if not heavy_imports_loaded():
        print("vaekit: interrupted", file=sys.stderr)
        raise SystemExit(130)
    status = main()
    gc.freeze()
    raise SystemExit(status)


if __name__ == "__main__":
    entry()
