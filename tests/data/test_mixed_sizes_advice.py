"""A folder of images of different sizes: `train`, `classify` and `data info` are told to pass
--image-size, which they take; `eval`, `report` and `check`, which have no such flag, are told what
they can do (the model's size to give the images, or a run's own folder changed since training),
and the advice, followed, works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_refusal import cli_bad, snapshot
from vaekit.cli import main

TRAIN = ["--epochs", "1", "--hidden", "16", "--latent", "2", "--threads", "1", "--no-progress"]


def _folder(path: Path, sizes: list[int]) -> Path:
    path.mkdir()
    rng = np.random.default_rng(0)
    for i, side in enumerate(sizes):
        pixels = rng.integers(0, 256, (side, side), dtype=np.uint8)
        Image.fromarray(pixels).save(path / f"i{i:02d}-{side}.png")
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    return _folder(tmp_path / "mixed", [8] * 10 + [10])


def test_commands_with_image_size_are_told_to_pass_it(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    for argv in (["train", "--data", str(mixed), "--out", str(tmp_path / "a"), *TRAIN],
                 ["data", "info", str(mixed)]):
        cli_bad(capsys, one_sentence, argv, str(mixed), "different sizes", "pass --image-size")
    assert main(["train", "--data", str(mixed), "--image-size", "8", "--out", str(tmp_path / "a"),
                 *TRAIN]) == 0


def test_eval_report_and_check_are_not_told_a_flag_they_lack(
        mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(run), *TRAIN]) == 0
    for argv in (["eval", str(run), "--dataset", str(mixed), "--k", "2"], ["report", str(run), "--dataset",
                                                                        str(mixed), "--k", "2"]):
        err = cli_bad(capsys, one_sentence, argv, str(mixed), "different sizes", "takes images of 8x8",
                      "give every image")
        assert "--image-size" not in err, err
    err = cli_bad(capsys, one_sentence, ["check", "--only", "training", "--data", str(mixed)], str(mixed),
                  "give them one size first")
    assert "pass --image-size" not in err and "not on this machine" not in err, err
    (mixed / "i10-10.png").unlink()  # the advice: every image of the model's size
    assert main(["eval", str(run), "--dataset", str(mixed), "--k", "2", "--no-probe"]) == 0


def test_a_run_s_own_folder_of_mixed_sizes_changed_since_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    own = _folder(tmp_path / "own", [8] * 10)
    run = tmp_path / "run"
    assert main(["train", "--data", str(own), "--out", str(run), *TRAIN]) == 0
    extra = _folder(tmp_path / "extra", [10]) / "i00-10.png"
    (own / "added.png").write_bytes(extra.read_bytes())
    before = snapshot(run)
    for argv in (["eval", str(run), "--k", "2"], ["report", str(run)],
                 ["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]):
        err = cli_bad(capsys, one_sentence, argv, str(own), "were of one size when", "put back its images")
        assert "--image-size" not in err, err
    assert snapshot(run) == before
    (own / "added.png").unlink()  # the advice: the folder as it was
    assert main(["eval", str(run), "--k", "2", "--no-probe"]) == 0
