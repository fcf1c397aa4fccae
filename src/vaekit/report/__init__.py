"""What a run learned, as pictures and one page.

    figures.py    the matplotlib figures (the run's, `vaekit check`'s, `vaekit arch --plot`'s; `vaekit
                  classify --compare`'s is `vaekit.classify.figure`)
    visualize.py  a run's figures from the arrays of `vaekit.vae.draw`
    page.py       the HTML pieces of both pages: style sheet, escaping, tables, embedded images
    kinds.py      the report of each kind of run, registered by the module of its page
    html.py       report.html of any run (`write_report`): the page of its kind
    vae_html.py   report.html of a VAE run: one self-contained page, images embedded
    classify_html.py  report.html of a classifier run
"""
