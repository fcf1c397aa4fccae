"""Early stopping (`--patience N`): a run ends after N epochs in a row without a better validation
score (lower is better: the VAE's -ELBO, minus a classifier's accuracy); 0 never stops it.

The count lives in the run's `Progress` (best score, its epoch, the epochs since), so it goes into
each checkpoint and a resumed run goes on counting. A run that stopped early and is resumed with a
patience that would not have stopped it (0, or more than the epochs it waited) trains on.

Whether a resumed run trains on at all is `left_to_train`'s: a run that has ended (stopped early,
or trained its epochs, or the epochs its time budget planned) resumed as it is says so and is left
alone; resumed with a setting that acts only while training, which would do nothing there
(--epochs not past the epochs trained or beside an early stop that stays, --patience that does not
lift it, --tensorboard, --threads, ...), it is refused in one sentence naming the setting and what
would train the run on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vaekit import runs
from vaekit.config import differences, flag_of, n_epochs, settings_of
from vaekit.errors import ConfigError
from vaekit.train.optim import resumed_schedule_note
from vaekit.train.resume import Progress
from vaekit.train.task import Task

REASON = "early stopping"  # how `Progress.stopped` begins when this stopped the run


@dataclass(frozen=True)
class EarlyStopping:
    """The stopping rule of a run: `patience` epochs (0: off) without a better `score_name`."""

    patience: int
    score_name: str  # what the score is, as the stop sentence says it

    def record(self, progress: Progress, score: float) -> bool:
        """Count the score of the epoch just done (`progress.epoch`): a new best, or one more epoch
        without one, and the stop once there are `patience` of those. Returns whether it is the best."""
        improved = score < progress.best_val
        if improved:
            progress.best_val, progress.best_epoch, progress.bad_epochs = score, progress.epoch, 0
        else:
            progress.bad_epochs += 1
        if self.patience and progress.bad_epochs >= self.patience:
            progress.stopped = f"{REASON}: no better {self.score_name} for {self.patience} epochs"
        return improved

    def lift(self, progress: Progress) -> bool:
        """On resume: clear an early stop that this patience would not have made; whether it did."""
        if progress.stopped and progress.stopped.startswith(REASON) and (
                self.patience == 0 or progress.bad_epochs < self.patience):
            progress.stopped = None
            return True
        return False


# The settings a resume may change that it reads whether or not it trains: where the data is (held
# against the checkpoint either way). The others (`Task.resumable`) act only while the run trains.
READ_ANYWAY = ("data.data_dir",)


def left_to_train(task: Task, progress: Progress, stopping: EarlyStopping, out: Path,
                  log: Callable[[str], None]) -> bool:
    """Whether a resumed run has epochs left: up to its epochs, or what a time budget this command
    changed plans (the log says when a new patience lifts an early stop, and when new epochs move
    the end of a cosine schedule: `optim.resumed_schedule_note`). A run that has ended
    (stopped early, or trained its epochs or the epochs its time budget planned) resumed with its
    own settings is left as it is and the log says so, the same each time; a setting this command
    changed from config.json that acts only while training (`READ_ANYWAY` aside: --epochs,
    --patience, --tensorboard, ...) would do nothing there, so it is a ConfigError naming it and
    what would train the run on (`_ended`), nothing of the run changed."""
    if stopping.lift(progress):
        log(f"{out}: early stopping at epoch {progress.epoch} lifted by --patience {stopping.patience}.")
    epochs, budget = task.config.train.epochs, bool(task.options.time_budget)
    run = runs.read_config(out, task.kind)
    changed = [k for k in differences(run, task.config) if k in task.resumable and k not in READ_ANYWAY]
    if not progress.stopped and (progress.epoch < epochs or "train.time_budget" in changed):
        planned_by_budget = budget or bool(getattr(run.train, "time_budget", 0))  # replans its cosine itself
        note = None if planned_by_budget else resumed_schedule_note(task.config.optim, progress.epoch,
                                                                    run.train.epochs, epochs)
        if note is not None:
            log(f"{out}: {note}")
        return True
    if changed:
        raise ConfigError(_ended(task, progress, out, changed, run.train.patience))
    if progress.stopped:
        log(f"{out}: the run already ended at epoch {progress.epoch} ({progress.stopped}).")
    else:
        log(f"{out}: already trained for {n_epochs(progress.epoch)} ("
            + ("the plan of its time budget" if budget else f"--epochs {epochs}") + "); nothing to do.")
    return False


def _ended(task: Task, progress: Progress, out: Path, changed: list[str], patience: int) -> str:
    """The sentence refusing the first of the `changed` settings (--epochs first) on a run that
    has ended: what it is, why it would do nothing, what would train the run on. `patience`: the
    run's own (config.json's), the one that stopped it."""
    e, epochs = progress.epoch, task.config.train.epochs
    key = "train.epochs" if "train.epochs" in changed else changed[0]
    flag = flag_of(settings_of(task.config)[key])
    named = key if flag is None else f"{key} ({flag})"
    lift = f"a --patience of {progress.bad_epochs + 1} or more (0 for none)"
    if progress.stopped:
        state, fix = f"the run stopped early at epoch {e} (patience {patience})", lift
    elif task.options.time_budget:
        state = f"the run has trained the {n_epochs(e)} its time budget planned"
        fix = "a longer --time-budget"
    else:
        state, fix = f"the run has trained its {n_epochs(e)}", "more --epochs"
    if key == "train.epochs" and epochs <= e:
        return (f"{out}: {named} is {epochs}, which does not go past the {n_epochs(e)} the run has trained; "
                f"give more than {e}" + (f" with {lift}" if progress.stopped else "")
                + " to train it on, or leave it out.")
    if key in ("train.epochs", "train.patience") and progress.stopped:
        value = getattr(task.config.train, key.split(".")[1])
        return (f"{out}: {named} is {value}, but {state}, so it would train nothing; give {fix} to train "
                "it on.")
    return (f"{out}: {named} acts only while the run trains, but {state}, so it would do nothing; leave "
            f"it out, or give {fix} to train the run on.")
