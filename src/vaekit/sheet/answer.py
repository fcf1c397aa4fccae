"""What the page shows for one question: the answer (a formula with the numbers in, and prose), the
checks that prove it (PASS/FAIL with their numbers), tables, figures, and the numbers themselves
for `--json`. Formulas are LaTeX (`vaekit.sheet.mathml` renders them); prose may hold `$...$`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.checks.claim import ClaimResult


@dataclass
class Check:
    """One check of an answer: its name, PASS/FAIL, and the numbers in one sentence."""

    name: str
    passed: bool
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_claim(cls, result: ClaimResult) -> Check:
        """A claim of `vaekit check` as a check of the page."""
        return cls(f"vaekit check: {result.id}", result.passed, f"{result.claim}: {result.summary}",
                   result.numbers)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "summary": self.summary, "numbers": self.numbers}


@dataclass
class Table:
    """A table of the page: a caption, the header and the rows (numbers stay numbers)."""

    caption: str
    header: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    numeric: tuple[int, ...] = ()


@dataclass
class Answer:
    """The answer to one question (`question_id` of `vaekit.sheet.questions`)."""

    question_id: str
    formulas: list[str]  # LaTeX, each with the numbers filled in
    text: str  # prose, `$...$` formulas allowed
    checks: list[Check] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (PNG, caption)
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question_id, "formulas": self.formulas, "text": self.text,
                "numbers": self.numbers, "checks": [c.to_dict() for c in self.checks],
                "tables": [{"caption": t.caption, "header": list(t.header), "rows": [list(r) for r in t.rows]}
                           for t in self.tables]}


def thousands(n: int) -> str:
    """An integer with thousands separators as LaTeX writes them: 600{,}000."""
    return f"{n:,}".replace(",", "{,}")
