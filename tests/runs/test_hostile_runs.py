"""Run directories that vaekit did not write, or whose files disagree: each is refused with one
sentence naming the file and what was expected (exit 2 from the CLI), and nothing already in the
directory is lost or changed.

    1. a directory vaekit did not create (a user's config.json, a user's files), and the temporary
       files the lock clears: only vaekit's own
    2. a run's files that disagree: config.json edited after training, a checkpoint of another
       run, numbers of checkpoint.json beyond any run
    3. weights whose outputs are not finite, and JSON that is not strict
    4. a file that is a directory, a FIFO or a dangling symbolic link, a run directory that is a
       file, a config.json whose "task" is not text
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from cli_refusal import cli_bad, filled, snapshot
from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError, RunWriteError
from vaekit.runs.identity import CHECKPOINT_KEY

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "2", "--batch-size", "64",
         "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory, trained: Path) -> Path:
    """A second run of the very same config (same seed): the same weights, another run. Its
    metrics.jsonl differs from `trained`'s only in its epoch times; where those agree to the
    0.1 ms they are written in (a fast machine, a tiny run), the two runs' rows are the same bytes
    and no reader can tell whose rows they are, so such a twin is trained again."""
    for attempt in range(5):
        out = make_run(tmp_path_factory.mktemp("runs") / f"twin{attempt}")
        if (out / runs.METRICS).read_bytes() != (trained / runs.METRICS).read_bytes():
            return out
    raise AssertionError("five twins wrote the very metrics.jsonl of the run: no epoch time differed")


@pytest.fixture(scope="module")
def tanh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of a network of the same shapes as `trained`'s, another activation."""
    return make_run(tmp_path_factory.mktemp("runs") / "tanh", activation="tanh")


@pytest.fixture(scope="module")
def seed1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the same network as `trained`'s, trained with another seed."""
    return make_run(tmp_path_factory.mktemp("runs") / "seed1", seed=1)


EVAL = ["eval", "{run}", "--k", "2", "--limit", "20", "--no-progress", "--no-probe", "--threads", "1"]
RESUME = [*TRAIN, "--epochs", "3", "--out", "{run}", "--resume"]


# ----------------------------------------------------------------------------- 1. not vaekit's


def test_a_users_config_json_is_never_overwritten(tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / runs.CONFIG).write_text('{"my": "settings"}\n')
    before = snapshot(proj)
    cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", str(proj)], str(proj / runs.CONFIG))
    assert snapshot(proj) == before


@pytest.mark.parametrize("text", ["{}\n", '{"data": {}}\n', '{"model": {"latent": 7}}\n'])
def test_a_users_config_json_that_reads_as_defaults_is_never_overwritten(
        tmp_path: Path, capsys: Any, one_sentence: Any, text: str) -> None:
    """`{}` (or sections of vaekit's names) reads as a config of defaults, as a run of an earlier
    vaekit without a run id is read; with no run's file beside it nothing shows vaekit wrote it,
    and `train --out` replaced it. Now it is kept, and eval's advice is another directory."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / runs.CONFIG).write_text(text)
    (proj / "notes.txt").write_text("mine\n")
    before = snapshot(proj)
    train = [*TRAIN, "--epochs", "1", "--out", str(proj)]
    err = cli_bad(capsys, one_sentence, train, str(proj / runs.CONFIG))
    assert "no run id and no run's files beside it" in err, err
    err = cli_bad(capsys, one_sentence, filled(EVAL, proj), "no model file there")
    assert "`vaekit train --out DIR`" in err, err  # not --out PROJ, refused above
    assert snapshot(proj) == before


def test_a_non_empty_directory_that_is_not_a_run_is_refused(tmp_path: Path, capsys: Any,
                                                            one_sentence: Any) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "notes.txt").write_text("mine\n")
    (proj / "report.html.tmp").write_text("my draft\n")
    before = snapshot(proj)
    cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", str(proj)], str(proj))
    assert snapshot(proj) == before


def test_an_empty_directory_and_a_run_that_never_finished_an_epoch_are_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*TRAIN, "--epochs", "1", "--out", str(empty)]) == 0
    (empty / runs.MODEL).unlink()  # as a kill in epoch 1 leaves it: config.json and metrics only
    (empty / runs.CHECKPOINT).unlink()
    (empty / runs.CHECKPOINT_JSON).unlink()
    (empty / runs.METRICS).unlink()
    assert main([*TRAIN, "--epochs", "1", "--out", str(empty)]) == 0
    assert runs.load_checkpoint(empty)[2]["epoch"] == 1


def test_the_lock_clears_only_vaekits_own_temporary_files(tmp_path: Path) -> None:
    mine = [tmp_path / "report.html.tmp", tmp_path / "config.json.tmp", tmp_path / ".x.tmp"]
    for path in mine:
        path.write_text("a user's file")
    stale = runs.temp_path(tmp_path / runs.CHECKPOINT, pid=4_000_000)  # a killed writer's
    stale.write_bytes(b"half a checkpoint")
    assert runs.is_temp(stale.name) and not any(runs.is_temp(p.name) for p in mine)
    with runs.locked(tmp_path):
        pass
    assert not stale.exists() and all(p.read_text() == "a user's file" for p in mine)


def test_a_users_file_named_like_a_temporary_is_kept_and_counts(tmp_path: Path, capsys: Any,
                                                                  one_sentence: Any) -> None:
    """Only a run file's temporary whose writer is gone is vaekit's to clear: `.notes.vaekit-1.tmp`
    names no run file, and a live process's temporary is left to it."""
    import os

    user = tmp_path / "u" / ".notes.vaekit-1.tmp"
    user.parent.mkdir()
    user.write_text("precious")
    live = tmp_path / "live"
    live.mkdir()
    alive = runs.temp_path(live / runs.CHECKPOINT, pid=os.getppid())  # a live process's
    alive.write_text("being written")
    out = str(user.parent)
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", out], out)
    assert "not empty" in err and user.read_text() == "precious"
    with runs.locked(live):
        pass
    assert alive.read_text() == "being written"


def test_an_atomic_write_names_its_temporary_file_as_vaekits(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(runs.files.os, "replace", spy)
    runs.write_bytes_atomic(tmp_path / runs.EVAL, b"{}")
    assert len(seen) == 1 and runs.is_temp(seen[0]) and str(os.getpid()) in seen[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs.EVAL]


# ----------------------------------------------------------------------------- 2. files that disagree


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _edit_state(run: Path, change: Callable[[dict], None]) -> None:
    """Edit the checkpoint's state, in checkpoint.safetensors (what resume reads) and checkpoint.json."""
    path = run / runs.CHECKPOINT
    tensors, metadata = runs.read_tensors(path, "test")
    state = json.loads(metadata["checkpoint"])
    change(state)
    save_file(tensors, str(path), metadata={"checkpoint": json.dumps(state)})
    (run / runs.CHECKPOINT_JSON).write_text(json.dumps(state))


def test_config_json_edited_after_training_is_refused(run: Path, capsys: Any, one_sentence: Any) -> None:
    _edit_json(run / runs.CONFIG, lambda c: c["model"].__setitem__("activation", "tanh"))  # same shapes
    before = snapshot(run)
    for template in (EVAL, RESUME, ["sample", "{run}", "-n", "2", "--out", str(run.parent / "s.png")]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG))
        assert "model.activation" in err
    with pytest.raises(CheckpointError, match="model.activation"):
        runs.load_run(run)
    assert snapshot(run) == before


@pytest.mark.parametrize(("section", "values", "named"), [
    ("train", {"objective": "iwae"}, "train.objective iwae"),
    ("model", {"autoregressive": 4, "likelihood": "gaussian"}, "model.autoregressive"),
    ("train", {"estimator": "score", "free_bits": 0.5}, "train.free_bits"),
])
def test_config_json_edited_to_settings_that_do_not_go_together_advises_putting_it_back(
        run: Path, capsys: Any, one_sentence: Any, section: str, values: dict[str, Any], named: str) -> None:
    """`"objective": "iwae"` edited into a run's config.json was told 'use --samples 2 or more, or
    --objective elbo', which a resume refuses word for word (config.json is read first) and eval
    does not take: a run's file is named by its keys, and the advice is to put it back."""
    _edit_json(run / runs.CONFIG, lambda c: c[section].update(values))
    before = snapshot(run)
    for template in (EVAL, RESUME, ["sample", "{run}", "-n", "2", "--out", str(run.parent / "s.png")]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG), named,
                      "put back the one the run wrote")
        assert " use --" not in err, err
    assert snapshot(run) == before


@pytest.mark.parametrize(("field", "value"), [("latent", 3), ("activation", "tanh")])
def test_config_json_edited_beside_an_eval_json_is_named_not_the_eval_json(run: Path, capsys: Any,
                                                                          one_sentence: Any, field: str,
                                                                          value: Any) -> None:
    """eval.json agrees with the weights; config.json is what was edited: report and serve name it."""
    assert main(filled(EVAL, run)) == 0
    _edit_json(run / runs.CONFIG, lambda c: c["model"].__setitem__(field, value))
    before = snapshot(run)
    for template in (["report", "{run}", "--k", "2"], ["serve", "{run}", "--port", "0"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG))
        assert f"model.{field}" in err and runs.EVAL not in err
    assert snapshot(run) == before


def test_a_resume_names_an_edited_data_name_before_fetching_the_data(run: Path, capsys: Any,
                                                                     one_sentence: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a download was started")

    monkeypatch.setattr("urllib.request.urlopen", no_download)
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _edit_json(run / runs.CONFIG, lambda c: c["data"].__setitem__("name", "mnist"))
    before = snapshot(run)
    resume = ["train", "--resume", "--out", str(run), "--no-progress", "--threads", "1"]  # config.json's data
    err = cli_bad(capsys, one_sentence, resume, str(run / runs.CONFIG))
    assert "data.name" in err
    assert snapshot(run) == before


def test_a_deleted_model_file_is_named_deleted_not_a_run_without_an_epoch(run: Path, capsys: Any,
                                                                           one_sentence: Any) -> None:
    (run / runs.MODEL).unlink()
    before = snapshot(run)
    sample = ["sample", "{run}", "-n", "2", "--out", str(run.parent / "s.png")]
    for template in (EVAL, RESUME, [*TRAIN, "--resume", "--out", "{run}"], sample,
                     ["report", "{run}", "--k", "2"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.MODEL))
        assert "deleted or moved" in err and "has not finished an epoch" not in err
    assert snapshot(run) == before


def test_a_checkpoint_of_another_run_is_refused(run: Path, twin: Path, capsys: Any,
                                                one_sentence: Any) -> None:
    for name in (runs.CHECKPOINT, runs.CHECKPOINT_JSON):
        shutil.copy(twin / name, run / name)
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, filled(RESUME, run), str(run / runs.CHECKPOINT))
    assert "another run" in err
    assert snapshot(run) == before


@pytest.mark.parametrize(("copied", "agreeing"), [(runs.CONFIG, (runs.MODEL, runs.CHECKPOINT)),
                                                 (runs.CHECKPOINT, (runs.CONFIG, runs.MODEL))])
def test_the_one_file_copied_from_a_twin_run_is_named(run: Path, twin: Path, capsys: Any, one_sentence: Any,
                                                      copied: str, agreeing: tuple[str, str]) -> None:
    """A run of the very same config: config.json (or the checkpoint) copied in from it leaves the
    other two files agreeing on the run's own id, so the copied one is named first as copied, with
    the fix for it, not left as "one of them"."""
    shutil.copy(twin / copied, run / copied)
    before = snapshot(run)
    for template in (["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"], RESUME):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / copied))
        said = err.split("error: ", 1)[1]
        assert said.startswith(f"{run / copied} was copied from another run"), said
        assert all(str(run / name) in said for name in agreeing) and "one of them" not in said
        assert f"put back the run's own {'config.json' if copied == runs.CONFIG else 'checkpoint'}" in said
    assert snapshot(run) == before


def test_both_weight_files_copied_from_a_twin_run_are_named(run: Path, twin: Path, capsys: Any,
                                                            one_sentence: Any) -> None:
    """model.safetensors and checkpoint.safetensors both copied in from a run of the very same
    config agree on the twin's id against config.json's; the run's own metrics.jsonl is not what
    the copied checkpoint recorded (its metrics_sha256), so the weight files are named as copied,
    and config.json, the run's own, is not blamed."""
    for name in (runs.MODEL, runs.CHECKPOINT):
        shutil.copy(twin / name, run / name)
    before = snapshot(run)
    for template in (["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"], RESUME):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.MODEL))
        said = err.split("error: ", 1)[1]
        assert said.startswith(f"{run / runs.MODEL} and {run / runs.CHECKPOINT} were copied from another "
                               "run"), said
        assert "put back the run's own weight files" in said and "own config.json" not in said, said
    assert snapshot(run) == before


def test_a_model_file_of_another_network_is_refused(run: Path, tanh: Path, tmp_path: Path,
                                                   one_sentence: Any) -> None:
    tanh = Path(shutil.copytree(tanh, tmp_path / "tanh"))
    tensors, _ = runs.read_tensors(tanh / runs.MODEL, "model")
    runs.save_weights(tanh, tensors, json.loads((tanh / runs.CONFIG).read_text()))  # as `fit` writes it
    shutil.copy(tanh / runs.MODEL, run / runs.MODEL)  # the same shapes, another network
    with pytest.raises(CheckpointError) as err:
        runs.load_run(run)
    one_sentence(str(err.value), str(run / runs.MODEL), str(run / runs.CONFIG), "model.activation")


@pytest.mark.parametrize("name", [runs.MODEL, runs.CONFIG])
def test_a_model_or_config_of_a_run_with_another_seed_is_refused(run: Path, seed1: Path, capsys: Any,
                                                                one_sentence: Any, name: str) -> None:
    """The same network trained with --seed 1: every field but the resumable ones is compared."""
    shutil.copy(seed1 / name, run / name)
    before = snapshot(run)
    for template in (EVAL, ["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"], ["report", "{run}"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG))
        assert "train.seed" in err
    assert snapshot(run) == before


def test_resumable_fields_changed_in_config_json_are_accepted(run: Path) -> None:
    """--resume rewrites epochs, patience, threads; a time budget's re-plan the epochs."""
    _edit_json(run / runs.CONFIG, lambda c: c["train"].update(epochs=7, patience=3, threads=2))
    assert runs.load_run(run).model is not None


def test_model_files_of_the_same_config_and_seed_differ_only_in_their_run_id(trained: Path,
                                                                              twin: Path) -> None:
    """The same seed gives the same weights and config; the model file's metadata holds each run's id."""
    (a, meta_a), (b, meta_b) = (runs.read_tensors(r / runs.MODEL, "model") for r in (trained, twin))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    ids = meta_a.pop("vaekit.run_id"), meta_b.pop("vaekit.run_id")
    assert ids == (runs.run_id(trained), runs.run_id(twin)) and ids[0] != ids[1]
    assert meta_a == meta_b


def test_model_file_metadata_names_the_changed_fields(run: Path, one_sentence: Any) -> None:
    tensors, _ = runs.read_tensors(run / runs.MODEL, "model")
    runs.save_weights(run, tensors, json.loads((run / runs.CONFIG).read_text()))
    assert runs.load_run(run).model is not None  # the run's own weights and config: loaded
    (run / runs.CHECKPOINT).unlink()  # the model file alone says what it was trained with
    _edit_json(run / runs.CONFIG, lambda c: c["model"].__setitem__("activation", "tanh"))
    with pytest.raises(CheckpointError) as err:
        runs.load_run(run)
    one_sentence(str(err.value), str(run / runs.CONFIG), str(run / runs.MODEL), "model.activation")


@pytest.mark.parametrize("field, value", [("epoch", 10**30), ("epoch", 2**40), ("step", 10**30),
                                          ("best_epoch", 10**30), ("bad_epochs", 10**30),
                                          ("train_seconds", 1e300)])
def test_checkpoint_numbers_beyond_any_run_are_refused(run: Path, capsys: Any, one_sentence: Any,
                                                       field: str, value: Any) -> None:
    def change(state: dict) -> None:
        state["progress"][field] = value
        if field == "epoch":
            state["epoch"] = value

    _edit_state(run, change)
    before = snapshot(run)
    cli_bad(capsys, one_sentence, filled(RESUME, run), str(run / runs.CHECKPOINT))
    assert snapshot(run) == before


def test_state_and_progress_epochs_must_agree(run: Path, capsys: Any, one_sentence: Any) -> None:
    _edit_state(run, lambda s: s.__setitem__("epoch", 1))
    cli_bad(capsys, one_sentence, filled(RESUME, run), str(run / runs.CHECKPOINT))


def test_runs_written_before_run_ids_still_work(run: Path) -> None:
    """An older run: no run id in config.json nor in the checkpoint, no config in the model file."""
    _edit_json(run / runs.CONFIG, lambda c: c.pop(runs.RUN_SECTION, None))
    _edit_state(run, lambda s: s.pop("run_id", None))
    save_file(load_file(str(run / runs.MODEL)), str(run / runs.MODEL))
    assert main(filled(EVAL, run)) == 0
    assert main(filled(RESUME, run)) == 0
    assert runs.load_checkpoint(run)[2]["epoch"] == 3


def test_a_run_keeps_its_id_across_resumes(run: Path) -> None:
    first = runs.run_id(run)
    assert isinstance(first, str) and len(first) == 32
    assert runs.load_checkpoint(run)[2]["run_id"] == first
    assert main(filled(RESUME, run)) == 0
    assert runs.run_id(run) == first == runs.load_checkpoint(run)[2]["run_id"]
    assert runs.read_config(run).train.epochs == 3


@pytest.mark.parametrize("section", [[1], {"id": 3}, {"id": "not hex"}, {"id": "0" * 32, "x": 1}, "id"])
def test_a_damaged_run_section_is_refused(run: Path, one_sentence: Any, section: Any) -> None:
    _edit_json(run / runs.CONFIG, lambda c: c.__setitem__(runs.RUN_SECTION, section))
    with pytest.raises(CheckpointError) as err:
        runs.read_config(run)
    one_sentence(str(err.value), str(run / runs.CONFIG))


def test_eval_says_eval_json_cannot_be_written_before_it_evaluates(run: Path, capsys: Any, one_sentence: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only file system (EROFS for every new file in the run): named before the evaluation."""
    import errno

    import vaekit.evaluate.run as evaluate_run
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("evaluated before eval.json was known to be writable")

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(evaluate_run, "evaluate_model", never)
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, filled(EVAL, run), str(run / runs.EVAL))
    assert "read-only" in err
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- 3. not finite


def _overflow(run: Path) -> None:
    """Every weight 1e38: finite, but the forward pass overflows."""
    tensors, metadata = runs.read_tensors(run / runs.MODEL, "test")  # its metadata kept
    save_file({k: torch.full_like(v, 1e38) for k, v in tensors.items()}, str(run / runs.MODEL), metadata)


def test_weights_whose_outputs_overflow_are_refused(run: Path, tmp_path: Path, capsys: Any,
                                                    one_sentence: Any) -> None:
    _overflow(run)
    before = snapshot(run)
    for template in (EVAL, ["sample", "{run}", "-n", "2", "--out", str(tmp_path / "s.png")],
                     ["report", "{run}", "--k", "2"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.MODEL))
        assert "not finite" in err
    assert snapshot(run) == before and not (tmp_path / "s.png").exists()
    from vaekit.serve.explorer import Explorer  # the server's loading of a run

    with pytest.raises(CheckpointError, match="not finite"):
        Explorer.load(run)


@pytest.mark.parametrize("value, said", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
                                         (3.4e38, "not finite")])
def test_damaged_weights_beside_an_eval_json_and_a_checkpoint_are_named_damaged(
        run: Path, tmp_path: Path, capsys: Any, one_sentence: Any, value: float, said: str) -> None:
    """The weights of model.safetensors replaced by NaN, infinite or overflowing ones: every reader
    says the weights are damaged, not that eval.json is of other weights or that the model file is
    another one than the checkpoint records (what the SHA-256s alone would say)."""
    assert main(filled(EVAL, run)) == 0
    tensors, metadata = runs.read_tensors(run / runs.MODEL, "test")
    save_file({k: torch.full_like(v, value) for k, v in tensors.items()}, str(run / runs.MODEL), metadata)
    before = snapshot(run)
    for template in (["report", "{run}", "--no-eval"], ["report", "{run}"], RESUME,
                     ["sheet", "--vae-run", "{run}", "--out", str(tmp_path / "s.html")]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.MODEL))
        assert said in err and "eval.json" not in err and "records" not in err, err
        fix = runs.PUT_BACK if said == "NaN or infinite" else "train it again"  # what to do about it
        assert err.endswith(f"{fix}."), err
    assert snapshot(run) == before and not (tmp_path / "s.html").exists()


def test_eval_refuses_results_that_are_not_finite(run: Path, monkeypatch: pytest.MonkeyPatch,
                                                  one_sentence: Any) -> None:
    """Past the load-time check (a model finite on a grey image, not on the test images)."""
    from vaekit.evaluate import run as eval_mod

    real = eval_mod.Evaluation.summary
    monkeypatch.setattr(eval_mod.Evaluation, "summary",
                        lambda self, pixels: {**real(self, pixels), "test_neg_elbo": float("inf")})
    with pytest.raises(CheckpointError) as err:
        eval_mod.evaluate_run(run, k=2, limit=20, progress=False, probe=False, threads=1)
    one_sentence(str(err.value), str(run / runs.MODEL), "test -ELBO is not finite")
    assert not (run / runs.EVAL).exists()


def test_json_files_are_strict(tmp_path: Path, one_sentence: Any) -> None:
    path = tmp_path / "x.json"
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(RunWriteError) as err:
            runs.write_json_atomic(path, {"a": {"b": [1.0, bad]}})
        one_sentence(str(err.value), str(path), "a.b[1]")
        assert not path.exists() and not list(tmp_path.iterdir())
    runs.write_json_atomic(path, {"a": 1.5})
    assert json.loads(path.read_text()) == {"a": 1.5}


def test_eval_json_is_strict_json(run: Path) -> None:
    assert main(filled(EVAL, run)) == 0

    def refuse(name: str) -> None:
        raise ValueError(name)

    json.loads((run / runs.EVAL).read_text(), parse_constant=refuse)
    json.loads((run / runs.CHECKPOINT_JSON).read_text(), parse_constant=refuse)


# ----------------------------------------------------------------------------- 4. what a file is


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "nowhere")


def _loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path)


SHAPES = {"fifo": _fifo, "directory": _directory, "dangling": _dangling, "loop": _loop}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", [runs.MODEL, runs.CONFIG])
def test_a_run_file_that_is_not_a_regular_file(run: Path, capsys: Any, one_sentence: Any, shape: str,
                                               name: str) -> None:
    SHAPES[shape](run / name)
    before = snapshot(run)
    for template in (EVAL, ["report", "{run}", "--k", "2"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / name))
        assert "has not finished an epoch" not in err and "no model file" not in err
    assert snapshot(run) == before


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", [runs.CHECKPOINT, runs.METRICS])
def test_a_resumed_file_that_is_not_a_regular_file(run: Path, capsys: Any, one_sentence: Any, shape: str,
                                                   name: str) -> None:
    SHAPES[shape](run / name)
    before = snapshot(run)
    cli_bad(capsys, one_sentence, filled(RESUME, run), str(run / name))
    assert snapshot(run) == before


@pytest.mark.parametrize("shape", ["fifo", "directory"])
def test_an_eval_json_that_is_not_a_regular_file(run: Path, capsys: Any, one_sentence: Any,
                                                 shape: str) -> None:
    (run / runs.EVAL).write_text("{}")
    SHAPES[shape](run / runs.EVAL)
    cli_bad(capsys, one_sentence, ["report", str(run), "--k", "2"], str(run / runs.EVAL))


def test_a_run_directory_that_is_a_file(tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    afile = tmp_path / "run"
    afile.write_text("x")
    for template in (EVAL, ["sample", "{run}", "-n", "2"], ["report", "{run}"]):
        err = cli_bad(capsys, one_sentence, filled(template, afile), str(afile))
        assert "not a directory" in err and "no such" not in err
    with pytest.raises(CheckpointError, match="not a directory"):
        runs.load_run(afile)
    with pytest.raises(CheckpointError, match="not a directory"), runs.locked(afile):
        pass


@pytest.mark.parametrize("task", [["vae"], {"a": 1}, 3, None, True])
def test_a_task_that_is_not_text(run: Path, capsys: Any, one_sentence: Any, task: Any) -> None:
    _edit_json(run / runs.CONFIG, lambda c: c.__setitem__("task", task))
    for template in (EVAL, ["report", "{run}"], RESUME):
        cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG))
    assert runs.task_in(run).name == "vae"


@pytest.mark.parametrize("value", [1, "x", None, [], {}, {"a": 1}])
def test_an_unknown_top_level_key_is_named_whatever_its_value(run: Path, capsys: Any, one_sentence: Any,
                                                              value: Any) -> None:
    """"extra": 1 in config.json is named as the unknown key (as "extra": {} was), with the keys a
    config.json holds at its top level: task and run among them, as vaekit writes them."""
    written = json.loads((run / runs.CONFIG).read_text())
    assert "run" in written  # the run id, a top-level key vaekit writes
    _edit_json(run / runs.CONFIG, lambda c: c.__setitem__("extra", value))
    before = snapshot(run)
    for template in (EVAL, ["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"], ["report", "{run}"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG))
        assert "unknown key extra" in err and "task, run, data, model, optim, train" in err, err
    assert snapshot(run) == before


@pytest.mark.parametrize("section", ["data", "model", "optim", "train"])
def test_a_section_that_is_not_an_object_is_named(run: Path, capsys: Any, one_sentence: Any,
                                                  section: str) -> None:
    _edit_json(run / runs.CONFIG, lambda c: c.__setitem__(section, 3))
    err = cli_bad(capsys, one_sentence, filled(["report", "{run}"], run), str(run / runs.CONFIG))
    assert f"{section} must be an object of keys" in err, err


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON nested deeper than Python's parser recurses


@pytest.mark.parametrize("name", [runs.CONFIG, runs.EVAL, runs.METRICS])
def test_json_nested_too_deeply_is_one_sentence(run: Path, capsys: Any, one_sentence: Any, name: str) -> None:
    """A RecursionError of the JSON parser is a file that is not JSON, for every run file and command."""
    path = run / name
    path.write_text(DEEP + ("\n{}\n" if name == runs.METRICS else ""))  # metrics: not only a cut last line
    before = snapshot(run)
    commands = {runs.CONFIG: (EVAL, ["sample", "{run}", "-n", "2"], ["report", "{run}"], RESUME,
                              ["serve", "{run}", "--port", "1"]),
                runs.EVAL: (["report", "{run}", "--k", "2"],), runs.METRICS: (RESUME, ["report", "{run}"])}
    for template in commands[name]:
        cli_bad(capsys, one_sentence, filled(template, run), str(path))
    assert snapshot(run) == before


def test_a_checkpoint_state_nested_too_deeply_is_one_sentence(run: Path, capsys: Any,
                                                              one_sentence: Any) -> None:
    tensors = load_file(run / runs.CHECKPOINT)
    save_file(tensors, run / runs.CHECKPOINT, metadata={CHECKPOINT_KEY: DEEP})
    before = snapshot(run)
    cli_bad(capsys, one_sentence, filled(RESUME, run), str(run / runs.CHECKPOINT))
    assert snapshot(run) == before


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_that_is_not_strict_is_refused_when_read(run: Path, capsys: Any, one_sentence: Any,
                                                      constant: str) -> None:
    """vaekit writes strict JSON; Python's NaN and Infinity in a run file (an edit, another tool)
    are refused when read, not printed as 'nan nats' in a report or a sheet."""
    assert main(filled(EVAL, run)) == 0
    path = run / runs.EVAL
    result = json.loads(path.read_text())
    result["test_nll"] = "@"
    path.write_text(json.dumps(result).replace('"@"', constant))
    before = snapshot(run)
    for template in (["report", "{run}", "--k", "2"], ["sheet", "--vae-run", "{run}", "--out", "{run}.html",
                                                     "--quick"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(path))
        assert constant in err
    assert snapshot(run) == before


@pytest.mark.parametrize("written", ["1e400", "-2.5E999"])
def test_a_json_number_beyond_any_float_is_quoted_as_written(run: Path, capsys: Any, one_sentence: Any,
                                                             written: str) -> None:
    """A JSON number float() reads as inf was named "Infinity", which the file does not say."""
    config = json.loads((run / runs.CONFIG).read_text())
    config["optim"]["lr"] = "@"
    (run / runs.CONFIG).write_text(json.dumps(config).replace('"@"', written))
    err = cli_bad(capsys, one_sentence, filled(EVAL, run), str(run / runs.CONFIG),
                  f"optim.lr is {written}, larger in size than the largest float")
    assert "Infinity" not in err, err


@pytest.mark.parametrize("key", ["latent", "epochs"])
def test_a_key_given_twice_in_config_json_is_refused_not_the_last_kept(run: Path, capsys: Any,
                                                                      one_sentence: Any, key: str) -> None:
    """json.loads keeps the last of a repeated key: `"epochs": 9, "epochs": 2` resumed to 2."""
    text = (run / runs.CONFIG).read_text()
    (run / runs.CONFIG).write_text(text.replace(f'"{key}": ', f'"{key}": 9, "{key}": ', 1))
    before = snapshot(run)
    for argv in (filled(EVAL, run), ["train", "--resume", "--out", str(run), "--no-progress"]):
        cli_bad(capsys, one_sentence, argv, str(run / runs.CONFIG), f'the key "{key}" is given twice')
    assert snapshot(run) == before


@pytest.mark.parametrize("task, said", [(None, "null"), (False, "false"), (["classify"], '["classify"]'),
                                        ("vea", '"vea"')])
def test_a_task_that_is_no_kind_is_quoted_as_json_writes_it(run: Path, capsys: Any, one_sentence: Any,
                                                            task: Any, said: str) -> None:
    """It was quoted as Python writes it ('None', 'False'), which the file does not say."""
    _edit_json(run / runs.CONFIG, lambda c: c.__setitem__("task", task))
    err = cli_bad(capsys, one_sentence, filled(EVAL, run), f"unknown task {said}; expected one of")
    assert "None" not in err and "False" not in err, err


def test_a_figures_folder_that_is_a_link_is_not_written_through(run: Path, tmp_path: Path, capsys: Any,
                                                               one_sentence: Any) -> None:
    """RUN/figures as a symbolic link to a user's folder: report and sample would write into it."""
    user = tmp_path / "userpics"
    user.mkdir()
    (user / "samples.png").write_text("mine")
    figures = run / "figures"
    if figures.exists():
        shutil.rmtree(figures)
    figures.symlink_to(user)
    for template in (["report", "{run}", "--k", "2"], ["sample", "{run}", "-n", "4"]):
        cli_bad(capsys, one_sentence, filled(template, run), str(figures))
    assert sorted(p.name for p in user.iterdir()) == ["samples.png"]
    assert (user / "samples.png").read_text() == "mine"


def test_a_users_file_in_the_runs_figures_folder_is_named_with_a_fix_that_works(
        run: Path, capsys: Any, one_sentence: Any) -> None:
    """report has no path to choose: the sentence says to move the file out of RUN/figures."""
    figures = run / "figures"
    figures.mkdir(exist_ok=True)
    (figures / "curves.png").write_text("mine")
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, ["report", str(run), "--k", "2"], str(figures / "curves.png"))
    assert "move it out of" in err and "choose another path" not in err
    assert snapshot(run) == before


@pytest.mark.parametrize("line", [0, -1])
def test_a_metrics_row_with_nan_is_refused_even_last(run: Path, capsys: Any, one_sentence: Any,
                                                     line: int) -> None:
    """A cut last line is dropped (a kill mid-write); a whole one holding NaN is not a cut line."""
    path = run / runs.METRICS
    rows = path.read_text().splitlines()
    rows[line] = rows[line].replace('{"epoch": ', '{"x": NaN, "epoch": ', 1)
    path.write_text("\n".join(rows) + "\n")
    err = cli_bad(capsys, one_sentence, ["report", str(run), "--k", "2"], str(path))
    assert "NaN" in err


def test_the_checkpoint_records_the_digest_of_its_metrics_rows(run: Path) -> None:
    """checkpoint.json's metrics_sha256 is what `head -n EPOCH metrics.jsonl | sha256sum` gives."""
    import hashlib

    state = json.loads((run / runs.CHECKPOINT_JSON).read_text())
    lines = (run / runs.METRICS).read_bytes().splitlines(keepends=True)
    assert len(lines) == state["epoch"] == 2
    assert state["metrics_sha256"] == hashlib.sha256(b"".join(lines[:state["epoch"]])).hexdigest()


@pytest.mark.parametrize("how", ["another run's", "a loss edited", "a row dropped"])
def test_metrics_of_another_run_or_edited_are_refused(run: Path, tanh: Path, capsys: Any,
                                                      one_sentence: Any, how: str) -> None:
    """A report draws the curves of metrics.jsonl: rows that are not the training's are refused."""
    path = run / runs.METRICS
    if how == "another run's":
        shutil.copyfile(tanh / runs.METRICS, path)
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if how == "a loss edited":
            rows[0]["val_neg_elbo"] -= 1.0
        else:
            rows = rows[1:]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = snapshot(run)
    for template in (["report", "{run}", "--k", "2"], RESUME):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(path))
        assert "metrics_sha256" in err and err.endswith(f"{runs.PUT_BACK}."), err
        # a row missing is named cut, not only edited or another run's
        assert ("cut or edited" in err) == (how == "a row dropped"), err
    assert snapshot(run) == before


def test_rows_past_the_checkpoint_are_not_held_against_it(run: Path) -> None:
    """A kill between an epoch's row and its checkpoint leaves one row more: still the run's (here
    of `--resume --epochs 3`, which writes config.json's epochs before the row)."""
    _edit_json(run / runs.CONFIG, lambda c: c["train"].__setitem__("epochs", 3))
    path = run / runs.METRICS
    rows = path.read_text().splitlines()
    path.write_text("\n".join([*rows, rows[-1].replace('"epoch": 2', '"epoch": 3', 1)]) + "\n")
    assert [r["epoch"] for r in runs.read_metrics(run)] == [1, 2, 3]


@pytest.mark.parametrize("how", ["reversed", "twice", "a gap", "past the end"])
def test_metrics_rows_out_of_order_or_past_the_runs_end_are_refused(run: Path, capsys: Any,
                                                                    one_sentence: Any, how: str) -> None:
    """Rows are epochs 1, 2, ... of config.json's epochs, whatever the checkpoint recorded."""
    path = run / runs.METRICS
    rows = path.read_text().splitlines()
    def last(epoch: int) -> str:
        return rows[-1].replace('"epoch": 2', f'"epoch": {epoch}', 1)

    rows = {"reversed": [*rows[::-1], *rows], "twice": [*rows, *rows], "a gap": [*rows, last(4)],
            "past the end": [*rows, last(3)]}[how]
    path.write_text("\n".join(rows) + "\n")
    why = {"past the end": "past the 2 epochs", "a gap": "epoch 3 was due"}.get(how, "metrics_sha256")
    with pytest.raises(CheckpointError, match=why):
        runs.read_metrics(run)
    before = snapshot(run)
    for template in (["report", "{run}", "--k", "2"], RESUME):
        cli_bad(capsys, one_sentence, filled(template, run), str(path))
    assert snapshot(run) == before


@pytest.mark.parametrize("field, value", [("binarize", "none"), ("name", "mnist")])
def test_a_data_section_edited_after_training_is_refused_by_every_reader(
        run: Path, capsys: Any, one_sentence: Any, field: str, value: str) -> None:
    """binarize auto -> none changes what eval measures; the weights' metadata says what they saw."""
    _edit_json(run / runs.CONFIG, lambda c: c["data"].__setitem__(field, value))
    before = snapshot(run)
    for template in (EVAL, ["sample", "{run}", "-n", "2", "--out", "{run}/../s.png"], ["report", "{run}"]):
        err = cli_bad(capsys, one_sentence, filled(template, run), str(run / runs.CONFIG))
        assert f"data.{field}" in err
    assert snapshot(run) == before


def test_a_config_edited_to_a_huge_network_is_refused_before_it_is_built(
        run: Path, capsys: Any, one_sentence: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """hidden [16] -> [100000000]: 25.6 GB allocated before the shapes were compared with the weights."""
    from vaekit.runs import kinds

    def no_build(*_: Any) -> None:
        raise AssertionError("the network of the edited config.json was built")

    _edit_json(run / runs.CONFIG, lambda c: c["model"].__setitem__("hidden", [100_000_000]))
    monkeypatch.setattr(kinds, "build_model", no_build)
    err = cli_bad(capsys, one_sentence, filled(EVAL, run), str(run / runs.CONFIG))
    assert "model.hidden" in err


@pytest.mark.parametrize("field, value", [("k", 0), ("images", -5), ("active_units", 99), ("latent_dim", 0),
                                          ("probe_accuracy", 2.0), ("seed", -1), ("threads", 0),
                                          ("latent_mean_variance", [-1.0, 0.0])])
def test_a_vae_eval_json_with_impossible_values_is_refused(run: Path, capsys: Any, one_sentence: Any,
                                                           field: str, value: Any) -> None:
    """k = 0, -5 images, 99 active units of a 2-dimensional latent: no `vaekit eval` writes them."""
    assert main(filled(EVAL, run)) == 0
    _edit_json(run / runs.EVAL, lambda e: e.__setitem__(field, value))
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, ["report", str(run)], str(run / runs.EVAL))
    assert field in err
    assert snapshot(run) == before


def test_metrics_rows_out_of_order_are_refused_without_a_checkpoint(tmp_path: Path) -> None:
    """No checkpoint (killed before its first) or one of an earlier vaekit: the order still holds."""
    for epoch in (1, 2, 2):
        runs.append_metrics(tmp_path, {"epoch": epoch, "loss": 1.0})
    with pytest.raises(CheckpointError, match="line 3 is epoch 2, where epoch 3 was due"):
        runs.read_metrics(tmp_path)
    (tmp_path / runs.METRICS).write_text('{"epoch": 2}\n{"epoch": 1}\n')
    with pytest.raises(CheckpointError, match="line 1 is epoch 2, where epoch 1 was due"):
        runs.read_metrics(tmp_path)


@pytest.mark.parametrize("how", ["emptied", "a directory", "another run's"])
def test_resume_checks_the_model_file_before_it_trains(run: Path, tanh: Path, capsys: Any,
                                                       one_sentence: Any, how: str) -> None:
    """A damaged model.safetensors, or another run's, was found only at the run's end (or never):
    now refused before an epoch is trained, the directory as it was."""
    path = run / runs.MODEL
    if how == "emptied":
        path.write_bytes(b"")
    elif how == "a directory":
        path.unlink()
        path.mkdir()
    else:
        shutil.copyfile(tanh / runs.MODEL, path)
    before = snapshot(run)
    cli_bad(capsys, one_sentence, filled(RESUME, run), str(run))
    assert snapshot(run) == before


@pytest.mark.parametrize("name, argv", [
    ("figures/samples-seed0.png", ["sample", "{run}", "-n", "4"]),
    ("figures/notes.png", ["report", "{run}", "--k", "2"]),
])
def test_default_outputs_do_not_replace_a_users_file_in_the_run(run: Path, capsys: Any, one_sentence: Any,
                                                               name: str, argv: list[str]) -> None:
    """What `--out` refuses (a file vaekit did not write) the default path refuses too."""
    mine = run / name
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("my notes\n")
    before = snapshot(run)
    cli_bad(capsys, one_sentence, filled(argv, run), str(mine))
    assert mine.read_text() == "my notes\n" and snapshot(run) == before
