"""Which run a model file and a config.json belong to, as every reader sees it (`vaekit eval`,
`sample`, `report`, `serve`, `load_run`): a model file re-saved without vaekit's metadata in a run of
this vaekit, and a config.json copied from another run of the same config, are refused in one
sentence (exit 2), nothing in the run changed; the runs of an earlier vaekit stay readable."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from eval_runs import make_classifier_run, make_run
from hang import deadline
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError
from vaekit.runs.identity import CHECKPOINT_KEY, CONFIG_KEY, checkpoint_state

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
         "--threads", "1", "--no-progress"]
READERS = [["eval", "{run}", "--k", "2", "--limit", "20", "--no-progress", "--no-probe", "--threads", "1"],
           ["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"], ["report", "{run}", "--k", "2"]]


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def refused(capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None], argv: list[str],
            *names: str) -> str:
    """main(argv) exits 2 with one line on stderr, `vaekit CMD: error: <one sentence>`."""
    capsys.readouterr()
    with deadline(30):
        status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix(f"vaekit {argv[0]}: error: "), *names)
    return err


def every_reader_refuses(run: Path, capsys: Any, one_sentence: Any, *names: str) -> None:
    before = snapshot(run)
    for template in READERS:
        refused(capsys, one_sentence, [a.format(run=run) for a in template], *names)
    with pytest.raises(CheckpointError):
        runs.load_run(run)
    from vaekit.serve.explorer import Explorer  # the server's loading of a run

    with pytest.raises(CheckpointError):
        Explorer.load(run)
    assert snapshot(run) == before and not (run.parent / "s.png").exists()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another run of the very same config and seed: another run id."""
    return make_run(tmp_path_factory.mktemp("runs") / "twin")


def test_a_model_file_resaved_without_metadata_is_refused(run: Path, capsys: Any, one_sentence: Any) -> None:
    """Other weights of the same shapes, written by safetensors itself: no config in the file."""
    tensors = load_file(str(run / runs.MODEL))
    save_file({k: v + 0.01 for k, v in tensors.items()}, str(run / runs.MODEL))
    every_reader_refuses(run, capsys, one_sentence, str(run / runs.MODEL))
    (run / runs.CHECKPOINT).unlink()  # nor does a run without its checkpoint take it
    with pytest.raises(CheckpointError, match="no vaekit metadata"):
        runs.load_run(run)


@pytest.mark.parametrize("recorded", ["{}", '{"model": {"latent": 2}}'])
@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_model_file_recording_part_of_a_config_is_named_damaged(
        run: Path, capsys: Any, one_sentence: Any, recorded: str, checkpoint: bool) -> None:
    """A model file's recorded config cut to `{}` was read as the defaults: eval said the weights were
    trained on fashion-mnist with 400 hidden units (or that the file was copied from another run),
    and advised putting back a config.json that was already the run's."""
    from safetensors import safe_open

    path = run / runs.MODEL
    tensors = load_file(path)
    with safe_open(path, "pt") as f:
        metadata = dict(f.metadata())
    metadata[CONFIG_KEY] = recorded
    save_file(tensors, path, metadata=metadata)
    if not checkpoint:
        (run / runs.CHECKPOINT).unlink()
        (run / runs.CHECKPOINT_JSON).unlink()
    assert main(["eval", str(run), "--k", "2", "--limit", "20", "--no-progress", "--no-probe"]) == 2
    err = capsys.readouterr().err.strip().removeprefix("vaekit eval: error: ")
    one_sentence(err, f"{path}: the config it records is not the config of a vaekit run", "damaged")
    assert "fashion-mnist" not in err and "copied" not in err, err


def test_a_config_json_of_another_run_of_the_same_config_is_refused(run: Path, twin: Path, capsys: Any,
                                                                     one_sentence: Any) -> None:
    shutil.copy(twin / runs.CONFIG, run / runs.CONFIG)
    assert runs.run_id(run) == runs.run_id(twin)  # the copy: the same config, the twin's id
    every_reader_refuses(run, capsys, one_sentence, str(run / runs.CONFIG), str(run / runs.CHECKPOINT))


def _without_run_section(run: Path) -> None:
    config = json.loads((run / runs.CONFIG).read_text())
    config.pop(runs.RUN_SECTION)
    (run / runs.CONFIG).write_text(json.dumps(config))


@pytest.mark.parametrize("copied", [(runs.MODEL,), (runs.MODEL, runs.CHECKPOINT, runs.CHECKPOINT_JSON,
                                                    runs.METRICS), ()])
def test_a_config_json_without_its_run_id_where_the_run_files_carry_one_is_refused(
        run: Path, twin: Path, capsys: Any, one_sentence: Any, copied: tuple[str, ...]) -> None:
    """Not a run of an earlier vaekit (none of whose files has an id): the id taken out of
    config.json does not turn off the checks of the files copied from the twin, nor of its own."""
    for name in copied:
        shutil.copy(twin / name, run / name)
    _without_run_section(run)
    every_reader_refuses(run, capsys, one_sentence, str(run / runs.CONFIG))
    before = snapshot(run)
    refused(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(run), "--resume"],
            str(run / runs.CONFIG))
    assert snapshot(run) == before


def test_a_config_json_without_its_run_id_is_refused_by_the_model_file_alone(
        run: Path, twin: Path, capsys: Any, one_sentence: Any) -> None:
    """No checkpoint (killed before its first, or deleted): the model file's id still says."""
    shutil.copy(twin / runs.MODEL, run / runs.MODEL)
    for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):
        (run / name).unlink()
    _without_run_section(run)
    every_reader_refuses(run, capsys, one_sentence, str(run / runs.CONFIG), str(run / runs.MODEL))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier_run(tmp_path_factory.mktemp("runs") / "classifier", epochs=1)


def test_a_config_json_of_another_kind_than_the_weights_is_the_file_named(
        run: Path, trained: Path, classifier: Path, tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    """A classifier's config.json in a VAE run, and a VAE's in a classifier run: config.json is the
    file named as copied, with the files whose weights are of the other kind, not the directory as
    a run of config.json's kind; a run all of one kind is still sent to its own commands."""
    shutil.copy(classifier / runs.CONFIG, run / runs.CONFIG)
    before = snapshot(run)
    for argv in (READERS[0], READERS[1], [*TRAIN, "--epochs", "3", "--out", "{run}", "--resume"]):
        err = refused(capsys, one_sentence, [a.format(run=run) for a in argv], str(run / runs.CONFIG),
                      str(run / runs.MODEL), str(run / runs.CHECKPOINT))
        assert "holds a classifier run" not in err
    assert snapshot(run) == before
    other = Path(shutil.copytree(classifier, tmp_path / "classifier"))
    shutil.copy(trained / runs.CONFIG, other / runs.CONFIG)
    refused(capsys, one_sentence, ["classify", "eval", str(other)], str(other / runs.CONFIG),
            str(other / runs.MODEL))
    err = refused(capsys, one_sentence, [a.format(run=classifier) for a in READERS[0]], str(classifier))
    assert "holds a classifier run (`vaekit classify`)" in err


def test_report_names_a_config_json_of_another_kind_before_its_options_and_eval_json(
        run: Path, trained: Path, classifier: Path, tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    """`vaekit report` holds config.json against the kind of the weights, as eval and sample do,
    before anything that depends on the kind: a VAE's config.json in a classifier run (its own
    eval.json intact) is not taken for a damaged eval.json, and a classifier's config.json in a VAE
    run without eval.json does not turn --k into a flag for the wrong kind."""
    other = Path(shutil.copytree(classifier, tmp_path / "classifier"))
    with deadline(30):
        assert main(["classify", "eval", str(other)]) == 0  # the classifier's own eval.json, intact
    assert (other / runs.EVAL).is_file()
    shutil.copy(trained / runs.CONFIG, other / runs.CONFIG)
    before = snapshot(other)
    err = refused(capsys, one_sentence, ["report", str(other), "--no-eval"], str(other / runs.CONFIG),
                  str(other / runs.MODEL), str(other / runs.CHECKPOINT))
    assert "copied" in err and str(other / runs.EVAL) not in err
    assert snapshot(other) == before
    (run / runs.EVAL).unlink(missing_ok=True)
    shutil.copy(classifier / runs.CONFIG, run / runs.CONFIG)
    before = snapshot(run)
    err = refused(capsys, one_sentence, ["report", str(run), "--k", "2"], str(run / runs.CONFIG),
                  str(run / runs.MODEL), str(run / runs.CHECKPOINT))
    assert "copied" in err and "--k" not in err
    assert snapshot(run) == before and not (run / "figures").exists()


def test_rows_past_the_epochs_config_json_and_the_checkpoint_agree_on_name_metrics_jsonl(
        run: Path, capsys: Any, one_sentence: Any) -> None:
    """A row appended to metrics.jsonl of a finished run (the checkpoint at its config's last epoch,
    its recorded config's epochs those of config.json) is metrics.jsonl's fault, not an edited
    config.json; a config.json whose train.epochs was lowered below the checkpoint's epoch is still
    the file named."""
    state = checkpoint_state(run)
    planned = json.loads((run / runs.CONFIG).read_text())["train"]["epochs"]
    assert state["epoch"] == state["config"]["train"]["epochs"] == planned  # the files agree
    with open(run / runs.METRICS, "a") as fh:
        fh.write(json.dumps({"epoch": planned + 1, "train_neg_elbo": 1.0}) + "\n")
    before = snapshot(run)
    for template in READERS:
        err = refused(capsys, one_sentence, [a.format(run=run) for a in template], str(run / runs.METRICS))
        assert f"{run / runs.CONFIG} was edited" not in err and "config.json was edited" not in err
    with pytest.raises(CheckpointError, match="metrics.jsonl: line"):
        runs.load_run(run)
    assert snapshot(run) == before
    lines = (run / runs.METRICS).read_text().splitlines(keepends=True)
    (run / runs.METRICS).write_text("".join(lines[:planned]))  # the run's own rows again
    config = json.loads((run / runs.CONFIG).read_text())
    config["train"]["epochs"] = planned - 1
    (run / runs.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json") as caught:
        runs.load_run(run)
    assert str(run / runs.CONFIG) in str(caught.value) and "metrics.jsonl: line" not in str(caught.value)


def test_the_runs_own_files_are_read(run: Path) -> None:
    assert runs.load_run(run).model is not None
    assert main([a.format(run=run) for a in READERS[0]]) == 0


def _earlier(run: Path, best_val: float | None = None) -> dict[str, torch.Tensor]:
    """`run` as an earlier vaekit wrote it: no run id in config.json nor in the checkpoint, no
    metadata in the model file (`best_val`: the checkpoint's best -ELBO set, say, out of reach)."""
    config = json.loads((run / runs.CONFIG).read_text())
    config.pop(runs.RUN_SECTION)
    (run / runs.CONFIG).write_text(json.dumps(config))
    tensors, metadata = runs.read_tensors(run / runs.CHECKPOINT, "test")
    state = json.loads(metadata[CHECKPOINT_KEY])
    state.pop("run_id")
    if best_val is not None:
        state["progress"]["best_val"] = best_val
    save_file(tensors, str(run / runs.CHECKPOINT), metadata={CHECKPOINT_KEY: json.dumps(state)})
    (run / runs.CHECKPOINT_JSON).write_text(json.dumps(state))
    model = load_file(str(run / runs.MODEL))
    save_file(model, str(run / runs.MODEL))
    return model


def test_a_run_of_an_earlier_vaekit_resumed_without_a_better_epoch_stays_readable(run: Path) -> None:
    """Its resume gives config.json a run id; its model file, which no better epoch rewrites,
    gets its metadata at the resume's first checkpoint."""
    model = _earlier(run, best_val=0.0)
    assert runs.load_run(run).model is not None  # as it was: an earlier vaekit's run
    assert main([*TRAIN, "--epochs", "3", "--out", str(run), "--resume"]) == 0
    assert runs.run_id(run) is not None and runs.load_checkpoint(run)[2]["epoch"] == 3
    tensors, metadata = runs.read_tensors(run / runs.MODEL, "model")
    assert CONFIG_KEY in metadata and all(torch.equal(tensors[k], v) for k, v in model.items())
    assert runs.load_run(run).model is not None


def test_a_checkpoint_without_its_state_says_what_to_do(run: Path, capsys: Any, one_sentence: Any) -> None:
    """A checkpoint whose metadata was replaced was refused without a fix, unlike every other file."""
    path = run / runs.CHECKPOINT
    save_file(load_file(path), path, metadata={"note": "mine"})
    for argv in (["eval", str(run), "--k", "2", "--limit", "20", "--no-progress", "--no-probe"],
                 ["train", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().split("error: ", 1)[1]
        one_sentence(err, f"{path}: a safetensors file without vaekit's checkpoint state",
                     "put back the run's own file, or train the run again into another --out")
