"""The eval.json object of a VAE run (`vaekit.evaluate.run`) as the table `vaekit eval` prints:
-log p(x) with its standard error, bits per dimension, -ELBO and its terms, active units, the
reconstruction error, the probe, the KL per dimension and the time taken."""

from __future__ import annotations

from typing import Any


def eval_table(result: dict[str, Any]) -> str:
    """The eval.json object as a table for people."""
    n, k = result["images"], result["k"]
    stderr = result.get("test_nll_stderr")
    lines = [
        f"test images        {n:,} of {result.get('dataset', '?')} (binarization: "
        f"{result.get('binarization', '?')})",
        f"-log p(x)          {result['test_nll']:.2f} nats" + (f" +- {stderr:.2f}" if stderr else "")
        + f"   (IWAE, k = {k:,})",
        f"bits per dim       {result['bits_per_dim']:.4f}" + _of(result),
        f"-ELBO              {result['test_neg_elbo']:.2f} nats   (recon {result['test_recon']:.2f} + "
        f"KL {result['test_kl']:.2f}" + _kl_estimate(result) + ")",
        f"active units       {result['active_units']} of {result['latent_dim']}",
        f"reconstruction MSE {result['mse']:.5f} per pixel",
    ]
    if result.get("probe_accuracy") is not None:
        lines.append(f"linear probe       {result['probe_accuracy']:.4f} test accuracy "
                     f"(fitted on {result['probe_train_images']:,} training images)")
    kl = result.get("kl_per_dim") or []
    if kl:
        lines.append("KL per dim         " + " ".join(f"{v:.2f}" for v in kl))
    threads, device = result.get("threads", "?"), result.get("device", "cpu")
    where = f"{threads} thread{'' if threads == 1 else 's'}"
    lines.append(f"time               {result['seconds']:.1f} s on "
                 + (where if device == "cpu" else f"{device} ({where} of the CPU)"))
    return "\n".join(lines)


def _of(result: dict[str, Any]) -> str:
    """'   (of 8-bit images: ...)': what the likelihood is of, when eval.json says it."""
    of = result.get("likelihood_of")
    return f"   (of {of})" if of else ""


def _kl_estimate(result: dict[str, Any]) -> str:
    """', KL by Monte Carlo, k = 5000' where the KL has no closed form (a VampPrior, two layers)."""
    how = result.get("kl_estimate", "closed form")
    return "" if how == "closed form" else f", KL by {how}"
