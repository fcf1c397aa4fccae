"""What the latent code holds: active units and a linear probe on the latent means.

    active_units(mu)         Burda et al. 2016, section 5.2: A_u = Cov_x(E_q(z|x)[z_u]) > 0.01
    probe_accuracy(...)      a logistic-regression probe on the latent means
"""

from __future__ import annotations

import torch
from torch import Tensor

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016, section 5.2
PROBE_TRAIN_IMAGES = 10_000  # the probe is fitted on a seeded subsample of the training split, at most this



def active_units(mu: Tensor, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, Tensor]:
    """Active units (Burda et al. 2016, section 5.2): unit u is active if
    A_u = Cov_x(E_{u~q(u|x)}[u]) > 0.01, the variance over the images of the posterior mean.

    mu (N, D) -> (count, A (D,)). Population variance (divide by N), in float64, on mu's device.
    """
    a = (mu.double().var(dim=0, correction=0) if mu.shape[0] > 0
         else torch.zeros(mu.shape[1], dtype=torch.float64, device=mu.device))
    return int((a > threshold).sum()), a


def probe_accuracy(train_mu: Tensor, train_labels: Tensor, test_mu: Tensor, test_labels: Tensor,
                   seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression (scikit-learn, standardized inputs,
    L2 C=1) fitted on latent means of training images: how linearly the code separates classes.
    The tensors may be on any device: scikit-learn gets CPU copies."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    clf.fit(train_mu.double().cpu().numpy(), train_labels.cpu().numpy())
    return float(clf.score(test_mu.double().cpu().numpy(), test_labels.cpu().numpy()))
