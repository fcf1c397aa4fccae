"""A file of an image folder that cannot be read: `train` and `classify`, which take --skip-bad, are
told to pass it; `eval`, `report`, `check` and `classify eval`, which have no such flag, are told
what they can do instead (remove the file from other data, or put back the run's own folder), and
the advice, followed, works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_refusal import cli_bad, snapshot
from vaekit.cli import main

TRAIN = ["--epochs", "1", "--hidden", "16", "--latent", "2", "--threads", "1", "--no-progress"]
BROKEN = b"\x89PNG\r\n\x1a\n not the rest of a PNG"


def _folder(path: Path, classes: tuple[str, ...] = ("",)) -> Path:
    """Ten 8x8 images in `path`, or ten in each class folder of `classes`."""
    rng = np.random.default_rng(0)
    for name in classes:
        (path / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(path / name / f"i{i:02d}.png")
    return path


def test_commands_with_skip_bad_are_told_to_pass_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    data = _folder(tmp_path / "data")
    (data / "broken.png").write_bytes(BROKEN)
    out = tmp_path / "a"
    cli_bad(capsys, one_sentence, ["train", "--data", str(data), "--out", str(out), *TRAIN],
            "broken.png", "pass --skip-bad")
    assert main(["train", "--data", str(data), "--skip-bad", "--out", str(out), *TRAIN]) == 0


def test_eval_report_and_check_are_not_told_a_flag_they_lack(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--image-size", "8", "--out", str(run), *TRAIN]) == 0
    other = _folder(tmp_path / "other")
    (other / "broken.png").write_bytes(BROKEN)
    for argv in (["eval", str(run), "--dataset", str(other), "--k", "2"],
                 ["report", str(run), "--dataset", str(other), "--k", "2"],
                 ["check", "--only", "training", "--data", str(other)]):
        err = cli_bad(capsys, one_sentence, argv, "broken.png", "remove it from")
        assert "--skip-bad" not in err, err
    (other / "broken.png").unlink()  # the advice: the file removed
    assert main(["eval", str(run), "--dataset", str(other), "--k", "2", "--no-probe"]) == 0


@pytest.mark.parametrize("command", ["train", "classify"])
def test_a_run_s_own_folder_with_a_file_broken_since_training(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    own = _folder(tmp_path / "own", ("a", "b")) / "a"
    run = tmp_path / "run"
    flags = TRAIN if command == "train" else ["--epochs", "1", "--threads", "1", "--no-progress"]
    assert main([command, "--data", str(own.parent), "--out", str(run), *flags]) == 0
    kept = (own / "i03.png").read_bytes()
    (own / "i03.png").write_bytes(BROKEN)
    before = snapshot(run)
    for argv in ([["eval", str(run), "--k", "2"], ["report", str(run)]] if command == "train" else
                 [["classify", "eval", str(run)], ["report", str(run)]]):
        err = cli_bad(capsys, one_sentence, argv, "i03.png", "put back the folder's files")
        assert "--skip-bad" not in err, err
    assert snapshot(run) == before
    (own / "i03.png").write_bytes(kept)  # the advice: the folder as it was
    again = ["eval", str(run), "--k", "2", "--no-probe"] if command == "train" else ["classify", "eval",
                                                                                     str(run)]
    assert main(again) == 0
