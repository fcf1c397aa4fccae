"""The `vaekit` command: a thin layer that parses, calls the library and prints.

Each subcommand lives in `vaekit.commands.<name>` and exposes `register(subparsers)`, which adds its
parser and sets `func`. Errors a user can cause (`VaekitError`) print one sentence and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from vaekit import __version__
from vaekit.errors import VaekitError

# Order is the order shown by `vaekit --help`.
COMMANDS: tuple[str, ...] = ("data", "arch", "train", "evaluate", "sample", "report", "check")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaekit",
        description="CNN layer arithmetic and variational autoencoders, from the TD-2 sheet.",
    )
    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"vaekit.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except VaekitError as err:
        print(f"vaekit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vaekit ... | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
