"""`build_sheet`: every answer of the sheet with its numbers, gathered from the library: Exercise 1
from `vaekit.arch` and `vaekit.classify.compare`, Exercise 2 from `vaekit.checks`, the Q6 run
(`vaekit.sheet.vae_run`) and the errata's checks. Nothing is written outside `work` (a scratch
directory for the trained runs and the figures, which the page embeds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from vaekit.checks import run_checks
from vaekit.classify.config import ClassifierConfig
from vaekit.data.load import check_findable, uses_data_dir
from vaekit.data.registry import REGISTRY
from vaekit.errors import ConfigError
from vaekit.sheet import errata as er
from vaekit.sheet import exercise1, exercise2
from vaekit.sheet import vae_run as vr
from vaekit.sheet.answer import Answer
from vaekit.version import __version__

Log = Callable[[str], None]


@dataclass
class Sheet:
    """The answered sheet: one Answer per question in the sheet's order, each erratum with its
    verdict, and how it was made (quick or full, seed, seconds, the Q6 run)."""

    answers: list[Answer]
    errata: list[tuple[er.Erratum, er.Verdict]]
    quick: bool
    seed: int
    run: vr.VaeRun | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def answer(self, question_id: str) -> Answer:
        return next(a for a in self.answers if a.question_id == question_id)

    def to_json(self) -> dict[str, Any]:
        """Every answer's numbers (`vaekit sheet --json`)."""
        return {
            "version": __version__, "quick": self.quick, "seed": self.seed, "seconds": round(self.seconds, 2),
            "answers": [a.to_dict() for a in self.answers],
            "errata": [{"id": e.id, "question": e.question, "writes": e.writes, "should_read": e.should_read,
                        "because": e.because, "supports": v.supports, "summary": v.summary,
                        "numbers": v.numbers} for e, v in self.errata],
            "passed": all(c.passed for a in self.answers for c in a.checks)
            and all(v.supports == "correction" for _, v in self.errata),
            "notes": self.notes,
        }


def run_errata(model: Any, x: Tensor, seed: int) -> list[tuple[er.Erratum, er.Verdict]]:
    """Each erratum's check; those of Ex.2 Q6 on the Q6 model and the first 64 test images `x`."""
    return [(e, e.check(model, x[:64], seed=seed) if e.id in er.MODEL_CHECKS else e.check(seed=seed))
            for e in er.ERRATA]


def check_sheet_data(data_dir: str | None, vae_run: str | Path | None,
                     compare_dir: str | Path | None) -> None:
    """The sets the page would read from `data_dir`, found before any work (`check_findable`: a data
    directory that does not hold one is refused now, not after Ex.1's training): the compare's
    (unless `compare_dir` gives one) and Q6's (configs/sheet.toml's, or the run `vae_run`'s), those
    of them that are looked up in a data directory; a ConfigError when none is."""
    if data_dir is None:
        return
    names = [] if compare_dir is not None else [ClassifierConfig().data.name]
    names.append(vr.data_name(None if vae_run is None else Path(vae_run)))
    if not any(uses_data_dir(name) for name in names):  # a digits --vae-run beside a --compare
        raise ConfigError(f"--data-dir {data_dir} would be read by nothing: the page reads no IDX set "
                          f"({', '.join(REGISTRY)}), as --compare gives Ex.1's table and the --vae-run's "
                          f"data is {names[-1]}; leave --data-dir out.")
    for name in {name for name in names if uses_data_dir(name)}:
        check_findable(name, data_dir)


def build_sheet(work: str | Path, quick: bool = True, vae_run: str | Path | None = None,
                compare_dir: str | Path | None = None, seed: int = 0, data_dir: str | None = None,
                threads: int = 0, check_overrides: dict[str, dict[str, Any]] | None = None,
                epochs: int | None = None, k: int | None = None, log: Log = print) -> Sheet:
    """Answer every question into a Sheet. `quick`: the Q6 model trained for QUICK_EPOCHS and
    evaluated with QUICK_K, the compare at exercise1's QUICK_ sizes, `vaekit check --quick`'s sizes;
    else FULL_EPOCHS, FULL_K, the compare's defaults and the full checks. `vae_run` answers Q6 with an
    existing run (read only), `compare_dir` Q1 with an existing compare; `epochs`, `k` and
    `check_overrides` (claim id -> keyword arguments) change the sizes."""
    start = time.perf_counter()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    run_dir = None if vae_run is None else Path(vae_run)
    if run_dir is not None:
        vr.check_vae_run(run_dir)
    check_sheet_data(data_dir, vae_run, compare_dir)
    epochs = epochs or (vr.QUICK_EPOCHS if quick else vr.FULL_EPOCHS)
    k = k or (vr.QUICK_K if quick else vr.FULL_K)
    q1 = exercise1.question1(work)
    rows, figure = exercise1.compare_rows(None if compare_dir is None else Path(compare_dir), work, quick,
                                          seed, data_dir, threads, log)
    exercise1.compare_part(q1, rows, figure)
    log("Ex.2: the claims of `vaekit check`" + (" (quick sizes)" if quick else ""))
    results = {r.id: r for r in run_checks(seed=seed, quick=quick, overrides=check_overrides)}
    run = vr.prepare(run_dir, work, epochs, k, seed, data_dir, threads, log)
    answers = [q1, exercise1.question2(), exercise1.question3(), exercise2.question1(results, run),
               exercise2.question2(results), exercise2.question3(results), exercise2.question4(run),
               exercise2.question5(results, work), exercise2.question6(run, seed)]
    sheet = Sheet(answers, run_errata(run.model, run.x, seed), quick, seed, run)
    if quick and vae_run is None:
        sheet.notes.append(f"--quick: {epochs} epochs of training and k = {k:,} for Q6 (the published "
                           "table's: ~2,000 epochs, k = 5,000).")
    if quick and compare_dir is None:
        sheet.notes.append(f"--quick: the compare at {', '.join(map(str, exercise1.QUICK_SIDES))} px with "
                           f"{exercise1.QUICK_IMAGES:,} training images and {exercise1.QUICK_COMPARE_EPOCHS} "
                           "epoch: its accuracies are not the point, its parameters, memory and time are.")
    sheet.seconds = time.perf_counter() - start
    return sheet
