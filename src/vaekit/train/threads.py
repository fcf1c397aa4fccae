"""A run's CPU threads: the count a session starts with (`--threads`, the resumed run's, C / N
under torchrun, or the idle cores) and, for `--threads 0` on a CPU, the governor that moves it as
other processes take and leave cores (`vaekit.device.ThreadGovernor`)."""

from __future__ import annotations

from typing import Any

import torch

from vaekit.device import ThreadGovernor, available_cores, set_threads
from vaekit.distributed import World


def session_threads(state: dict[str, Any] | None, configured: int, w: World | None) -> int:
    """This session's torch threads, set: `configured` (--threads), or for 0 (auto) the count the
    checkpoint `state` of a resumed run recorded, C / N on C cores under torchrun's N processes,
    else the idle cores (`device.set_threads`)."""
    kept = state.get("threads") if state is not None and configured == 0 else None
    if w is not None and configured == 0:
        kept = max(1, available_cores() // w.size)  # N processes on C cores: C / N threads each
    return set_threads(kept if isinstance(kept, int) and not isinstance(kept, bool) and 0 < kept <= 1024
                       else configured)


def governor_for(configured: int, device: torch.device, w: World | None) -> ThreadGovernor | None:
    """The governor of a single-process CPU run with `--threads 0`; None otherwise (a count given,
    a GPU, or torchrun's processes, which share the cores by C / N)."""
    return ThreadGovernor() if configured == 0 and w is None and device.type == "cpu" else None


def threads_moved(governor: ThreadGovernor | None) -> str:
    """'  (now 1 thread: the cores other processes leave)' after an epoch in which `--threads 0`
    moved the count (`device.ThreadGovernor`), else ''."""
    if governor is None or governor.changes == governor.said:
        return ""
    governor.said = governor.changes
    now = torch.get_num_threads()
    return f"  (now {now} thread{'s' if now > 1 else ''}: the cores other processes leave)"
