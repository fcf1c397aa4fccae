"""vaekit.classify.loss: the cross-entropy against its formula written out, and the engine's sums
and gradients against a brute-force count and autograd of the batch mean."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vaekit.classify.loss import ClassifierEngine, cross_entropy


@pytest.mark.parametrize("s", [0.0, 0.1, 0.5])
def test_cross_entropy_is_its_formula(s: float) -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(7, 5, dtype=torch.float64), torch.randint(0, 5, (7,))
    target = (1 - s) * torch.eye(5, dtype=torch.float64)[y] + s / 5
    log_p = logits - logits.exp().sum(1, keepdim=True).log()  # log softmax, by hand
    torch.testing.assert_close(cross_entropy(logits, y, s), -(target * log_p).sum(1))


def test_engine_sums_and_gradients() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    x, y = torch.rand(9, 1, 3, 4), torch.randint(0, 4, (9,))
    sums = ClassifierEngine(0.1).loss_and_grads(model, x, 1.0, torch.Generator(), y)
    grads = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    logits = model(x)
    right = sum(int(logits[i].argmax()) == int(y[i]) for i in range(9))  # brute force
    assert sums[1].item() == right
    loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    torch.testing.assert_close(sums[0].item(), 9 * loss.item(), rtol=1e-6, atol=1e-6)
    model.zero_grad()
    loss.backward()
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_engine_needs_labels() -> None:
    with pytest.raises(ValueError):
        ClassifierEngine().loss_and_grads(nn.Linear(2, 2), torch.rand(1, 2), 1.0, torch.Generator())
