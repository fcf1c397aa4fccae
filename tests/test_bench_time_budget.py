"""bench/time_budget.py: a budgeted `vaekit train` command timed from outside, its seconds against
the budget and the epochs it trained; bad --budgets or --config are one usage error (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_modules import load_bench, usage_error

bench = load_bench("time_budget")


@pytest.mark.parametrize("value", ["0", "abc", "5,,6", "1e9", "nan"])
def test_bad_budgets_exit_2_with_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(bench, ["--budgets", value], capsys)


def test_a_missing_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(bench, ["--config", "no/such.toml"], capsys)


@pytest.mark.slow
def test_a_budgeted_command_is_timed_against_its_budget(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text('[data]\nname = "digits"\n[model]\nhidden = [16]\nlatent = 2\n[train]\nthreads = 1\n')
    assert bench.main(["--budgets", "8", "--config", str(config), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["budget"] == 8 and row["epochs"] >= 1 and row["mean_epoch_seconds"] > 0
    assert row["ratio"] == pytest.approx(row["command_seconds"] / 8, abs=1e-3)
    assert row["command_seconds"] > 0
