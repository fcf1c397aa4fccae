"""The answered sheet as one self-contained HTML page: the report's style sheet and pieces
(`vaekit.report.page`: escaping, tables, PNGs embedded as data: URIs), formulas as MathML
(`vaekit.sheet.mathml`), no script and nothing fetched, so it opens offline. For each question, in
the sheet's order: the question, the answer with its numbers, the checks (PASS/FAIL), tables and
figures; beside it the sheet's own solution and its errata.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from vaekit.errors import ConfigError
from vaekit.report.outputs import HTML_GENERATOR, page_bytes, quoted, write_output
from vaekit.report.page import STYLE, esc, img_tag, table
from vaekit.runs import CONFIG, REPORT
from vaekit.sheet.answer import Answer, Check
from vaekit.sheet.build import Sheet
from vaekit.sheet.errata import Erratum, Verdict
from vaekit.sheet.mathml import formula, prose
from vaekit.sheet.questions import QUESTIONS, Question
from vaekit.version import __version__

SHEET_STYLE = """
body { max-width: 1400px; }
section.q { border-top: 2px solid #ccc; margin-top: 2em; }
.cols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.5em; }
.ours, .theirs { min-width: 0; overflow-x: auto; }
@media (max-width: 900px) { .cols { grid-template-columns: 1fr; } }
.theirs { background: #fafaf5; border-left: 3px solid #d8d2b0; padding: 0 1em 1em; }
.question { font-style: italic; }
.formula { overflow-x: auto; margin: 0.6em 0; }
math[display="block"] { margin: 0.4em 0; }
.theirs math[display="block"] { font-size: 0.85em; }
ul.checks { list-style: none; padding-left: 0; }
ul.checks li { margin: 0.35em 0; }
.pass, .fail { font-weight: bold; padding: 0 0.35em; border-radius: 3px; color: #fff; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
.erratum { border: 1px solid #e0b4b4; background: #fff6f6; padding: 0.5em 0.8em; margin: 0.8em 0;
           border-radius: 4px; }
.erratum .verdict { color: #444; font-size: 0.92em; }
"""


def _badge(passed: bool) -> str:
    return "<span class='pass'>PASS</span>" if passed else "<span class='fail'>FAIL</span>"


def _checks(checks: list[Check]) -> str:
    if not checks:
        return ""
    items = "".join(f"<li>{_badge(c.passed)} <b>{esc(c.name)}</b>: {esc(c.summary)}</li>" for c in checks)
    return f"<h4>Checks</h4><ul class='checks'>{items}</ul>"


def erratum_html(e: Erratum, v: Verdict) -> str:
    """One erratum: the sentence, and what its check found."""
    supported = {"correction": "the numbers support the correction",
                 "sheet": "the numbers support the sheet's version",
                 "neither": "the numbers support neither version"}[v.supports]
    return (f"<div class='erratum' id='erratum-{esc(e.id)}'><b>Erratum ({esc(e.question)}).</b> The sheet "
            f"writes {formula(e.writes)}, it should read {formula(e.should_read)}, because "
            f"{prose(e.because)}<p class='verdict'>{_badge(v.supports == 'correction')} {esc(supported)}: "
            f"{esc(v.summary)}.</p></div>")


def answer_html(q: Question, a: Answer, errata: list[tuple[Erratum, Verdict]]) -> str:
    """A question's section: the question and the answer, beside the sheet's solution."""
    ours = [f"<p class='question'>{prose(q.text)}</p>", "<h3>Answer</h3>"]
    ours += [f"<div class='formula'>{formula(f, display=True)}</div>" for f in a.formulas]
    ours += [f"<p>{prose(a.text)}</p>", _checks(a.checks)]
    for t in a.tables:
        ours.append(f"<h4>{esc(t.caption)}</h4>" + table(t.header, t.rows, numeric=t.numeric))
    ours += [f"<figure>{img_tag(path, caption)}<figcaption>{esc(caption)}</figcaption></figure>"
             for path, caption in a.figures]
    theirs = ["<h3>The sheet's solution</h3>",
              f"<p>{prose(q.solution)}</p>" if q.solution else "<p>The sheet gives none.</p>"]
    theirs += [erratum_html(e, v) for e, v in errata if e.question == q.label]
    return (f"<section class='q' id='{esc(q.id)}'><h2>{esc(q.label)}</h2><div class='cols'>"
            f"<div class='ours'>{''.join(ours)}</div><div class='theirs'>{''.join(theirs)}</div>"
            "</div></section>")


def render(sheet: Sheet) -> str:
    """The whole page as one HTML string."""
    checks = [c for a in sheet.answers for c in a.checks]
    passed = sum(c.passed for c in checks)
    supported = sum(v.supports == "correction" for _, v in sheet.errata)
    mode = "--quick (short budget)" if sheet.quick else "full"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{HTML_GENERATOR}",
             "<title>TD-2: CNN and VAE, answered by vaekit</title>",
             f"<style>{STYLE}{SHEET_STYLE}</style></head><body>",
             "<h1>TD-2: CNN and VAE, answered</h1>",
             f"<p class='headline' id='headline'>{len(sheet.answers)} questions answered by the library, "
             f"<b id='checks-passed'>{passed} of {len(checks)}</b> checks PASS; "
             f"<b id='errata-count'>{len(sheet.errata)}</b> errata in the sheet's solutions, "
             f"{supported} of them decided for the correction by the numbers.</p>",
             "<p>Every number on this page was computed by vaekit when the page was built: rerun it "
             "with <code>vaekit sheet</code> (<code>--json</code> prints them all); the claims alone "
             "with <code>vaekit check</code>, Exercise 1 with <code>vaekit arch --sheet</code> and "
             "<code>vaekit classify --compare</code>.</p>"]
    parts += [f"<p><small>{esc(note)}</small></p>" for note in sheet.notes]
    answers = {a.question_id: a for a in sheet.answers}
    parts += [answer_html(q, answers[q.id], sheet.errata) for q in QUESTIONS if q.id in answers]
    errata_rows = [(e.question, e.id, v.supports) for e, v in sheet.errata]
    parts += ["<h2 id='errata'>The errata</h2>",
              table(("question", "erratum", "the numbers support"), errata_rows)]
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p><small>vaekit {esc(__version__)}, {esc(mode)}, seed {sheet.seed}, built in "
                 f"{sheet.seconds:.0f} s, {esc(stamp)}.</small></p></body></html>\n")
    return "\n".join(parts)


def check_not_a_report(path: Path, flag: str | None = None) -> None:
    """A ConfigError (one sentence naming `path`, as `flag` gave it) where `path` is a run's report
    page, report.html beside a config.json: that page is `vaekit report`'s, and a sheet written over
    it would stand in for the run's report; anywhere else, nothing."""
    path = Path(path)
    if path.name == REPORT and (path.parent / CONFIG).is_file():
        where = f"{flag} {quoted(str(path))}" if flag else quoted(str(path))
        raise ConfigError(f"{where} is the report page of the run in {quoted(str(path.parent))}, which only "
                          "`vaekit report` writes; choose another path for the sheet.")


def write_page(sheet: Sheet, path: Path, flag: str | None = None) -> Path:
    """Write the page to `path` atomically (a failure leaves the previous file, or none), only over
    nothing or a page vaekit wrote (`vaekit.report.outputs.write_output`; `flag`: the flag that
    named `path`, for the sentence that refuses it), and never as a run's report.html
    (`check_not_a_report`)."""
    check_not_a_report(path, flag)
    return write_output(path, page_bytes(render(sheet)), f"{flag} {quoted(str(path))}" if flag else None)
