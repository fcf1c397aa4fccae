"""An autoregressive Bernoulli decoder: every pixel also sees the pixels before it.

The sheet's decoder makes the pixels independent given z: p(x|z) = prod_i Bernoulli(x_i | s_i(z)).
This one keeps the decoder network's logits l(z) and adds a masked layer over the pixels already
drawn (raster order over the flattened C x H x W image, channel by channel):

    p(x|z) = prod_i Bernoulli(x_i | sigmoid(l_i(z) + a_i(x_<i, z)))
    a(x, z) = (M2 . V) relu((M1 . W) x + U z + b)                     (Germain et al., "MADE", 2015)

M1 and M2 are MADE's masks: hidden unit k has a degree m_k in 1..D-1 and sees the pixels j < m_k
(0-based), and output i sees the hidden units with m_k <= i, so a_i depends on x_j only for j < i:
the product is a normalized distribution over {0, 1}^D for every z (tests/vae/test_autoregressive.py
sums it over all 2^D images of a small D, and holds the dependency structure by brute force). This
is the VAE with an autoregressive decoder of PixelVAE (Gulrajani et al. 2017) and the Variational
Lossy Autoencoder (Chen et al. 2017), with MADE's one masked hidden layer in place of their
PixelCNN: a dense layer, so it runs as matrix products on a CPU, and the pixel part (M1 . W) x + b
is computed once per image however many samples of z are scored (the k = 5,000 of evaluation).
V starts at zero, so a new model starts as the factorized decoder. The masked products run on the
masks' `Band`s (`vaekit.vae.banded`): only the blocks of M1 and M2 that are not zero, about half of
the full masks and a fifth of a window of 168, with the same sums.

With a `window` W > 0 the masks are also local (`made_masks`): a_i depends on x_j only for
i - W <= j < i, the W pixels before pixel i in raster order, and z is left what lies further away
(the local autoregressive decoder of the Variational Lossy Autoencoder, Chen et al. 2017). Fewer
connections to fit the training images with: on 11,000 Fashion-MNIST images W = 168 ends without
the full term's overfitting (docs/benchmarks.md, the overfitting screens of `bench/overfit_screen.py`).

With `dropout` p > 0 the masked layer's hidden units are dropped while training (Srivastava et al.,
"Dropout", JMLR 2014): r <- r . m / (1 - p), m_k ~ Bernoulli(1 - p) per unit and image
(`vaekit.vae.layers.Dropout16`); evaluation and sampling use every unit. Its 4,096 units x 784
pixels are most of the model's parameters, and what it overfits first on 55,000 images.

With the pixels observed (training, evaluation) every logit comes in one pass ("teacher forcing",
`teacher_forced`). Without them, pixels are drawn one at a time (`sample`, D steps), and the images
shown for a z (`mean_field`, what `decode` gives such a model) are the pixel probabilities of the
same D steps with each pixel's probability fed forward in place of a draw: a picture of the model,
not E[x|z], which has no closed form here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaekit.vae.banded import GROUPS, Band, banded_product
from vaekit.vae.layers import Dropout16


def made_degrees(pixels: int, units: int) -> Tensor:
    """Degrees m_k in 1..D-1 of `units` hidden units, spread evenly (MADE section 4, deterministic):
    m_k = 1 + floor(k (D - 1) / units). (units,) int64."""
    return 1 + torch.arange(units, dtype=torch.int64) * (pixels - 1) // units


def window_split(window: int) -> tuple[int, int]:
    """(a, b) with a + b - 1 = window, a = ceil((window + 1) / 2): how far back a unit sees (a
    pixels) and how far forward an output takes units (b degrees), for a term of `window` pixels."""
    a = (window + 2) // 2
    return a, window + 1 - a


def made_masks(pixels: int, units: int, window: int = 0) -> tuple[Tensor, Tensor]:
    """MADE's masks (MADE eq. 12-13 for one hidden layer): M1 (units, D) with M1[k, j] = [j < m_k]
    and M2 (D, units) with M2[i, k] = [m_k <= i], 0-based pixel indices, as float32.

    With `window` W > 0 the masks are also local: M1[k, j] needs m_k - a <= j and M2[i, k] needs
    i - b < m_k (`window_split`: a + b - 1 = W), so output i sees x_j only for i - W <= j < i:
    the W pixels before it in raster order (two rows of a 28-wide image for W = 56), a local
    autoregressive decoder as in the Variational Lossy Autoencoder (Chen et al. 2017, section 3.2),
    which leaves what lies further away to z."""
    m = made_degrees(pixels, units)
    j = torch.arange(pixels)
    m1, m2 = j[None, :] < m[:, None], m[None, :] <= j[:, None]
    if window > 0:
        a, b = window_split(window)
        m1 &= j[None, :] >= m[:, None] - a
        m2 &= m[None, :] > j[:, None] - b
    return m1.float(), m2.float()


class AutoregressiveTerm(nn.Module):
    """a(x, z) of the module docstring for images of `pixels` values and a decoder input z of
    `cond` values (the latent, or [z1, z2] of a two-layer model), with `units` masked hidden units,
    a fraction `dropout` of them dropped in training, each pixel seeing the `window` pixels before it
    (0: all of them; `made_masks`)."""

    m1: Tensor  # M1 (units, D), a buffer
    m2: Tensor  # M2 (D, units), a buffer

    def __init__(self, pixels: int, cond: int, units: int, dropout: float = 0.0, window: int = 0) -> None:
        super().__init__()
        if pixels < 2:
            raise ValueError("an autoregressive decoder needs at least 2 pixels")
        self.pixels, self.units, self.window = pixels, units, window
        self.x_in = nn.Linear(pixels, units)  # W, b (masked by M1)
        self.z_in = nn.Linear(cond, units, bias=False)  # U
        self.out = nn.Linear(units, pixels, bias=False)  # V (masked by M2)
        nn.init.zeros_(self.out.weight)  # a = 0 at first: the factorized decoder
        self.drop = Dropout16(dropout)  # on r in training mode only (no parameters, nothing saved)
        m1, m2 = made_masks(pixels, units, window)
        self.register_buffer("m1", m1, persistent=False)  # rebuilt from the sizes, never saved
        self.register_buffer("m2", m2, persistent=False)
        self.apply_masks()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.apply_masks())
        self.regroup()

    @torch.no_grad()
    def apply_masks(self) -> None:
        """W <- M1 . W and V <- M2 . V: the weights hold zeros where the masks do, so that the
        parameters (and model.safetensors, read without vaekit) are the weights the term computes
        with. The products still multiply by the masks, so the gradients outside them are zero and
        an optimizer keeps those weights at zero; a file written before they were stored masked is
        masked as it is loaded."""
        self.x_in.weight.mul_(self.m1)
        self.out.weight.mul_(self.m2)

    def regroup(self, groups: int = GROUPS) -> None:
        """Run the masked products on `Band`s of `groups` row groups (`vaekit.vae.banded`; 1: the
        dense products, which bench/banded_speed.py compares). The bands are read off the masks at
        first use (a model built on the meta device has no mask values to read)."""
        self._groups = groups
        self._bands: tuple[Band, Band] | None = None

    def _band(self, which: int) -> Band:
        if self._bands is None:
            self._bands = Band(self.m1, self._groups), Band(self.m2, self._groups)
        return self._bands[which]

    @property
    def band1(self) -> Band:
        """M1's band: the products with M1 . W."""
        return self._band(0)

    @property
    def band2(self) -> Band:
        """M2's band: the products with M2 . V."""
        return self._band(1)

    def pixel_part(self, x: Tensor) -> Tensor:
        """(M1 . W) x + b for images x (B, C, H, W) -> (B, units): once per image."""
        return banded_product(x.flatten(1), self.x_in.weight * self.m1, self.band1) + self.x_in.bias

    def teacher_forced(self, logits: Tensor, x: Tensor, z: Tensor) -> Tensor:
        """l + a(x, z): the logits of every pixel given the pixels before it in x.

        logits (K, B, C, H, W), the decoder network's l(z) at z (K, B, cond); x (B, C, H, W)
        observed images, shared by the K samples. Returns (K, B, C, H, W)."""
        h = self.z_in(z)  # (K, B, units)
        h += self.pixel_part(x)  # in place, as the relu below: one (K, B, units) tensor, not three
        h = self.drop(h.relu_())  # (bench/eval_speed.py: the evaluator's k samples pass here)
        a = banded_product(h, self.out.weight * self.m2, self.band2)  # (K, B, D)
        return logits + a.reshape(logits.shape).to(logits.dtype)

    @torch.no_grad()
    def _sequential(self, logits: Tensor, z: Tensor, generator: torch.Generator | None,
                    draw: bool) -> Tensor:
        """The D steps of `sample` (draw) or `mean_field` (probabilities fed forward). Returns the
        drawn images (draw) or the logits of each step (N, C, H, W)."""
        n = logits.shape[0]
        base = logits.reshape(n, self.pixels)
        w = self.x_in.weight * self.m1  # (units, D)
        v = self.out.weight * self.m2  # (D, units)
        pre = self.z_in(z) + self.x_in.bias  # (N, units): no pixel seen yet
        out = torch.empty_like(base)
        for i in range(self.pixels):
            logit = base[:, i] + torch.relu(pre) @ v[i]  # (N,)
            if draw:
                value = torch.bernoulli(torch.sigmoid(logit), generator=generator)
                out[:, i] = value
            else:
                out[:, i] = logit
                value = torch.sigmoid(logit)
            pre.addr_(value, w[:, i])  # the pixel's weight to every hidden unit that sees it
        return out.reshape(logits.shape)

    def sample(self, logits: Tensor, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x|z), one pixel at a time in raster order: logits l(z) (N, C, H, W), z (N, cond)
        -> binary images (N, C, H, W)."""
        return self._sequential(logits, z, generator, draw=True)

    def mean_field(self, logits: Tensor, z: Tensor) -> Tensor:
        """The logits of the D steps of `sample` with each pixel's probability fed forward in place
        of a draw (module docstring): (N, C, H, W), deterministic."""
        return self._sequential(logits, z, None, draw=False)
