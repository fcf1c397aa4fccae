"""Nothing lost, nothing silently wrong: one writer per run
directory (a second process, and a kill -9), directories that hold part of a run, a full disk, a
divergence in the first epoch, checkpoints and run files that were tampered with, output paths
that cannot be written, and work without a bound. Each bad case: exit 2, one sentence, and the
run directory byte for byte as it was."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from cli_refusal import cli_bad, hold_run, snapshot
from vaekit import runs
from vaekit.cli import main
from vaekit.errors import CheckpointError, RunBusyError, RunWriteError
from vaekit.train import fit as fit_mod
from vaekit.train.loop import validate

TRAIN = ["train", "--data", "digits", "--hidden", "16", "--latent", "4", "--batch-size", "128",
         "--threads", "1", "--no-progress"]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    return out


# ----------------------------------------------------------------------------- 1. one writer


def _start_training(out: Path, epochs: int = 400) -> subprocess.Popen[str]:
    """A run that writes a checkpoint after every epoch (what the kills below are timed against)."""
    argv = [*TRAIN, "--epochs", str(epochs), "--out", str(out), "--checkpoint-every", "epoch"]
    code = f"from vaekit.cli import main; raise SystemExit(main({argv!r}))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    start = time.perf_counter()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.perf_counter() - start < timeout, f"{path} did not appear"
        time.sleep(0.05)


@pytest.fixture
def training(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A second process training into tmp/busy, past its first checkpoint."""
    out = tmp_path / "busy"
    proc = _start_training(out)
    try:
        _wait_for(out / runs.CHECKPOINT, proc)
        yield out, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_second_training_into_a_busy_directory_is_refused(training: Any, capsys: Any,
                                                             one_sentence: Any) -> None:
    out, proc = training
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(out), "--resume"], str(out))
    assert "being written by another vaekit process" in err
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(out), "--seed", "1"], str(out))
    assert "being written by another vaekit process" in err  # not "pass --resume", which is refused
    err = cli_bad(capsys, one_sentence, ["eval", str(out), "--k", "2", "--no-progress"], str(out))
    assert "being written by another vaekit process" in err
    cli_bad(capsys, one_sentence, ["report", str(out), "--k", "2"], str(out))
    for into in ([], ["--out", str(out / "mine.png")]):  # into its figures/, or any file in the run
        err = cli_bad(capsys, one_sentence, ["sample", str(out), "-n", "4", *into], str(out))
        assert "being written by another vaekit process" in err
    elsewhere = out.parent / "elsewhere.png"  # a reader of the run, writing outside it: not refused
    assert main(["sample", str(out), "-n", "4", "--out", str(elsewhere)]) == 0 and elsewhere.is_file()
    assert proc.poll() is None  # the first writer is unharmed and still training
    assert not (out / runs.EVAL).exists() and not (out / runs.REPORT).exists()
    assert not (out / "figures").exists() and not (out / "mine.png").exists()
    # the first one's run stays its own: one config, one series of epochs
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    rows = runs.read_metrics(out)
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert runs.read_config(out).train.seed == 0
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(out), "--seed", "1"], str(out))
    assert "already holds a run" in err and "pass --resume" in err  # the writer gone: the run's own advice
    # an interrupt between the metrics row and the checkpoint leaves one row more (resume trims it)
    assert len(rows) - 1 <= runs.load_checkpoint(out)[2]["epoch"] <= len(rows)


def test_a_reader_of_a_run_being_trained_waits_for_its_files_to_agree(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that finds the run's files in disagreement while another process trains it (here
    the model file moved away, put back 0.3 s later, as a reader may find a new model file before
    the checkpoint that records it) reads the run once they agree; the same files with no writer
    are refused at once, without a wait."""
    import vaekit.runs.load as load

    waits: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(load.time, "sleep", lambda s: (waits.append(s), real_sleep(s)))
    model, aside = run / runs.MODEL, tmp_path / "aside.safetensors"
    model.rename(aside)
    with pytest.raises(CheckpointError, match="deleted or moved"):
        runs.load_run(run)
    assert waits == [] and not runs.held_elsewhere(run)
    holder = hold_run(run)
    try:
        assert runs.held_elsewhere(run)
        timer = threading.Timer(0.3, aside.rename, (model,))
        timer.start()
        assert runs.load_run(run).model is not None
        timer.join()
        assert waits  # it read again, and found the pair whole
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not runs.held_elsewhere(run)


def test_the_same_command_started_twice(tmp_path: Path) -> None:
    """Two trainings into one new directory at once (seeds 0 and 1): one runs, the other is refused
    with one sentence, and the directory holds the winner's run alone."""
    out = tmp_path / "run"
    argv = [[*TRAIN, "--epochs", "3", "--out", str(out), "--seed", str(seed)] for seed in (0, 1)]
    code = "import sys; from vaekit.cli import main; raise SystemExit(main(sys.argv[1:]))"
    procs = [subprocess.Popen([sys.executable, "-c", code, *a], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for a in argv]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    status = [p.returncode for p in procs]
    assert sorted(status) == [0, 2], errs
    winner, loser = (0, 1) if status[0] == 0 else (1, 0)
    last = errs[loser].strip().splitlines()[-1]
    assert "Traceback" not in errs[loser]
    assert "being written by another vaekit process" in last or "already holds a run" in last
    assert runs.read_config(out).train.seed == winner
    assert [r["epoch"] for r in runs.read_metrics(out)] == [1, 2, 3]
    assert runs.load_checkpoint(out)[2]["config"]["train"]["seed"] == winner


def test_a_killed_writer_leaves_no_lock(training: Any, capsys: Any) -> None:
    out, proc = training
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stale = runs.temp_path(out / runs.CHECKPOINT, pid=proc.pid)
    stale.write_bytes(b"half a checkpoint")  # as a kill mid-write leaves
    epochs = runs.load_checkpoint(out)[2]["epoch"]
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", str(epochs + 1), "--out", str(out), "--resume"]) == 0
    assert runs.load_checkpoint(out)[2]["epoch"] == epochs + 1
    assert not stale.exists()  # the stale temporary file was removed


def test_lock_is_per_process_and_nests(tmp_path: Path) -> None:
    with runs.locked(tmp_path), runs.locked(tmp_path):  # the same process may nest
        code = ("from pathlib import Path\nfrom vaekit import runs\n"
                f"with runs.locked(Path({str(tmp_path)!r})): pass")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and "RunBusyError" in other.stderr
    # released: another process gets it now, and while that one holds it, this one is refused
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", code.replace(": pass", ": input()")],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.perf_counter() + 60
        while True:
            try:
                with runs.locked(tmp_path):
                    pass
            except RunBusyError:
                break
            assert time.perf_counter() < deadline and holder.poll() is None
            time.sleep(0.05)
    finally:
        holder.communicate("\n", timeout=60)


# ----------------------------------------------------------------------------- 2 and 4. part of a run


def test_a_directory_with_results_but_no_checkpoint_is_refused(run: Path, capsys: Any,
                                                                one_sentence: Any) -> None:
    (run / runs.CHECKPOINT).unlink()
    (run / runs.CHECKPOINT_JSON).unlink()
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(run)], str(run))
    assert "model.safetensors" in err and "metrics.jsonl" in err and "--resume" not in err
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "3", "--out", str(run), "--resume"])
    assert "no checkpoint file" in err
    assert snapshot(run) == before


@pytest.mark.parametrize("files", [(runs.METRICS,), (runs.CONFIG, runs.EVAL),
                                   (runs.CHECKPOINT, runs.METRICS)])
def test_resume_is_advised_only_where_it_resumes(tmp_path: Path, capsys: Any, one_sentence: Any,
                                                 files: tuple[str, ...]) -> None:
    """Files of a run without config.json and a checkpoint: a new run is refused, and so is --resume,
    so the refusal does not send the user to --resume; it says to choose another --out."""
    out = tmp_path / "run"
    out.mkdir()
    for name in files:
        (out / name).write_text("x\n")
    before = snapshot(out)
    cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", str(out), "--resume"], str(out))
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", str(out)], str(out))
    assert "--resume" not in err and "no run that can be resumed" in err, err
    assert "choose another --out" in err, err
    assert snapshot(out) == before


@pytest.mark.parametrize("present", [runs.EVAL, runs.REPORT, runs.METRICS])
def test_any_result_file_blocks_a_new_run(tmp_path: Path, capsys: Any, one_sentence: Any,
                                          present: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / present).write_text("{}\n")
    before = snapshot(out)
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", str(out)], present)
    assert "already holds a run" in err
    assert snapshot(out) == before


def test_divergence_in_epoch_one_says_so_and_the_directory_stays_usable(
        tmp_path: Path, capsys: Any, one_sentence: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    real = fit_mod.make_engine

    def diverging(*args: Any, **kwargs: Any) -> Any:
        engine = real(*args, **kwargs)
        step = engine.loss_and_grads
        engine.loss_and_grads = lambda *a, **k: step(*a, **k) * float("nan")  # type: ignore[method-assign]
        return engine

    monkeypatch.setattr(fit_mod, "make_engine", diverging)
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "2", "--out", str(out)])
    assert "epoch 1, step 1" in err and "no checkpoint had been written" in err
    assert "checkpoint (epoch 0)" not in err
    assert sorted(p.name for p in out.iterdir()) == [runs.CONFIG]
    monkeypatch.setattr(fit_mod, "make_engine", real)
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--resume"]) == 0  # from epoch 0
    assert [r["epoch"] for r in runs.read_metrics(out)] == [1]
    other = tmp_path / "again"
    monkeypatch.setattr(fit_mod, "make_engine", diverging)
    cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "2", "--out", str(other)])
    monkeypatch.setattr(fit_mod, "make_engine", real)
    assert main([*TRAIN, "--epochs", "1", "--out", str(other)]) == 0  # a fresh run replaces it
    # both ways give the weights an uninterrupted training gives (the model files differ in run id)
    (a, _), (b, _) = (runs.read_tensors(r / runs.MODEL, "model") for r in (out, other))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_more_patience_continues_an_early_stopped_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([5.0, 6.0, 7.0, 4.0, 3.0])

    def fake_validate(model: Any, x: Any, **_: Any) -> dict[str, float]:
        value = next(scores)
        return {"neg_elbo": value, "recon": value - 1, "kl": 1.0}

    monkeypatch.setattr(fit_mod, "validate", fake_validate)
    config = fit_mod.TrainConfig()
    config.data.name, config.model.hidden, config.model.latent = "digits", [16], 4
    config.train.batch_size, config.train.threads, config.train.epochs, config.train.patience = 128, 1, 5, 1
    out = tmp_path / "run"
    assert "early stopping" in fit_mod.fit(config, out, log=lambda s: None)["stopped"]
    assert runs.load_checkpoint(out)[2]["epoch"] == 2
    config.train.patience = 0  # changeable on resume: no early stopping at all now
    summary = fit_mod.fit(config, out, resume=True, log=lambda s: None)
    assert summary["epochs"] == 5 and summary["best_epoch"] == 5 and summary["stopped"] is None
    assert [r["epoch"] for r in runs.read_metrics(out)] == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------- 3 and 10. writes that fail


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_tmp(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(b"the good one")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.files.os, "fsync", full)
    with pytest.raises(RunWriteError) as err:
        runs.write_bytes_atomic(path, b"x" * 3_000_000)
    message = str(err.value)
    assert "no space left on the device for its 2.9 MiB" in message and str(path) in message
    assert path.read_bytes() == b"the good one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


def _tmpfs(directory: Path, size: str) -> bool:
    directory.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                          capture_output=True)
    return done.returncode == 0


def test_disk_full_during_training_on_a_small_tmpfs(tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "2m"):
        pytest.skip("mounting a tmpfs needs root and a platform that allows it")
    try:
        out = disk / "run"
        assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
        good = snapshot(out)
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            for chunk in (65536, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError:
                        break
        finally:
            os.close(fd)
        err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "2", "--out", str(out), "--resume"])
        assert "no space left on the device" in err
        assert not [p for p in out.iterdir() if p.name.endswith(runs.TMP)]
        assert runs.load_checkpoint(out)[2]["epoch"] == 1  # the last good checkpoint is intact
        assert snapshot(out)[runs.CHECKPOINT] == good[runs.CHECKPOINT]
        filler.unlink()
        assert main([*TRAIN, "--epochs", "2", "--out", str(out), "--resume"]) == 0
        assert runs.load_checkpoint(out)[2]["epoch"] == 2
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


@pytest.mark.parametrize("where", ["devnull", "under-a-file", "proc"])
def test_train_out_that_cannot_be_a_directory(tmp_path: Path, capsys: Any, one_sentence: Any,
                                              where: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    out = {"devnull": "/dev/null", "under-a-file": str(afile / "sub"), "proc": "/proc/vaekit-run"}[where]
    cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "1", "--out", out], out)
    assert afile.read_text() == "not a directory"


def test_eval_into_a_directory_that_cannot_be_written(run: Path, capsys: Any, one_sentence: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    before = snapshot(run)
    monkeypatch.setattr(runs.files.os, "replace", denied)  # a read-only directory, as root cannot make one
    err = cli_bad(capsys, one_sentence, ["eval", str(run), "--k", "2", "--no-progress"], runs.EVAL)
    assert "not writable" in err
    assert snapshot(run) == before


def test_sample_out_paths(run: Path, tmp_path: Path, capsys: Any, one_sentence: Any) -> None:
    adir = tmp_path / "grid.png"
    adir.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (str(adir), str(afile / "s.png"), "/proc/vaekit.png"):
        cli_bad(capsys, one_sentence, ["sample", str(run), "-n", "4", "--out", out], out)
    assert afile.read_text() == "x" and not list(adir.iterdir())


# ----------------------------------------------------------------------------- 5 and 12. tampered files


def _rewrite(path: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Edit the tensors of a safetensors file, keeping its metadata (the checkpoint's state)."""
    tensors, metadata = runs.read_tensors(path, "test")
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


def _first_moment(tensors: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(tensors) if k.endswith(".exp_avg"))


CHECKPOINT_DAMAGE: dict[str, Callable[[dict[str, torch.Tensor]], None]] = {
    "moment-too-small": lambda t: t.__setitem__(_first_moment(t), t[_first_moment(t)].flatten()[:3].clone()),
    "moment-too-large": lambda t: t.__setitem__(_first_moment(t), torch.zeros(10**5)),
    "moments-missing": lambda t: [t.pop(k) for k in [k for k in t if k.startswith("optim.")]],
    "moment-nan": lambda t: t[_first_moment(t)].view(-1).__setitem__(0, float("nan")),
    "weights-int": lambda t: t.__setitem__("model.q_mu.weight", t["model.q_mu.weight"].to(torch.int32)),
    "weights-inf": lambda t: t["model.q_mu.bias"].__setitem__(0, float("inf")),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_a_tampered_checkpoint_is_refused_on_resume(run: Path, capsys: Any, one_sentence: Any,
                                                    damage: str) -> None:
    _rewrite(run / runs.CHECKPOINT, CHECKPOINT_DAMAGE[damage])
    before = snapshot(run)
    cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "2", "--out", str(run), "--resume"],
            str(run / runs.CHECKPOINT))
    assert snapshot(run) == before


@pytest.mark.parametrize("field, value", [("epoch", "3"), ("best_val", None), ("baseline", "x"),
                                          ("stopped", 7), ("step", -1)])
def test_a_checkpoint_with_a_progress_field_of_the_wrong_type(run: Path, capsys: Any, one_sentence: Any,
                                                              field: str, value: Any) -> None:
    path = run / runs.CHECKPOINT
    tensors, metadata = runs.read_tensors(path, "test")
    state = json.loads(metadata["checkpoint"])
    state["progress"][field] = value
    save_file(tensors, str(path), metadata={"checkpoint": json.dumps(state)})
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, [*TRAIN, "--epochs", "2", "--out", str(run), "--resume"], str(path))
    assert field in err
    assert snapshot(run) == before


@pytest.mark.parametrize("damage", ["weights-int", "weights-inf"])
def test_damaged_model_weights_never_reach_eval_json(run: Path, capsys: Any, one_sentence: Any,
                                                     damage: str) -> None:
    path = run / runs.MODEL
    tensors = load_file(str(path))
    if damage == "weights-int":
        tensors["q_mu.weight"] = tensors["q_mu.weight"].to(torch.int32)
    else:
        tensors["q_mu.bias"][0] = float("nan")
    save_file(tensors, str(path))
    cli_bad(capsys, one_sentence, ["eval", str(run), "--k", "2", "--no-progress"], str(path))
    assert not (run / runs.EVAL).exists()
    # sample loads the model through the same check (`runs.load_weights`): no image of it either
    cli_bad(capsys, one_sentence, ["sample", str(run), "-n", "2"], str(path))
    assert not (run / "figures").exists()


@pytest.mark.parametrize("edit", ["sections-list", "section-string", "negative-latent", "not-utf8"])
def test_a_hand_edited_config_json(run: Path, capsys: Any, one_sentence: Any, edit: str) -> None:
    path = run / runs.CONFIG
    config = json.loads(path.read_text())
    if edit == "sections-list":
        path.write_text(json.dumps(list(config.values())))
    elif edit == "section-string":
        path.write_text(json.dumps({**config, "model": "mlp"}))
    elif edit == "negative-latent":
        path.write_text(json.dumps({**config, "model": {**config["model"], "latent": -4}}))
    else:
        path.write_bytes(b"\xff\xfe" + path.read_bytes())
    before = snapshot(run)
    for argv in (["eval", str(run), "--k", "2", "--no-progress"], ["sample", str(run), "-n", "2"],
                 [*TRAIN, "--epochs", "2", "--out", str(run), "--resume"]):
        cli_bad(capsys, one_sentence, argv, str(path))
    assert snapshot(run) == before


@pytest.mark.parametrize("content", [b"\xff\xfe{}\n", b'{"epoch": "1"}\n{"epoch": 2}\n',
                                     b'[1, 2]\n{"epoch": 2}\n', b'{"epoch": 1, "val_neg_elbo": "x"}\n'])
def test_a_hand_edited_metrics_file(run: Path, capsys: Any, one_sentence: Any, content: bytes) -> None:
    (run / runs.METRICS).write_bytes(content)
    before = snapshot(run)
    cli_bad(capsys, one_sentence, ["report", str(run), "--k", "2"], runs.METRICS)
    assert snapshot(run) == before


@pytest.mark.parametrize("field, value", [("test_nll", "237"), ("k", 2.5), ("images", None),
                                          ("active_units", True)])
def test_a_hand_edited_eval_json(run: Path, capsys: Any, one_sentence: Any, field: str, value: Any) -> None:
    assert main(["eval", str(run), "--k", "2", "--no-progress", "--json"]) == 0
    path = run / runs.EVAL
    result = json.loads(path.read_text())
    result[field] = value
    path.write_text(json.dumps(result))
    before = snapshot(run)
    err = cli_bad(capsys, one_sentence, ["report", str(run)], str(path))
    assert field in err
    assert snapshot(run) == before


def test_a_probe_with_one_class_in_its_training_labels(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.data import load as load_mod
    from vaekit.evaluate.run import evaluate_run

    real = load_mod.load_configured

    def one_class(*args: Any, **kwargs: Any) -> Any:
        ds = real(*args, **kwargs)
        ds.train.labels = torch.zeros_like(ds.train.labels)
        return ds

    monkeypatch.setattr("vaekit.runs.load.load_configured", one_class)  # the run's own data is read there
    # the labels are changed in memory on purpose: not the data the checkpoint's hash records
    monkeypatch.setattr("vaekit.evaluate.run.check_trained_data", lambda *args, **kwargs: None)
    result = evaluate_run(run, k=2, progress=False, write=False)
    assert result["probe_accuracy"] is None and result["test_nll"] > 0


# ----------------------------------------------------------------------------- 14. work without a bound


def test_eval_k_beyond_the_cap_says_the_cost(run: Path, capsys: Any, one_sentence: Any) -> None:
    start = time.perf_counter()
    err = cli_bad(capsys, one_sentence, ["eval", str(run), "--k", str(10**9), "--no-progress"], "--force")
    assert time.perf_counter() - start < 30
    assert "decoder passes" in err and "hours" in err
    assert not (run / runs.EVAL).exists()


@pytest.mark.parametrize("k", [10**9 + 1, 10**23])
def test_a_k_past_any_machine_is_refused_with_force_too(run: Path, capsys: Any, one_sentence: Any,
                                                       k: int) -> None:
    """More than a billion decoder passes an image: days of work on one image, refused at once."""
    from vaekit.evaluate.run import MAX_FORCED_K

    assert k > MAX_FORCED_K
    start = time.perf_counter()
    cli_bad(capsys, one_sentence, ["eval", str(run), "--k", str(k), "--force", "--no-progress"], f"{k:,}")
    assert time.perf_counter() - start < 30
    assert not (run / runs.EVAL).exists()


def test_force_says_the_cost_before_it_runs(run: Path, capsys: Any) -> None:
    """`--force` runs what it allows, after saying on stderr what it costs (as a refusal would)."""
    capsys.readouterr()
    argv = ["eval", str(run), "--k", "100001", "--limit", "1", "--force", "--no-probe", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "k = 100,001 importance samples on 1 image would take" in err and "--force" in err, err
    assert "(an estimate: ~" in err and "longer on a busy machine" in err, err


def test_a_small_cost_past_the_cap_is_said_in_seconds(run: Path, capsys: Any, one_sentence: Any) -> None:
    """One image at k = 200,000: a fraction of a second of work, said so (not '~0.0 hours')."""
    err = cli_bad(capsys, one_sentence, ["eval", str(run), "--k", "200000", "--limit", "1", "--no-progress"],
                  "--force")
    assert "on 1 image would" in err and re.search(r"~[0-9.]+ seconds", err), err


@pytest.mark.parametrize("flags", [["-n", "100000"], ["-n", "4", "--ncols", "-2"],
                                   ["-n", "4", "--ncols", "0"], ["-n", "0"]])
def test_sample_bounds(run: Path, capsys: Any, one_sentence: Any, flags: list[str]) -> None:
    start = time.perf_counter()
    cli_bad(capsys, one_sentence, ["sample", str(run), *flags])
    assert time.perf_counter() - start < 30
    assert not (run / "figures").exists()


def test_the_best_model_still_reproduces_its_validation_after_all_this(run: Path) -> None:
    """The guards do not change what a good run is: its model still gives its own numbers."""
    loaded = runs.load_run(run)
    from vaekit.data.binarize import eval_images
    from vaekit.data.load import load_dataset

    ds = load_dataset("digits")
    again = validate(loaded.model, eval_images(ds.val.images, loaded.config.resolved_binarize()))
    assert again["neg_elbo"] == pytest.approx(runs.read_metrics(run)[-1]["val_neg_elbo"], rel=1e-5)
