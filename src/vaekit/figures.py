"""The figures of a run as plain functions: arrays in, a PNG file out (matplotlib, Agg backend).

Nothing here knows about models; `vaekit.visualize` computes the arrays (reconstructions, prior
samples, interpolations, the decoded manifold, latent means) and calls these. Images are float
arrays in [0, 1] of shape (N, C, H, W) with C = 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 100


def _array(images: Any) -> np.ndarray:
    """A float numpy array in [0, 1] from a numpy array or a torch tensor."""
    if hasattr(images, "detach"):
        images = images.detach().to("cpu").float().numpy()
    return np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)


def mosaic(images: Any, ncols: int, pad: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) images into one (rows*(H+pad)-pad, ncols*(W+pad)-pad, C) array, row by
    row; empty cells and padding are white."""
    a = _array(images)
    n, c, h, w = a.shape
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    out = np.ones((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = \
            a[i].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return out


def _show(ax: Any, tile: np.ndarray) -> None:
    if tile.shape[2] == 1:
        ax.imshow(tile[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(tile, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _grid_figure(tile: np.ndarray, title: str, scale: float = 0.06) -> tuple[Figure, Any]:
    h, w = tile.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3.0, w * scale), max(2.0, h * scale) + 0.5))
    _show(ax, tile)
    ax.set_title(title, fontsize=10)
    return fig, ax


def image_grid(images: Any, path: str | Path, ncols: int = 8, title: str = "") -> Path:
    """Images in a grid, e.g. samples from the prior (`vaekit sample`)."""
    fig, _ = _grid_figure(mosaic(images, ncols), title)
    return _save(fig, path)


def reconstructions(originals: Any, recons: Any, path: str | Path, ncols: int = 10,
                    title: str = "test images (odd rows) over their reconstructions (even rows)") -> Path:
    """Each row of originals is followed by the row of their reconstructions."""
    fig, _ = _grid_figure(mosaic(interleave_rows(originals, recons, ncols), ncols), title)
    return _save(fig, path)


def interleave_rows(originals: Any, recons: Any, ncols: int) -> np.ndarray:
    """(N, C, H, W) twice -> (2 * rows * ncols, C, H, W): a row of `ncols` originals, then the row
    of their reconstructions, and so on; the last pair of rows is padded with white images."""
    a, b = _array(originals), _array(recons)
    if a.shape != b.shape:
        raise ValueError(f"originals {a.shape} and reconstructions {b.shape} differ in shape")
    rows = []
    for start in range(0, a.shape[0], ncols):
        chunk_a, chunk_b = a[start : start + ncols], b[start : start + ncols]
        if chunk_a.shape[0] < ncols:  # pad the last pair of rows with white
            fill = np.ones((ncols - chunk_a.shape[0], *a.shape[1:]), dtype=np.float32)
            chunk_a, chunk_b = np.concatenate([chunk_a, fill]), np.concatenate([chunk_b, fill])
        rows += [chunk_a, chunk_b]
    return np.concatenate(rows)


def interpolations(rows: Any, path: str | Path,
                   title: str = "latent interpolations: each row decodes mu_a + t (mu_b - mu_a)") -> Path:
    """rows (R, S, C, H, W): R interpolations of S steps each, one per row."""
    a = _array(rows)
    r, s = a.shape[:2]
    fig, _ = _grid_figure(mosaic(a.reshape(r * s, *a.shape[2:]), s), title)
    return _save(fig, path)


def manifold(grid: Any, quantiles: Sequence[float], path: str | Path,
             title: str = "decoded manifold on prior quantiles") -> Path:
    """grid (n, n, C, H, W): the image decoded at z = (Phi^-1(q_j), Phi^-1(q_i)) in row i, column
    j, with rows going down in z_2; `quantiles` label the axes."""
    a = _array(grid)
    n = a.shape[0]
    tile = mosaic(a.reshape(n * n, *a.shape[2:]), n, pad=0)
    side = max(6.0, 1.6 * tile.shape[1] / DPI)  # about 1.6 screen pixels per image pixel
    fig, ax = plt.subplots(figsize=(side, side))
    _show(ax, tile)
    h, w = a.shape[3], a.shape[4]
    ticks = [0, n // 2, n - 1]
    ax.set_xticks([t * w + w / 2 for t in ticks], [f"{quantiles[t]:.2f}" for t in ticks])
    ax.set_yticks([t * h + h / 2 for t in ticks], [f"{quantiles[n - 1 - t]:.2f}" for t in ticks])
    ax.set_xlabel("prior quantile of z_1")
    ax.set_ylabel("prior quantile of z_2")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def latent_scatter(points: Any, path: str | Path, labels: Any = None,
                   classes: Sequence[str] | None = None, title: str = "latent means of test images",
                   axis_labels: tuple[str, str] = ("z_1", "z_2")) -> Path:
    """points (N, 2): latent means (or their PCA projection), coloured by class when labels exist."""
    p = np.asarray(points.detach().cpu() if hasattr(points, "detach") else points, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 6))
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.5, color="tab:blue")
    else:
        lab = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
        cmap = plt.get_cmap("tab10" if lab.max(initial=0) < 10 else "tab20")
        for c in np.unique(lab):
            name = classes[int(c)] if classes is not None and int(c) < len(classes) else str(c)
            sel = lab == c
            ax.scatter(p[sel, 0], p[sel, 1], s=3, alpha=0.6, color=cmap(int(c) % cmap.N), label=name)
        ax.legend(markerscale=4, fontsize=8, loc="best", framealpha=0.8)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def kl_per_dim(kl: Sequence[float], path: str | Path, active: Sequence[bool] | None = None,
               title: str = "KL(q(z|x) || p(z)) per latent dimension, mean over test images") -> Path:
    """Bars of the mean KL of each latent dimension, in nats; inactive units in grey."""
    values = np.asarray(kl, dtype=np.float64)
    colors = ["tab:blue" if (active is None or a) else "tab:gray"
              for a in (active if active is not None else [True] * len(values))]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(values) + 2), 3.5))
    ax.bar(np.arange(len(values)), values, color=colors)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("latent dimension" + ("  (grey: inactive, Cov_x E_q[z] <= 0.01)" if active is not None
                                         else ""))
    ax.set_ylabel("KL (nats)")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def learning_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """From metrics.jsonl rows: train and validation -ELBO (left) and KL (right) per epoch."""
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]

    def col(key: str) -> list[float]:
        return [float(r[key]) if r.get(key) is not None else math.nan for r in rows]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((ax1, "-ELBO", (("train_neg_elbo", "train -ELBO"), ("val_neg_elbo", "validation -ELBO"))),
              (ax2, "KL(q(z|x) || p(z))", (("train_kl", "train KL"), ("val_kl", "validation KL"))))
    for ax, title, series in panels:
        for key, label in series:
            if any(key in r for r in rows):
                ax.plot(epochs, col(key), marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.set_title(title, fontsize=10)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)
