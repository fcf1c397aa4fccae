"""Early stopping (`--patience N`): a run ends after N epochs in a row without a better validation
score (lower is better: the VAE's -ELBO, minus a classifier's accuracy); 0 never stops it.

The count lives in the run's `Progress` (best score, its epoch, the epochs since), so it goes into
each checkpoint and a resumed run goes on counting. A run that stopped early and is resumed with a
patience that would not have stopped it (0, or more than the epochs it waited) trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.train.resume import Progress

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
