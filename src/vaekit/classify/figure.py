"""The figure of `vaekit classify --compare` (`vaekit.classify.compare`): OUT/compare.png from its
rows, four panels against the image side (matplotlib, Agg backend). Like `vaekit.report.figures`
it renders in memory and writes with `runs.write_bytes_atomic`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from vaekit.runs import save_figure  # noqa: E402

DPI = 100  # as vaekit.report.figures'


COMPARE_COLORS = {"dense": "tab:red", "cnn": "tab:blue"}


def _tick(value: float, _: Any) -> str:
    """A log axis' tick written out: 20,000 rather than 2x10^4; 0.05 below 1."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def compare_figure(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Ex.1 Q1 by measurement (`vaekit.classify.compare`), one line per model against the image
    side, four panels: parameters (log-log, with a dotted side^2 line through the first dense
    point: the dense grows as side^2, the cnn stays flat), memory in MiB (estimate dashed, measured
    peak solid), training seconds per epoch (log), and train (dashed) / test (solid) accuracy.
    A value that is None (a network refused, or memory not measured) is left out of its panel."""

    def col(sel: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
        return [math.nan if r.get(key) is None else scale * float(r[key]) for r in sel]

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    (ax_p, ax_m), (ax_t, ax_a) = axes
    sides = sorted({int(r["side"]) for r in rows})
    for model in dict.fromkeys(r["model"] for r in rows):
        sel = sorted((r for r in rows if r["model"] == model), key=lambda r: r["side"])
        x = [r["side"] for r in sel]
        color = COMPARE_COLORS.get(model)
        ax_p.plot(x, col(sel, "params"), "o-", color=color, label=model)
        ax_m.plot(x, col(sel, "estimated_memory_mb"), "o--", color=color, alpha=0.6,
                  label=f"{model} estimate")
        ax_m.plot(x, col(sel, "peak_memory_mb"), "s-", color=color, label=f"{model} measured peak")
        ax_t.plot(x, col(sel, "epoch_seconds"), "o-", color=color, label=model)
        ax_a.plot(x, col(sel, "train_accuracy", 100), "o--", color=color, alpha=0.6, label=f"{model} train")
        ax_a.plot(x, col(sel, "test_accuracy", 100), "s-", color=color, label=f"{model} test")
        if model == "dense" and sel:
            first = sel[0]
            ax_p.plot(sides, [first["params"] * (s / first["side"]) ** 2 for s in sides], ":",
                      color="gray", label="side^2 through the first dense point")
    ax_p.set(yscale="log", ylabel="parameters", title="parameters (Ex.1 Q1)")
    ax_m.set(yscale="log", ylabel="MiB", title="memory")
    ax_t.set(yscale="log", ylabel="seconds", title="training seconds per epoch")
    ax_a.set(ylabel="percent", title="accuracy (gap = overfitting)")
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xticks(sides, [str(s) for s in sides])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if ax is not ax_a:  # log axes: ticks at 1, 2, 5 x 10^k, written out
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick))
            ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("image side (pixels)")
        ax.grid(True, which="major", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    first = rows[0] if rows else {}
    fig.suptitle(f"TD-2 Ex.1 Q1 by measurement: dense vs cnn on {first.get('dataset', '?')} resized "
                 f"({first.get('resize', '?')}), {first.get('epochs', '?')} epoch(s) each", fontsize=11)
    fig.tight_layout()
    return _save_at_dpi(fig, path)


def _save_at_dpi(fig: Any, path: str | Path) -> Path:
    return save_figure(fig, path, DPI)
