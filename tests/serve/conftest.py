"""What the explorer's tests share: one tiny digits VAE run, trained once for the session (the
servers over it never write to it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_client import LATENT

from eval_runs import make_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("serve") / "run", latent=LATENT)
