"""Fixtures of the run-directory tests: one tiny trained run per test module, and a fresh copy of
it for each test to damage (a module whose run differs defines its own `trained`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eval_runs import make_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run")


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))
