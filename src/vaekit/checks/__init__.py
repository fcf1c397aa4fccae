"""The claims of Exercise 2 of the sheet as numbers (`vaekit check`): each function tests one claim
and says whether it held.

    claim.py      ClaimResult, and the one-thread setting every claim runs under
    bounds.py     Ex.2 Q1-Q3: ELBO <= log p(x), IWAE tightens, KL >= 0, the closed-form KL
    gradients.py  Ex.2 Q5-Q6: the estimators are unbiased, their variance against the dimension
    training.py   Ex.2 Q5 in practice: the same VAE trained with each estimator, by vaekit's loop
    summary.py    what `vaekit check` prints: a line per claim, the variance table, the count

Every check takes the implementation under test as a parameter (defaulting to vaekit's own), so a
test can hand it a planted bug (a KL with the wrong sign, an estimator missing its log-derivative)
and see the claim FAIL; and its sizes as parameters, so the test suite can run it small. Same seed,
same numbers (the checks run on one thread: see `run_checks`). This file is the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vaekit.checks import gradients as cg
from vaekit.checks import training as ct
from vaekit.checks.bounds import elbo_bound, iwae_tightens, kl_closed_form, kl_nonnegative
from vaekit.checks.claim import ClaimResult, one_thread
from vaekit.errors import ConfigError

__all__ = ["CLAIM_IDS", "ClaimResult", "parse_ids", "registry", "run_checks", "training_overrides"]

QUICK_DATA = "digits"  # the set the quick 'training' claim trains on


def registry() -> dict[str, tuple[Callable[..., ClaimResult], dict[str, Any]]]:
    """claim id -> (function, the smaller sizes used by --quick), in the order printed."""
    return {
        "elbo_bound": (elbo_bound, {"n_x": 400, "n_random_encoders": 3, "k": 50}),
        "iwae_tightens": (iwae_tightens, {"n_x": 200}),
        "kl_nonnegative": (kl_nonnegative, {"n_pairs": 2000}),
        "kl_closed_form": (kl_closed_form, {"n_samples": 4000}),
        "reparam_unbiased": (cg.reparam_unbiased, cg.QUICK),
        "score_unbiased": (cg.score_unbiased, cg.QUICK),
        "variance": (cg.variance, {"replicates": 100, "dims": (1, 10, 100)}),
        "training": (ct.training_curves, {"steps": 100, "dataset": QUICK_DATA}),
    }


CLAIM_IDS: tuple[str, ...] = ("elbo_bound", "iwae_tightens", "kl_nonnegative", "kl_closed_form",
                              "reparam_unbiased", "score_unbiased", "variance", "training")


def parse_ids(text: str | None) -> list[str]:
    """The claims of `vaekit check --only ID[,ID]` (all, in order, when not given); ConfigError
    naming the flag for an unknown id or an empty entry ('', ',', 'elbo,')."""
    if text is None:
        return list(CLAIM_IDS)
    ids = [t.strip() for t in text.split(",")]
    if not all(ids):
        raise ConfigError(f"--only got {text!r}, which names no claim in one of its entries; give claim ids "
                          f"separated by commas ({', '.join(CLAIM_IDS)}), or leave --only out for all.")
    for i, claim_id in enumerate(ids):
        if claim_id not in CLAIM_IDS:
            raise ConfigError(f"--only: unknown claim {claim_id!r}; valid claims are {', '.join(CLAIM_IDS)}.")
        if claim_id in ids[:i]:
            raise ConfigError(f"--only names the claim {claim_id!r} twice; give each claim once.")
    return ids


def training_overrides(ids: Sequence[str], steps: int | None, data: str | None,
                       data_dir: str | None, quick: bool = False) -> dict[str, dict[str, Any]]:
    """The `overrides` of `run_checks` from check's flags of the 'training' claim (--steps, --data,
    --data-dir); ConfigError naming the flags given when that claim is not among `ids`: they would
    be ignored; naming --data-dir with `quick` and no --data: the quick claim trains on digits, which
    has none; and for --steps below `training.MIN_STEPS`."""
    given = {"--steps": steps, "--data": data, "--data-dir": data_dir}
    unused = [flag for flag, value in given.items() if value is not None]
    quick_dir = quick and data_dir is not None and data is None
    if unused and "training" not in ids:
        names = " and ".join(unused)
        raise ConfigError(f"{names} {'is' if len(unused) == 1 else 'are'} used only by the 'training' claim, "
                          f"which --only leaves out; leave {names} out"
                          f"{'' if quick_dir else ', or add training to --only'}.")
    if quick_dir:
        raise ConfigError(f"--data-dir {data_dir} is not used with --quick, whose 'training' claim trains on "
                          f"{QUICK_DATA} (bundled with scikit-learn); leave --data-dir out, or add --data "
                          f"{ct.DATASET} to train on the set in that directory.")
    out: dict[str, Any] = {}
    if steps is not None:
        ct.check_steps(steps)
        out["steps"] = steps
    if data is not None:
        out["dataset"], out["fallback"] = data, None
    if data_dir is not None:
        out["data_dir"] = data_dir
    return {"training": out}


def run_checks(ids: Sequence[str] | None = None, seed: int = 0, quick: bool = False,
               overrides: dict[str, dict[str, Any]] | None = None,
               on_result: Callable[[ClaimResult], None] | None = None) -> list[ClaimResult]:
    """Run the claims `ids` (default all, in order) with `seed`; `quick` uses the smaller sizes;
    `overrides[id]` sets keyword arguments of one claim. `on_result` sees each result as it comes."""
    table = registry()
    ids = list(ids) if ids else list(CLAIM_IDS)
    unknown = [i for i in ids if i not in table]
    if unknown:
        raise ConfigError(f"unknown claim {unknown[0]!r}; valid claims are {', '.join(CLAIM_IDS)}.")
    sizes = {i: {**(table[i][1] if quick else {}), **(overrides or {}).get(i, {})} for i in ids}
    if "training" in ids:  # its data found before any claim runs: a bad name is not refused after 7
        ct.check_data(**sizes["training"])
    results = []
    with one_thread():
        for claim_id in ids:
            result = table[claim_id][0](seed=seed, **sizes[claim_id])
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
