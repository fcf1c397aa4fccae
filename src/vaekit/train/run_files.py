"""The files of a run that are not checkpoints: config.json (`runs.write_config`) and
metrics.jsonl (`runs.append_metrics`, one row per epoch), as one session of the run writes them.

config.json is the run's config as it stands: a time budget's re-plan rewrites it with its epochs,
a resumed run with its changed settings. metrics.jsonl holds one row per epoch done; a resumed run
rewrites the rows past its checkpoint (the epochs it redoes). Checkpoints and the best model are
`vaekit.train.checkpoints`'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaekit import runs
from vaekit.train.task import RunConfig


class RunFiles:
    """config.json and metrics.jsonl of one session, written by the `writer` rank. A new run writes
    its config at once (and empties the metrics of a run that never finished an epoch). A resumed
    run changes its files only once its first epoch is done (a divergence, a kill or a bad input
    before that leaves the directory as it was); its rows past the checkpoint are then dropped."""

    def __init__(self, out: Path, config: RunConfig, writer: bool, resumed: bool) -> None:
        self.out, self.config, self.writer = out, config, writer
        self.pending = resumed  # a resumed run's files wait for its first epoch
        if resumed:
            runs.read_metrics(out)  # a damaged metrics.jsonl is refused before anything is trained
            runs.check_model_file(out, config)  # and so is a damaged model file, or another run's
        elif writer:
            runs.write_config(out, config)
            if (out / runs.METRICS).exists():  # a run that never finished an epoch: nothing to keep
                runs.truncate_metrics(out, 0)

    def replanned(self) -> None:
        """The config's epochs changed (a time budget's re-plan): config.json written again."""
        if self.writer and not self.pending:
            runs.write_config(self.out, self.config)

    def row(self, epoch: int, row: dict[str, Any]) -> None:
        """Epoch `epoch`'s metrics row appended; a resumed run's config and rows first."""
        if self.pending and self.writer:
            runs.truncate_metrics(self.out, epoch - 1)  # rows past the checkpoint are redone
            runs.write_config(self.out, self.config)  # the new epochs, patience, threads; after the
            # truncation, so that config.json's epochs always cover the rows (`runs.read_metrics`)
        self.pending = False
        if self.writer:
            runs.append_metrics(self.out, row)
