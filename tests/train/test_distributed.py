"""Training on torch.distributed (vaekit.distributed, vaekit.train.engines.DistributedEngine): 2
processes under torchrun (gloo, 1 thread each) against 1 process on scikit-learn's digits, held to
float32 rounding; resume under DDP; the gradient reduction shown to matter; a killed rank; the
refusals. Each torchrun start costs
a few seconds, so the runs are short and shared."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from vaekit import runs
from vaekit.cli import main, without_nproc
from vaekit.distributed import World, check_batches, share
from vaekit.errors import ConfigError

TOL = 1e-5  # relative, max over the weights: what N processes and 1 reach (measured: ~3e-7)
ARGS = ["--data", "digits", "--hidden", "32", "--latent", "4", "--batch-size", "64", "--threads", "1",
        "--no-progress"]
ENV = {**os.environ, "VAEKIT_DIST_TIMEOUT": "20", "OMP_NUM_THREADS": "1"}


def torchrun(out: Path, *extra: str, script: Path | None = None, nproc: int = 2,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    target = [str(script)] if script else ["-m", "vaekit", "train"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               *target, *ARGS, "--out", str(out), *extra]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


def single(out: Path, *extra: str) -> None:
    assert main(["train", *ARGS, "--out", str(out), *extra]) == 0


def weights(run: Path, name: str = runs.CHECKPOINT) -> dict[str, torch.Tensor]:
    return runs.read_tensors(run / name, "test")[0]


def assert_same_weights(a: Path, b: Path) -> None:
    ta, tb = weights(a), weights(b)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def max_relative(a: Path, b: Path) -> float:
    ta, tb = weights(a), weights(b)
    assert ta.keys() == tb.keys()
    return max(float((ta[k] - tb[k]).abs().max() / ta[k].abs().max().clamp_min(1e-12))
               for k in ta if ta[k].is_floating_point() and ta[k].numel())


def metrics(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in runs.read_metrics(run)]


def assert_close_metrics(a: Path, b: Path, rel: float = 1e-5) -> None:
    ma, mb = metrics(a), metrics(b)
    assert [r.keys() for r in ma] == [r.keys() for r in mb]
    for ra, rb in zip(ma, mb, strict=True):
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=rel, abs=1e-9), k


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same run (autograd engine, and the hand-derived one) in 1 and in 2 processes."""
    root = tmp_path_factory.mktemp("ddp")
    paths = {}
    for engine in ("autograd", "auto"):
        paths[f"one-{engine}"] = root / f"one-{engine}"
        single(paths[f"one-{engine}"], "--epochs", "3", "--engine", engine)
        paths[f"two-{engine}"] = root / f"two-{engine}"
        done = torchrun(paths[f"two-{engine}"], "--epochs", "3", "--engine", engine)
        assert done.returncode == 0, done.stderr[-3000:]
        paths[f"log-{engine}"] = root / f"log-{engine}.txt"
        paths[f"log-{engine}"].write_text(done.stdout)
    return paths


@pytest.mark.parametrize("engine", ["autograd", "auto"])
def test_two_processes_train_the_run_of_one(one_and_two: dict[str, Path], engine: str) -> None:
    one, two = one_and_two[f"one-{engine}"], one_and_two[f"two-{engine}"]
    assert max_relative(one, two) < TOL  # 69 steps of Adam
    assert_close_metrics(one, two)
    state = json.loads((two / runs.CHECKPOINT_JSON).read_text())
    assert state["world_size"] == 2 and state["epoch"] == 3
    log = one_and_two[f"log-{engine}"].read_text()
    assert log.count("best validation -ELBO") == 1 and "2 processes" in log  # rank 0 alone prints


def test_without_the_reduction_the_ranks_drift(one_and_two: dict[str, Path], tmp_path: Path) -> None:
    """The hand-derived engine writes .grad outside autograd: if its gradients were not
    all-reduced, each rank would step on its own half batch and the run would leave the
    single-process one (and the ranks each other)."""
    script = tmp_path / "no_reduce.py"
    script.write_text(
        "import sys, torch\n"
        "from vaekit import distributed\n"
        "from vaekit.train import engines\n"
        "def only_sums(self, model, x, beta, generator, y=None):\n"
        "    total = x.shape[0]\n"
        "    start, stop = distributed.share(total, self.world)\n"
        "    self.inner.share = (start, stop, total)\n"
        "    sums = self.inner.loss_and_grads(model, x[start:stop], beta, generator)\n"
        "    return self.world.all_reduce(sums.clone())\n"
        "engines.DistributedEngine.loss_and_grads = only_sums\n"
        "from vaekit.cli import main\n"
        "sys.exit(main(['train', *sys.argv[1:]]))\n")
    done = torchrun(tmp_path / "drift", "--epochs", "3", "--engine", "auto", script=script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max_relative(one_and_two["one-auto"], tmp_path / "drift") > 100 * TOL


def test_resume_under_ddp_and_under_another_world_size(one_and_two: dict[str, Path], tmp_path: Path) -> None:
    part = tmp_path / "part"
    assert torchrun(part, "--epochs", "1", "--engine", "autograd").returncode == 0
    done = torchrun(part, "--epochs", "3", "--engine", "autograd", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    full = one_and_two["two-autograd"]
    assert_same_weights(full, part)
    assert metrics(full) == metrics(part)
    # the draws do not depend on the world size: resumed by one process, within rounding
    other = tmp_path / "other"
    assert torchrun(other, "--epochs", "1", "--engine", "autograd").returncode == 0
    single(other, "--epochs", "3", "--engine", "autograd", "--resume")
    assert max_relative(one_and_two["one-autograd"], other) < TOL


def test_a_killed_rank_ends_the_run_and_resume_carries_on(one_and_two: dict[str, Path],
                                                          tmp_path: Path) -> None:
    script = tmp_path / "kill.py"
    script.write_text(
        "import os, signal, sys\n"
        "from vaekit.train import engines\n"
        "real = engines.DistributedEngine.loss_and_grads\n"
        "calls = [0]\n"
        "def dying(self, *a, **k):\n"
        "    calls[0] += 1\n"
        "    if self.world.rank == 1 and calls[0] == 23 + 5:  # epoch 2, step 5\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(self, *a, **k)\n"
        "engines.DistributedEngine.loss_and_grads = dying\n"
        "from vaekit.cli import main\n"
        "sys.exit(main(['train', *sys.argv[1:]]))\n")
    out = tmp_path / "run"
    start = time.monotonic()
    done = torchrun(out, "--epochs", "3", "--engine", "autograd", script=script)
    assert done.returncode != 0 and time.monotonic() - start < 120
    assert json.loads((out / runs.CHECKPOINT_JSON).read_text())["epoch"] == 1  # the last good one
    resumed = torchrun(out, "--epochs", "3", "--engine", "autograd", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    full = one_and_two["two-autograd"]
    assert_same_weights(full, out)


def rank_pid(rank: int, out: Path) -> int | None:
    """The process of vaekit train into `out` whose environment has RANK=`rank` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and str(out).encode() in (entry / "cmdline").read_bytes()
                    and f"RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0")):
                return int(entry.name)
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank in /proc")
@pytest.mark.parametrize(("rank", "sig"), [(1, signal.SIGKILL), (0, signal.SIGTERM)])
def test_a_rank_killed_by_a_signal_is_named_without_a_traceback(tmp_path: Path, rank: int,
                                                                sig: signal.Signals) -> None:
    """`train --nproc 2`, one rank killed after the first epoch's metrics: the other's collective
    fails under it (gloo: 'Connection closed by peer'), or torchrun stops it first (with SIGTERM:
    SIGTERM to rank 0 named both ranks as killed by it). Either way one sentence naming the rank
    and the signal, no traceback, and the checkpoint of the last epoch whole (the resume is
    test_a_killed_rank_ends_the_run_and_resume_carries_on's)."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vaekit", "train", "--data", "digits", "--hidden", "16", "--latent", "2",
               "--epochs", "200", "--threads", "1", "--no-progress", "--nproc", "2", "--out", str(out)]
    launcher = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    deadline = time.monotonic() + 120
    try:
        pid = None
        while pid is None and launcher.poll() is None and time.monotonic() < deadline:
            if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n"):
                pid = rank_pid(rank, out)
            time.sleep(0.05)
        assert pid is not None, f"rank {rank} or its first epoch never appeared"
        os.kill(pid, sig)
        _, err = launcher.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 1
    assert err == f"vaekit: rank {rank} was killed by signal {sig.name}; the other ranks were stopped.\n", err
    assert json.loads((out / runs.CHECKPOINT_JSON).read_text())["epoch"] >= 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_ranks_end_with_their_launcher_killed(tmp_path: Path) -> None:
    """`train --nproc 2` whose launcher is killed with SIGKILL (nothing of it runs after): its ranks
    end too, within seconds, instead of training on with the run held; the run resumes after."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vaekit", "train", "--data", "digits", "--hidden", "16", "--latent", "2",
               "--epochs", "3000", "--threads", "1", "--no-progress", "--nproc", "2", "--out", str(out)]
    launcher = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    pids: list[int] = []
    try:
        while len(pids) < 2 and launcher.poll() is None and time.monotonic() < deadline:
            if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n"):
                pids = [p for p in (rank_pid(0, out), rank_pid(1, out)) if p is not None]
            time.sleep(0.05)
        assert len(pids) == 2, "the ranks or their first epoch never appeared"
        launcher.kill()
        launcher.wait()
        while any(Path(f"/proc/{p}").exists() and b"zombie" not in _state(p) for p in pids):
            assert time.monotonic() < deadline, "a rank trains on after its launcher was killed"
            time.sleep(0.05)
    finally:
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
    while runs.held_elsewhere(out):  # released once the last process holding it has ended
        assert time.monotonic() < deadline, "the run is still held after its launcher was killed"
        time.sleep(0.05)
    rows = len(runs.read_metrics(out))
    assert main([*command[3:command.index("--epochs")], "--epochs", str(rows + 1), "--threads", "1",
                 "--no-progress", "--out", str(out), "--resume"]) == 0


def _state(pid: int) -> bytes:
    """The State line of /proc/PID/status, lower-cased (b'' once the process is gone)."""
    try:
        return next((line.lower() for line in Path(f"/proc/{pid}/status").read_bytes().splitlines()
                     if line.startswith(b"State:")), b"")
    except OSError:
        return b""


def test_the_launcher_names_the_rank_that_ended_first() -> None:
    """torchrun's failures (exit status -N: signal N): a rank that lost the others (status
    LOST_PEER_STATUS) or that torchrun stopped (SIGTERM) after another ended is not the cause."""
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from vaekit.distributed import LOST_PEER_STATUS, ranks_ended

    def failures(**codes: int) -> dict[int, ProcessFailure]:
        return {int(r[1:]): ProcessFailure(int(r[1:]), 100 + int(r[1:]), code, "")
                for r, code in codes.items()}

    killed = "rank 1 was killed by signal SIGKILL; the other ranks were stopped."
    assert ranks_ended(failures(r0=-15, r1=-9), 2) == killed
    assert ranks_ended(failures(r0=LOST_PEER_STATUS, r1=-9), 2) == killed
    assert ranks_ended(failures(r1=-9), 2) == killed
    assert ranks_ended(failures(r0=-15, r1=1, r2=LOST_PEER_STATUS), 3) == (
        "rank 1 (exit status 1) ended with an error (its output above says why); the other ranks were "
        "stopped.")
    # SIGTERM to one rank, torchrun's SIGTERM to the other: both -15, the first found ended named
    # (both were named as killed); the order is torchrun's, the rank that ended by itself first
    for first, then in ((0, 1), (1, 0)):
        assert ranks_ended(failures(**{f"r{first}": -15, f"r{then}": -15}), 2) == (
            f"rank {first} was killed by signal SIGTERM; the other ranks were stopped.")
    assert ranks_ended(failures(r2=-15, r0=-15, r1=LOST_PEER_STATUS), 3) == (
        "rank 2 was killed by signal SIGTERM; the other ranks were stopped.")
    assert "lost each other" in ranks_ended(failures(r0=LOST_PEER_STATUS), 2)


def test_a_rank_that_lost_the_others_ends_without_touching_gloo(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a collective lost the other ranks, the exit neither waits at a barrier nor tears the
    process group down (either can abort the process in C++ under a dead peer): it ends at once
    with LOST_PEER_STATUS."""
    import torch.distributed as dist

    from vaekit import distributed
    from vaekit.errors import LOST_PEER_STATUS, PeerLost

    class Ended(BaseException):
        pass

    def lost(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Connection closed by peer [127.0.0.1]:29500")

    def ended(status: int) -> None:
        raise Ended(status)

    touched: list[str] = []
    monkeypatch.setattr(distributed, "_LOST", False)
    monkeypatch.setattr(dist, "all_reduce", lost)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: touched.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda *a, **k: touched.append("destroy"))
    monkeypatch.setattr(distributed.os, "_exit", ended)
    with pytest.raises(PeerLost, match="rank 0 of 2 lost the other ranks"):
        World(0, 2).agree(True)
    with pytest.raises(Ended) as end:
        distributed._finish()
    assert end.value.args == (LOST_PEER_STATUS,) and touched == []


RANK_LOSES_ITS_PEER = """
import os, signal
from vaekit.distributed import world
from vaekit.errors import LOST_PEER_STATUS, PeerLost
w = world()
w.agree(True)
if w.rank == 1:
    os.kill(os.getpid(), signal.SIGKILL)
try:
    while True:
        w.agree(True)
except PeerLost:
    raise SystemExit(LOST_PEER_STATUS)
"""


def test_a_rank_whose_peer_was_killed_ends_with_its_status_and_says_nothing() -> None:
    """Two real gloo processes (no torchrun, so nothing stops the survivor): rank 1 killed, rank 0
    ends with LOST_PEER_STATUS by itself, without a word from the C++ runtime on stderr."""
    import socket

    from vaekit.errors import LOST_PEER_STATUS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    place = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_LOSES_ITS_PEER], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**ENV, **place, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)]
    try:
        out, err = ranks[0].communicate(timeout=120)
        ranks[1].communicate(timeout=30)
    finally:
        for rank in ranks:
            if rank.poll() is None:
                rank.kill()
                rank.wait()
    assert ranks[1].returncode == -signal.SIGKILL
    assert (ranks[0].returncode, out, err) == (LOST_PEER_STATUS, "", ""), err


def test_nproc_starts_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "vaekit", "train", *ARGS, "--epochs", "1", "--nproc", "2",
                           "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / runs.CHECKPOINT_JSON).read_text())["world_size"] == 2
    assert without_nproc(["train", "--nproc", "2", "--out", "x", "--nproc=3"]) == ["train", "--out", "x"]


@pytest.mark.parametrize("command", ["train", "classify"])
def test_nproc_under_a_launcher_s_world_size_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        one_sentence: Any, command: str) -> None:
    """With WORLD_SIZE=1 set, `--nproc 2` trained in one process without a word (vaekit starts its
    ranks only where no launcher has): the flag would do nothing, so it is refused."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    out = tmp_path / "run"
    assert main([command, "--data", "digits", "--epochs", "1", "--nproc", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    one_sentence(err.removeprefix(f"vaekit {command}: error: "), "--nproc 2", "WORLD_SIZE", "'1'")
    assert not out.exists()


# ----------------------------------------------------------------------------- in one process


def test_shares_cover_the_batch_once() -> None:
    for total in (1, 7, 64, 65):
        for size in (1, 2, 3, 8):
            if size > total:
                continue
            parts = [share(total, World(r, size)) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            assert [p[1] - p[0] for p in parts] == [len(c) for c in torch.arange(total).tensor_split(size)]


def test_a_batch_smaller_than_the_world_is_one_sentence(one_sentence: Any) -> None:
    with pytest.raises(ConfigError) as err:
        check_batches(1437, 64, World(0, 32))  # the last batch: 29 images for 32 processes
    one_sentence(str(err.value), "the last batch of an epoch (1,437 images in batches of 64) holds 29 images",
                 "32 processes")
    check_batches(1437, 64, World(0, 29))
    with pytest.raises(ConfigError) as err:
        check_batches(1437, 2, World(0, 2))  # every batch has 2, the last 1
    one_sentence(str(err.value), "the last batch", "holds 1 image,")
    with pytest.raises(ConfigError) as err:
        check_batches(1437, 1, World(0, 2))
    one_sentence(str(err.value), "a batch holds 1 image,")


def test_an_unreachable_rendezvous_is_one_sentence(tmp_path: Path) -> None:
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9",
           "VAEKIT_DIST_TIMEOUT": "3"}
    done = subprocess.run([sys.executable, "-m", "vaekit", "train", *ARGS, "--epochs", "1", "--out",
                           str(tmp_path / "r")], env=env, capture_output=True, text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "rank 1 of 2 could not join the rendezvous at 127.0.0.1:9" in last, last
    assert "in at most 3 s (VAEKIT_DIST_TIMEOUT" in last, last  # the wait the user set, not torch's rounding


def test_distributed_eval_equals_single_process_eval(one_and_two: dict[str, Path], tmp_path: Path) -> None:
    """150 test images in batches of 20 (the last of 10) split over 2 ranks: the same numbers."""
    run = one_and_two["one-autograd"]
    flags = ["--k", "40", "--limit", "150", "--batch-size", "20", "--threads", "1", "--no-progress"]
    assert main(["eval", str(run), *flags]) == 0
    single_result = json.loads((run / runs.EVAL).read_text())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "vaekit", "eval", str(run), *flags, "--json"]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)  # rank 0 alone prints
    written = json.loads((run / runs.EVAL).read_text())
    assert printed == written and written["world_size"] == 2
    for key in single_result:
        if key not in ("seconds", "world_size"):
            assert written[key] == single_result[key], key


def test_a_classifier_in_two_processes(tmp_path: Path) -> None:
    """The dense preset (no batch norm, no dropout) trains the run of one process; rank 0 alone
    evaluates it and writes eval.json."""
    common = ["classify", "--data", "digits", "--preset", "dense", "--batch-size", "64", "--threads", "1",
              "--epochs", "2", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "vaekit", *common, "--out", str(tmp_path / "two")]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max_relative(tmp_path / "one", tmp_path / "two") < TOL
    assert done.stdout.count("test accuracy") == 1
    one, two = (json.loads((tmp_path / r / runs.EVAL).read_text()) for r in ("one", "two"))
    assert abs(one["accuracy"] - two["accuracy"]) <= 2 / one["images"]  # at most a rounding flip or two


@pytest.mark.parametrize("text", ["inf", "-5", "0", "nan", "1e300", "soon", "", "1e-300", "0.5", "1_0", "٣",
                                  " 5 "])
def test_a_timeout_that_is_not_a_number_of_seconds_is_one_sentence(text: str) -> None:
    """VAEKIT_DIST_TIMEOUT=inf overflowed the C++ timeout, -5 reached torch's own frames: each is
    refused before the rendezvous, naming the variable and the range."""
    from vaekit.distributed import TIMEOUT_ENV, timeout_seconds

    with pytest.raises(ConfigError, match=f"{TIMEOUT_ENV} must be a number of seconds from 1 to 604,800"):
        timeout_seconds(text)


def test_a_timeout_in_range_is_its_seconds() -> None:
    from vaekit.distributed import DEFAULT_TIMEOUT, timeout_seconds

    assert timeout_seconds(None) == DEFAULT_TIMEOUT
    assert timeout_seconds("2.5") == 2.5 and timeout_seconds("604800") == 604_800


def test_nproc_with_a_bad_timeout_is_one_sentence_before_torchrun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAEKIT_DIST_TIMEOUT", "inf")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["train", "--nproc", "2", "--data", "digits", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VAEKIT_DIST_TIMEOUT must be a number of seconds" in err
    assert not (tmp_path / "run").exists()


def test_a_timeout_of_1_second_is_the_least() -> None:
    """1e-300 s was read as 0 ms: each rank's rendezvous timed out at once, in C++ stack dumps."""
    from vaekit.distributed import MIN_TIMEOUT, timeout_seconds

    assert MIN_TIMEOUT == 1 and timeout_seconds("1") == 1.0


@pytest.mark.parametrize(("env", "named"), [
    ({"WORLD_SIZE": "٣"}, "WORLD_SIZE"), ({"WORLD_SIZE": "-5"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE"), ({"WORLD_SIZE": " 2"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK"),
    ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK"), ({"WORLD_SIZE": "2", "RANK": "9" * 23}, "RANK"),
    ({"WORLD_SIZE": "2", "RANK": "1_0"}, "RANK"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "2"}, "LOCAL_RANK"),
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "2"}, "LOCAL_RANK"),
    ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "3"}, "LOCAL_WORLD_SIZE")])
def test_a_place_torchrun_cannot_give_is_one_sentence_before_the_rendezvous(
        monkeypatch: pytest.MonkeyPatch, one_sentence: Any, env: dict[str, str], named: str) -> None:
    from vaekit import distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        distributed.world()  # refused before torch.distributed is touched: no rendezvous to wait for
    one_sentence(str(err.value), f"environment variable {named} must be an integer")


def test_a_place_torchrun_gives_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from vaekit.distributed import place

    for name, value in {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9"}.items():
        monkeypatch.setenv(name, value)
    assert place() == (3, 4)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert place() is None


def test_a_rank_without_a_world_size_is_named_so(monkeypatch: pytest.MonkeyPatch, one_sentence: Any) -> None:
    """RANK=1 alone was told "RANK must be an integer from 0 to 0", not why: no WORLD_SIZE."""
    from vaekit import distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, "_WORLD", None)
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError) as err:
        distributed.world()
    one_sentence(str(err.value), "RANK is 1, but WORLD_SIZE is not set", "unset RANK")
    for zero in ("0", "00"):  # rank 0 of one process, however written: nothing to say
        monkeypatch.setenv("RANK", zero)
        assert distributed.world() is None


@pytest.mark.parametrize(("env", "unset"), [
    ({"WORLD_SIZE": "2"}, "RANK, MASTER_ADDR and MASTER_PORT are not set"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR and MASTER_PORT are not set"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, "MASTER_PORT is not set")])
def test_a_world_size_left_in_the_environment_is_not_a_launch(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        one_sentence: Any, env: dict[str, str], unset: str) -> None:
    """WORLD_SIZE without the rest of what torchrun sets: one sentence naming what is missing,
    before any rendezvous (which waited for a RANK, then failed naming rank 0 at `?:?`)."""
    from vaekit import distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distributed, "_WORLD", None)
    with pytest.raises(ConfigError) as err:
        distributed.world()
    one_sentence(str(err.value), "WORLD_SIZE is 2", unset, "torchrun", "unset WORLD_SIZE")


@pytest.mark.parametrize("flags", [["--data", "bogusname"], ["--data", "digits", "--estimator", "score"],
                                   ["--data", "digits", "--nproc", "3"]])
def test_nproc_refuses_what_one_process_can_see_before_torchrun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flags: list[str]) -> None:
    """An unknown dataset, the score estimator, more processes than cores: one sentence, exit 2,
    no process started (each rank used to say it, then torchrun's traceback, exit 1)."""
    from vaekit import distributed

    def never(*_: Any) -> int:
        raise AssertionError("torchrun started")

    monkeypatch.setattr(distributed, "launch", never)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})  # 2 cores
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    nproc = [] if "--nproc" in flags else ["--nproc", "2"]
    assert main(["train", *nproc, *flags, "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vaekit train: error: "), err
    assert ("more processes than the 2 CPU cores" in err) == ("3" in flags)
    assert not (tmp_path / "run").exists()


def test_an_error_in_the_ranks_is_said_once_with_exit_2(tmp_path: Path) -> None:
    """Found by the ranks only (after loading the data): the sentence once, no torchrun report."""
    done = subprocess.run([sys.executable, "-m", "vaekit", "train", *ARGS, "--epochs", "1", "--nproc", "2",
                           "--prior", "vamp", "--pseudo-inputs", "5000", "--out", str(tmp_path / "run")],
                          env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("error:") == 1 and "model.pseudo_inputs is 5,000" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr


def test_a_refusal_in_two_ranks_is_said_once_without_torchrun_s_banner(tmp_path: Path) -> None:
    """A --time-budget the ranks refuse: each measures its own times, so their sentences differ and
    both were printed; OMP_NUM_THREADS unset drew torchrun's banner. A user's VAEKIT_RANK_ERRORS
    is the launcher's business: overridden, and its folder left alone."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    env = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"} | {"VAEKIT_RANK_ERRORS": str(theirs)}
    command = [sys.executable, "-m", "vaekit", "train", *ARGS, "--nproc", "2", "--time-budget", "1s", "--out",
               str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("is too short") == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "OMP_NUM_THREADS" not in done.stderr and not list(theirs.iterdir())


def test_the_launcher_says_the_lowest_rank_s_sentence(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real processes started as torchrun's agent starts ranks (children of the launcher) leave
    differing sentences through `vaekit.cli.say`: one ConfigError, rank 0's. The children saw
    OMP_NUM_THREADS = C / N (C cores, N processes: `session_threads`' count), and the user's own
    VAEKIT_RANK_ERRORS is back after."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from vaekit import distributed

    seen: dict[str, str] = {}

    def two_ranks(_: object) -> None:
        seen["omp"] = os.environ["OMP_NUM_THREADS"]
        children = [subprocess.Popen([sys.executable, "-c", "from vaekit.cli import say; "
                                      f"say('train', 'rank {rank} refuses after {rank + 1.5} s.')"],
                                     env={**os.environ, "RANK": str(rank)}) for rank in (1, 0)]
        assert [c.wait(timeout=60) for c in children] == [0, 0]
        raise ChildFailedError("vaekit", {r: ProcessFailure(r, 1, 2, "") for r in (0, 1)})

    def no_ranks(_: object) -> None:
        seen["omp"] = os.environ["OMP_NUM_THREADS"]
        raise ChildFailedError("vaekit", {0: ProcessFailure(0, 1, 1, "")})

    monkeypatch.setattr(torchrun, "run", two_ranks)
    monkeypatch.setattr(distributed, "_cores", lambda: 8)
    monkeypatch.setenv("VAEKIT_RANK_ERRORS", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(ConfigError) as err:
        distributed.launch(2, ["train"])
    assert str(err.value) == "rank 0 refuses after 1.5 s."
    assert seen["omp"] == "4" and os.environ["VAEKIT_RANK_ERRORS"] == str(tmp_path)
    assert "OMP_NUM_THREADS" not in os.environ and not list(tmp_path.iterdir())
    monkeypatch.setattr(torchrun, "run", no_ranks)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's count stands; --threads 2 when unset
    assert distributed.launch(2, ["train"]) == 1 and seen["omp"] == "3"
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert distributed.launch(2, ["train"], threads=2) == 1 and seen["omp"] == "2"


@pytest.mark.parametrize("value", ["{folder}", "x:{folder}", "{ppid}:{folder}"])
def test_a_user_s_rank_errors_variable_does_not_hide_the_sentence(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """VAEKIT_RANK_ERRORS left in a user's environment sent a single process's sentence to that
    folder, and nothing was printed: only the launcher's value, naming this process's parent, is
    read (the last case: a launcher's value, met by a process the launcher did not start)."""
    monkeypatch.setenv("VAEKIT_RANK_ERRORS", value.format(folder=tmp_path, ppid=os.getppid() + 1))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["train", "--data", "digits", "--epochs", "0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaekit train: error: ") and "epochs" in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_a_rendezvous_that_times_out_is_one_sentence(tmp_path: Path) -> None:
    """A rank whose MASTER_PORT has no one listening printed torch's C++ log and some 50 lines of
    stack frames before vaekit's sentence; now the sentence alone, exit 2."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "VAEKIT_DIST_TIMEOUT": "1"}
    code = ("from vaekit import distributed; from vaekit.cli import say\n"
            "try:\n    distributed.world()\n"
            "except Exception as err:\n    say('train', str(err)); raise SystemExit(2)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "could not join the rendezvous" in done.stderr, done.stderr
