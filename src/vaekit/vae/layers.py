"""Gated layers: a linear map times a learned sigmoid gate, in place of linear + activation; and
`Dropout16`, dropout with cheap draws (the classifiers' dropout, the autoregressive decoder's).

    GatedLinear:  h = (W x + b) * sigmoid(V x + c)
    GatedConv2d:  h = (W * x + b) * sigmoid(V * x + c)           (* a convolution)
    GatedConvTranspose2d: the same with transposed convolutions

The gated linear unit of Dauphin et al., "Language Modeling with Gated Convolutional Networks"
(ICML 2017, eq. 1), as Tomczak & Welling, "VAE with a VampPrior" (AISTATS 2018, section 5 and their
code's `GatedDense` / `GatedConv2d`) build every hidden layer of their VAEs: the gate sigmoid(V x +
c) in (0, 1) chooses, per unit and per input, how much of the linear response passes, so the layer
needs no other non-linearity. Both maps are one layer of twice the outputs (one matrix product),
split in two: [W; V] x + [b; c] -> (a, g), h = a * sigmoid(g). tests/vae/test_layers.py holds each
against two separate torch.nn layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaekit.data.binarize import random_int16


class GatedLinear(nn.Module):
    """h = (W x + b) * sigmoid(V x + c) for x (..., n_in) -> (..., n_out)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.n_out = n_out
        self.linear = nn.Linear(n_in, 2 * n_out)  # rows [0, n_out): W, b; rows [n_out, 2 n_out): V, c

    def forward(self, x: Tensor) -> Tensor:
        a, g = self.linear(x).split(self.n_out, dim=-1)
        return a * torch.sigmoid(g)


class GatedConv2d(nn.Module):
    """h = (W * x + b) * sigmoid(V * x + c) for x (B, C_in, H, W): a Conv2d of 2 C_out channels
    whose second half gates the first."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.c_out = c_out
        self.conv = nn.Conv2d(c_in, 2 * c_out, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        a, g = self.conv(x).split(self.c_out, dim=1)
        return a * torch.sigmoid(g)


class GatedConvTranspose2d(nn.Module):
    """h = (W *^T x + b) * sigmoid(V *^T x + c): the transposed convolution of the decoders, gated."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 output_padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.c_out = c_out
        self.conv = nn.ConvTranspose2d(c_in, 2 * c_out, kernel_size, stride, padding,
                                       output_padding=output_padding)

    def forward(self, x: Tensor) -> Tensor:
        a, g = self.conv(x).split(self.c_out, dim=1)
        return a * torch.sigmoid(g)


class Dropout16(nn.Module):
    """Dropout (Srivastava et al. 2014) in training mode: y = x * m / (1 - p), m_i = 1[r_i >= t]
    with r_i uniform on the 65,536 int16 values and t = round(65536 p) - 32768, so P(m_i = 0) =
    round(65536 p) / 65536 (exact for p = 0.25, within 2^-17 of p otherwise); the identity in eval
    mode. The draws come from torch's global generator, as nn.Dropout's do (and a checkpoint keeps
    its state), 4 per 64-bit draw (`vaekit.data.binarize.random_int16`): about 3x cheaper than
    nn.Dropout's on a CPU."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.threshold = round(65536 * p) - 32768

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if self.threshold >= 32768:  # p rounds to 1: every unit dropped
            return torch.zeros_like(x)
        keep = random_int16(x.numel(), None, x.device).view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(self.scale)

    @property
    def scale(self) -> float:
        """1 / (1 - P(m_i = 0)): the factor of the units kept (and of their gradient)."""
        return 65536 / (32768 - self.threshold) if self.threshold < 32768 else 0.0

    def extra_repr(self) -> str:
        return f"p={self.p}"
