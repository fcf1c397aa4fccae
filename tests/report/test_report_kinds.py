"""`write_report` finds the page of the run's kind in the registry (`vaekit.report.kinds`): the VAE's
and the classifier's are registered by their modules, a third kind's page is called with the
options once its check has passed, and the classifier's check refuses the VAE-only options with
the sentences `vaekit report` has always said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vaekit import runs
from vaekit.errors import CheckpointError, ConfigError
from vaekit.report import classify_html, vae_html
from vaekit.report.html import write_report
from vaekit.report.kinds import REPORTS, ReportKind, ReportOptions


def test_the_vae_and_the_classifier_pages_are_registered() -> None:
    assert REPORTS["vae"].write is vae_html.write_vae_report
    assert REPORTS["classify"].check is classify_html.refuse_vae_options
    assert set(REPORTS) <= set(runs.TASKS)


def classifier_dir(tmp_path: Path) -> Path:
    run = tmp_path / "clf"
    run.mkdir()
    (run / runs.CONFIG).write_text(json.dumps({"task": "classify"}))  # the kind is all the check reads
    return run


def test_a_classifier_run_refuses_the_vae_options(tmp_path: Path) -> None:
    run = classifier_dir(tmp_path)
    with pytest.raises(ConfigError) as err:
        write_report(run, dataset="mnist")
    assert str(err.value) == (f"--dataset is for VAE runs; {run} holds a classifier run, which is reported "
                              "on its own test set.")
    for flag, options in (("--k", {"k": 5}), ("--seed", {"seed": 0})):  # given, even at the default
        with pytest.raises(ConfigError) as err:
            write_report(run, **options)
        assert str(err.value) == (f"{flag} is for VAE runs; {run} holds a classifier run, whose evaluation "
                                  "and figures draw no samples.")
    with pytest.raises(ConfigError) as err:
        write_report(run, device=torch.device("meta"))  # any device but the CPU
    assert str(err.value) == (f"--device meta is for VAE runs; {run} holds a classifier run, which is "
                              "reported on the CPU.")
    assert not (run / runs.REPORT).exists()


def test_a_third_kind_gets_its_own_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toy = runs.Task("toy", "toy train", "a toy run", dict, lambda raw, origin: raw,
                    lambda config: torch.nn.Linear(1, 1), lambda config, pixels: pixels)
    monkeypatch.setitem(runs.TASKS, "toy", toy)
    run = tmp_path / "toy"
    run.mkdir()
    (run / runs.CONFIG).write_text(json.dumps({"task": "toy"}))
    with pytest.raises(CheckpointError) as err:  # a kind without a page says so
        write_report(run)
    assert str(err.value) == f"{run} holds a toy run (`toy train`), which has no report."

    calls: list[tuple[str, Path, ReportOptions]] = []

    def check(run_dir: Path, options: ReportOptions) -> None:
        calls.append(("check", run_dir, options))

    def write(run_dir: Path, options: ReportOptions) -> Path:
        calls.append(("write", run_dir, options))
        return run_dir / runs.REPORT

    monkeypatch.setitem(REPORTS, "toy", ReportKind("toy", write, check))
    assert write_report(run, k=7, seed=3, dataset="other", limit=5) == run / runs.REPORT
    assert [c[0] for c in calls] == ["check", "write"] and calls[0][2] is calls[1][2]
    options = calls[1][2]
    assert (options.k, options.seed, options.dataset, options.limit) == (7, 3, "other", 5)
    assert options.where == torch.device("cpu") and options.evaluate_missing
