"""report.html as a person sees it: opened in headless Chromium (Debian's `chromium` package), every
image must have loaded (naturalWidth > 0) and the page must show the eval numbers."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from eval_runs import make_run
from vaekit.evaluate.run import evaluate_run
from vaekit.report.html import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                       "(apt-get install chromium); the report is checked in a real browser"),
]

# Appended to a copy of the report: after the load event, record in the DOM which images decoded.
# A deliberately broken image (id=control) shows that the check can see a failure.
CHECK = """
<img id="control" src="data:image/png;base64,iVBORw0KGgoAAAAN" alt="broken on purpose">
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var mark = document.createElement('pre');
  mark.id = 'img-check';
  mark.textContent = JSON.stringify(imgs.map(function (i) {
    return {id: i.id, alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};
  }));
  document.body.appendChild(mark);
});
</script>
"""


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = make_run(tmp_path_factory.mktemp("browser") / "run", latent=2)
    evaluation = evaluate_run(run, k=20, progress=False)
    return write_report(run, log=lambda _m: None), evaluation


def test_every_image_loads_and_the_eval_numbers_show(report: tuple[Path, dict], tmp_path: Path) -> None:
    path, evaluation = report
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</body>", CHECK + "</body>"))
    out = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p")
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'<pre id="img-check">(.*?)</pre>', out.stdout, re.S)
    assert found, "the load event never fired: " + out.stdout[-500:]
    images = json.loads(html.unescape(found.group(1)))
    control = [i for i in images if i["id"] == "control"]
    figures = [i for i in images if i["id"] != "control"]
    assert control and control[0]["width"] == 0  # the broken image is seen as broken
    assert len(figures) == len(list((path.parent / "figures").glob("*.png"))) == 7
    for img in figures:
        assert img["complete"] and img["width"] > 100 and img["height"] > 100, img
    text = re.sub(r"<[^>]+>", " ", out.stdout)
    for key in ("test_nll", "test_neg_elbo", "test_recon", "test_kl", "bits_per_dim"):
        assert f"{evaluation[key]:,.4f}" in text, key
    assert re.search(rf'id="test-nll">{evaluation["test_nll"]:,.4f}<', out.stdout)


def test_screenshot_is_not_blank(report: tuple[Path, dict], tmp_path: Path) -> None:
    path, _ = report
    shot = tmp_path / "shot.png"
    out = _chromium("--window-size=1200,3000", f"--screenshot={shot}", path.as_uri(), profile=tmp_path / "p")
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels[..., :3].std() > 0.05  # text and figures, not an empty page
