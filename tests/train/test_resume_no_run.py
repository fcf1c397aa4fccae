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
    assert "no config.json" in err and "is an empty directory" not in err, err
    assert snapshot(out) == {"notes.txt": b"mine\n"}


@pytest.mark.parametrize("command", ["train", "classify"])
def test_a_run_without_its_config_is_told_to_put_it_back_as_the_readers_say(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        command: str) -> None:
    """It said "no config.json, so it is not a run directory", where eval says what is missing."""
    out = tmp_path / "run"
    flags = TRAIN if command == "train" else [*TRAIN[:4], "--no-progress"]
    assert main([command, "--out", str(out), *flags]) == 0
    config = (out / "config.json").read_bytes()
    (out / "config.json").unlink()
    before = snapshot(out)
    for argv in ([command, "--resume", "--out", str(out), "--no-progress"],
                 [*(["classify", "eval"] if command == "classify" else ["eval"]), str(out)]):
        err = cli_bad(capsys, one_sentence, argv, str(out), "but no config.json",
                      "put back the run's config.json", f"`vaekit {command} --out DIR`")
        assert "not a run directory" not in err, err
    assert snapshot(out) == before
    (out / "config.json").write_bytes(config)  # the advice: put it back
    assert main([command, "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
