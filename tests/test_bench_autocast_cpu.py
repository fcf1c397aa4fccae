"""bench/autocast_cpu.py: it exits 0 with one JSON object holding the machine's description and,
per parameter and oneDNN setting, the bf16 gradient's relative error, cosine and distance from the
emulated autocast rule; and a bad --threads is one usage error (exit 2)."""

from __future__ import annotations

import json

import pytest

from bench_modules import load_bench, usage_error

bench = load_bench("autocast_cpu")


def test_bad_threads_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(bench, ["--threads", "0"], capsys)


def test_json_holds_the_figures(one_thread: None, capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--json", "--threads", "1"])
    result = json.loads(capsys.readouterr().out)
    assert {"torch", "cpu_capability", "cpu", "onednn", "threads", "eps_bf16_draw_vs_float32", "rule_rel",
            "runs", "own_draws"} <= set(result)
    assert {"avx512_bf16", "amx_bf16"} <= set(result["cpu"]) and result["threads"] == 1
    assert set(result["runs"]) == {"mkldnn_on", "mkldnn_off"}
    for run in result["runs"].values():
        params = run["params"]
        assert {"q_enc.0.weight", "p_dec.5.bias", "all"} <= set(params)
        for figures in params.values():
            assert set(figures) == {"rel", "cos", "emu"}
            assert 0 <= figures["rel"] < 1 and -1 <= figures["cos"] <= 1 and figures["emu"] >= 0
    assert set(result["rule_rel"]) == set(result["runs"]["mkldnn_on"]["params"])
