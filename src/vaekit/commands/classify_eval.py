"""PLACEHOLDER: `vaekit classify eval RUN_DIR` is being written."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("eval", help="test accuracy of a classifier run")
