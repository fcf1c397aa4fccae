"""A classifier run end to end on scikit-learn's 8x8 digits: it learns, resumes exactly, opens
with `vaekit.load_run`, and every bad input of the issue is one sentence, exit 2, nothing
overwritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import vaekit
from vaekit import runs
from vaekit.classify import fit as fit_mod
from vaekit.classify.config import ClassifierConfig
from vaekit.classify.fit import fit_classifier
from vaekit.cli import main
from vaekit.config import TrainConfig
from vaekit.data.load import Dataset, load_dataset
from vaekit.errors import ConfigError
from vaekit.train.fit import fit

TRAIN = ["classify", "--data", "digits", "--threads", "1", "--no-progress", "--batch-size", "64"]


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _threads(one_thread: None) -> None:
    """Every run here sets 1 thread; conftest's `one_thread` restores the count afterwards."""


def small(**changes: Any) -> ClassifierConfig:
    c = ClassifierConfig()
    c.data.name = "digits"
    c.train.batch_size, c.train.epochs, c.train.threads = 64, 2, 1
    c.optim.lr = 3e-3
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(c, section), name, value)
    return c


def quiet(_: str) -> None:
    pass


def snapshot(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def test_a_short_run_learns(tmp_path: Path, digits: Dataset) -> None:
    summary = fit_classifier(small(train__epochs=4), tmp_path / "run", log=quiet, dataset=digits)
    rows = runs.read_metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert summary["best_val_accuracy"] == max(r["val_accuracy"] for r in rows) > 0.8  # chance: 0.1
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    run = vaekit.load_run(tmp_path / "run")
    assert run.task == "classify"
    x, y = run.images("val"), run.labels("val")
    logits = run.model(x)
    assert logits.shape == (len(digits.val), 10)
    # the kept model is the best epoch's: its validation accuracy, recomputed by counting
    right = sum(int(logits[i].argmax()) == int(y[i]) for i in range(len(y)))  # type: ignore[index]
    assert right / len(y) == pytest.approx(summary["best_val_accuracy"])  # type: ignore[arg-type]


@pytest.mark.parametrize("changes", [{}, {"data__crop": 1, "data__flip": True, "optim__schedule": "cosine",
                                          "train__label_smoothing": 0.1, "model__preset": "dense"}],
                         ids=["cnn", "dense-augmented"])
def test_resume_equals_uninterrupted(tmp_path: Path, digits: Dataset, changes: dict[str, Any]) -> None:
    fit_classifier(small(train__epochs=3, **changes), tmp_path / "full", log=quiet, dataset=digits)
    fit_classifier(small(train__epochs=1, **changes), tmp_path / "part", log=quiet, dataset=digits)
    fit_classifier(small(train__epochs=3, **changes), tmp_path / "part", resume=True, log=quiet,
                   dataset=digits)
    for name in (runs.MODEL, runs.CHECKPOINT):
        a, b = (runs.read_tensors(p / name, "t")[0] for p in (tmp_path / "full", tmp_path / "part"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    def strip(run: Path) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in runs.read_metrics(run)]
    assert strip(tmp_path / "full") == strip(tmp_path / "part")


def test_resume_with_fewer_epochs_notes_the_jump_of_the_cosine_learning_rate(
        tmp_path: Path, digits: Dataset, capsys: Any) -> None:
    """The classifier's default cosine schedule, planned over 20 epochs and stopped after epoch 2,
    resumed with --epochs 3: the learning rate fell to a quarter without a word; now a note names it,
    with the rates metrics.jsonl records."""
    class Stopped(Exception):
        pass

    def stop(line: str) -> None:
        if line.startswith("epoch   2/"):
            raise Stopped

    out = tmp_path / "run"
    with pytest.raises(Stopped):
        fit_classifier(small(train__epochs=20, model__preset="dense", train__checkpoint_every="epoch"), out,
                       log=stop, dataset=digits)
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(out), "--resume", "--epochs", "3"]) == 0
    rows = runs.read_metrics(out)
    assert rows[2]["lr"] == pytest.approx(small().optim.lr / 4)
    assert (f"{out}: note: the cosine schedule now ends at epoch 3 instead of the 20 it was planned over, so "
            f"the learning rate goes from {rows[1]['lr']:.2e} (epoch 2) to {rows[2]['lr']:.2e} (epoch 3), "
            "4.0 times lower.") in capsys.readouterr().out.splitlines()


def test_same_seed_same_numbers(tmp_path: Path, digits: Dataset) -> None:
    for name in ("a", "b"):
        fit_classifier(small(train__epochs=1), tmp_path / name, log=quiet, dataset=digits)
    # the same weights; the files differ in the run id each model file's metadata carries
    a, b = (runs.read_tensors(tmp_path / name / runs.MODEL, "t")[0] for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_prints_the_layer_table_then_trains(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--layers", "Conv2d(8, 3, padding=1)",
                 "ReLU()", "MaxPool2d(2)", "Flatten()", "Linear(10)"]) == 0
    text = capsys.readouterr().out
    assert text.index("Conv2d(8, 3, padding=1)") < text.index("epoch   1/1")
    assert "8x4x4" in text and "best validation accuracy" in text
    config = runs.read_config(out, "classify")
    assert config.model.layers[0] == "Conv2d(8, 3, padding=1)" and config.model.classes == 10
    assert main([*TRAIN, "--epochs", "2", "--out", str(out), "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and 0 <= summary["best_val_accuracy"] <= 1
    result = json.loads((out / "eval.json").read_text())  # the test set, evaluated after training
    assert summary["test_accuracy"] == result["accuracy"] and summary["params"] == 8 * 9 + 8 + 128 * 10 + 10
    assert summary["peak_memory_mb"] > 0 and summary["epoch_seconds"] > 0
    (out / runs.METRICS).write_text("")  # a resume refused for its run's files prints no table first
    assert main([*TRAIN, "--epochs", "3", "--out", str(out), "--resume"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "metrics.jsonl" in printed.err, printed


def test_a_diverging_run_stops_with_one_sentence(tmp_path: Path, capsys: Any, cli_error: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = fit_mod.ClassifierEngine.loss_and_grads
    monkeypatch.setattr(fit_mod.ClassifierEngine, "loss_and_grads",
                        lambda self, *a, **k: real(self, *a, **k) * float("nan"))
    out = tmp_path / "run"
    status = main([*TRAIN, "--epochs", "2", "--out", str(out)])
    assert "loss became nan" in _last_error(capsys, status, "classify")
    assert sorted(p.name for p in out.iterdir()) == [runs.CONFIG]


def _last_error(capsys: Any, status: int, verb: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and err.startswith(f"vaekit {verb}: error: "), err
    message = err.removeprefix(f"vaekit {verb}: error: ")
    assert message.endswith(".") and "\n" not in message
    return message


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vae") / "run"
    c = TrainConfig()
    c.data.name, c.model.hidden, c.model.latent = "digits", [16], 2
    c.train.epochs, c.train.threads = 1, 1
    fit(c, out, log=quiet)
    return out


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("classifier") / "run"
    fit_classifier(small(train__epochs=1), out, log=quiet)
    return out


BAD = {
    "layers-do-not-fit": (["--layers", "Conv2d(8, 5)", "Conv2d(8, 5)", "Flatten()", "Linear(10)"],
                          ["model.layers (--layers): layer 2", "Conv2d(8, 5)"]),
    "too-few-logits": (["--layers", "Flatten()", "Linear(3)"], ["Linear(10)"]),
    # two faults, both said: the size advised alone met the second refusal
    "too-small-and-no-logits": (["--layers", "Conv2d(4, 9)"],
                                ["(--image-size 9); at that size, the layers end in an output of shape 4x1x1",
                                 "Linear(10)"]),
    "unknown-preset": (["--preset", "resnet"], ["preset", "resnet"]),
    "unknown-optimizer": (["--optimizer", "lion"], ["optimizer", "lion"]),
    "side-zero": (["--side", "0"], ["--side"]),
    "side-negative": (["--side", "-3"], ["--side"]),
    "side-huge": (["--side", "100000"], ["side"]),
    "resize-unknown": (["--side", "16", "--resize", "cubic"], ["resize", "cubic"]),
    "smoothing-one": (["--label-smoothing", "1"], ["label_smoothing"]),
    "dropout-one": (["--layers", "Flatten()", "Linear(10)", "Dropout(p=1.0)"],
                    ["layer 3 Dropout: p must be in [0, 1)"]),
    "layer-with-a-comment": (["--layers", "Flatten()", "Linear(10)  # logits"],
                             ["layer 2", "Linear(10)  # logits", "has the comment `# logits`"]),
    "softplus-beta-zero": (["--layers", "Flatten()", "Linear(10)", "Softplus(beta=0)"],
                           ["layer 3 Softplus: beta must be positive"]),
    "sides-without-compare": (["--sides", "8"],  # not "which this command does not have"
                              ["--sides is used only with --compare, which is not", "or add --compare."]),
    "sides-beside-layers": (["--sides", "8", "--layers", "Flatten()", "Linear(10)"],  # --compare refuses them
                            ["or add --compare and leave out --layers."]),
    "train-images-without-compare": (["--train-images", "50"],
                                     ["--train-images is used only with --compare, which is not given"]),
    "resize-without-side": (["--resize", "bilinear"], ["data.resize (--resize) is used only with", "--side"]),
    "image-fit-without-image-size": (["--image-fit", "pad"],  # the key and the flag the user typed
                                     ["data.image_fit (--image-fit) is used only with", "--image-size"]),
    "preset-with-layers": (["--preset", "dense", "--layers", "Flatten()", "Linear(10)"],
                           ["model.preset (--preset) is used only with", "--layers",
                            "which is not the case here"]),  # not "not set": the preset is
    "unknown-preset-with-layers": (["--preset", "resnet", "--layers", "Flatten()", "Linear(10)"],
                                   ['unknown --preset "resnet" (model.preset)']),
    "crop-larger-than-images": (["--crop", "64"], ["data.crop 64 (--crop)", "8x8 images", "at most 7"]),
    "crop-as-large-as-images": (["--crop", "8"], ["data.crop 8", "8x8 images"]),
    "step-schedule-never-steps": (["--schedule", "step"], ["optim.step_size is 30 epochs", "run's 1 epoch ",
                                                           "at least 31 epochs"]),  # no step size below 1
    "patience-of-the-epochs": (["--patience", "1"], ["train.patience (--patience) is 1 epoch,",
                                                     "run's 1 epoch "]),
    "crop-larger-than-side": (["--side", "4", "--crop", "5"], ["data.crop 5", "4x4 images", "at most 3"]),
    "default-preset-with-layers": (["--preset", "cnn", "--layers", "Flatten()", "Linear(10)"],
                                   ["model.preset (--preset) is used"]),  # given, though the default
    "default-resize-without-side": (["--resize", "nearest"], ["data.resize (--resize) is used only with"]),
    "side-and-image-size": (["--side", "16", "--image-size", "32"],
                            ["data.side (16) and data.image_size (32)", "one after the other"]),
    "side-too-small-names-side": (["--side", "1"], ["not 1x1 (--side 4)"]),
    # the flag takes no 0 (a TOML file's 0 keeps the images as they are): the sentence offers none
    "side-past-its-bound": (["--side", "100000"],
                            ["--side (data.side): the image side to resize to must be at most 4096, got "
                             "100000."]),
    "sides-and-image-size": (["--compare", "--sides", "8", "--image-size", "16"],
                             ["data.side (8) and data.image_size (16)", "--sides", "leave --image-size out"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path: Path, capsys: Any, case: str) -> None:
    flags, words = BAD[case]
    out = tmp_path / "run"
    status = main([*TRAIN, "--epochs", "1", "--out", str(out), *flags])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2, err
    for word in words:
        assert word in err, err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where torch sees no CUDA device")
def test_a_device_that_is_not_there_is_refused_before_the_table(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--device cuda" in captured.err and not out.exists(), captured


@pytest.mark.parametrize(("toml", "words"), [
    ('[data]\nresize = "bilinear"\n', ["c.toml: data.resize is used only with"]),
    ('[model]\npreset = "dense"\nlayers = ["Flatten()", "Linear(10)"]\n',
     ["c.toml: model.preset is used only with"]),
    ('[model]\nlayers = ["Flatten()", "Linear(10)", "Dropout(p=1.0)"]\n',
     ["model.layers (--layers): layer 3 Dropout: p"]),
    # a layer list is named by its key wherever it was written: unknown, not fitting, no logits
    ('[model]\nlayers = ["Bogus(3)"]\n', ["model.layers (--layers): layer 1", "unknown layer 'Bogus'"]),
    ('[model]\nlayers = ["Conv2d(8, kernel_size=30)", "Flatten()", "Linear(10)"]\n',
     ["model.layers (--layers): layer 1", "kernel_size 30"]),
    ('[model]\nlayers = ["Flatten()", "Linear(3)"]\n', ["model.layers (--layers): the layers end in"]),
    ('[data]\ncrop = 9\n', ["data.crop 9", "8x8"]),
    ('[data]\nimage_size = "16"\nside = 8\n', ["data.side (8) and data.image_size (16)"]),
    # the settings filled in from the data, given otherwise: named by their keys, with the fix
    ('[model]\nclasses = 5\n', ["model.classes is 5", "digits has 10 classes", "leave model.classes out"]),
    ('[model]\nimage_shape = [3, 8, 8]\n', ["model.image_shape is [3, 8, 8]", "[1, 8, 8]",
                                             "leave model.image_shape out"]),
])
def test_a_config_file_setting_nothing_uses_is_one_sentence(tmp_path: Path, capsys: Any, toml: str,
                                                            words: list[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    out = tmp_path / "run"
    status = main([*TRAIN, "--epochs", "1", "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2, err
    for word in words:
        assert word in err, err
    assert not out.exists()


def test_the_largest_crop_is_accepted(digits: Dataset) -> None:
    rows = fit_mod.prepare_config(small(data__crop=7), digits)
    assert rows and rows[0].input_shape == (1, 8, 8)
    with pytest.raises(ConfigError, match="at most 3"):
        fit_mod.prepare_config(small(data__crop=4, data__side=4), digits)


def test_a_dataset_without_labels(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "pictures.npy"
    np.save(path, np.zeros((30, 8, 8), dtype=np.uint8))
    status = main(["classify", "--data", str(path), "--epochs", "1", "--out", str(tmp_path / "run")])
    assert "labels" in _last_error(capsys, status, "classify") and not (tmp_path / "run").exists()


def test_a_vae_run_is_not_a_classifier_and_back(vae_run: Path, classifier_run: Path, capsys: Any) -> None:
    before = snapshot(vae_run), snapshot(classifier_run)
    status = main([*TRAIN, "--epochs", "2", "--out", str(vae_run), "--resume"])
    message = _last_error(capsys, status, "classify")
    assert str(vae_run) in message and "VAE run" in message and "vaekit train" in message
    status = main([*TRAIN, "--epochs", "1", "--out", str(vae_run)])  # no --resume advised: it refuses
    message = _last_error(capsys, status, "classify")
    assert "holds a VAE run (`vaekit train`)" in message and "--resume" not in message
    status = main(["train", "--data", "digits", "--epochs", "1", "--out", str(classifier_run)])
    message = _last_error(capsys, status, "train")
    assert "holds a classifier run (`vaekit classify`)" in message and "--resume" not in message
    status = main(["train", "--data", "digits", "--epochs", "2", "--out", str(classifier_run), "--resume"])
    message = _last_error(capsys, status, "train")
    assert "classifier run" in message and "vaekit classify" in message
    status = main(["eval", str(classifier_run)])
    assert "classifier run" in _last_error(capsys, status, "eval")
    status = main(["sample", str(classifier_run), "--out", str(classifier_run / "s.png")])
    assert "classifier run" in _last_error(capsys, status, "sample")
    assert (snapshot(vae_run), snapshot(classifier_run)) == before
    assert vaekit.load_run(vae_run).task == "vae"


def test_memory_check_refuses_a_huge_dense_net(tmp_path: Path, capsys: Any) -> None:
    status = main([*TRAIN, "--preset", "dense-wide", "--side", "512", "--out", str(tmp_path / "r")])
    message = _last_error(capsys, status, "classify")
    assert "memory" in message and not (tmp_path / "r").exists()


def test_shipped_config() -> None:
    from vaekit.classify.config import validate
    from vaekit.config import load_toml

    path = Path(__file__).resolve().parents[2] / "configs" / "fashion-mnist-cnn.toml"
    config = validate(load_toml(path, ClassifierConfig()))
    assert config.model.preset == "cnn" and config.data.crop == 0 and not config.data.flip
    assert config.optim.schedule == "cosine" and config.train.epochs == 8


def test_resume_with_another_dataset_is_refused_before_it_is_read(
        classifier_run: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(*_: Any, **__: Any) -> None:
        raise AssertionError("the dataset was loaded before the changed config was refused")

    monkeypatch.setattr(fit_mod, "load_configured", no_loading)
    before = snapshot(classifier_run)
    status = main(["classify", "--data", "mnist", "--threads", "1", "--no-progress", "--out",
                   str(classifier_run), "--resume"])
    message = _last_error(capsys, status, "classify")
    assert "data.name" in message and str(classifier_run) in message
    assert snapshot(classifier_run) == before
