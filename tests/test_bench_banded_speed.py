"""bench/banded_speed.py: its lists parse, bad input is one usage error (exit 2), and one tiny
measured case prints a row per window and group count, each ratio the quotient of its figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_modules import load_bench, usage_error

bench = load_bench("banded_speed")


def test_lists_parse() -> None:
    assert bench.parse_ints("0, 168,56", "--windows", 0) == [0, 168, 56]
    with pytest.raises(ValueError, match="--groups: expected comma-separated integers >= 1"):
        bench.parse_ints("1,0", "--groups", 1)


@pytest.mark.parametrize("argv", [["--windows", "-1"], ["--groups", "0"], ["--groups", "a"],
                                  ["--config", "/nonexistent/c.toml"], ["--eval-k", "0"],
                                  ["--eval-k", str(10**20)], ["--eval-images", "100000"],
                                  ["--threads", "-1"]])
def test_bad_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(bench, argv, capsys)


def test_a_model_without_the_term_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "plain.toml"
    config.write_text('[model]\nkind = "mlp"\nhidden = [8]\nlatent = 2\n')
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--config", str(config), "--rounds", "1", "--steps", "1"])
    assert exit_info.value.code == 2
    assert "no autoregressive term" in capsys.readouterr().err


def test_one_small_case_prints_each_window_and_group(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "small.toml"
    config.write_text('[model]\nkind = "mlp"\nhidden = [16]\nlatent = 3\nautoregressive = 32\n'
                      '[train]\nbatch_size = 8\n')
    bench.main(["--config", str(config), "--windows", "0,20", "--groups", "1,4", "--threads", "1",
                "--rounds", "1", "--steps", "1", "--eval-k", "3", "--eval-images", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["0"], ["20"])]
    assert [(r[0], r[1]) for r in rows] == [("0", "1"), ("0", "4"), ("20", "1"), ("20", "4")]
    for dense, band in (rows[0:2], rows[2:4]):
        assert float(band[2]) < float(dense[2]) <= 1  # density: the band a part of the dense area
        for col in (3, 5):  # step ms, eval ms and the ratio after each
            ratio = float(band[col + 1].rstrip("x"))
            want = float(dense[col]) / float(band[col])
            assert abs(ratio - want) <= want * (0.005 / float(band[col]) + 0.005 / float(dense[col])) + 0.005
