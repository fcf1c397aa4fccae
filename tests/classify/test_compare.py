"""vaekit.classify.compare (`vaekit classify --compare`, Ex.1 Q1 by measurement) on a tiny setting:
its table, compare.json and compare.png; every row's params against the torch modules of the run
it wrote (and the dense's against nn.Linear's own count, the side^2 law); a network over the memory
refused in one sentence; bad sides and an OUT that is not empty exit 2 in one sentence before
anything is written; and a child process that measures its own peak memory, not its parent's, and
trains exactly what the same request trains in this process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from torch import nn

from vaekit.classify import compare, compare_plan
from vaekit.classify import fit as classify_fit
from vaekit.classify.config import ClassifierConfig
from vaekit.classify.models import DENSE_HIDDEN, preset_layers
from vaekit.cli import build_parser, main
from vaekit.commands.classify import build_config
from vaekit.data.load import load_dataset
from vaekit.runs import load_run, read_metrics

OneSentence = Callable[..., None]
TINY = ["--data", "digits", "--sides", "8,16", "--epochs", "1", "--train-images", "200", "--no-progress"]
KEYS = {"model", "side", "params", "macs", "train_accuracy", "test_accuracy", "epoch_seconds",
        "peak_memory_mb", "resize", "epochs", "estimated_memory_mb", "gap", "run_dir", "error"}


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`vaekit classify --compare ARGV` as the CLI parses it, trained in this process."""
    args = build_parser().parse_args(["classify", "--compare", *argv])
    config, out = build_config(args)
    capsys.readouterr()
    status = compare.main(config, args, out, isolate=False)
    return status, capsys.readouterr().out


@pytest.fixture
def tiny_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None) -> tuple[
        Path, list[dict[str, Any]]]:
    out = tmp_path / "cmp"
    status, stdout = run_in_process([*TINY, "--json", "--out", str(out)], capsys)
    assert status == 0
    return out, json.loads(stdout)


def test_json_rows_file_and_figure(tiny_json: tuple[Path, list[dict[str, Any]]]) -> None:
    out, rows = tiny_json
    assert json.loads((out / "compare.json").read_text()) == rows
    assert [(r["model"], r["side"]) for r in rows] == [("dense", 8), ("dense", 16), ("cnn", 8), ("cnn", 16)]
    for r in rows:
        assert KEYS <= set(r), KEYS - set(r)
        assert r["error"] is None and r["resize"] == "nearest" and r["epochs"] == 1
        assert r["train_images"] == 200 and 0 < r["test_images"] <= compare_plan.EVAL_IMAGES
        assert 0 <= r["train_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1
        assert r["gap"] == pytest.approx(r["train_accuracy"] - r["test_accuracy"])
        lo, hi = r["test_interval"]
        assert lo <= r["test_accuracy"] <= hi
        assert r["epoch_seconds"] > 0 and r["estimated_memory_mb"] > 0
        assert r["peak_memory_mb"] is None  # in this process: not per network
    image = mpimg.imread(out / "compare.png")
    assert image.shape[0] > 400 and image.shape[1] > 600


def test_params_are_the_torch_modules_and_follow_side_squared(
        tiny_json: tuple[Path, list[dict[str, Any]]]) -> None:
    out, rows = tiny_json
    by = {(r["model"], r["side"]): r for r in rows}
    for r in rows:  # each run directory is a real run: its model is built and loaded from disk
        run = load_run(r["run_dir"], "classify")
        assert Path(r["run_dir"]) == out / f"{r['model']}-{r['side']}"
        assert r["params"] == numel(run.model)
        assert run.config.data.side == r["side"] and run.model.image_shape == (1, r["side"], r["side"])
    for side in (8, 16):  # the dense preset, written as torch.nn by hand
        reference = nn.Sequential(nn.Flatten(), nn.Linear(side * side, DENSE_HIDDEN), nn.ReLU(),
                                  nn.Linear(DENSE_HIDDEN, 10))
        assert by["dense", side]["params"] == numel(reference)
    # dense: the first Linear has side^2 * DENSE_HIDDEN weights, the rest does not depend on the side
    assert by["dense", 16]["params"] - by["dense", 8]["params"] == (16**2 - 8**2) * DENSE_HIDDEN
    # cnn: convolutions share weights, and AdaptiveAvgPool2d fixes the head's input at any side
    assert any(t.startswith("AdaptiveAvgPool2d(") for t in preset_layers("cnn", (1, 8, 8), 10))
    assert by["cnn", 8]["params"] == by["cnn", 16]["params"]
    assert by["cnn", 16]["macs"] > 3 * by["cnn", 8]["macs"]  # its compute still grows with the pixels


def test_text_table(tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    out = tmp_path / "cmp"
    status, text = run_in_process([*TINY, "--out", str(out)], capsys)
    assert status == 0
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert lines[head].split()[:4] == ["model", "side", "params", "MACs"] and "gap" in lines[head]
    table = [line.split() for line in lines[head + 1 : head + 5]]
    assert [(t[0], t[1]) for t in table] == [("dense", "8"), ("dense", "16"), ("cnn", "8"), ("cnn", "16")]
    rows = json.loads((out / "compare.json").read_text())
    assert [t[2] for t in table] == [f"{r['params']:,}" for r in rows]
    assert "[dense-8] epoch   1/1" in text and "nearest" in text and (out / "compare.png").is_file()


def test_a_network_over_the_memory_is_refused_in_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        one_sentence: OneSentence, one_thread: None) -> None:
    monkeypatch.setattr(classify_fit, "available_bytes", lambda device: (2 * 2**30, "this machine"))
    out = tmp_path / "cmp"
    status, _ = run_in_process(["--data", "digits", "--sides", "8,4096", "--epochs", "1",
                                "--train-images", "100", "--json", "--out", str(out)], capsys)
    assert status == 0
    rows = {(r["model"], r["side"]): r for r in json.loads((out / "compare.json").read_text())}
    assert rows["dense", 4096]["params"] == 4096**2 * DENSE_HIDDEN + DENSE_HIDDEN + DENSE_HIDDEN * 10 + 10
    for model in ("dense", "cnn"):
        refused = rows[model, 4096]
        one_sentence(refused["error"], f"{model} at 4096x4096", "2 GiB")
        assert refused["run_dir"] is None and refused["test_accuracy"] is None
        assert not (out / f"{model}-4096").exists()
        assert rows[model, 8]["error"] is None and (out / f"{model}-8" / "model.safetensors").is_file()
    # all refused: nothing to compare is an error of the command, before anything is written
    status = main(["classify", "--compare", "--data", "digits", "--sides", "4096", "--out",
                   str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("vaekit classify: error: ") and err.count("\n") == 1, err
    one_sentence(err.removeprefix("vaekit classify: error: "), "4096x4096")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("sides, named", [("0", "--sides 0"), ("-28", "--sides -28"),
                                          ("28,5000", "--sides 5000"), ("28,28", "repeats"),
                                          ("2", "--sides 2"), ("", "image sides such as"),
                                          ("none", "image sides such as")])
def test_bad_sides_exit_2_in_one_sentence(sides: str, named: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          one_sentence: OneSentence) -> None:
    out = tmp_path / "cmp"
    capsys.readouterr()
    status = main(["classify", "--compare", "--data", "digits", f"--sides={sides}", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert status == 2 and stdout == "" and "Traceback" not in err, err
    assert err.startswith("vaekit classify: error: ") and err.count("\n") == 1, err
    one_sentence(err.removeprefix("vaekit classify: error: "), named)
    assert "none for an empty list" not in err  # a layer list's advice, not a list of sides
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--side", "28"], ["--preset", "dense"],
                                  ["--layers", "Flatten()", "Linear(10)"], ["--resume"],
                                  ["--nproc", "2"]])  # each rank would run the whole comparison
def test_single_run_flags_are_refused(flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      one_sentence: OneSentence) -> None:
    capsys.readouterr()
    (tmp_path / "cmp").mkdir()  # a folder --resume would otherwise be told holds no run
    status = main(["classify", "--compare", "--data", "digits", *flag, "--out", str(tmp_path / "cmp")])
    err = capsys.readouterr().err
    assert status == 2, err
    one_sentence(err.removeprefix("vaekit classify: error: "), flag[0], "--compare")
    assert list((tmp_path / "cmp").iterdir()) == []


@pytest.mark.parametrize(("flags", "epochs"), [(["--epochs", "2", "--patience", "2"], 2),
                                               (["--patience", str(compare.EPOCHS)], compare.EPOCHS)])
def test_a_patience_of_the_compare_epochs_is_refused(flags: list[str], epochs: int, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     one_sentence: OneSentence) -> None:
    """Each network trains --compare's epochs (EPOCHS unless --epochs): a patience of as many could
    never stop one."""
    capsys.readouterr()
    status = main(["classify", "--compare", "--data", "digits", *flags, "--out", str(tmp_path / "cmp")])
    err = capsys.readouterr().err
    assert status == 2, err
    one_sentence(err.removeprefix("vaekit classify: error: "), "train.patience", f"{epochs} epochs")
    assert not (tmp_path / "cmp").exists()


def test_an_out_that_is_not_empty_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            one_sentence: OneSentence) -> None:
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.json").write_text("[]\n")
    capsys.readouterr()
    status = main(["classify", "--compare", *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    one_sentence(err.removeprefix("vaekit classify: error: "), str(out), "not empty")
    assert sorted(p.name for p in out.iterdir()) == ["compare.json"]
    assert (out / "compare.json").read_text() == "[]\n"
    (tmp_path / "file").write_text("x")
    assert main(["classify", "--compare", *TINY, "--out", str(tmp_path / "file")]) == 2
    one_sentence(capsys.readouterr().err.removeprefix("vaekit classify: error: "), "not a directory")


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


@pytest.mark.slow
def test_a_child_measures_its_own_memory_and_trains_as_here(tmp_path: Path, one_thread: None) -> None:
    """One child (an .npz dataset: no scikit-learn to import) while this process holds 768 MiB
    more than the child will ever need: the child's peak must not include them (getrusage's
    ru_maxrss of a fork+exec child does), and its run must equal the same request trained here."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("VmHWM needs Linux's /proc")
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, images=rng.integers(0, 256, (80, 1, 8, 8), dtype=np.uint8), labels=np.arange(80) % 4)
    config = ClassifierConfig()
    config.data.name = str(data)
    ds = compare.subset(load_dataset(str(data)), 50, config.train.seed)
    net = next(n for n in compare.plan(config, ds, [8], epochs=1, threads=1) if n.model == "dense")

    def request(name: str) -> dict[str, Any]:
        return {"config": net.config.to_dict(), "run_dir": str(tmp_path / name), "train_images": 50,
                "show_bar": False}

    ballast = torch.ones(192 * 2**20)  # 768 MiB, every page touched
    parent_peak = _status_kib("VmHWM") * 1024
    logged: list[str] = []
    child = compare.run_child(request("child"), logged.append)
    del ballast
    here = compare.train_network(request("here"), log=lambda line: None, measure=False)
    assert "error" not in child, child
    assert any("epoch   1/1" in line for line in logged), logged
    assert 50 * 2**20 < child["peak_bytes"] < parent_peak - 600 * 2**20
    assert 0 <= child["train_bytes"] <= child["peak_bytes"]
    for key in ("train_accuracy", "test_accuracy", "train_n", "val_n", "test_n", "best_epoch", "threads"):
        assert child[key] == here[key], key
    child_model, here_model = (load_run(tmp_path / n, "classify").model for n in ("child", "here"))
    for a, b in zip(child_model.state_dict().values(), here_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_config_files_epochs_are_the_compare_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      one_thread: None) -> None:
    """train.epochs in a --config file is what each network of --compare trains (it was left for
    compare's own default)."""
    assert compare.EPOCHS != 1
    toml = tmp_path / "one.toml"
    toml.write_text("[train]\nepochs = 1\n")
    argv = ["--data", "digits", "--sides", "8", "--train-images", "200", "--no-progress", "--json",
            "--config", str(toml), "--out", str(tmp_path / "cmp")]
    status, stdout = run_in_process(argv, capsys)
    assert status == 0
    rows = json.loads(stdout)
    assert rows and all(row["epochs"] == 1 for row in rows), rows
    for row in rows:
        assert len(read_metrics(Path(row["run_dir"]))) == 1
