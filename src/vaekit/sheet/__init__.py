"""The sheet "TD-2: CNN and VAE" answered in one page (`vaekit sheet`): each question, the answer
computed by the library with its numbers, the checks that prove it, and the sheet's own solution
with its errata, each erratum decided by numbers.

    questions.py  the questions and the sheet's own solutions, in its words
    errata.py     the mistakes of those solutions, each with a check of both versions
    mathml.py     LaTeX -> MathML when the page is built (latex2mathml): no script, no network
    answer.py     Answer, Check, Table: what the page shows for a question
    exercise1.py  Ex.1 from vaekit.arch and vaekit.classify.compare
    exercise2.py  Ex.2 from vaekit.checks and the Q6 run
    vae_run.py    Ex.2 Q6's run: configs/sheet.toml trained for a short budget, or a given run
    build.py      build_sheet: every answer's numbers
    page.py       the self-contained HTML page
"""

from vaekit.sheet.build import Sheet, build_sheet, check_sheet_data
from vaekit.sheet.page import check_not_a_report, render, write_page

__all__ = ["Sheet", "build_sheet", "check_not_a_report", "check_sheet_data", "render", "write_page"]
