"""The sheet's page as a person sees it, offline: opened from file:// in headless Chromium (Debian's
`chromium` package) through Playwright, with every request outside file: recorded and refused. No
console error, every formula laid out (each <math> element has a size), every image decoded, and a
screenshot that is not blank."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest

from sheet_build import Built

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                       "(apt-get install chromium); the sheet's page is checked in a real browser"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[dev]'); the sheet's page is driven through it")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]

# Every <math> and <img> of the page, with its laid-out size (and an image's decoded size).
MEASURE = """() => ({
  math: Array.from(document.querySelectorAll('math')).map(m => {
    const r = m.getBoundingClientRect(); return [r.width, r.height, m.closest('[id]')?.id || ''];
  }),
  img: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
})"""


def test_the_page_renders_offline(built: Built, tmp_path: Path) -> None:
    console: list[str] = []
    errors: list[str] = []
    outside: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def route(r: Any) -> None:
                url = r.request.url
                if url.startswith(("file:", "data:")):
                    r.continue_()
                else:
                    outside.append(url)
                    r.abort()

            page.route("**/*", route)
            page.goto(built.page.as_uri(), wait_until="load")
            found = page.evaluate(MEASURE)
            shot = tmp_path / "sheet.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert console == [] and errors == [] and outside == []
    assert len(found["math"]) > 40
    unsized = [m for m in found["math"] if m[0] <= 0 or m[1] <= 0]
    assert not unsized, unsized[:5]
    assert len(found["img"]) >= 6
    assert all(ok and w > 100 and h > 100 for ok, w, h in found["img"]), found["img"]
    pixels = mpimg.imread(shot)
    assert pixels.shape[1] == 1400 and pixels.shape[0] > 5000
    assert pixels[..., :3].std() > 0.05  # text, formulas and figures, not an empty page
