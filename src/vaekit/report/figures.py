"""The figures of a run as plain functions: arrays in, a PNG file out (matplotlib, Agg backend).

Nothing here knows about models; `vaekit.report.visualize` computes the arrays (reconstructions,
prior samples, interpolations, the decoded manifold, latent means) and calls these. Images are float
arrays in [0, 1] of shape (N, C, H, W) with C = 1 (grey) or 3 (RGB). The last part draws the
figures of `vaekit check --figures DIR` from its claims' results: the estimators' variance against
the latent dimension, and the learning curves of the VAE trained with each estimator. The very
last draws the table of `vaekit arch --scaling --plot FILE.png` (`vaekit.arch.sheet`).

Every figure carries vaekit's mark (`vaekit.report.outputs.figure_metadata`) and is written whole or
not at all; one that goes where a user named it (`sample --out`, `arch --plot`, `check --figures`)
is written only where nothing of the user's is (`vaekit.report.outputs.write_output`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from vaekit.arch.arith import FLOAT32_BYTES  # noqa: E402
from vaekit.arch.sheet import ScalingRow  # noqa: E402
from vaekit.errors import ConfigError, VaekitError  # noqa: E402
from vaekit.report.outputs import figure_metadata, make_output_dir, quoted, write_output  # noqa: E402
from vaekit.report.paths import CHECK_FIGURES  # noqa: E402
from vaekit.runs import render_figure, save_figure, write_bytes_atomic  # noqa: E402

if TYPE_CHECKING:  # for annotations only: checks does not import report, nor report checks
    from vaekit.checks.claim import ClaimResult

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


GRID_SCALE = 0.06  # inches of a grid figure per pixel of its images: 6 screen pixels at DPI
# The widest or tallest grid figure drawn, in pixels at DPI (matplotlib renders the whole figure
# before its margins are cut, so the PNG is at most this): 16384 is the largest texture side of
# most GPUs, past which browsers and image viewers scale an image down or show none of it.
MAX_SIDE = 16384


def _grid_inches(h: int, w: int, scale: float = GRID_SCALE) -> tuple[float, float]:
    """(width, height) in inches of the figure of a mosaic of h x w pixels and its title."""
    return max(3.0, w * scale), max(2.0, h * scale) + 0.5


def grid_pixels(n: int, ncols: int, image_shape: Sequence[int]) -> tuple[int, int]:
    """(width, height) in pixels of the figure `image_grid` draws of n images of `image_shape`
    (C, H, W) in `ncols` columns (`mosaic`'s tile, pad 1), before its margins are cut."""
    h, w = image_shape[-2:]
    ncols = max(1, min(ncols, n))
    width, height = _grid_inches(math.ceil(n / ncols) * (h + 1) - 1, ncols * (w + 1) - 1)
    return round(width * DPI), round(height * DPI)


def _grid_figure(tile: np.ndarray, title: str, scale: float = GRID_SCALE) -> tuple[Figure, Any]:
    h, w = tile.shape[:2]
    fig, ax = plt.subplots(figsize=_grid_inches(h, w, scale))
    _show(ax, tile)
    ax.set_title(title, fontsize=10)
    return fig, ax


def image_grid(images: Any, path: str | Path, ncols: int = 8, title: str = "",
               named_by: str | None = None) -> Path:
    """Images in a grid, e.g. samples from the prior (`vaekit sample`); `named_by`: the flag and
    path that named `path` when a user did (`_save_at_dpi`)."""
    fig, _ = _grid_figure(mosaic(images, ncols), title)
    return _save_at_dpi(fig, path, named_by)


def reconstructions(originals: Any, recons: Any, path: str | Path, ncols: int = 10,
                    title: str = "test images (odd rows) over their reconstructions (even rows)") -> Path:
    """Each row of originals is followed by the row of their reconstructions."""
    fig, _ = _grid_figure(mosaic(interleave_rows(originals, recons, ncols), ncols), title)
    return _save_at_dpi(fig, path)


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
    return _save_at_dpi(fig, path)


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
    return _save_at_dpi(fig, path)


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
    return _save_at_dpi(fig, path)


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
    return _save_at_dpi(fig, path)


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
    return _save_at_dpi(fig, path)


# ----------------------------------------------------------------------------- vaekit check

COLORS = {"score": "tab:red", "score+baseline": "tab:orange", "reparam": "tab:blue"}
LINESTYLES = {1: "-", 10: "--", 100: ":"}




def variance_figure(result: ClaimResult, path: Path) -> Path:
    """Log-log variance of the n-sample gradient estimate against D: one panel per problem, a colour
    per estimator, a line style per n."""
    rows = result.details["table"]
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    fig, axes = plt.subplots(1, len(problems), figsize=(5.5 * len(problems) + 2.0, 4.2), squeeze=False,
                             layout="constrained")
    for ax, problem in zip(axes[0], problems, strict=True):
        keys = dict.fromkeys((r["estimator"], r["n"]) for r in rows if r["problem"] == problem)
        for name, n in keys:
            sel = [r for r in rows if (r["problem"], r["estimator"], r["n"]) == (problem, name, n)]
            ax.plot([r["dim"] for r in sel], [r["variance"] for r in sel], marker="o", markersize=3,
                    color=COLORS.get(name), linestyle=LINESTYLES.get(n, "-."), label=f"{name}, n={n}")
        ax.set(xscale="log", yscale="log", xlabel="latent dimension D",
               ylabel="variance per gradient coordinate", title=problem)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    fig.suptitle("Ex.2 Q5/Q6: variance of the n-sample gradient estimate (lower is better)")
    return write_output(Path(path), render_figure(fig, path, 120, figure_metadata(path), tight=False))


def training_figure(result: ClaimResult, path: Path) -> Path:
    """Held-out -ELBO and KL against the training step, one line per estimator, side by side."""
    curves = result.details["curves"]
    fig, (ax_elbo, ax_kl) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, c in curves.items():
        color = COLORS.get(name)
        ax_elbo.plot(range(1, len(c["train_neg_elbo"]) + 1), c["train_neg_elbo"], color=color,
                     alpha=0.2, linewidth=0.8)
        ax_elbo.plot(c["steps"], c["heldout_neg_elbo"], color=color, marker="o", markersize=3,
                     label=f"{name} (held-out)")
        ax_kl.plot(c["steps"], c["heldout_kl"], color=color, marker="o", markersize=3, label=name)
    numbers = result.numbers
    ax_elbo.set(xlabel="step", ylabel="-ELBO (nats per image)",
                title=f"{numbers['dataset']}: -ELBO, faint: training batches")
    top = max(max(c["heldout_neg_elbo"][1:] or c["heldout_neg_elbo"]) for c in curves.values())
    low = min(min(c["heldout_neg_elbo"]) for c in curves.values())
    ax_elbo.set_ylim(low - 0.05 * (top - low), top + 0.1 * (top - low))  # skip the untrained start
    ax_kl.set(xlabel="step", ylabel="KL(q(z|x) || p(z)) (nats per image)", title="KL term, held-out")
    for ax in (ax_elbo, ax_kl):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Ex.2 Q5 in practice: the same VAE, {numbers['steps']} steps of {numbers['batch']}, "
                 "encoder gradient by score function vs reparameterization")
    fig.tight_layout()
    return write_output(Path(path), render_figure(fig, path, 120, figure_metadata(path), tight=False))


def write_check_figures(results: list[ClaimResult], directory: str | Path) -> list[Path]:
    """Write the figures of the claims that were run (`paths.CHECK_FIGURES`: variance.png,
    training.png) into `directory`, the folder of `--figures` (`outputs.make_output_dir`: made if
    missing, its parent not; a file of the user's there is never written over). One sentence
    (ConfigError) when it cannot be."""
    draw = {"variance": variance_figure, "training": training_figure}
    ran = [r for r in results if r.id in CHECK_FIGURES]
    try:
        out = make_output_dir(str(directory), [CHECK_FIGURES[r.id] for r in ran])
        return [draw[r.id](r, out / CHECK_FIGURES[r.id]) for r in ran]
    except OSError as err:
        raise ConfigError(f"cannot write figures to {directory}: {err.strerror or err}.") from err


# ----------------------------------------------------------------------------- vaekit arch


def _params_to_bytes(params: Any) -> Any:
    """float32 bytes of `params` parameters (numbers or arrays, as matplotlib passes them)."""
    return params * FLOAT32_BYTES


def _bytes_to_params(size: Any) -> Any:
    return size / FLOAT32_BYTES


def scaling_figure(rows: Sequence[ScalingRow], path: str | Path) -> Path:
    """Ex.1 Q1 vs Q2 as the image grows (`vaekit.arch.sheet.scaling_table`), log-log: trainable
    parameters of the dense layer, (side^2*3)*(side^2*20), and of the 3x3 conv, 3*3*3*20 + 20, on
    the left axis; their float32 bytes (4 per parameter) on the right.

    The format follows the extension (.png, .svg, .pdf; matplotlib's ValueError for others). The
    file is written whole or not at all (`runs.write_bytes_atomic`); a missing folder, or a `path`
    that exists and is not a regular file (a directory, /dev/null), is an OSError and nothing is
    created."""
    path = Path(path)
    data = _scaling_bytes(rows, path)
    if path.exists() and not path.is_file():  # a directory, /dev/null: never replaced
        raise FileExistsError(f"{path} exists and is not a regular file; it is not replaced")
    write_bytes_atomic(path, data)  # a missing folder is an OSError, not created
    return path


def _scaling_bytes(rows: Sequence[ScalingRow], path: Path) -> bytes:
    """The scaling figure rendered in the format of `path`'s suffix, with vaekit's mark."""
    sides = [r.side for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sides, [r.dense_params for r in rows], "o-", label="dense HxWx3 -> HxWx20")
    ax.plot(sides, [r.conv_params for r in rows], "s-", label="conv 3x3, 20 maps")
    ax.set(xscale="log", yscale="log", xlabel="image side (pixels)", ylabel="trainable parameters",
           title="TD-2 Ex.1 Q1: dense vs conv as the image grows")
    ax.set_xticks(sides, [str(s) for s in sides])
    right = ax.secondary_yaxis("right", functions=(_params_to_bytes, _bytes_to_params))
    right.set_ylabel("float32 bytes")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return render_figure(fig, path, 120, figure_metadata(path), tight=False)


def scaling_plot(rows: Sequence[ScalingRow], path: Path, text: str) -> Path:
    """`scaling_figure` to the file a user named, `vaekit arch --scaling --plot TEXT` (checked first
    by `vaekit.report.paths.figure_path`): whole or not at all, only over nothing or a file of
    vaekit's (`outputs.write_output`), else one sentence naming it."""
    try:
        return write_output(path, _scaling_bytes(rows, path), f"--plot {quoted(text)}")
    except VaekitError:  # runs.write_bytes_atomic's sentence: the file, why, nothing left
        raise
    except OSError as err:
        raise ConfigError(f"--plot {quoted(text)} cannot be written ({err.strerror or err}); "
                          "expected a file in a writable directory that exists.") from None


# ----------------------------------------------------------------------------- a classifier run


def confusion_figure(matrix: Sequence[Sequence[int]], names: Sequence[str], path: str | Path,
                     title: str = "confusion matrix of the test set") -> Path:
    """The confusion matrix C[t, p] (rows: true class t, columns: predicted class p), each cell
    annotated with its count and coloured by its share of the row, C[t, p] / sum_p C[t, p] (the
    diagonal is the per-class accuracy); rows without images stay white."""
    counts = np.asarray(matrix, dtype=np.int64)
    k = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    side = max(4.0, 0.55 * k + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    shown = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    size = 9 if k <= 10 else 7 if k <= 20 else 5
    for t in range(k):
        for p in range(k):
            ax.text(p, t, f"{counts[t, p]:,}", ha="center", va="center", fontsize=size,
                    color="white" if share[t, p] > 0.5 else "black")
    labels = [str(n) for n in names]
    ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels), default=0) > 2 else 0,
                  ha="right" if max(map(len, labels), default=0) > 2 else "center", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return _save_at_dpi(fig, path)


def captioned_grid(images: Any, captions: Sequence[str], path: str | Path, ncols: int = 8,
                   title: str = "") -> Path:
    """Images (N, C, H, W) in [0, 1] in a grid of `ncols`, each with its caption above it (e.g.
    "true Shirt / pred T-shirt 99%")."""
    a = _array(images)
    n = a.shape[0]
    if len(captions) != n:
        raise ValueError(f"{n} images but {len(captions)} captions")
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.75 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, a[i].transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)
            ax.set_title(captions[i], fontsize=7)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save_at_dpi(fig, path)


def classifier_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """From a classifier's metrics.jsonl rows: train and validation loss (left, nats per image)
    and accuracy (right, percent) per epoch."""
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]

    def col(key: str, scale: float = 1.0) -> list[float]:
        return [scale * float(r[key]) if r.get(key) is not None else math.nan for r in rows]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((ax1, "cross-entropy", "nats per image", 1.0,
               (("train_loss", "train loss"), ("val_loss", "validation loss"))),
              (ax2, "accuracy", "percent", 100.0,
               (("train_accuracy", "train accuracy"), ("val_accuracy", "validation accuracy"))))
    for ax, title, unit, scale, series in panels:
        for key, label in series:
            if any(key in r for r in rows):
                ax.plot(epochs, col(key, scale), marker="o", ms=3, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save_at_dpi(fig, path)


def _save_at_dpi(fig: Any, path: str | Path, named_by: str | None = None) -> Path:
    """A figure at DPI, its margins cut, with vaekit's mark: a run's own (its folder made,
    `runs.save_figure`), or, `named_by` given (the flag and path that named it), the file a user
    named, written only over nothing or a file of vaekit's (`outputs.write_output`)."""
    if named_by is None:
        return save_figure(fig, path, DPI, figure_metadata(path))
    return write_output(Path(path), render_figure(fig, path, DPI, figure_metadata(path)), named_by)
