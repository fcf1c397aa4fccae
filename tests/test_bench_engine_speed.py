"""bench/engine_speed.py: its cases parse, a bad case or config is one usage error (exit 2), and one
tiny measured case prints both engines' figures and their ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_modules import load_bench, usage_error

bench = load_bench("engine_speed")


def test_cases_parse() -> None:
    assert bench.parse_cases("elbo:1, iwae:2,iwae:10") == [("elbo", 1), ("iwae", 2), ("iwae", 10)]


@pytest.mark.parametrize("argv", [["--cases", "iwae:0"], ["--cases", "vae:2"], ["--cases", "iwae"],
                                  ["--cases", "elbo:1,iwae:x"], ["--config", "/nonexistent/c.toml"],
                                  ["--rounds", "0"], ["--threads", "-1"]])
def test_bad_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(bench, argv, capsys)


def test_a_model_off_the_hand_engine_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gated.toml"
    config.write_text('[model]\nkind = "mlp"\nhidden = [8]\nlatent = 2\ngated = true\n')
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--config", str(config), "--cases", "iwae:2", "--rounds", "1", "--steps", "1"])
    assert exit_info.value.code == 2
    assert "hand-derived engine does not apply" in capsys.readouterr().err


def test_one_small_case_prints_both_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "small.toml"
    config.write_text('[model]\nkind = "mlp"\nhidden = [16]\nlatent = 3\nautoregressive = 8\n'
                      '[train]\nbatch_size = 8\n')
    bench.main(["--config", str(config), "--cases", "elbo:1,iwae:3", "--threads", "1", "--rounds", "1",
                "--steps", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["elbo"], ["iwae"])]
    assert [(r[0], r[1]) for r in rows] == [("elbo", "1"), ("iwae", "3")]
    for r in rows:
        hand, auto, ratio = float(r[2]), float(r[3]), float(r[4].rstrip("x"))
        assert hand > 0 and auto > 0
        rounding = auto / hand * (0.005 / hand + 0.005 / auto) + 0.005  # two decimals printed
        assert abs(ratio - auto / hand) <= rounding
