"""bench/eval_rate.py: trains a tiny digits run, times its IWAE evaluation, prints the rate of each
round, the best, and the load average before and after."""

from __future__ import annotations

import re

import pytest

from bench_modules import load_bench


def test_prints_the_rate_of_each_round_and_the_best(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("eval_rate")
    bench.main(["--hidden", "8", "--latent", "2", "--k", "20", "--images", "10", "--rounds", "2",
                "--threads", "1"])
    out = capsys.readouterr().out
    macs = float(re.search(r"([0-9.e+]+) multiply-adds counted a round", out).group(1))
    assert macs == 10 * 20 * (2 * 8 + 8 + 8 * 64 + 64)  # the decoder's weights and biases, per latent
    rates = [macs / float(s) for s in re.findall(r"round \d: ([0-9.e-]+) s", out)]
    assert len(rates) == 2 and "load average before:" in out and "load average after:" in out
    best = float(re.search(r"best: ([0-9.e+]+) multiply-adds per second", out).group(1))
    assert best == pytest.approx(max(rates), rel=0.05)  # printed to 3 and 4 digits


def test_bad_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from bench_modules import usage_error

    usage_error(load_bench("eval_rate"), ["--k", "0"], capsys)
