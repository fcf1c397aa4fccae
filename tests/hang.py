"""`deadline(seconds)`: fail a test whose body blocks (a FIFO opened for reading waits for a writer,
/dev/zero never ends) instead of hanging the session. SIGALRM: the main thread only."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise AssertionError in the body once it has run `seconds`; the alarm and its handler are
    restored after."""
    def expired(*_: object) -> None:
        raise AssertionError(f"still running after {seconds} s (a FIFO or a device was opened?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
