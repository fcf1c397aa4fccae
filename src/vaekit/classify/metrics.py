"""How right a classifier is: predictions in batches, accuracy, its confidence interval, the
confusion matrix and the per-class table.

    logits(model, x)              (N, K) logits of float images x, in eval mode, in batches
    accuracy(model, x, y)         the fraction of images whose arg-max logit is their label
    wilson_interval(k, n, z)      the Wilson score interval of a proportion k / n
    confusion(pred, y, classes)   (K, K) counts: row = true class, column = predicted class
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

EVAL_BATCH = 1000
Z95 = 1.959963984540054  # the standard normal's 0.975 quantile: a two-sided 95% interval


@torch.inference_mode()
def logits(model: nn.Module, x: Tensor, batch_size: int = EVAL_BATCH) -> Tensor:
    """Logits (N, K) of images x (N, C, H, W) in [0, 1], `batch_size` at a time, in eval mode
    (batch norm uses its running statistics, dropout is off)."""
    model.eval()
    if x.shape[0] == 0:
        raise ValueError("no images to classify")
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = EVAL_BATCH) -> float:
    """The fraction of the images x whose arg-max logit is their label y."""
    return float((logits(model, x, batch_size).argmax(1) == y).double().mean())


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion p = k / n (E. B. Wilson 1927, "Probable inference,
    the law of succession, and statistical inference", JASA 22):

        (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)

    unlike the normal approximation p -+ z sqrt(p(1-p)/n), it stays inside [0, 1] and is not
    empty at p = 0 or 1."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale)


def confusion(pred: Tensor, y: Tensor, classes: int) -> Tensor:
    """(classes, classes) int64 counts: entry [t, p] = images of true class t predicted as p."""
    return torch.bincount(y * classes + pred, minlength=classes * classes).reshape(classes, classes)
