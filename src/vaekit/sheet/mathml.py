"""The sheet's formulas as MathML, made when the page is built (`latex2mathml`, pure Python): the
page needs no script and no network to show them, and every browser of the last years draws MathML
Core. Prose with `$...$` (inline) and `$$...$$` (display) formulas, as the sheet writes them, becomes
HTML: the prose escaped, each formula converted.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

# `$$ ... $$` first, then `$ ... $`; a formula never spans a blank line
_FORMULA = re.compile(r"\$\$(?P<display>.+?)\$\$|\$(?P<inline>[^$\n]+?)\$", re.S)


def _prepare(latex: str) -> str:
    """The LaTeX as latex2mathml reads it: `aligned` (which it leaves as text with stray `&`) is
    written as the `align*` it does lay out in columns; `\\left.`/`\\right.` need no change."""
    return latex.replace(r"\begin{aligned}", r"\begin{align*}").replace(r"\end{aligned}", r"\end{align*}")


def formula(latex: str, display: bool = False) -> str:
    """One formula as a <math> element (display="block" for a display formula)."""
    try:
        return convert(_prepare(latex.strip()), display="block" if display else "inline")
    except Exception as err:  # the converter's errors are of many kinds; every formula is vaekit's own
        raise RuntimeError(f"the formula {latex[:60]!r} could not be converted to MathML ({err})") from err


def prose(text: str) -> str:
    """Text with `$...$` and `$$...$$` formulas as HTML: the text escaped, formulas as MathML."""
    out, last = [], 0
    for match in _FORMULA.finditer(text):
        out.append(html.escape(text[last:match.start()]))
        display = match.group("display")
        out.append(formula(display, True) if display is not None else formula(match.group("inline")))
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)
