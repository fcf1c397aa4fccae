"""`vaekit sample`'s grid is bounded in pixels: a figure wider or taller than figures.MAX_SIDE (what
browsers and image viewers show whole) is refused before the model is read or anything written,
naming -n and --ncols, its size and the --ncols that fit; the sizes it says are matplotlib's own
canvas for that mosaic, and a grid at the bound is drawn."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_refusal import cli_bad, snapshot
from eval_runs import make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.report import figures


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("sample") / "run")  # digits: 1x8x8 images


def canvas(n: int, ncols: int) -> tuple[int, int]:
    """(width, height) in pixels of matplotlib's canvas for the grid of n 8x8 images in ncols columns,
    before its margins are cut (the figure is drawn whole, then cropped)."""
    fig, _ = figures._grid_figure(figures.mosaic(np.zeros((n, 1, 8, 8)), ncols), "t")
    try:
        return fig.canvas.get_width_height()
    finally:
        figures.plt.close(fig)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize("flags", [["-n", "10000", "--ncols", "1"], ["-n", "303", "--ncols", "1"],
                                   ["-n", "10000", "--ncols", "10000"]])
def test_a_grid_too_large_is_refused_before_the_model_is_read(trained: Path, tmp_path: Path, capsys: Any,
                                                              one_sentence: Any, flags: list[str]) -> None:
    """The model file gone: the grid's sentence comes first, and nothing is written; the size it
    says is matplotlib's canvas, past the bound; the first --ncols it offers draws a grid within it."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    (run / runs.MODEL).unlink()
    before = snapshot(run)
    out = tmp_path / "s.png"
    err = cli_bad(capsys, one_sentence, ["sample", str(run), *flags, "--out", str(out)], "-n", "--ncols")
    assert not out.exists() and snapshot(run) == before
    n, ncols = int(flags[1]), int(flags[3])
    said = re.search(r"figure of ([\d,]+) x ([\d,]+) pixels", err)
    assert said, err
    size = tuple(int(v.replace(",", "")) for v in said.groups())
    assert size == canvas(n, ncols) and max(size) > figures.MAX_SIDE, err
    offered = re.search(r"--ncols (\d+)(?: to (\d+))? fits", err)
    assert offered, err
    for cols in {int(c) for c in offered.groups() if c}:  # the ends of the range offered
        assert max(canvas(n, cols)) <= figures.MAX_SIDE, (cols, err)


def test_a_grid_at_the_bound_is_drawn(trained: Path, tmp_path: Path) -> None:
    """One column: 302 images make a canvas within the bound, 303 one past it; the 302 are drawn,
    a PNG within the bound on both sides."""
    assert max(canvas(302, 1)) <= figures.MAX_SIDE < max(canvas(303, 1))
    out = tmp_path / "s.png"
    assert main(["sample", str(trained), "-n", "302", "--ncols", "1", "--out", str(out)]) == 0
    width, height = png_size(out)
    assert max(width, height) <= figures.MAX_SIDE and height > 10 * width  # one tall column


def test_no_ncols_fits_too_many_samples(trained: Path, capsys: Any, one_sentence: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no --ncols fits -n, the sentence says the most samples that fit and their --ncols: that
    grid is within the bound, one more column is too wide, one more row too tall (a smaller bound
    here, for grids quick to draw)."""
    monkeypatch.setattr(figures, "MAX_SIDE", 2000)
    err = cli_bad(capsys, one_sentence, ["sample", str(trained), "-n", "2000"], "-n 2000")
    most = re.search(r"no --ncols fits -n 2000: ask for at most ([\d,]+) samples, with --ncols (\d+)", err)
    assert most, err
    m, cols = int(most.group(1).replace(",", "")), int(most.group(2))
    rows = m // cols
    assert rows * cols == m and max(canvas(m, cols)) <= 2000
    assert canvas(cols + 1, cols + 1)[0] > 2000 and canvas(rows + 1, 1)[1] > 2000
    assert not (trained / "figures").exists()
