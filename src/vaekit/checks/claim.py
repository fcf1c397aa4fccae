"""What a claim of `vaekit check` returns, and the settings every claim runs under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

F64 = torch.float64


@dataclass
class ClaimResult:
    """The outcome of one claim: what was claimed, the numbers that test it, and the verdict.

    `numbers` holds the scalars printed on the claim's line; `details` the rest (tables, curves)."""

    id: str
    question: str  # where the sheet asks it, e.g. "Ex.2 Q1"
    claim: str  # the claim in words
    numbers: dict[str, Any]
    summary: str  # the numbers in words, one line
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run on one CPU thread: the same numbers on any machine, and no oversubscription when the
    cores are shared (small matrices gain nothing from more threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
