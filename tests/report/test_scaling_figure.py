"""vaekit.report.figures.scaling_figure, the plot of `vaekit arch --scaling --plot`: a PNG of the
size figsize * dpi, its right axis in float32 bytes, no figure left open, and a missing folder an
OSError (the command turns it into one sentence)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pytest

from vaekit.arch.sheet import scaling_table
from vaekit.report.figures import _bytes_to_params, _params_to_bytes, scaling_figure


def test_writes_a_6x4_inch_png_at_120_dpi(tmp_path: Path) -> None:
    open_before = plt.get_fignums()
    path = scaling_figure(scaling_table(), tmp_path / "scaling.png")
    assert path == tmp_path / "scaling.png"
    assert mpimg.imread(path).shape[:2] == (4 * 120, 6 * 120)
    assert plt.get_fignums() == open_before


def test_right_axis_is_four_bytes_per_parameter() -> None:
    assert _params_to_bytes(600_000) == 2_400_000
    assert _bytes_to_params(_params_to_bytes(560)) == 560


def test_a_missing_folder_is_an_os_error_and_closes_the_figure(tmp_path: Path) -> None:
    open_before = plt.get_fignums()
    with pytest.raises(OSError):
        scaling_figure(scaling_table(), tmp_path / "missing" / "scaling.png")
    assert plt.get_fignums() == open_before
    assert not (tmp_path / "missing").exists()
