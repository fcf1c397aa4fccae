"""A run's file that vaekit cannot write, read or trust is named itself, not its directory or a
neighbour: an immutable file in a writable directory, a model file of zero bytes, a checkpoint
path that is a directory. One sentence, exit 2 from the CLI, and the run as it was."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_refusal import cli_bad, snapshot
from eval_runs import make_run, write_images
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import RunWriteError

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
         "--threads", "1", "--no-progress"]


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i path` for the body (the kernel then refuses to change, replace or remove it with
    EPERM, whoever asks); the test is skipped where the file system or the user cannot set it."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr here")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=True)


# ----------------------------------------------------------------------------- a file that refuses


def test_an_immutable_file_in_a_writable_directory_is_named_not_the_directory(tmp_path: Path,
                                                                                one_sentence: Any) -> None:
    path = tmp_path / "eval.json"
    path.write_text("{}\n")
    with immutable(path):
        with pytest.raises(RunWriteError) as caught:
            runs.write_json_atomic(path, {"a": 1})
    assert path.read_text() == "{}\n"
    message = str(caught.value)
    one_sentence(message, path)
    assert "the file itself" in message and "directory is not writable" not in message, message


def test_an_immutable_metrics_file_refuses_the_resume_naming_it(run: Path, capsys: Any,
                                                                one_sentence: Any) -> None:
    before = snapshot(run)
    with immutable(run / runs.METRICS):
        err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(run), "--resume"],
                      run / runs.METRICS)
    assert "the file itself" in err and "directory is not writable" not in err, err
    after = snapshot(run)
    assert after[runs.METRICS] == before[runs.METRICS]
    assert runs.read_metrics(run) and runs.load_run(run).model is not None


@pytest.mark.parametrize("name", [runs.CONFIG, runs.MODEL, runs.CHECKPOINT, runs.CHECKPOINT_JSON,
                                  runs.METRICS])
def test_an_immutable_run_file_refuses_the_resume_before_any_file_changes(
        run: Path, capsys: Any, one_sentence: Any, name: str) -> None:
    """Whichever file a session would replace or append to is immutable, the resume is refused
    before it trains: config.json keeps its epochs, metrics.jsonl its rows, the pair and the model
    their epoch (not a refusal at the first write, with the files before it already changed)."""
    before = snapshot(run)
    with immutable(run / name):
        err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "4", "--out", str(run), "--resume"],
                      run / name)
    assert "the file itself" in err, err
    assert snapshot(run) == before
    assert main([*TRAIN, "--epochs", "3", "--out", str(run), "--resume"]) == 0  # and it resumes afterwards


@pytest.mark.parametrize(("name", "to"), [(runs.METRICS, "copy"), (runs.CHECKPOINT_JSON, "nothing"),
                                          (runs.MODEL, "copy")])
def test_a_run_file_that_is_a_symbolic_link_refuses_the_resume(run: Path, tmp_path: Path, capsys: Any,
                                                               one_sentence: Any, name: str, to: str) -> None:
    """A link in the run, to a file elsewhere (its copy, whole and valid) or to nothing: a resume
    never appends or writes through it, and says what it is."""
    outside = tmp_path / f"outside-{name}"
    if to == "copy":
        shutil.copy(run / name, outside)
    (run / name).unlink()
    (run / name).symlink_to(outside)
    before, kept = snapshot(run), outside.read_bytes() if outside.exists() else None
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "4", "--out", str(run), "--resume"], run / name)
    assert "symbolic link" in err, err
    assert snapshot(run) == before and (run / name).is_symlink()
    assert (outside.read_bytes() if outside.exists() else None) == kept


def test_an_immutable_eval_json_is_named_before_the_evaluation(run: Path, capsys: Any, one_sentence: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import vaekit.evaluate.run as evaluate_run

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("evaluated although eval.json cannot be replaced")

    evaluate = [a.format(run=run) for a in READERS["eval"]]
    assert main(evaluate) == 0
    monkeypatch.setattr(evaluate_run, "evaluate_model", never)
    before = snapshot(run)
    with immutable(run / runs.EVAL):
        err = cli_bad(capsys, one_sentence, evaluate, run / runs.EVAL)
    assert "the file itself" in err and snapshot(run) == before, err


def test_a_report_into_an_immutable_run_names_its_page_before_drawing(
        run: Path, capsys: Any, one_sentence: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run directory that takes no new file: `report` names report.html, which it cannot write,
    before a figure is drawn; not a figure inside a figures/ folder that was never made."""
    from vaekit.report import visualize

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("figures drawn although the report cannot be written")

    assert main([a.format(run=run) for a in READERS["eval"]]) == 0
    monkeypatch.setattr(visualize, "write_figures", never)
    before = snapshot(run)
    with immutable(run):
        err = cli_bad(capsys, one_sentence, ["report", str(run)], run / runs.REPORT)
    assert "figures" not in err and snapshot(run) == before, err


# ----------------------------------------------------------------------------- an empty file, a directory

READERS = {"eval": ["eval", "{run}", "--k", "2", "--limit", "20", "--no-progress", "--no-probe"],
           "sample": ["sample", "{run}", "--out", "{tmp}/grid.png"],
           "report": ["report", "{run}", "--k", "2", "--limit", "20"]}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_an_empty_checkpoint_is_refused_by_every_reader(run: Path, tmp_path: Path, capsys: Any,
                                                        one_sentence: Any, reader: str) -> None:
    """A checkpoint of zero bytes (vaekit writes whole files only) holds no state to hold the run id
    and metrics.jsonl against: the readers name it, as a resume does."""
    (run / runs.CHECKPOINT).write_bytes(b"")
    before = snapshot(run)
    argv = [a.format(run=run, tmp=tmp_path) for a in READERS[reader]]
    cli_bad(capsys, one_sentence, argv, run / runs.CHECKPOINT)
    assert snapshot(run) == before and not (tmp_path / "grid.png").exists()


def test_a_sheet_of_a_run_whose_model_file_is_empty_names_it(run: Path, tmp_path: Path, capsys: Any,
                                                             one_sentence: Any) -> None:
    """An eval.json is not blamed ("computed for other weights") for a model file that is empty."""
    assert main([a.format(run=run) for a in READERS["eval"]]) == 0
    (run / runs.MODEL).write_bytes(b"")
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, ["sheet", "--vae-run", str(run), "--out", str(tmp_path / "s.html")],
                  run / runs.MODEL)
    assert "other weights" not in err, err
    assert snapshot(run) == before and not (tmp_path / "s.html").exists()


def test_a_checkpoint_that_is_a_directory_is_named_by_a_resume(run: Path, capsys: Any,
                                                               one_sentence: Any) -> None:
    (run / runs.CHECKPOINT).unlink()
    (run / runs.CHECKPOINT).mkdir()
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(run), "--resume"],
                  run / runs.CHECKPOINT)
    assert "directory" in err and "no checkpoint file there" not in err, err
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- the data, changed


def test_a_resume_on_data_changed_since_the_checkpoint_is_refused(tmp_path: Path, capsys: Any,
                                                                  one_sentence: Any) -> None:
    """An .npz rewritten between a run and its resume (the same shapes, other pixels): the resume
    names the file and the checkpoint instead of training on; the same bytes resume."""
    data, out = write_images(tmp_path / "images.npz", (8, 8), n=200, seed=0), tmp_path / "run"
    train = ["train", "--data", str(data), "--hidden", "16", "--latent", "2", "--batch-size", "32",
             "--threads", "1", "--no-progress", "--out", str(out)]
    assert main([*train, "--epochs", "1"]) == 0
    kept = data.read_bytes()
    write_images(data, (8, 8), n=200, seed=1)
    before = snapshot(out)
    cli_bad(capsys, one_sentence, [*train, "--epochs", "2", "--resume"], data, out / runs.CHECKPOINT)
    assert snapshot(out) == before
    data.write_bytes(kept)  # the data it was trained on, back: the run goes on
    assert main([*train, "--epochs", "2", "--resume"]) == 0
    assert [r["epoch"] for r in runs.read_metrics(out)] == [1, 2]


def test_an_eval_on_data_changed_since_training_is_refused(tmp_path: Path, capsys: Any,
                                                          one_sentence: Any) -> None:
    """`vaekit eval` of a run whose .npz was rewritten since (the same shapes, other pixels) names the
    file and the checkpoint, as `--resume` does, and writes no eval.json; the same bytes evaluate,
    and another dataset named with --dataset is evaluated as asked."""
    data, out = write_images(tmp_path / "images.npz", (8, 8), n=200, seed=0), tmp_path / "run"
    assert main(["train", "--data", str(data), "--hidden", "16", "--latent", "2", "--batch-size", "32",
                 "--threads", "1", "--no-progress", "--out", str(out), "--epochs", "1"]) == 0
    kept = data.read_bytes()
    write_images(data, (8, 8), n=200, seed=1)
    before = snapshot(out)
    evaluate = ["eval", str(out), "--k", "2", "--no-probe", "--threads", "1", "--no-progress"]
    cli_bad(capsys, one_sentence, evaluate, data, out / runs.CHECKPOINT)
    assert snapshot(out) == before and not (out / runs.EVAL).exists()
    assert main([*evaluate, "--dataset", str(data)]) != 0  # the same name is the run's own data
    other = write_images(tmp_path / "other.npz", (8, 8), n=200, seed=1)
    assert main([*evaluate, "--dataset", str(other)]) == 0
    data.write_bytes(kept)
    assert main(evaluate) == 0
    assert runs.read_eval(out, lambda _r, _p: None, "vaekit eval") is not None


def test_a_classifier_on_data_changed_since_training_is_refused(tmp_path: Path, capsys: Any,
                                                                one_sentence: Any) -> None:
    """`classify eval` and `report` of a classifier run whose .npz was rewritten since (other images,
    labels of the classes it was trained on) name the file and the checkpoint, as a VAE's eval does,
    before evaluating: no eval.json, no figure, nothing changed; the same bytes evaluate again."""
    data, out = write_images(tmp_path / "images.npz", (8, 8), n=200, seed=0), tmp_path / "run"
    assert main(["classify", "--data", str(data), "--batch-size", "64", "--threads", "1", "--no-progress",
                 "--out", str(out), "--epochs", "1"]) == 0
    assert (out / runs.EVAL).is_file()
    kept = data.read_bytes()
    write_images(data, (8, 8), n=200, seed=1)
    for command in (["classify", "eval", str(out)], ["report", str(out)]):
        before = snapshot(out)
        cli_bad(capsys, one_sentence, command, data, out / runs.CHECKPOINT)
        assert snapshot(out) == before and not (out / runs.REPORT).exists()
        (out / runs.EVAL).unlink(missing_ok=True)  # report: evaluates first where there is none
    data.write_bytes(kept)
    assert main(["classify", "eval", str(out)]) == 0 and main(["report", str(out)]) == 0


def test_a_run_trained_on_part_of_its_training_split_is_evaluated(tmp_path: Path) -> None:
    """`fit(dataset=)` with fewer training and validation images than the set's (as a benchmark
    trains): its test split is the set's own, so `vaekit eval` of the run reads that split, and a
    test image changed since is refused."""
    from dataclasses import replace

    from vaekit.config import TrainConfig
    from vaekit.data.load import Split, load_configured
    from vaekit.train.fit import fit

    data, out = write_images(tmp_path / "images.npz", (8, 8), n=200, seed=0), tmp_path / "run"
    config = TrainConfig()
    config.data.name, config.model.hidden, config.model.latent = str(data), [16], 2
    config.train.epochs, config.train.threads, config.train.warmup = 1, 1, 0
    full = load_configured(config.data)
    cut = replace(full, train=Split(full.train.images[:50], full.train.labels[:50]))
    fit(config, out, show_bar=False, log=lambda _m: None, dataset=cut)
    evaluate = ["eval", str(out), "--k", "2", "--no-probe", "--threads", "1", "--no-progress"]
    assert main(evaluate) == 0
    import numpy as np

    with np.load(data) as z:
        arrays = {name: z[name].copy() for name in z.files}
    arrays["images"][full_test_index(full, arrays["images"])] ^= 1
    np.savez(data, **arrays)
    assert main(evaluate) == 2


def full_test_index(full: Any, images: Any) -> int:
    """The index in the file's array of the first test image of `full` (found by its pixels)."""
    import numpy as np

    first = full.test.images[0].numpy().reshape(images.shape[1:])
    return int(np.flatnonzero((images == first).reshape(len(images), -1).all(axis=1))[0])


def test_the_folder_above_runs_is_named_as_such(tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    """`vaekit serve runs` / `eval runs`, where runs/ holds run directories: the sentence names the
    runs inside, not "train one with --out runs" (a run in the folder of runs)."""
    out = make_run(tmp_path / "runs" / "first")
    for command in (["eval", str(out.parent)], ["sample", str(out.parent)]):
        err = cli_bad(capsys, one_sentence, command, str(out.parent), "first")
        assert "--out" not in err, err
