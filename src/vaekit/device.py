"""Where torch computes: the device of a run (cpu, cuda, auto) and how many CPU threads it uses
(what was asked for, or the cores other processes leave idle). Shared by training, evaluation and
the benchmarks.

Also how the work shows itself to a person: the one progress bar (`progress_bar`) and bytes in
binary units (`format_bytes`); and the memory this process can still take (`host_available_bytes`,
`address_space_room`), read before a large allocation.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

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


def machine_jiffies() -> tuple[int, int]:
    """(busy, all) jiffies of every CPU since boot, from the first line of /proc/stat (Linux): busy
    is all but idle and iowait. OSError or ValueError where there is no such file."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    if len(values) < 5:
        raise ValueError("/proc/stat: too few fields")
    return sum(values) - values[3] - values[4], sum(values)


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process, all its threads, since it started."""
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """`--threads 0` for a whole run: torch's CPU threads follow the cores other processes leave.

    torch splits each operation over its threads and waits for the slowest: when another process
    takes one of two cores in the middle of a run, two threads make every operation wait for the
    thread that shares its core, and an epoch takes several times the 1-thread time (the figures are
    in docs/benchmarks.md, "Another process on a core"). `tick()`, called once per step, does
    nothing until `every` seconds have passed; then it reads the cores the other processes used
    since the last reading,

        others = cores * d(busy jiffies) / d(all jiffies) - d(this process's CPU seconds) / d(wall),

    and wants max(1, min(cores, int(cores - others + 0.2))) threads (`choose_threads`' rounding).
    The count changes when two readings in a row want the same other count, so one burst of another
    process does not move it. What torch computes depends slightly on its thread count: a run that
    must give the same numbers on every machine gives `--threads N`.
    """

    def __init__(self, every: float = 1.0, cores: int | None = None,
                 jiffies: Callable[[], tuple[int, int]] = machine_jiffies,
                 cpu_seconds: Callable[[], float] = own_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic,
                 set_count: Callable[[int], None] = torch.set_num_threads,
                 get_count: Callable[[], int] = torch.get_num_threads) -> None:
        self.every, self.cores = every, cores or (os.cpu_count() or 1)
        self._jiffies, self._cpu, self._clock = jiffies, cpu_seconds, clock
        self._set, self._get = set_count, get_count
        self.changes = 0  # how many times the count moved
        self.said = 0  # how many of them the run's log has told (`vaekit.train.fit`)
        self._pending: int | None = None
        self._last = self._reading()

    def _reading(self) -> tuple[float, float, tuple[int, int]] | None:
        try:
            return self._clock(), self._cpu(), self._jiffies()
        except (OSError, ValueError):
            return None

    def wanted(self, before: tuple[float, float, tuple[int, int]],
               after: tuple[float, float, tuple[int, int]]) -> int | None:
        """The threads the interval between two readings asks for, or None when it tells nothing."""
        wall, own = after[0] - before[0], after[1] - before[1]
        busy, total = after[2][0] - before[2][0], after[2][1] - before[2][1]
        if wall <= 0 or total <= 0:
            return None
        others = max(0.0, self.cores * busy / total - own / wall)
        return max(1, min(self.cores, int(self.cores - others + 0.2)))

    def on_step(self, _step: int, _sums: object, _images: int) -> bool:
        """`vaekit.train.loop.train_epoch`'s per-step hook: `tick`, and never end the epoch."""
        self.tick()
        return False

    def tick(self) -> None:
        """Once per step: every `every` seconds, re-read the load and set the thread count."""
        if self._last is None or self._clock() - self._last[0] < self.every:
            return
        now = self._reading()
        if now is None:
            self._last = None  # no /proc/stat: keep the count the run started with
            return
        want, self._last = self.wanted(self._last, now), now
        if want is None or want == self._get():
            self._pending = None
        elif want == self._pending:
            self._set(want)
            self.changes += 1
            self._pending = None
        else:
            self._pending = want


_flush_depth = 0  # nesting of flush_denormals blocks: only the outermost one switches
_can_flush = False  # what torch.set_flush_denormal(True) said on entering the outermost block


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Subnormal floats (|x| < 1.2e-38 in float32) read and written as zero by the CPU while the
    block runs (x86's FTZ/DAZ through `torch.set_flush_denormal`), then the default again. Blocks
    nest: an inner one leaves the setting to the outermost.

    Why: a CPU takes its slow path on every subnormal operand. Adam's moments and the gradients of
    weights that rarely see a signal (pixels that are almost always 0) drift into that range as
    training goes on, and the optimizer's step slows down epoch after epoch (docs/benchmarks.md,
    "Figures once kept in docstrings"). Numbers below the float32 range become 0; everything else
    is computed as before. Where the CPU cannot flush (not x86 with SSE3) this does nothing.

    Threads: the setting belongs to each thread (x86's MXCSR register); `torch.set_flush_denormal`
    sets the calling thread's, and threads started later copy it. Begun at the start of a process,
    before torch computes anything, the block reaches every kernel; begun later, some kernels still
    take the slow path. A worker thread keeps the setting it started with: after a matrix product
    has started torch's threads, a step over subnormal moments leaves the worker's share of them
    subnormal (`denormals_flushed` probes it). So `vaekit`'s CLI runs every command inside
    the block (`vaekit.cli.main`), as do the benchmarks; `fit` enters it too, for callers from
    Python, and says when it cannot reach every thread (`flush_incomplete`).
    """
    global _flush_depth, _can_flush
    if _flush_depth == 0:
        _can_flush = torch.set_flush_denormal(True)
    _flush_depth += 1
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0:
            torch.set_flush_denormal(False)


def _subnormal_count(t: torch.Tensor) -> int:
    """Entries of a float32 tensor whose bits are subnormal (exponent 0, mantissa not 0), read as
    integers: a float comparison would itself be flushed."""
    bits = t.view(torch.int32)
    return int((((bits >> 23) & 0xFF) == 0).logical_and((bits & 0x7FFFFF) != 0).sum())


def denormals_flushed(numel: int = 1 << 21) -> bool:
    """Whether the fused AdamW update (what `vaekit.train.optim` steps with) flushes subnormals in
    every thread it runs on now: Adam's first moment m set to subnormal bits (an integer fill, no
    float operation), one update m <- 0.9 m + 0.1 g with g = 0 over `numel` entries (enough for each
    thread to take a share); flushed, no subnormal is left."""
    m = torch.zeros(numel)
    m.view(torch.int32).fill_(1000)  # 1.4e-42
    zeros = [torch.zeros(numel) for _ in range(3)]
    torch._fused_adamw_([zeros[0]], [zeros[1]], [m], [zeros[2]], [], [torch.tensor(1.0)],
                        amsgrad=False, lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                        maximize=False, grad_scale=None, found_inf=None)
    return _subnormal_count(m) == 0


def flush_incomplete() -> bool:
    """Inside a `flush_denormals` block on a CPU that can flush: whether some thread still takes
    the slow path (the block began after torch's threads started)."""
    return _flush_depth > 0 and _can_flush and not denormals_flushed()


def resolve_device(name: str, asked_by: str = "--device cuda") -> torch.device:
    """'cpu', 'cuda' or 'auto' (cuda when torch sees a CUDA device, else cpu) as a torch.device;
    cuda where torch sees none is a ConfigError naming `asked_by`, where the value came from."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{asked_by} was asked for, but torch sees no CUDA device here.")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on `device` is done: CUDA runs asynchronously, so a clock read
    without this measures the launches, not the work. Nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def process_seconds() -> float:
    """Seconds since this process started (Linux: /proc/self/stat's start time, in clock ticks
    since boot, against /proc/uptime), or 0.0 where they cannot be read: the interpreter's start
    and the imports that a user's clock around a command has already counted."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22, after the name
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (getrusage's ru_maxrss, KiB on
    Linux): what a run cost the machine, dataset and torch included."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress_bar(total: int | None, desc: str, unit: str, show: bool | None = None,
                 **options: object) -> tqdm:
    """The tqdm bar of every loop that shows one (an epoch, an evaluation, a folder being read, a
    download): `show` None draws it only when stderr is a terminal, True always, False never.
    `options` go to tqdm as they are (leave, unit_scale, dynamic_ncols)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if show is None else not show,
                **options)  # type: ignore[call-overload]


BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(n: int, decimals: int | None = None) -> str:
    """Bytes in binary units (1 KiB = 1024 B): 1536 -> '1.5 KiB', 64 * 2**30 -> '64 GiB'; under
    1 KiB, '1023 B'. `decimals` None: three significant figures, trailing zeros dropped (a
    sentence); a number: that many decimals always ('5.0 GiB', the columns of a table). The unit
    is the largest whose value is below 1024 before rounding (2**20 - 1 -> '1024 KiB')."""
    value, unit = float(n), "B"
    for unit in BYTE_UNITS:
        if value < 1024 or unit == BYTE_UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{n} B"
    if decimals is not None:
        return f"{value:.{decimals}f} {unit}"
    text = f"{value:.3g}"
    return f"{value:.0f} {unit}" if "e" in text else f"{text} {unit}"  # 1000 and up: no exponent


# ----------------------------------------------------------------------------- memory


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):  # absent, "max", unreadable
        return None


def _cgroup_room() -> int | None:
    """Bytes the process's memory cgroup still allows (v2, else v1), or None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:  # 2**63 - 4096: no limit
            return max(0, limit - usage)
    return None


def host_available_bytes() -> int | None:
    """Memory this process can still take: MemAvailable of /proc/meminfo (the cgroup's room if
    smaller), else free pages from os.sysconf; None if neither can be read."""
    available: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024  # kB
                break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    room = _cgroup_room()
    return available if room is None else min(available, room)


def address_space_room() -> int | None:
    """Bytes of address space this process may still map under its RLIMIT_AS (`ulimit -v`): the
    soft limit less the program's size now (/proc/self/statm), or None without a limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    pages = _read_int("/proc/self/statm")  # the first field: the program's size in pages
    return None if pages is None else max(0, soft - pages * resource.getpagesize())
