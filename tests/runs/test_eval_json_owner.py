"""RUN_DIR/eval.json is replaced only where it is vaekit's: a file of the user's under that name
(notes, another program's JSON) is refused by `vaekit eval`, `vaekit classify eval` and `vaekit
report` in one sentence naming it, before any evaluation, and left byte for byte as it was; an
eval.json vaekit wrote, stale or edited, is evaluated again and replaced."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli_refusal import cli_bad, filled, snapshot
from eval_runs import make_classifier_run
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError, ConfigError

EVAL = ["eval", "{run}", "--k", "2", "--limit", "20", "--no-progress", "--no-probe", "--threads", "1"]
CLASSIFY_EVAL = ["classify", "eval", "{run}", "--limit", "20"]
REPORT = ["report", "{run}", "--k", "2", "--limit", "20"]
# What a user may keep under the name: text, JSON of other fields, an empty file, JSON that is no
# object, a file larger than any eval.json vaekit reads
USERS = {"notes": "my notes on this run\n", "settings": '{"my": "settings", "task": "todo"}\n',
         "empty": "", "list": "[1, 2, 3]\n",
         "fields": '{"test_nll": "my own note", "model_sha256": "mine", "task": "classify"}\n'}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier_run(tmp_path_factory.mktemp("classify") / "run")


def _never(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("evaluated although eval.json is the user's")


@pytest.mark.parametrize("kind", sorted(USERS))
def test_a_users_eval_json_is_refused_before_evaluating_and_kept(run: Path, capsys: Any, one_sentence: Any,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 kind: str) -> None:
    import vaekit.evaluate.run as evaluate_run

    (run / runs.EVAL).write_text(USERS[kind])
    monkeypatch.setattr(evaluate_run, "evaluate_model", _never)
    before = snapshot(run)
    for template in (EVAL, REPORT):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.EVAL))
        assert "replaces only an eval.json of its own" in err and "remove it" in err, err
    assert snapshot(run) == before


def test_a_users_eval_json_larger_than_any_of_vaekits_is_refused_unread(run: Path, capsys: Any,
                                                                        one_sentence: Any) -> None:
    with open(run / runs.EVAL, "wb") as fh:
        fh.truncate(runs.files.JSON_LIMIT + 1)
    err = cli_bad(capsys, one_sentence, filled(EVAL, run), str(run / runs.EVAL))
    assert "left unread" in err and "replaces only an eval.json of its own" in err, err
    assert (run / runs.EVAL).stat().st_size == runs.files.JSON_LIMIT + 1


@pytest.mark.parametrize("target", ["notes", "vaekit's", "nowhere"])
def test_a_symbolic_link_named_eval_json_is_the_users_and_kept(run: Path, tmp_path: Path, capsys: Any,
                                                               one_sentence: Any, classifier: Path,
                                                               target: str) -> None:
    """A link under the name, to the user's notes, to an eval.json of vaekit's or to nothing, is
    the user's: `eval` and `classify eval` refuse to replace it with a file; `report` reads
    through it or refuses it, and leaves it a link."""
    assert main(filled(EVAL, run)) == 0
    shutil.copy(run / runs.EVAL, tmp_path / "vaekits.json")
    (tmp_path / "notes.txt").write_text(USERS["notes"])
    dest = {"notes": tmp_path / "notes.txt", "vaekit's": tmp_path / "vaekits.json",
            "nowhere": tmp_path / "gone"}[target]
    targets = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    other = Path(shutil.copytree(classifier, tmp_path / "classifier"))
    for where, template in ((run, EVAL), (other, CLASSIFY_EVAL)):
        (where / runs.EVAL).unlink(missing_ok=True)
        (where / runs.EVAL).symlink_to(dest)
        before = snapshot(where)
        capsys.readouterr()
        assert main(filled(template, where)) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        one_sentence(err.split(": error: ", 1)[1], str(where / runs.EVAL))
        assert "symbolic link" in err, err
        assert snapshot(where) == before
    assert main(["report", str(run)]) in (0, 2)
    assert (run / runs.EVAL).is_symlink() and (other / runs.EVAL).is_symlink()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == targets


@pytest.mark.parametrize("kind", ["settings", "fields"])
def test_a_classifier_runs_eval_json_of_the_user_is_refused(classifier: Path, tmp_path: Path, capsys: Any,
                                                            one_sentence: Any, kind: str) -> None:
    run = Path(shutil.copytree(classifier, tmp_path / "run"))
    (run / runs.EVAL).write_text(USERS[kind])
    before = snapshot(run)
    capsys.readouterr()
    assert main(filled(CLASSIFY_EVAL, run)) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    one_sentence(err.split(": error: ", 1)[1], str(run / runs.EVAL))
    assert "vaekit classify eval" in err
    assert snapshot(run) == before
    (run / runs.EVAL).write_text(json.dumps({"task": "classify", "accuracy": 2.0, "model_sha256": "0" * 64}))
    assert main(filled(CLASSIFY_EVAL, run)) == 0
    assert json.loads((run / runs.EVAL).read_text())["images"] == 20


@pytest.mark.parametrize("edit", [
    lambda r: {**r, "model_sha256": "0" * 64},                             # of other weights
    lambda r: {k: v for k, v in r.items() if k != "test_kl"},              # a field removed
    lambda r: {"model_sha256": r["model_sha256"], "test_nll": "a lot"},   # edited, broken
])
def test_an_eval_json_of_vaekits_is_replaced_stale_or_edited(run: Path, capsys: Any, edit: Any) -> None:
    assert main(filled(EVAL, run)) == 0
    result = json.loads((run / runs.EVAL).read_text())
    (run / runs.EVAL).write_text(json.dumps(edit(result)))
    assert main(filled(EVAL, run)) == 0
    assert json.loads((run / runs.EVAL).read_text())["model_sha256"] == runs.model_fingerprint(run)


def test_the_law_is_held_again_at_the_write(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's file put under the name while the evaluation ran is found at the write and kept."""
    import vaekit.evaluate.run as evaluate_run

    real = evaluate_run.evaluate_model

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        (run / runs.EVAL).write_text(USERS["notes"])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_run, "evaluate_model", meanwhile)
    with pytest.raises(ConfigError, match="replaces only an eval.json of its own"):
        evaluate_run.evaluate_run(run, k=2, limit=20, progress=False, probe=False, threads=1)
    assert (run / runs.EVAL).read_text() == USERS["notes"]


@pytest.mark.parametrize("kind", sorted(USERS))
def test_readers_name_a_users_eval_json_as_not_vaekits(run: Path, kind: str) -> None:
    """The report's reader says what `vaekit eval` would: not vaekit's, move it out; never 'run
    vaekit eval again', which would refuse it."""
    from vaekit.evaluate.eval_json import read_eval

    (run / runs.EVAL).write_text(USERS[kind])
    with pytest.raises(CheckpointError, match="move this one out of the run directory") as err:
        read_eval(run)
    assert "again" not in str(err.value)
    assert runs.is_vaekit_eval({"model_sha256": "0" * 64}) and not runs.is_vaekit_eval({"model_sha256": "x"})
    assert not runs.is_vaekit_eval(json.loads(USERS["settings"]))


@pytest.mark.parametrize("target", ["vaekit's", "nowhere"])
def test_report_refuses_a_linked_eval_json_before_evaluating_or_advising(
        run: Path, tmp_path: Path, classifier: Path, capsys: Any, one_sentence: Any,
        monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """An eval.json that is a symbolic link (here to another run's eval.json of other weights, or
    to nothing) is refused by `report` as the evaluator it would advise refuses it, for either kind
    of run: one sentence naming the link, before anything is evaluated, the link kept."""
    from vaekit.report import classify_html, vae_html

    assert main(filled(EVAL, run)) == 0
    twin = Path(shutil.copytree(run, tmp_path / "twin"))
    (twin / runs.EVAL).write_text(json.dumps({**json.loads((twin / runs.EVAL).read_text()),
                                              "model_sha256": "0" * 64}))
    other = Path(shutil.copytree(classifier, tmp_path / "classifier"))
    monkeypatch.setattr(vae_html, "evaluate_run", _never)
    monkeypatch.setattr(classify_html, "evaluate_classifier", _never)
    for where, evaluator in ((run, "vaekit eval"), (other, "vaekit classify eval")):
        (where / runs.EVAL).unlink(missing_ok=True)
        (where / runs.EVAL).symlink_to(twin / runs.EVAL if target == "vaekit's" else tmp_path / "gone")
        before = snapshot(where)
        capsys.readouterr()
        assert main(["report", str(where)]) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        one_sentence(err.split(": error: ", 1)[1], str(where / runs.EVAL))
        assert "symbolic link" in err and f"`{evaluator}" in err, err
        assert snapshot(where) == before


def test_report_names_a_classifier_runs_config_json_not_its_eval_json(
        classifier: Path, tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    """A classifier run whose config.json is a directory, missing or a link to nothing: `report`
    names config.json (and, for none, the command that makes such runs), as `classify eval` does,
    not its good eval.json as a VAE's."""
    for damage in ("directory", "missing", "dangling"):
        run = Path(shutil.copytree(classifier, tmp_path / damage))
        (run / runs.CONFIG).unlink()
        if damage == "directory":
            (run / runs.CONFIG).mkdir()
        elif damage == "dangling":
            (run / runs.CONFIG).symlink_to(tmp_path / "gone")
        capsys.readouterr()
        assert main(["report", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        message = err.split(": error: ", 1)[1]
        assert runs.EVAL not in message and "VAE" not in message, message
        if damage == "missing":
            assert "vaekit classify --out" in message, message
        else:
            one_sentence(message, str(run / runs.CONFIG))


def test_a_vae_eval_json_in_a_classifier_run_is_named_as_vaekits(run: Path, classifier: Path, tmp_path: Path,
                                                                  capsys: Any, one_sentence: Any) -> None:
    """A VAE's eval.json copied into a classifier run was called 'edited, or another program's':
    it is vaekit's own, of `vaekit eval`, as the reverse case says of a classifier's in a VAE run."""
    assert main(filled(EVAL, run)) == 0
    mixed = Path(shutil.copytree(classifier, tmp_path / "mixed"))
    shutil.copy(run / runs.EVAL, mixed / runs.EVAL)
    before = snapshot(mixed)
    for argv in (["report", str(mixed)], filled(CLASSIFY_EVAL, mixed)):
        capsys.readouterr()
        status = main(argv)
        if argv[0] == "classify":  # the advice, followed: it writes the run's own
            assert status == 0 and json.loads((mixed / runs.EVAL).read_text())["task"] == "classify"
            continue
        assert status == 2
        message = capsys.readouterr().err.strip().split(": error: ", 1)[1]
        one_sentence(message, str(mixed / runs.EVAL), "a VAE's eval.json (of `vaekit eval`",
                     f"`vaekit classify eval {mixed}`")
        assert "edited" not in message and "another program" not in message, message
        assert snapshot(mixed) == before


@pytest.mark.parametrize("task", ["train", 5, None])
def test_an_unknown_task_in_config_json_is_named_by_report_not_eval_json(classifier: Path, tmp_path: Path,
                                                                         capsys: Any, one_sentence: Any,
                                                                         task: Any) -> None:
    """`"task": "train"` edited into a classifier run: report read the run as a VAE's and blamed its
    eval.json, advising `vaekit eval`, which then named config.json; report names config.json first."""
    run = Path(shutil.copytree(classifier, tmp_path / "run"))
    assert main(filled(CLASSIFY_EVAL, run)) == 0
    config = json.loads((run / runs.CONFIG).read_text())
    config["task"] = task
    (run / runs.CONFIG).write_text(json.dumps(config))
    err = cli_bad(capsys, one_sentence, ["report", str(run)], str(run / runs.CONFIG), "unknown task")
    assert runs.EVAL not in err, err


def test_a_classifier_runs_eval_json_that_is_no_file_is_named_with_its_evaluator(
        classifier: Path, tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    """eval.json a directory or a FIFO in a classifier run: `report` names it as the eval.json of
    `vaekit classify eval`, the command that writes one there, never of `vaekit eval`."""
    for kind in ("directory", "fifo"):
        run = Path(shutil.copytree(classifier, tmp_path / kind))
        (run / runs.EVAL).unlink(missing_ok=True)
        (run / runs.EVAL).mkdir() if kind == "directory" else os.mkfifo(run / runs.EVAL)
        capsys.readouterr()
        assert main(["report", str(run)]) == 2
        message = capsys.readouterr().err.strip().split(": error: ", 1)[1]
        one_sentence(message, str(run / runs.EVAL))
        assert "`vaekit classify eval`" in message and "`vaekit eval`" not in message, message


@pytest.mark.parametrize("damage", ["text", "empty", "directory", "dangling link"])
def test_a_classifier_resume_refuses_an_eval_json_it_would_not_replace_before_training(
        classifier: Path, tmp_path: Path, capsys: Any, one_sentence: Any, damage: str) -> None:
    """`vaekit classify --resume` writes eval.json once the run is trained: one it would refuse to
    replace is refused before the first epoch, every run file as it was (not after the resumed
    epochs were saved, with a sentence that says nothing of them)."""
    run = Path(shutil.copytree(classifier, tmp_path / "run"))
    (run / runs.EVAL).unlink(missing_ok=True)
    if damage == "directory":
        (run / runs.EVAL).mkdir()
    elif damage == "dangling link":
        (run / runs.EVAL).symlink_to(tmp_path / "gone")
    else:
        (run / runs.EVAL).write_text(USERS["notes"] if damage == "text" else "")
    before = snapshot(run)
    capsys.readouterr()
    status = main(["classify", "--resume", "--out", str(run), "--epochs", "3", "--data", "digits",
                   "--threads", "1", "--batch-size", "64", "--no-progress"])
    out, err = capsys.readouterr()
    assert status == 2 and "epoch" not in out, (status, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    one_sentence(err.strip().split(": error: ", 1)[1], str(run / runs.EVAL))
    assert snapshot(run) == before
