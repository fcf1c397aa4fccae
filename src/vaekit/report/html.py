"""report.html of a run of any kind: the page that its kind registered (`vaekit.report.kinds`).
The kinds' pages are imported here, which registers them: `vae_html.py` (a VAE run, `vaekit
train`) and `classify_html.py` (a classifier run, `vaekit classify`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaekit import runs
from vaekit.errors import ConfigError
from vaekit.report import classify_html, vae_html  # noqa: F401 (importing a page registers it)
from vaekit.report.kinds import ReportOptions, report_for


def write_report(run_dir: str | Path, k: int | None = None, evaluate_missing: bool = True,
                 limit: int | None = None, data_dir: str | None = None, dataset: str | None = None,
                 seed: int | None = None, progress: bool | None = None, log: Any = print,
                 device: str | torch.device = "cpu") -> Path:
    """RUN_DIR/figures/*.png and RUN_DIR/report.html; returns the report's path.

    Uses RUN_DIR/eval.json when it belongs to the run's model (same SHA-256 of model.safetensors);
    when it is missing, evaluates first (`k` samples for a VAE, `kinds.REPORT_K` when None; or,
    with evaluate_missing=False, says so; `k` or `limit` given when nothing is evaluated is a
    ConfigError). A config.json of another kind than the run's weights is named first
    (`runs.check_config_kind`); the page is the one registered for the kind config.json names
    (`runs.task_in`), whose `check` refuses an option it cannot honour (ConfigError). `k`, `seed`,
    `dataset` and `device` (where the model evaluates and draws the figures: cpu, cuda, auto) are for
    VAE runs; a classifier run refuses a `dataset` and a device other than the CPU.
    """
    run_dir = Path(run_dir)
    if not evaluate_missing and (k is not None or limit is not None):
        raise ConfigError(f"--{'k' if k is not None else 'limit'} says how to evaluate a run without an "
                          "eval.json, and --no-eval says not to; leave one of them out.")
    options = ReportOptions(k, evaluate_missing, limit, data_dir, dataset, seed, progress, log, device,
                            runs.device_named(device))
    runs.check_run_config(run_dir, runs.maker_of(runs.weights_task(run_dir)), any_kind=True)  # first
    runs.check_config_kind(run_dir)  # a config.json of another kind than the weights: named first
    kind = report_for(run_dir, runs.task_in(run_dir, strict=True))  # an unknown task: config.json named
    kind.check(run_dir, options)
    runs.figures_dir(run_dir)  # the run's own folder, checked before anything is computed
    return kind.write(run_dir, options)
