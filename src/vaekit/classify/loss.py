"""A classifier's loss and its engine for the training loop.

    cross_entropy(logits, y, smoothing)   per-image loss in nats
    ClassifierEngine(smoothing)           `vaekit.train.engines.Engine` for a classifier: sums
                                          (loss, number right) of a batch, gradients by autograd
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLASSIFY_SUMS = ("loss", "accuracy")  # summed over a batch: nats, images classified right


def cross_entropy(logits: Tensor, y: Tensor, smoothing: float = 0.0) -> Tensor:
    """Per-image cross-entropy in nats, (B,), of logits (B, K) against labels y (B,):

        loss_i = -sum_k t_ik log softmax(logits_i)_k,  t_i = (1 - s) onehot(y_i) + s / K

    (label smoothing s: Szegedy et al. 2016, "Rethinking the Inception Architecture", section 7;
    s = 0 is the negative log-likelihood of the label). `F.cross_entropy` with
    `label_smoothing=s` computes exactly this."""
    return F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing)


class ClassifierEngine:
    """Cross-entropy (with label smoothing) and its gradient by autograd; the batch sums are the
    loss (nats) and the number of images whose arg-max logit is their label."""

    names: tuple[str, ...] = CLASSIFY_SUMS
    baseline: float | None = None

    def __init__(self, smoothing: float = 0.0) -> None:
        self.smoothing = smoothing

    def loss_and_grads(self, model: nn.Module, x: Tensor, beta: float, generator: torch.Generator,
                       y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("a classifier's engine needs the labels y of the batch")
        logits = model(x)
        loss = cross_entropy(logits, y, self.smoothing)
        model.zero_grad(set_to_none=True)
        loss.mean().backward()
        with torch.no_grad():
            right = (logits.argmax(1) == y).sum()
            return torch.stack([loss.detach().sum().double(), right.double()])

    def describe(self, means: list[float]) -> str:
        return f"loss {means[0]:.4f} accuracy {100 * means[1]:.2f}%"
