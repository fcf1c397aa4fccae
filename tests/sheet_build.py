"""One tiny answered sheet for the tests of tests/sheet/ (its conftest.py makes it once a session): a
1-epoch digits VAE run and a digits compare at 8 and 16 px (made in this process), then `vaekit sheet
--vae-run RUN --compare DIR --json` once, through the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_runs import make_run
from vaekit.classify import compare as cmp
from vaekit.classify.config import ClassifierConfig
from vaekit.cli import main


@dataclass
class Built:
    run: Path
    compare: Path
    page: Path
    data: dict[str, Any]


def build(root: Path) -> Built:
    """The run, the compare, the page and its JSON under `root`."""
    run = make_run(root / "run", latent=4, epochs=1)
    config = ClassifierConfig()
    config.data.name, config.train.threads = "digits", 1
    cmp.compare(config, root / "compare", (8, 16), 1, 200, isolate=False, show_bar=False, log=lambda _: None)
    page = root / "sheet.html"
    capture = root / "out.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        status = main(["sheet", "--vae-run", str(run), "--compare", str(root / "compare"), "--json",
                       "--threads", "1", "--out", str(page)])
    assert status == 0
    capture.write_text(buffer.getvalue())
    return Built(run, root / "compare", page, json.loads(buffer.getvalue()))
