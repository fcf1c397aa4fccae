"""README.md's Python API example, run as it is written (in a fresh directory, in a subprocess), and
what it prints held against the run it leaves on disk, read back independently (safetensors, JSON,
torch.nn)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_readme_api_example_runs(tmp_path: Path) -> None:
    code = api_example()
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout
    run_dir = tmp_path / "runs" / "api-demo"

    # line 1: the epochs and best validation -ELBO, as metrics.jsonl has them
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs, best = re.fullmatch(r"epochs (\d+) best val -ELBO (\S+)", lines[0]).groups()  # type: ignore[union-attr]
    assert int(epochs) == len(rows) == 3
    assert float(best) == min(r["val_neg_elbo"] for r in rows)

    # line 2: the shapes the docstrings promise, for 8x8 digits and a latent of 4
    assert lines[1] == "mu (8, 4) recon (8, 1, 8, 8) samples (16, 1, 8, 8)"

    # line 3: an NLL and active units within their ranges; the weights it evaluated are on disk
    nll, k, active, latent = re.fullmatch(
        r"test -log p\(x\) (\S+) nats \(k = (\d+)\), (\d+) of (\d+) units active", lines[2]).groups()  # type: ignore[union-attr]
    assert int(k) == 100 and int(latent) == 4 and 0 <= int(active) <= 4
    assert 0 < float(nll) < 64 * torch.log(torch.tensor(2.0)).item()  # below 1 bit per pixel
    config = json.loads((run_dir / "config.json").read_text())
    weights = load_file(str(run_dir / "model.safetensors"))
    assert config["model"]["hidden"] == [64] and weights["q_mu.weight"].shape == (4, 64)
