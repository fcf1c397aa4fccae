"""The report of each kind of run (`vaekit.runs.Task`), registered by the module that writes its
page: `vae_html.py` for 'vae', `classify_html.py` for 'classify'. `vaekit.report.html.write_report`
finds the entry of the kind a run directory holds and calls it: no branch on a kind's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vaekit import runs
from vaekit.errors import CheckpointError, ConfigError

REPORT_K = 500  # importance samples of a report that evaluates a VAE run first, unless told


@dataclass(frozen=True)
class ReportOptions:
    """What `vaekit report` was asked for; each kind uses the options that concern it."""

    k: int | None = None  # importance samples if eval.json is missing (a VAE; None: REPORT_K)
    evaluate_missing: bool = True  # evaluate first when eval.json is missing, else say so
    limit: int | None = None  # if evaluating: only the first N test images
    data_dir: str | None = None
    dataset: str | None = None  # another dataset of the same image shape (a VAE)
    seed: int | None = None  # of the importance samples and the figures' draws (a VAE; None: 0)
    progress: bool | None = None
    log: Callable[[str], None] = print
    device: str | torch.device = "cpu"  # as given (--device)
    where: torch.device = torch.device("cpu")  # the device it names (`runs.device_named`)


def unused_evaluation(run_dir: Path, options: ReportOptions, command: str) -> None:
    """A ConfigError when --k or --limit (how to evaluate) was given, but the report evaluates
    nothing: its run has an eval.json of its model already (`command` evaluates it again)."""
    given = {f"--{f}": getattr(options, f) for f in ("k", "limit") if getattr(options, f) is not None}
    if given:
        them = "them" if len(given) > 1 else "it"
        flags = " ".join(f"{flag} {value}" for flag, value in given.items())
        raise ConfigError(f"{next(iter(given))} is used only to evaluate a run without an eval.json, and "
                          f"{run_dir / runs.EVAL} of its model is there; leave {' and '.join(given)} out, "
                          f"or evaluate the run with {them} first (`{command} {run_dir} {flags}`), then run "
                          f"`vaekit report {run_dir}` without {them}.")


def _accept_all(run_dir: Path, options: ReportOptions) -> None:
    """Every option is for this kind of run."""


@dataclass(frozen=True)
class ReportKind:
    """How report.html of one kind of run is written."""

    task: str  # the kind's `runs.Task.name`
    write: Callable[[Path, ReportOptions], Path]  # RUN_DIR, options -> the report's path
    check: Callable[[Path, ReportOptions], None] = _accept_all  # a ConfigError for an option not for it


REPORTS: dict[str, ReportKind] = {}


def register_report(kind: ReportKind) -> None:
    """Make `vaekit.report.html.write_report` write the report of runs of `kind.task`."""
    REPORTS[kind.task] = kind


def report_for(run_dir: Path, task: runs.Task) -> ReportKind:
    """The registered report of `task`'s runs; a CheckpointError if that kind has none."""
    if task.name not in REPORTS:
        raise CheckpointError(f"{run_dir} holds {task.what} (`{task.maker}`), which has no report.")
    return REPORTS[task.name]
