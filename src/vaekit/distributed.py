"""Training past one process: `torch.distributed` (gloo on a CPU, nccl on CUDA), launched by
`torchrun` (or `vaekit train --nproc N`, which starts it for one machine). No process pool of our
own: the ranks, the rendezvous and the fault handling are torchrun's. The engine that splits a batch
and all-reduces its gradients, `vaekit.train.engines.DistributedEngine`, is built on this.

    world()                   this process's World (rank, size), the process group started, when
                              torchrun launched it with WORLD_SIZE > 1; None for a single process
                              (torch.distributed is then never touched)
    share(total, w)           the rows of a global batch that are this rank's
    launch(n, argv)           `python -m torch.distributed.run --standalone --nproc_per_node n -m
                              vaekit ARGV`: the shortcut behind `--nproc`

How N processes end with the weights of one (same seed, same global batch, up to rounding):

- every rank draws the same seeded permutation and prepares the whole global batch of
  `--batch-size` images (its binarization or augmentation draws are those one process makes), then
  keeps its share: the contiguous rows [start, stop) of `torch.tensor_split` (`share`);
- the engine draws the eps of the whole global batch, as one process would, and uses its share's
  rows (`engines.VAEEngine.share`), so no draw depends on the rank or on the world size: a run
  resumes exactly under another world size too;
- a rank's gradient is of the mean over its b_r images; weighted by b_r / B and summed over the
  ranks (all_reduce SUM of one flat float32 buffer) it is the gradient of the global batch mean,
  the same for every rank, so every rank's optimizer takes the same step;
- the batch sums are all-reduced too (float64): every rank sees the global batch's loss, stops on
  the same NaN and writes the same metrics; validation runs whole on every rank (same weights, same
  seeded draws: the same numbers, the same early-stopping decision); rank 0 alone writes files and
  prints.

What is not the same as one process: batch norm's statistics are per rank (as under DDP without
SyncBatchNorm), and the summation order of the gradients (float32: about 1e-7 relative per step).
The score estimator (a running baseline from each rank's draws) is refused with more than one
process.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaekit.config import RANK_ERRORS_ENV, env_int, rank_errors_value, seconds_of
from vaekit.errors import LOST_PEER_STATUS, ConfigError, PeerLost

LAUNCHER_ENV = "VAEKIT_LAUNCHER_PID"  # set by `launch` for its ranks: the process they end with
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal a process gets when its parent ends
TIMEOUT_ENV = "VAEKIT_DIST_TIMEOUT"  # seconds a collective waits for a dead or late rank
DEFAULT_TIMEOUT = 60.0
MIN_TIMEOUT = 1.0  # less, and a rendezvous times out before the ranks have started
MAX_WORLD = 1 << 20  # ranks: more is a typo
MAX_TIMEOUT = 7 * 86_400.0  # a week: longer is a typo (and inf overflows the C++ timeout)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks."""

    rank: int
    size: int

    @property
    def writer(self) -> bool:
        """Rank 0 writes the run's files and prints."""
        return self.rank == 0

    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum `t` over the ranks, in place; every rank gets the sum. `PeerLost` if another rank
        is gone (killed: gloo's 'Connection closed by peer') or did not come within the timeout."""
        import torch.distributed as dist  # only ever imported by a distributed run

        global _LOST
        try:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        except RuntimeError as err:  # DistBackendError, or gloo's plain RuntimeError
            _LOST = True
            reason = (str(err).splitlines() or [type(err).__name__])[0].rstrip(".")[:200]
            raise PeerLost(f"rank {self.rank} of {self.size} lost the other ranks in a collective "
                           f"({reason}); torchrun names the rank that ended first.") from None
        return t

    def agree(self, ok: bool) -> bool:
        """True on every rank when every rank is ok (a refusal on one stops them all)."""
        flag = torch.tensor([0.0 if ok else 1.0])
        return float(self.all_reduce(flag)) == 0.0


def timeout_seconds(text: str | None) -> float:
    """VAEKIT_DIST_TIMEOUT's seconds: a number in [MIN_TIMEOUT, a week], DEFAULT_TIMEOUT when unset."""
    return seconds_of(TIMEOUT_ENV, text, MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT)


def place() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) as torchrun sets them, None when WORLD_SIZE is unset or 1; each checked
    (ASCII digits, RANK in [0, WORLD_SIZE), LOCAL_RANK in [0, LOCAL_WORLD_SIZE); RANK, MASTER_ADDR
    and MASTER_PORT set beside a WORLD_SIZE > 1) before any rendezvous, so a wrong one is one
    sentence, not a wait for the timeout."""
    size = env_int("WORLD_SIZE", 1, MAX_WORLD)
    given = env_int("RANK", 0, MAX_WORLD - 1) if size is None else None  # not a number: that sentence
    if given:  # a rank of no world (0, however written, is the one process's)
        raise ConfigError(f"RANK is {given}, but WORLD_SIZE is not set, as torchrun sets both in each "
                          "process it starts; unset RANK, or launch the command with torchrun.")
    rank = env_int("RANK", 0, (size or 1) - 1)
    local_size = env_int("LOCAL_WORLD_SIZE", 1, size or 1)
    env_int("LOCAL_RANK", 0, (local_size or size or 1) - 1)
    if size is None or size == 1:
        return None
    unset = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if unset:  # WORLD_SIZE alone (left in a shell's environment) is not a launch: there is no one to join
        named = " and ".join([", ".join(unset[:-1]), unset[-1]] if len(unset) > 1 else unset)
        raise ConfigError(f"WORLD_SIZE is {size}, but {named} "
                          f"{'is' if len(unset) == 1 else 'are'} not set, as torchrun sets them in each "
                          "process it starts; launch the command with torchrun (or `vaekit train "
                          "--nproc`), or unset WORLD_SIZE.")
    return rank or 0, size


_WORLD: World | None = None
_LOST = False  # a collective of this process lost the other ranks (`World.all_reduce`): see `_finish`


def world(device: str = "cpu") -> World | None:
    """The World of a process launched by torchrun with WORLD_SIZE > 1 (its process group started
    once: gloo on a CPU, nccl for CUDA; collectives wait VAEKIT_DIST_TIMEOUT seconds, default 60,
    for a rank that died), else None. A rendezvous that cannot be reached is one sentence."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    placed = place()
    if placed is None:
        return None
    import torch.distributed as dist  # only ever imported by a distributed run

    rank, size = placed
    _end_with_launcher()
    timeout = timeout_seconds(os.environ.get(TIMEOUT_ENV))
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" and torch.cuda.is_available() else "gloo"
        try:
            with _held_stderr():  # torch's C++ stack frames of a failed rendezvous: not the user's
                dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        except (RuntimeError, ValueError, OSError) as err:
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise ConfigError(f"rank {rank} of {size} could not join the rendezvous at {where} in at most "
                              f"{timeout:g} s ({TIMEOUT_ENV}; torch says: "  # its own figure may be rounded
                              f"{str(err).splitlines()[0].rstrip('.')[:200]}).") from None
    _WORLD = World(rank, size)
    atexit.register(_finish)
    return _WORLD


@contextlib.contextmanager
def _held_stderr() -> Iterator[None]:
    """What is written to file descriptor 2 (the C++ runtime's log too) while the body runs, held
    back and written out only if the body succeeds: a refused rendezvous is one sentence."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        done = False
        try:
            yield
            done = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if done:
                held.seek(0)
                os.write(2, held.read())


def _end_with_launcher() -> None:
    """A rank of `vaekit train --nproc` (LAUNCHER_ENV: the pid of the process that launched it) is
    sent SIGTERM when that process ends, however it ends (kill -9 too: Linux's prctl
    PR_SET_PDEATHSIG), so that no rank trains on, holding the run, once its launcher is gone; and
    ends at once if the launcher ended before the signal was set. Under a torchrun of the user's,
    or where prctl is not there, nothing is done."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != launcher:
        os.kill(os.getpid(), signal.SIGTERM)


def _finish() -> None:
    """At exit: wait for the other ranks, then close the process group. A rank that leaves while
    another still works (rank 0 writing eval.json) would tear gloo down under it: the C++ runtime
    then aborts the process ("terminate called without an active exception"). A rank that lost the
    others (`PeerLost`) ends at once with LOST_PEER_STATUS, its output flushed, gloo left as it is:
    a barrier, a teardown or the interpreter's own clean-up under a dead peer can abort it the
    same way, and the launcher would name it as killed by SIGABRT."""
    import torch.distributed as dist  # only ever imported by a distributed run

    if _LOST:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken stream: nothing left to say
                stream.flush()
        os._exit(LOST_PEER_STATUS)
    if dist.is_initialized():
        with contextlib.suppress(Exception):  # a dead peer: torchrun is already ending the run
            dist.barrier()
            dist.destroy_process_group()


def share(total: int, w: World) -> tuple[int, int]:
    """[start, stop) of rank w.rank's rows of a global batch of `total` rows: contiguous, sizes
    differing by at most 1 (`torch.tensor_split`'s rule: the first total % size ranks get one more)."""
    base, extra = divmod(total, w.size)
    start = w.rank * base + min(w.rank, extra)
    return start, start + base + (1 if w.rank < extra else 0)


def check_batches(n: int, batch_size: int, w: World) -> None:
    """Every global batch of an epoch over n images must give each rank at least one image."""
    sizes = {min(batch_size, n)} | ({n % batch_size} if n % batch_size else set())
    if min(sizes) < w.size:
        which = "a batch" if min(sizes) == min(batch_size, n) else (
            f"the last batch of an epoch ({n:,} images in batches of {batch_size:,})")
        raise ConfigError(f"{which} holds {min(sizes)} image{'s' * (min(sizes) != 1)}, which cannot be "
                          f"split over {w.size} processes; use a --batch-size of at least {w.size} whose "
                          "last batch has as many too, or fewer processes.")


def check_estimator(estimator: str) -> None:
    """Refuse an estimator that cannot run over several processes (the score estimator's running
    baseline is of one process's draws); `vaekit train --nproc` asks it before starting them."""
    if estimator == "score":
        raise ConfigError("--estimator score keeps a baseline of one process's draws; train it with "
                          "one process.")


def check_nproc(nproc: int, device: str) -> None:
    """Refuse more processes than the CPU cores this process may use (`os.sched_getaffinity`) for a
    run on the CPU: each rank computes on its own cores, so more ranks share them and the run is
    slower than with one process a core. A CUDA run is not bounded here."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return
    cores = _cores()
    if nproc > cores:
        raise ConfigError(f"--nproc {nproc} is more processes than the {cores} CPU core"
                          f"{'s' if cores > 1 else ''} this process may use; on the CPU each process "
                          "needs a core of its own (more share them and train slower than fewer), so "
                          f"use --nproc {cores} or fewer.")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set (what the ranks inherit), as it was after."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def launch(nproc: int, argv: Sequence[str], threads: int = 0) -> int:
    """Run `vaekit ARGV` in `nproc` processes on this machine under torchrun, started in this
    process (`torch.distributed.run`); 0 when every rank ended well. VAEKIT_DIST_TIMEOUT is checked
    first. A rank's error sentence is left in a folder (RANK_ERRORS_ENV, set here whatever it was;
    `vaekit.cli.say`), not printed: the lowest rank's sentence is one ConfigError here, without
    torchrun's report (the ranks refuse alike, in words that may differ: a time measured). A rank
    that ended otherwise (a crash: its own output says why; a signal) is one line and status 1
    (`ranks_ended`); the ranks that then lost it in a collective end silently (`PeerLost`).
    OMP_NUM_THREADS, unless set, is the ranks' `threads` (--threads; 0: C cores / N processes,
    as `train.threads.session_threads` chooses), which torchrun would otherwise set to 1 with a
    banner. The ranks end with this process, however it ends (`_end_with_launcher`)."""
    timeout_seconds(os.environ.get(TIMEOUT_ENV))
    from torch.distributed import run as torchrun  # only ever imported by --nproc
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):  # its reports of a failed rank: ours below
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = torchrun.parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "vaekit", *argv])
    omp = os.environ.get("OMP_NUM_THREADS") or str(threads or max(1, _cores() // nproc))
    with tempfile.TemporaryDirectory(prefix="vaekit-ranks-") as folder, _environment(
            {RANK_ERRORS_ENV: rank_errors_value(folder), "OMP_NUM_THREADS": omp,
             LAUNCHER_ENV: str(os.getpid())}):
        try:
            torchrun.run(args)
        except ChildFailedError as failed:
            said = sorted(Path(folder).iterdir(), key=_rank_of)
            if said:
                raise ConfigError(said[0].read_text(errors="replace")) from None
            print(f"vaekit: {ranks_ended(failed.failures, nproc)}", file=sys.stderr)
            return 1
        except SignalException as stopped:
            print("vaekit: interrupted", file=sys.stderr)
            return 128 + int(stopped.sigval)
    return 0


def ranks_ended(failures: Mapping[int, Any], nproc: int) -> str:
    """The sentence for ranks of `nproc` that ended without one of their own (`failures`:
    torchrun's, rank -> a ProcessFailure, exitcode -N for signal N, in the order torchrun found
    them ended: those that ended by themselves first, then those it stopped with SIGTERM when it
    saw them). Ranks that only lost the others (LOST_PEER_STATUS), and those torchrun stopped, are
    not named as the cause; where every signal is SIGTERM, the rank torchrun found ended first is."""
    codes = {rank: int(failure.exitcode) for rank, failure in failures.items()}
    crashed = {r: c for r, c in codes.items() if c > 0 and c != LOST_PEER_STATUS}
    signalled = {r: -c for r, c in codes.items() if c < 0}
    killed = {r: n for r, n in signalled.items() if n != signal.SIGTERM} or dict(list(signalled.items())[:1])
    named = crashed or killed
    others = "; the other ranks were stopped" if 0 < len(named) < nproc else ""
    if crashed:
        ranks = ", ".join(f"rank {r} (exit status {c})" for r, c in crashed.items())
        return f"{ranks} ended with an error (its output above says why){others}."
    if killed:
        ranks = ", ".join(f"rank {r} was killed by signal {_signal_name(n)}" for r, n in killed.items())
        return f"{ranks}{others}."
    return "the ranks lost each other in a collective (a network error, or a rank that came too late)."


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _rank_of(sentence: Path) -> tuple[int, str]:
    """A rank's error file ('rank-3', `config.rank_error_file`) by its rank, the others after."""
    rank = sentence.name.removeprefix("rank-")
    return (int(rank), "") if rank.isdigit() and len(rank) <= 19 else (MAX_WORLD + 1, sentence.name)
