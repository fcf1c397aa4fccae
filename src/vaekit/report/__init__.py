"""What a run learned, as pictures and one page.

    figures.py    the matplotlib figures (the run's, `vaekit check`'s, `vaekit arch --plot`'s; `vaekit
                  classify --compare`'s is `vaekit.classify.figure`)
    visualize.py  a run's figures from the arrays of `vaekit.vae.draw`
    page.py       the HTML pieces of both pages: style sheet, escaping, tables, embedded images
    html.py       report.html: one self-contained page, images embedded
    classify_html.py  report.html of a classifier run
"""
