"""PLACEHOLDER: being written (Ex.1 Q1 by measurement)."""
from __future__ import annotations

import argparse
from pathlib import Path

from vaekit.classify.config import ClassifierConfig

EPOCHS = 3
SIDES = (28, 56, 112)
TRAIN_IMAGES = 10_000
DEFAULT_OUT = "runs/compare"


def main(config: ClassifierConfig, args: argparse.Namespace, out: Path) -> int:
    raise NotImplementedError
