"""The latent explorer's page as a person uses it: `vaekit.serve.app.make_server` over a tiny digits
VAE, the page opened in headless Chromium (Debian's `chromium` package) through Playwright. The
pointer moves over the map, a slider moves, strokes are drawn; what the page shows is read back from
its canvases' pixels and data- attributes (see the head of serve/static/app.js)."""

from __future__ import annotations

import json
import math
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval_runs import make_run

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                       "(apt-get install chromium); the explorer's page is checked in a real browser"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[dev]'); the explorer's page is driven through it")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]

# The red channel of a canvas on a 32x32 grid: enough to tell two decoded images apart.
PIXELS = """id => {
  const c = document.getElementById(id);
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const out = [];
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
    const px = Math.floor((x + 0.5) * c.width / 32), py = Math.floor((y + 0.5) * c.height / 32);
    out.push(data[4 * (py * c.width + px)]);
  }
  return out;
}"""
# True once canvas `id` has drawn more than `n` images and no decode is on its way or waiting.
SETTLED = """([id, n]) => {
  const c = document.getElementById(id);
  return Number(c.dataset.draws) > n && c.dataset.pending === '0';
}"""


class Served:
    def __init__(self, url: str, info: dict[str, Any]) -> None:
        self.url = url
        self.info = info


@pytest.fixture(scope="module", params=[2, 4], ids=["latent2", "latent4"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from vaekit.serve.app import make_server

    run = make_run(tmp_path_factory.mktemp(f"serve{request.param}") / "run", latent=request.param)
    server = make_server(run, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/"
    with urllib.request.urlopen(url + "api/info", timeout=30) as answer:
        info = json.load(answer)
    try:
        yield Served(url, info)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A fresh page on the explorer that records console errors, page errors and every request."""

    def __init__(self, browser: Any, served: Served) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 1000})
        self.page.set_default_timeout(20_000)
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(served.url)
        try:
            self.page.wait_for_selector("body[data-ready='1']")
        except sync_api.TimeoutError:
            status = self.page.locator("#status").inner_text()
            raise AssertionError(f"the page never got ready: {status!r} {self.console} "
                                 f"{self.errors}") from None
        self.served = served

    def attr(self, selector: str, name: str) -> str | None:
        return self.page.get_attribute(selector, name)

    def draws(self, canvas: str) -> int:
        return int(self.attr(f"#{canvas}", "data-draws") or 0)

    def settle(self, canvas: str, before: int) -> list[int]:
        """Wait for canvas `canvas` to draw past `before`, then its pixels."""
        self.page.wait_for_function(SETTLED, arg=[canvas, before])
        return self.page.evaluate(PIXELS, canvas)

    def hover_map(self, fx: float, fy: float) -> list[int]:
        self.page.locator("#map").scroll_into_view_if_needed()
        box = self.page.locator("#map").bounding_box()
        assert box is not None
        before = self.draws("decoded")
        self.page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        return self.settle("decoded", before)

    def status(self) -> tuple[str, str]:
        el = self.page.locator("#status")
        return el.inner_text(), el.get_attribute("class") or ""

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Page]:
    p = Page(browser, served)
    try:
        yield p
    finally:
        p.close()


def test_the_explorer_page_works(page: Page, served: Served, tmp_path: Path) -> None:
    info, p = served.info, page.page
    status, kind = page.status()
    assert kind == "ok", status

    # one dot per test image the server holds
    assert int(page.attr("#map", "data-points") or -1) == info["test_images"] > 0
    assert page.attr("#map", "data-method") == ("latent" if info["latent_dim"] <= 2 else "pca")
    assert p.locator("#legend li").count() == 10  # the ten digits

    # the pointer over two map points: two different decoded images, both non-blank
    first = page.hover_map(0.15, 0.2)
    second = page.hover_map(0.85, 0.8)
    assert first != second
    assert len(set(first)) > 1 and len(set(second)) > 1

    # the sliders start at test image 0's code; moving the first one changes the decoded image
    sliders = p.locator("#sliders input[type=range]")
    assert sliders.count() == (len(info["active"]) or min(info["latent_dim"], 8))
    start = page.settle("slider-image", 0)
    before = page.draws("slider-image")
    sliders.first.focus()
    p.keyboard.press("End")  # the slider's maximum
    moved = page.settle("slider-image", before)
    assert moved != start

    # on request, a sample of p(x|z) beside the mean: binary pixels for a Bernoulli decoder
    assert not p.locator("#sample-figure").is_visible()
    p.locator("#sample-toggle").check()
    sample = page.settle("slider-sample", 0)
    assert p.locator("#sample-figure").is_visible() and sample != moved
    assert "seed" in p.locator("#sample-caption").inner_text()

    # strokes on the drawing canvas: a reconstruction, its -log p(x) and the server's note
    p.locator("#draw").scroll_into_view_if_needed()
    box = p.locator("#draw").bounding_box()
    assert box is not None
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    p.mouse.move(x0 + 0.5 * w, y0 + 0.15 * h)
    p.mouse.down()
    for fx, fy in ((0.5, 0.5), (0.5, 0.85), (0.3, 0.85), (0.7, 0.85)):
        p.mouse.move(x0 + fx * w, y0 + fy * h, steps=4)
    p.mouse.up()
    recon = page.settle("recon", 0)
    assert len(set(recon)) > 1
    nll = float(p.locator("#nll").inner_text())
    assert math.isfinite(nll) and nll > 0
    assert "pixels rounded to 8 bits" in p.locator("#converted").inner_text()  # the run binarizes
    assert p.locator("#encode-point").inner_text().startswith("(")

    # the interpolation strip and a fresh set of prior samples
    p.click("#interp-go")
    p.wait_for_selector("#interp-strip[data-images='8']")
    assert p.locator("#interp-strip canvas").count() == 8
    assert page.attr("#samples", "data-images") == "16"
    p.click("#samples-refresh")
    p.wait_for_function("document.getElementById('samples-seed').textContent === 'seed 1'")

    shot = tmp_path / "explorer.png"
    p.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

    assert page.console == [] and page.errors == []
    # everything the page needs comes from vaekit: it works offline
    assert page.requests and all(r.startswith(served.url) or r.startswith("data:") for r in page.requests), \
        page.requests


def test_the_dims_selector_shows_two_latent_dims(page: Page, served: Served) -> None:
    info, p = served.info, page.page
    if info["latent_dim"] <= 2:
        assert p.locator("#dims-controls").is_hidden()
        return
    assert p.locator("#dims-controls").is_visible()
    options = p.locator("#dims option")
    assert options.count() == 1 + math.comb(min(info["latent_dim"], 6), 2)
    value = options.nth(1).get_attribute("value")
    p.select_option("#dims", value=value)
    p.wait_for_selector("#map[data-method='dims']")
    assert int(page.attr("#map", "data-points") or -1) == info["test_images"]
    assert page.hover_map(0.1, 0.1) != page.hover_map(0.9, 0.9)
    p.select_option("#dims", value="")
    p.wait_for_selector("#map[data-method='pca']")
    assert page.console == [] and page.errors == []


# 50 pointer moves over the map in one go (one task, as a fast hand gives between two frames)
SWEEP = """() => {
  const c = document.getElementById('map'), r = c.getBoundingClientRect();
  for (let i = 0; i < 50; i++) {
    const f = 0.1 + 0.8 * i / 49;
    c.dispatchEvent(new PointerEvent('pointermove', {clientX: r.left + f * r.width,
                                                     clientY: r.top + (1 - f) * r.height, bubbles: true}));
  }
}"""


def test_pointer_moves_are_throttled_to_the_latest(page: Page) -> None:
    p = page.page
    last = page.hover_map(0.9, 0.1)  # where the sweep ends
    page.hover_map(0.5, 0.5)
    before, decodes = page.draws("decoded"), len([r for r in page.requests if r.endswith("/api/decode")])
    p.evaluate(SWEEP)
    swept = page.settle("decoded", before)
    sent = len([r for r in page.requests if r.endswith("/api/decode")]) - decodes
    # the first move is sent at once, the 49 others replace each other while it is on its way
    assert sent == 2
    assert page.draws("decoded") == before + 2
    assert swept == last
    assert page.console == [] and page.errors == []


def test_an_upload_is_converted_and_encoded(page: Page, tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    p, shape = page.page, page.served.info["image_shape"]
    png = tmp_path / "seven.png"
    im = Image.new("RGB", (40, 40), "black")
    ImageDraw.Draw(im).line([(8, 8), (32, 8), (16, 34)], fill="white", width=5)
    im.save(png)
    p.set_input_files("#upload", str(png))
    recon = page.settle("recon", 0)
    assert len(set(recon)) > 1
    converted = p.locator("#converted").inner_text()
    assert "read a PNG 40 wide and 40 high" in converted, converted
    assert f"resized to {shape[2]} wide and {shape[1]} high" in converted, converted
    assert math.isfinite(float(p.locator("#nll").inner_text()))
    message, kind = page.status()
    assert kind == "ok" and message == "Upload encoded."
    assert page.console == [] and page.errors == []


def test_an_api_error_goes_to_the_status_line(page: Page, tmp_path: Path) -> None:
    p = page.page
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    p.set_input_files("#upload", str(bad))
    p.wait_for_selector("#status.error")
    message, _ = page.status()
    assert message[0].isupper() and message.endswith(".") and "PNG or JPEG" in message, message
    # a wrong index is caught by the page before it asks
    p.fill("#code-index", "100000")
    p.click("#code-load")
    p.wait_for_function("document.getElementById('status').textContent.startsWith('Choose a test image')")
    assert page.errors == []
    # the only console line allowed is Chromium's own note of the 4xx answer
    assert all("status of 4" in line for line in page.console), page.console
