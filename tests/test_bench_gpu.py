"""bench/gpu.py and scripts/gpu-check.sh, the GPU check prepared for a machine that has one, held on
one that has none: without CUDA each says so in one sentence and exits 2; bad flags are one usage
error; the ratios are the quotients of the figures; and `--device cpu --smoke` runs the bench's
whole path (but the CUDA-graph peer) and reports every figure, in its JSON and its --out file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bench_modules import load_bench, usage_error

bench = load_bench("gpu")
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def env(**extra: str) -> dict[str, str]:
    """This interpreter for the scripts, vaekit from src/ as the GPU machine has it, no $VAEKIT_DATA
    or $OUT of the caller's."""
    base = {k: v for k, v in os.environ.items() if k not in ("VAEKIT_DATA", "OUT", "GPU_CHECK_DEVICE")}
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return {**base, "PYTHONPATH": path, "PYTHON": sys.executable, **extra}


@NO_CUDA
def test_without_cuda_the_bench_exits_2_with_one_sentence(capsys: pytest.CaptureFixture[str],
                                                          one_sentence: Callable[..., None]) -> None:
    assert bench.main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    one_sentence(err, "CUDA", "--device cpu --smoke")


@pytest.mark.parametrize("argv", [["--epochs", "1"], ["--peer-epochs", "0"], ["--eval-k", "0"],
                                  ["--eval-k", str(10**6)], ["--eval-images", "10001"],
                                  ["--train-images", "-1"], ["--eval-timeout", "-1"], ["--device", "tpu"]])
def test_bad_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(bench, argv, capsys)


def test_smoke_defaults_give_way_to_flags() -> None:
    args = bench.parse(["--device", "cpu", "--smoke", "--eval-k", "3"])
    assert (args.epochs, args.eval_k, args.eval_images, args.train_images) == (2, 3, 100, 1000)
    full = bench.parse([])
    assert (full.epochs, full.peer_epochs, full.eval_k, full.eval_images, full.train_images) == (3, 2, 5000,
                                                                                                10_000, 0)


def test_the_deadline_stops_a_part_and_is_then_cleared() -> None:
    with pytest.raises(TimeoutError, match="--eval-timeout"), bench.deadline(0.05):
        while True:
            time.sleep(0.01)
    time.sleep(0.1)  # the timer is off: nothing more is raised
    with bench.deadline(0):
        pass


def test_ratios_are_the_quotients_per_image() -> None:
    rows = [{"model": m, "precision": q, "eager_row": eager, "train_images": 55_000, "best_epoch_s": s}
            for m, q, eager, s in [("mlp", "float32", False, 0.5), ("mlp", "float32", True, 1.0),
                                   ("mlp", "bf16", False, 0.4), ("conv", "float32", False, 1.5),
                                   ("conv", "bf16", False, 2.0), ("best", "float32", False, 0.6)]]
    rows.append({"model": "best", "precision": "bf16", "eager_row": False})  # a failed run: no figure
    peers = [{"peer": "examples", "images": 60_000, "best_epoch_s": 3.0},
             {"peer": "graph", "skipped": "not on the CPU"}]
    r = bench.ratios({"vaekit": rows, "peers": peers})
    assert r["vaekit_demo_vs_peer"]["examples"] == pytest.approx((3.0 / 60_000) / (0.5 / 55_000))
    assert r["vaekit_demo_vs_peer"]["graph"] is None
    assert r["bf16_speedup"] == pytest.approx({"mlp": 1.25, "conv": 0.75, "best": None})
    assert r["cuda_graph_gain"] == pytest.approx(2.0)


def fashion_mnist_here() -> bool:
    from vaekit.data.load import load_dataset

    try:
        load_dataset("fashion-mnist", download=False)
    except Exception:  # noqa: BLE001 - any reason it cannot be read: the smoke run is skipped
        return False
    return True


@pytest.mark.slow
def test_the_cpu_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    if not fashion_mnist_here():
        pytest.skip("Fashion-MNIST is not on this machine (scripts/fetch-data.sh)")
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--smoke",
                           "--json", "--out", str(out)], cwd=tmp_path, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert json.loads(out.read_text()) == report
    assert report["errors"] == [] and report["smoke"] and report["device"] == "cpu"
    assert {"device_name", "torch", "load_average", "load_average_after", "settings", "vaekit", "peers",
            "eval", "ratios", "total_seconds"} <= report.keys()

    runs = {(r["model"], r["precision"], r["eager_row"]) for r in report["vaekit"]}
    want = {(m, q, False) for m in ("mlp", "conv", "best") for q in ("float32", "bf16")}
    assert runs == want | ({("mlp", "float32", True)} if report["has_cuda_graph_field"] else set())
    for r in report["vaekit"]:
        assert r["epochs"] == 2 and r["train_images"] == 1000
        assert len(r["epoch_seconds"]) == 2 and all(s > 0 for s in r["epoch_seconds"])
        assert 0 < r["best_epoch_s"] <= r["mean_epoch_s"] and r["best_epoch_s"] == r["epoch_seconds"][1]

    peers = {p["peer"]: p for p in report["peers"]}
    assert list(peers) == ["examples", "eager", "graph"]
    assert "CUDA" in peers["graph"]["skipped"]
    for name in ("examples", "eager"):
        p = peers[name]
        assert p["images"] == 1000 and len(p["epoch_seconds"]) == 2
        assert p["best_epoch_s"] == min(p["epoch_seconds"]) > 0 and p["final_loss"] > 0

    ev = report["eval"]
    assert (ev["model"], ev["precision"], ev["k"], ev["images"]) == ("best", "bf16", 10, 100)
    assert ev["seconds"] > 0 and 50 < ev["test_nll"] < 800  # nats per image: 784 pixels, barely trained

    ratios = report["ratios"]
    assert set(ratios["vaekit_demo_vs_peer"]) == {"examples", "eager", "graph"}
    assert ratios["vaekit_demo_vs_peer"]["graph"] is None
    assert all(ratios["vaekit_demo_vs_peer"][p] > 0 for p in ("examples", "eager"))
    assert all(ratios["bf16_speedup"][m] > 0 for m in ("mlp", "conv", "best"))
    assert (ratios["cuda_graph_gain"] is not None) == report["has_cuda_graph_field"]


def test_the_check_script_parses() -> None:
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def run_script(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env(**extra), capture_output=True,
                          text=True, timeout=120)


@NO_CUDA
def test_without_cuda_the_check_script_exits_2_with_one_sentence(
        tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    done = run_script(tmp_path, VAEKIT_DATA=str(tmp_path), OUT=str(tmp_path / "out"))
    assert done.returncode == 2 and done.stdout == ""
    one_sentence(done.stderr, "CUDA")
    assert not (tmp_path / "out").exists()


def test_the_check_script_needs_its_data_and_an_output_directory(
        tmp_path: Path, one_sentence: Callable[..., None]) -> None:
    # GPU_CHECK_DEVICE=cpu passes the CUDA check: what comes after it is held here
    done = run_script(tmp_path, GPU_CHECK_DEVICE="cpu", OUT=str(tmp_path / "out"))
    assert done.returncode == 2
    one_sentence(done.stderr, "$VAEKIT_DATA", "unset")
    done = run_script(tmp_path, GPU_CHECK_DEVICE="cpu", VAEKIT_DATA=str(tmp_path / "none"))
    assert done.returncode == 2
    one_sentence(done.stderr, "$VAEKIT_DATA", str(tmp_path / "none"))
    done = run_script(tmp_path, GPU_CHECK_DEVICE="cpu", VAEKIT_DATA=str(tmp_path))
    assert done.returncode == 2
    one_sentence(done.stderr, "output directory", "$OUT")
    assert list(tmp_path.iterdir()) == []  # nothing written before the checks pass
