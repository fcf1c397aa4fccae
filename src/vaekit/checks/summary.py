"""What `vaekit check` prints: a line per claim as it comes, then the variance table (when that claim
ran), the figures written and how many claims passed; or, with --json, one object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vaekit.checks.claim import ClaimResult
from vaekit.checks.gradients import variance_table


def claim_line(result: ClaimResult) -> str:
    """'PASS  kl_nonnegative   [Ex.2 Q2] the claim: its numbers in words'."""
    verdict = "PASS" if result.passed else "FAIL"
    return f"{verdict}  {result.id:<16} [{result.question}] {result.claim}: {result.summary}"


def summary_text(results: Sequence[ClaimResult], ids: Sequence[str], figures: Sequence[str],
                 seconds: float) -> str:
    """The lines after the claims': the variance table (when `ids`, the claims named by --only or
    all of them, include it), a line per figure written, then the count of claims passed in
    `seconds`, naming those that failed."""
    failed = [r.id for r in results if not r.passed]
    lines = []
    if "variance" in ids:
        table = next(r for r in results if r.id == "variance").details["table"]
        lines += ["", "variance of the n-sample gradient estimate, per coordinate:", variance_table(table)]
    lines += [f"wrote {path}" for path in figures]
    lines += ["", f"{len(results) - len(failed)}/{len(results)} claims passed in {seconds:.1f} s"
              + (f"; failed: {', '.join(failed)}" if failed else "")]
    return "\n".join(lines)


def summary_json(results: Sequence[ClaimResult], seed: int, quick: bool, figures: Sequence[str],
                 seconds: float) -> dict[str, Any]:
    """The `vaekit check --json` object: every claim's result, whether all passed, the settings,
    the figures written and the seconds taken."""
    return {"claims": [r.to_dict() for r in results], "passed": all(r.passed for r in results),
            "seed": seed, "quick": quick, "figures": list(figures), "seconds": round(seconds, 2)}
