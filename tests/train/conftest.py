"""What the training tests share: the digits dataset (loaded once per module) and torch's thread
count restored after every test (runs set their own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from vaekit.data.load import Dataset, load_dataset


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
