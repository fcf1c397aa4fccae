"""Fixtures of the data tests of hostile input: a deadline for code that could block on a FIFO or
read a device that never ends."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

import pytest


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) when the block takes longer than `seconds`: a FIFO opened for
    reading blocks until a writer comes, /dev/zero never ends. SIGALRM: the main thread only."""
    def expired(*_: object) -> None:
        raise AssertionError(f"still running after {seconds} s (a FIFO or a device was opened?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def deadline() -> Callable[[float], contextlib.AbstractContextManager[None]]:
    return _deadline
