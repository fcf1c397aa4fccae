"""The HTML pieces of both reports (`vaekit.report.html`, a VAE run's, and
`vaekit.report.classify_html`, a classifier run's): the inline style sheet, escaping, number
formats, tables and figures embedded as base64 `data:` URIs. Every piece of text that
comes from a file or a model goes through `esc` (`html.escape`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } figcaption { color: #555; font-size: 0.92em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.headline { font-size: 1.15em; background: #f6f8fa; padding: 0.7em 1em; border-radius: 6px; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


# ----------------------------------------------------------------------------- HTML pieces


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "&mdash;" if value is None else esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    return esc(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{fmt(c)}</td>' if i in numeric else f"<td>{fmt(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def figure(name: str, paths: dict[str, Path], captions: dict[str, str]) -> str:
    caption = captions.get(name, name)
    return (f"<figure id='fig-{esc(name)}'>{img_tag(paths[name], caption)}"
            f"<figcaption>{esc(caption)} <code>figures/{esc(paths[name].name)}</code></figcaption></figure>")
