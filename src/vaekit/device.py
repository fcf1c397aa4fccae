"""Where torch computes: the device of a run (cpu, cuda, auto) and how many CPU threads it uses
(what was asked for, or the cores other processes leave idle). Shared by training, evaluation and
the benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator

import torch

from vaekit.errors import ConfigError


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def idle_cores(sample_seconds: float = 0.3) -> float | None:
    """Cores left idle by the other processes, from two readings of /proc/stat (Linux), or None.

    The first line of /proc/stat counts the jiffies every CPU spent in user, nice, system, idle,
    iowait, ... since boot; idle cores = cores * delta(idle + iowait) / delta(all).
    """
    def read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return values[3] + values[4], sum(values)

    try:
        idle0, total0 = read()
        time.sleep(sample_seconds)
        idle1, total1 = read()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0)


def choose_threads(requested: int) -> int:
    """`requested` threads, or for 0 the cores that other processes leave idle (at least 1).

    Why not always all cores: torch splits each operation across its threads and waits for the
    slowest, so when another process holds one of two cores, two threads run an epoch many times
    slower than one thread does (measured here: 2.7 s -> 20-120 s). The count is chosen once per
    run and kept on resume, since results depend (slightly) on it.
    """
    cores = available_cores()
    if requested > 0:
        return requested
    idle = idle_cores()
    return cores if idle is None else max(1, min(cores, int(idle + 0.2)))


def set_threads(n: int) -> int:
    """Set torch's CPU threads to `choose_threads(n)` and return the number set."""
    torch.set_num_threads(choose_threads(n))
    return torch.get_num_threads()


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Subnormal floats (|x| < 1.2e-38 in float32) read and written as zero by the CPU while the
    block runs (x86's FTZ/DAZ through `torch.set_flush_denormal`), then the default again.

    Why: a CPU takes its slow path on every subnormal operand. Adam's second moments and the
    gradients of weights that rarely see a signal (pixels that are almost always 0) drift into that
    range as training goes on: an epoch of the autoregressive MLP VAE of
    configs/fashion-mnist-best.toml went from 3.0 s to 3.6 s over 8 epochs, and 3.3 s to 4.5 s over
    a 20-minute run, and stays at 3.0 s with them flushed (docs/benchmarks.md). Numbers below the
    float32 range become 0; everything else is computed as before. Where the CPU cannot flush
    (not x86 with SSE3) this does nothing.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (cuda when torch sees a CUDA device, else cpu) as a torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device here.")
    return torch.device(name)


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (getrusage's ru_maxrss, KiB on
    Linux): what a run cost the machine, dataset and torch included."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
