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
from vaekit.errors import CheckpointError, ConfigError
from vaekit.regular import check_regular
from vaekit.train.task import RunConfig


class RunFiles:
    """config.json and metrics.jsonl of one session, written by the `writer` rank. A new run writes
    its config at once (and empties the metrics of a run that never finished an epoch). A resumed
    run changes its files only once its first epoch is done (a divergence, a kill or a bad input
    before that leaves the directory as it was); its rows past the checkpoint are then dropped. A
    resumed run's rows and model file were checked before (`vaekit.train.fit`)."""

    def __init__(self, out: Path, config: RunConfig, writer: bool, resumed: bool) -> None:
        self.out, self.config, self.writer = out, config, writer
        self.pending = resumed  # a resumed run's files wait for its first epoch
        if writer and not resumed:
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


def check_out_dir(out: Path, resume: bool, task: str) -> None:
    """The run directory's rules (checked before anything is loaded, and again once it is locked):

    - a new run goes into a directory that does not exist, is empty of run files, or holds only the
      config.json of a run that never finished an epoch (a kill or a divergence in epoch 1): that
      one is replaced;
    - a directory with any result of a run (model, checkpoint, metrics, eval.json, report) is
      refused without --resume, so nothing trained is overwritten or mixed with a new run; --resume
      is advised only where it would resume (config.json and the checkpoint are there, of a run of
      `task`, the kind to train: a run of another kind is named as such);
    - --resume continues from the checkpoint, or from epoch 0 if the run never finished an epoch.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: not a directory; --out names the run directory to write.")
    present = [name for name in runs.RESULT_FILES if (out / name).exists()]
    if resume:
        if not out.is_dir():
            raise CheckpointError(f"{out}: no such run directory to resume.")
        if not (out / runs.CONFIG).is_file():
            raise CheckpointError(f"{out} holds no run to resume (no {runs.CONFIG}).")
        if present and not check_regular(out / runs.CHECKPOINT, "the checkpoint's safetensors file",
                                         CheckpointError):  # a directory there: named as such
            raise CheckpointError(f"{out / runs.CHECKPOINT}: no checkpoint file there to resume from, "
                                  f"but the directory holds {', '.join(present)} of a run; train into "
                                  "another --out.")
        return
    missing = [name for name in (runs.CONFIG, runs.CHECKPOINT) if not (out / name).is_file()]
    held = runs.task_in(out) if present and not missing else None
    if held is not None and held.name != task:  # --resume would refuse it: no advice to pass it
        raise ConfigError(f"{out} already holds {held.what} (`{held.maker}`), not {runs.TASKS[task].what}; "
                          "choose another --out.")
    if present and not missing:
        with runs.locked(out):  # a run another process is writing: that first (--resume would be refused)
            pass
        raise ConfigError(f"{out} already holds a run ({', '.join(present)}); pass --resume to continue "
                          "it, or choose another --out.")
    if present:  # --resume would refuse it: no advice to pass it
        raise ConfigError(f"{out} already holds a run's files ({', '.join(present)}) but no run that can be "
                          f"resumed (no {' or '.join(missing)}); choose another --out.")
    runs.check_run_dir(out)
