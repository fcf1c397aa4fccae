"""`train --resume --out D` (and `classify --resume`) where D does not exist, or is an empty folder
(a train killed before it wrote config.json): one sentence saying so and that the command without
--resume starts a run there, not "no config.json, so it is not a run directory"; nothing is made
there. And the advice holds: the same command without --resume trains a run in that folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cli_refusal import cli_bad, snapshot
from hang import deadline
from vaekit.cli import main

TRAIN = ["--data", "digits", "--epochs", "1", "--hidden", "8", "--latent", "2", "--no-progress"]


@pytest.mark.parametrize("command", ["train", "classify"])
@pytest.mark.parametrize("state", ["missing", "empty"])
def test_resume_of_no_run_says_what_is_there(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             one_sentence: Callable[..., None], command: str,
                                             state: str) -> None:
    out = tmp_path / "run"
    if state == "empty":
        out.mkdir()
    err = cli_bad(capsys, one_sentence, [command, "--resume", "--out", str(out), "--no-progress"], str(out))
    said = "is an empty directory" if state == "empty" else "does not exist"
    assert f"{out} {said}" in err, err
    assert f"`vaekit {command} --out {out}` (without --resume)" in err, err
    assert "not a run directory" not in err, err
    assert out.is_dir() == (state == "empty") and snapshot(out) == {}  # nothing made there


def test_the_advice_starts_a_run_in_the_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     one_sentence: Callable[..., None]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    err = cli_bad(capsys, one_sentence, ["train", "--resume", "--out", str(out), "--no-progress"], str(out))
    advice = err[err.index("`") + 1 : err.rindex("`")].split()
    assert advice == ["vaekit", "train", "--out", str(out)], advice  # into the folder named, nowhere else
    with deadline(30):
        assert main(advice[1:] + TRAIN) == 0
    assert {"config.json", "model.safetensors", "checkpoint.safetensors"} <= set(snapshot(out))


def test_a_folder_with_files_but_no_config_is_still_not_a_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    err = cli_bad(capsys, one_sentence, ["train", "--resume", "--out", str(out), "--no-progress"], str(out))
    assert "no config.json" in err and "empty" not in err, err
    assert snapshot(out) == {"notes.txt": b"mine\n"}
