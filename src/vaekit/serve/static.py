"""The explorer's page: static/index.html at /, and the regular files directly in static/ (its script
and style) at /static/NAME, nothing else (no '..', no sub-folders). A missing page is a placeholder
pointing at the JSON API."""

from __future__ import annotations

import os
from pathlib import Path

from vaekit.serve.request import ApiError

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8"}
PLACEHOLDER = (b"<!doctype html><meta charset=utf-8><title>vaekit latent explorer</title>"
               b"<p>The explorer's page (vaekit/serve/static/index.html) is not installed yet; the JSON "
               b"API answers under <a href=/api/info>/api/info</a>.</p>\n")


def static_files() -> set[str]:
    """The names a GET /static/NAME may ask for: regular files directly in static/."""
    try:
        return {e.name for e in os.scandir(STATIC) if e.is_file(follow_symlinks=False)}
    except OSError:
        return set()


def page() -> tuple[bytes, str]:
    """(the page, its Content-Type): static/index.html, or the placeholder without one."""
    data = (STATIC / "index.html").read_bytes() if "index.html" in static_files() else PLACEHOLDER
    return data, TYPES[".html"]


def static_file(name: str) -> tuple[bytes, str]:
    """(a file of static/, its Content-Type); a 404 for any name not in `static_files()`."""
    if name not in static_files():
        raise ApiError(404, "no such file in the explorer's static folder.")
    kind = TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
    return (STATIC / name).read_bytes(), kind
