"""The figures of `vaekit check --figures DIR`: the estimators' variance against the latent
dimension, and the learning curves of the VAE trained with each estimator side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaekit.checks import ClaimResult

COLORS = {"score": "tab:red", "score+baseline": "tab:orange", "reparam": "tab:blue"}
LINESTYLES = {1: "-", 10: "--", 100: ":"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def variance_figure(result: ClaimResult, path: Path) -> Path:
    """Log-log variance of the n-sample gradient estimate against D: one panel per problem, a colour
    per estimator, a line style per n."""
    plt = _pyplot()
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_figure(result: ClaimResult, path: Path) -> Path:
    """Held-out -ELBO and KL against the training step, one line per estimator, side by side."""
    plt = _pyplot()
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_figures(results: list[ClaimResult], directory: str | Path) -> list[Path]:
    """Write the figures of the claims that were run (variance.png, training.png) into directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        if result.id == "variance":
            written.append(variance_figure(result, out / "variance.png"))
        elif result.id == "training":
            written.append(training_figure(result, out / "training.png"))
    return written
