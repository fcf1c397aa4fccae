"""Products with a masked matrix at the cost of its band: the row groups of the mask and their columns.

MADE's masks (`vaekit.vae.autoregressive.made_masks`) are zero over most of their area: the full mask
is triangular (half of it), and a local window of W pixels keeps a band of about W columns per row
(a fifth of the 784 x 4,096 entries for W = 168). A dense product with the masked matrix (M . A)
multiplies all those zeros. `Band` splits the rows of M into `groups` consecutive groups and keeps,
for each group, the range of columns [c0, c1) outside which its rows of M are zero; every product
of the autoregressive term then runs group by group on those blocks:

    y = x (M . A)^T:       y[:, r0:r1] = x[:, c0:c1] (M . A)[r0:r1, c0:c1]^T      (forward)
    dx = dy (M . A):       dx[:, c0:c1] += dy[:, r0:r1] (M . A)[r0:r1, c0:c1]    (input gradient)
    dA = (dy^T x) . M:     dA[r0:r1, c0:c1] = dy[:, r0:r1]^T x[:, c0:c1], 0 elsewhere, then . M

The same sums as the dense products term by term, only the terms whose mask entry is zero left out
(exact for any mask: the ranges are read off the mask; tests/vae/test_banded.py holds every product
against the dense masked one in float64). The blocks are views of the full matrices (no copy), and
the outputs are laid out feature-major, (features, rows) transposed, so that every block's product
writes whole rows of memory; `forward` and the gradients return (rows, features) views of them.
With 16 groups the products cover 53% of the full mask's area and 16% of a window of 168
(`density`); bench/banded_speed.py measures the training step against the one-group (dense) band.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

GROUPS = 16  # row groups of a band (bench/banded_speed.py: 16 and 32 within noise, 8 slower)


def _wide(t: Tensor) -> torch.dtype:
    """The dtype a gradient is summed in: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


class Band:
    """The row groups of a mask (out, in) and the column range [c0, c1) each group's rows reach:
    `blocks` is a list of (r0, r1, c0, c1). A group whose rows are all zero is left out."""

    def __init__(self, mask: Tensor, groups: int = GROUPS) -> None:
        if mask.dim() != 2 or groups < 1:
            raise ValueError(f"a band needs a 2-D mask and at least one group, got {tuple(mask.shape)}"
                             f" and {groups}")
        self.shape = (int(mask.shape[0]), int(mask.shape[1]))
        out = self.shape[0]
        size = -(-out // min(groups, out))  # rows per group
        nonzero = mask != 0
        self.blocks: list[tuple[int, int, int, int]] = []
        for r0 in range(0, out, size):
            r1 = min(out, r0 + size)
            cols = nonzero[r0:r1].any(0).nonzero().flatten()
            if cols.numel():
                self.blocks.append((r0, r1, int(cols[0]), int(cols[-1]) + 1))
        self._covers = sum(r1 - r0 for r0, r1, _, _ in self.blocks) == out  # every row computed

    @property
    def density(self) -> float:
        """The fraction of the dense product's multiply-adds the blocks make."""
        area = sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in self.blocks)
        return area / (self.shape[0] * self.shape[1])

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        """y = x A^T for x (N, in) and the masked matrix A = M . A (out, in), both of one dtype:
        (N, out) in that dtype, a view of a (out, N) tensor."""
        make = x.new_empty if self._covers else x.new_zeros  # rows no block reaches stay 0
        y_t = make(self.shape[0], x.shape[0])
        for r0, r1, c0, c1 in self.blocks:
            torch.mm(a[r0:r1, c0:c1], x[:, c0:c1].t(), out=y_t[r0:r1])
        return y_t.t()

    def backward_input(self, dy: Tensor, a: Tensor) -> Tensor:
        """dx = dy A for dy (N, out) and A (out, in) of one dtype: (N, in) float32 (float64 for
        float64 inputs), the overlapping blocks' parts summed there; a view of an (in, N) tensor."""
        dx_t = torch.zeros(self.shape[1], dy.shape[0], dtype=_wide(dy), device=dy.device)
        dy_t = dy.t()
        for r0, r1, c0, c1 in self.blocks:
            dx_t[c0:c1] += torch.mm(a[r0:r1, c0:c1].t(), dy_t[r0:r1])
        return dx_t.t()

    def backward_weight(self, dy: Tensor, x: Tensor) -> Tensor:
        """dy^T x on the blocks, 0 elsewhere, for dy (N, out) and x (N, in) of one dtype: (out, in)
        float32 (float64 for float64 inputs). Multiply by the mask for dA of the masked matrix."""
        grad = torch.zeros(self.shape, dtype=_wide(dy), device=dy.device)
        dy_t = dy.t()
        for r0, r1, c0, c1 in self.blocks:
            grad[r0:r1, c0:c1] = torch.mm(dy_t[r0:r1], x[:, c0:c1])
        return grad


class _BandedProduct(torch.autograd.Function):
    """y = x A^T on a band, with its two gradients from `Band` (for autograd)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, a: Tensor, band: Band) -> Tensor:
        ctx.save_for_backward(x, a)
        ctx.band = band
        return band.forward(x, a)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, a = ctx.saved_tensors
        band: Band = ctx.band
        dy = dy.to(x.dtype)
        dx = band.backward_input(dy, a).to(x.dtype) if ctx.needs_input_grad[0] else None
        da = band.backward_weight(dy, x).to(a.dtype) if ctx.needs_input_grad[1] else None
        return dx, da, None


def banded_product(x: Tensor, a: Tensor, band: Band) -> Tensor:
    """x A^T for x (..., in) and a masked matrix A (out, in) whose zeros `band` was read from:
    (..., out), differentiable in x and A. Under CPU autocast the product takes its dtype (as
    F.linear would)."""
    if torch.is_autocast_enabled(x.device.type):
        low = torch.get_autocast_dtype(x.device.type)
        x, a = x.to(low), a.to(low)
    elif a.dtype != x.dtype:
        a = a.to(x.dtype)
    lead = x.shape[:-1]
    y = _BandedProduct.apply(x.reshape(-1, x.shape[-1]), a, band)
    return y.reshape(*lead, y.shape[-1])
