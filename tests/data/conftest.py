"""Fixtures of the data tests of hostile input: a deadline for code that could block on a FIFO or
read a device that never ends (`hang.deadline`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

import hang


@pytest.fixture
def deadline() -> Callable[[float], contextlib.AbstractContextManager[None]]:
    return hang.deadline
