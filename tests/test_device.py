"""vaekit.device's formats: bytes in binary units by their definition (1 KiB = 2^10 B, ...), to one
decimal in a table and to three significant figures in a sentence."""

from __future__ import annotations

import math
import os
import time

import pytest

from vaekit.device import ThreadGovernor, format_bytes, machine_jiffies, own_cpu_seconds

GiB = 2**30


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1023, "1023 B"), (2**10, "1.0 KiB"), (1536, "1.5 KiB"), (2**20 - 1, "1024.0 KiB"),
    (5 * 2**30, "5.0 GiB"), (2**40, "1.0 TiB"), (2**50, "1.0 PiB"),
])
def test_table_bytes_binary_units(n: int, text: str) -> None:
    assert format_bytes(n, 1) == text


def test_table_bytes_are_the_value_in_its_unit_to_one_decimal() -> None:
    for exponent, unit in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"), start=1):
        for n in (3 * 2**(10 * exponent) + 12345, 1000 * 2**(10 * exponent)):
            assert format_bytes(n, 1) == f"{n / 2**(10 * exponent):.1f} {unit}"


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 64 * GiB, 3 * 2**40 // 2)] == [
        "0 B", "1023 B", "1.5 KiB", "64 GiB", "1.5 TiB"]
    assert format_bytes(2**70).endswith("EiB") and math.isfinite(float(format_bytes(2**70).split()[0]))


def test_format_bytes_near_the_next_unit_has_no_exponent() -> None:
    """.3g writes 1000 and up as '1e+03': those stay whole numbers of the smaller unit."""
    assert format_bytes(2**20 - 1) == "1024 KiB"
    assert format_bytes(1000 * 2**20) == "1000 MiB"
    assert format_bytes(2**70) == "1024 EiB"


class FakeMachine:
    """A clock, /proc/stat's jiffies and this process's CPU seconds, advanced by hand: `run(s, own,
    others)` is s seconds in which this process used `own` cores and other processes `others`."""

    def __init__(self, cores: int = 2, hz: int = 100) -> None:
        self.cores, self.hz = cores, hz
        self.t, self.cpu, self.busy, self.all = 0.0, 0.0, 0, 0
        self.threads = cores

    def run(self, seconds: float, own: float, others: float) -> None:
        self.t += seconds
        self.cpu += own * seconds
        self.busy += round((own + others) * seconds * self.hz)
        self.all += round(self.cores * seconds * self.hz)

    def governor(self, **kw: object) -> ThreadGovernor:
        def set_count(n: int) -> None:
            self.threads = n

        return ThreadGovernor(every=1.0, cores=self.cores, jiffies=lambda: (self.busy, self.all),
                              cpu_seconds=lambda: self.cpu, clock=lambda: self.t, set_count=set_count,
                              get_count=lambda: self.threads, **kw)  # type: ignore[arg-type]


def test_the_governor_drops_a_thread_when_another_process_takes_a_core_and_takes_it_back() -> None:
    m = FakeMachine()
    g = m.governor()
    for _ in range(3):  # alone: this process on both cores
        m.run(1.0, own=2.0, others=0.0)
        g.tick()
    assert m.threads == 2 and g.changes == 0
    m.run(1.0, own=1.0, others=1.0)  # another process on a core: one reading is not enough
    g.tick()
    assert m.threads == 2
    m.run(1.0, own=1.0, others=1.0)
    g.tick()
    assert m.threads == 1 and g.changes == 1
    for _ in range(3):  # one thread beside the other process: stays
        m.run(1.0, own=1.0, others=1.0)
        g.tick()
    assert m.threads == 1
    for _ in range(2):  # the other process ends
        m.run(1.0, own=1.0, others=0.0)
        g.tick()
    assert m.threads == 2 and g.changes == 2


def test_the_governor_ignores_one_burst_and_reads_only_every_second() -> None:
    m = FakeMachine()
    g = m.governor()
    m.run(1.0, own=1.0, others=1.0)
    g.tick()
    m.run(1.0, own=2.0, others=0.0)
    g.tick()
    assert m.threads == 2 and g.changes == 0
    m.run(0.5, own=1.0, others=1.0)  # under a second since the last reading: not read
    g.tick()
    m.run(0.4, own=1.0, others=1.0)
    g.tick()
    assert g.changes == 0


def test_the_governor_keeps_the_count_without_proc_stat() -> None:
    m = FakeMachine()

    def missing() -> tuple[int, int]:
        raise OSError("no /proc/stat")

    g = ThreadGovernor(every=1.0, cores=2, jiffies=missing, cpu_seconds=lambda: m.cpu, clock=lambda: m.t,
                       set_count=lambda n: None, get_count=lambda: 2)
    m.run(5.0, own=1.0, others=1.0)
    g.tick()
    assert g.changes == 0


def test_machine_jiffies_and_own_cpu_seconds_count_this_process() -> None:
    """Half a second of busy work in this process shows in its own CPU seconds and in the machine's busy
    jiffies (at least as much, less the clock tick's rounding)."""
    try:
        busy0, all0 = machine_jiffies()
    except OSError:
        pytest.skip("no /proc/stat here")
    cpu0, end = own_cpu_seconds(), time.monotonic() + 20
    while own_cpu_seconds() - cpu0 < 0.5 and time.monotonic() < end:  # 0.5 s of CPU, however loaded
        pass
    busy1, all1 = machine_jiffies()
    own = own_cpu_seconds() - cpu0
    hz = os.sysconf("SC_CLK_TCK")
    assert own >= 0.5 and (busy1 - busy0) / hz >= own - 0.1 and all1 > all0
