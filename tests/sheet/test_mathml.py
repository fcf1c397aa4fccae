"""The sheet's formulas as MathML: prose is escaped, each `$...$` / `$$...$$` becomes one <math>, and
the sheet's `aligned` blocks are laid out as a table of rows (not left with stray `&`)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from vaekit.sheet.mathml import formula, prose
from vaekit.sheet.questions import QUESTIONS

M = "{http://www.w3.org/1998/Math/MathML}"


def test_prose_escapes_text_and_converts_each_formula() -> None:
    html = prose(r"a <b> & $x^2$ then $$\frac{1}{2}$$ end")
    assert html.startswith("a &lt;b&gt; &amp; <math") and html.endswith(" end")
    assert html.count("<math") == 2 and 'display="block"' in html
    assert ET.fromstring(formula("x^2")).find(f".//{M}msup") is not None


def test_aligned_becomes_rows() -> None:
    tree = ET.fromstring(formula(r"\begin{aligned} a &= b \\ &\geq c \end{aligned}", display=True))
    assert len(tree.findall(f".//{M}mtr")) == 2
    assert not [e for e in tree.iter() if e.text == "&"]


def test_every_question_and_solution_converts_to_well_formed_mathml() -> None:
    for q in QUESTIONS:
        for text in (q.text, q.solution):
            html = prose(text)
            assert "$" not in html, q.id
            for math in re.findall(r"<math.*?</math>", html, re.S):
                ET.fromstring(math)  # well-formed XML
