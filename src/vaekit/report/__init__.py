"""What a run learned, as pictures and one page.

    figures.py    every matplotlib figure (the run's, `vaekit check`'s and `vaekit arch --plot`'s)
    visualize.py  the arrays behind them, computed from a model
    page.py       the HTML pieces of both pages: style sheet, escaping, tables, embedded images
    html.py       report.html: one self-contained page, images embedded
    classify_html.py  report.html of a classifier run
"""
