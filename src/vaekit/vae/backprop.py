"""The sheet's loss and its gradient for the MLP VAE, derived by hand instead of by autograd.

For `MLPVAE` with a Bernoulli decoder (factorized or autoregressive), ReLU or tanh layers and the
one-sample ELBO (Ex.2 Q6), one training step is a short, fixed chain of matrix products; autograd
records about 30 nodes per step around them, and each small node costs more on a CPU than its
arithmetic. `backprop` computes the same loss and writes the same gradients into each parameter's
`.grad` with the products of the chain rule written out, `out=` buffers and no graph.
tests/vae/test_backprop.py (tests/vae/test_autoregressive.py for the autoregressive term) holds it
against autograd on `prob.negative_elbo` (loss terms and every gradient); the training loop uses it
through `vaekit.train.engines.BackpropEngine` when `supports(model, loop)` (with `train.engine = "auto"`),
and autograd otherwise.

Forward, for a batch of n images x (n, d) and eps (n, D), with layers a = h W^T + b:

    h_0 = x,  h_i = act(h_{i-1} W_i^T + b_i)                       q_enc
    mu = h W_mu^T + b_mu,  lv = h W_lv^T + b_lv                     q_mu, q_logvar
    z = mu + exp(lv/2) * eps                                        prob.reparameterize
    g_0 = z,  g_j = act(g_{j-1} V_j^T + c_j),  l = g V_out^T + c_out   p_dec (logits)
    recon = sum_pixels softplus(l) - x l      (= -log Bernoulli(x | sigmoid(l)), prob.log_bernoulli)
    kl_d = (mu^2 + exp(lv) - lv - 1) / 2     (Kingma & Welling 2014, appendix B; prob.gaussian_kl)
    L = 1/n sum_images [recon + beta sum_d max(kl_d, free_bits)]

Backward (dL/d. written d.):

    dl = (sigmoid(l) - x) / n                                       (d softplus(l) - x l / dl)
    dV = da^T g_in,  dc = sum_rows da,  dg_in = (da V) * act'(.)     each decoder layer, last first
    dz = dg_0
    dmu = dz + beta/n [kl_d >= free_bits] mu
    dlv = dz * eps * exp(lv/2) / 2 + beta/n [kl_d >= free_bits] (exp(lv) - 1) / 2
    dh = dmu W_mu + dlv W_lv, then each encoder layer as the decoder's (no dx for the first).

act'(a) from the layer's output h: ReLU 1[h > 0], tanh 1 - h^2.

With an autoregressive decoder (`vaekit.vae.autoregressive`: masks M1, M2, parameters W, b, U, V) the
logits gain a(x, z), and its parameters and z their share of the gradient:

    r = relu((M1 . W) x + b + U z) . m s,  l <- l + r (M2 . V)^T
    dV = (dl^T r) . M2,  dr = (dl (M2 . V)) . 1[r > 0] s,  dW = (dr^T x) . M1,  db = sum_rows dr,
    dU = dr^T z,  dz <- dz + dr U

with m the dropout mask of the term in training mode (`AutoregressiveTerm.drop`, drawn as the
autograd forward draws it) and s = 1 / (1 - p); m = 1, s = 1 without dropout. 1[r > 0] covers both
the ReLU and the dropped units.

With `mm_dtype=torch.bfloat16` every matrix product above takes bfloat16 inputs (the weights cast
once per step, the activations as they are made) and gives float32 results; the weights, their
gradients, the biases, the element-wise terms and the sums stay float32 (mixed precision as in
Micikevicius et al., "Mixed Precision Training", ICLR 2018, with bfloat16's float32 exponent range
instead of loss scaling: Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019).
On a CPU with AVX-512 BF16 / AMX the products run several times faster (bench/quality.py's
`--precision` compares the NLL at the same budget).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import LoopConfig
from vaekit.vae.autoregressive import AutoregressiveTerm
from vaekit.vae.models import MLPVAE, VAEBase

ACTIVATIONS = ("relu", "tanh")
_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default  # grad * (out > 0), one kernel
_TANH_BACKWARD = torch.ops.aten.tanh_backward.default  # grad * (1 - out^2), one kernel


def supports(model: VAEBase, loop: LoopConfig) -> bool:
    """Whether `backprop` computes this model's training objective: an MLPVAE with a Bernoulli
    decoder (factorized or autoregressive), the N(0, I) prior and ReLU/tanh layers (not gated),
    trained on the one-sample ELBO with the reparameterization estimator (any beta, warm-up and free
    bits)."""
    return (type(model) is MLPVAE and model.likelihood == "bernoulli" and model.closed_form_kl
            and _activation(model) in ACTIVATIONS and loop.objective == "elbo"
            and loop.samples == 1 and loop.estimator == "reparam")


def _activation(model: MLPVAE) -> str | None:
    layers = [*model.q_enc.children(), *model.p_dec.children()]
    kinds = {type(m) for m in layers if not isinstance(m, nn.Linear | nn.Flatten | nn.Unflatten)}
    if not kinds:
        return "relu"  # no hidden layer: nothing to differentiate through
    if kinds == {nn.ReLU}:
        return "relu"
    if kinds == {nn.Tanh}:
        return "tanh"
    return None


Layer = tuple[Tensor, Tensor]  # (weight (out, in), bias (out,)) of an nn.Linear


class Plan(NamedTuple):
    """A model's parameters in the order the step uses them, looked up once (an nn.Module
    attribute lookup costs about a microsecond, and a step makes dozens). Whoever calls `backprop`
    step after step keeps the plan (`vaekit.train.engines.BackpropEngine` does)."""

    kind: str  # activation of the hidden layers
    enc: list[Layer]  # q_enc's linear layers
    mu: Layer
    logvar: Layer
    dec: list[Layer]  # p_dec's linear layers, the last one giving the logits
    ar: AutoregressiveTerm | None = None  # the autoregressive decoder's term, if the model has one

    @property
    def latent_dim(self) -> int:
        return int(self.mu[0].shape[0])

    @classmethod
    def of(cls, model: MLPVAE) -> Plan:
        def linears(seq: nn.Module) -> list[Layer]:
            return [(m.weight, m.bias) for m in seq.children() if isinstance(m, nn.Linear)]

        return cls(_activation(model) or "relu", linears(model.q_enc),
                   (model.q_mu.weight, model.q_mu.bias), (model.q_logvar.weight, model.q_logvar.bias),
                   linears(model.p_dec), model.p_ar)


def _grad(p: Tensor) -> Tensor:
    """The parameter's gradient buffer, created once and overwritten by each step."""
    if p.grad is None or p.grad.shape != p.shape:
        p.grad = torch.empty_like(p)
    return p.grad


def _act_(a: Tensor, kind: str) -> Tensor:
    return a.relu_() if kind == "relu" else a.tanh_()


def _act_backward(grad: Tensor, out: Tensor, kind: str) -> Tensor:
    """dL/da from dL/dh and h = act(a)."""
    if kind == "relu":
        return _THRESHOLD_BACKWARD(grad, out, 0)
    return _TANH_BACKWARD(grad, out)


def _layer_backward(da: Tensor, h_in: Tensor, layer: Layer, low: torch.dtype | None = None) -> None:
    """dW = da^T h_in, db = sum over rows of da, into the parameters' gradient buffers; with `low`,
    the product from `low` inputs (h_in already `low`)."""
    if low is None:
        torch.mm(da.t(), h_in, out=_grad(layer[0]))
    else:
        _grad(layer[0]).copy_(torch.mm(da.t().to(low), h_in))
    torch.sum(da, 0, out=_grad(layer[1]))


def _linear(h: Tensor, w: Tensor, b: Tensor, low: torch.dtype | None) -> Tensor:
    """a = h W^T + b in float32; with `low`, h and W are `low` and the product is taken there."""
    if low is None:
        return torch.addmm(b, h, w.t())
    return torch.mm(h, w.t()).float().add_(b)


def _mm(a: Tensor, b: Tensor, low: torch.dtype | None) -> Tensor:
    """a b in float32 (b already `low` when `low` is given)."""
    return torch.mm(a, b) if low is None else torch.mm(a.to(low), b).float()


@torch.no_grad()
def backprop(model: MLPVAE, x: Tensor, eps: Tensor, beta: float = 1.0, free_bits: float = 0.0,
             plan: Plan | None = None, mm_dtype: torch.dtype | None = None) -> Tensor:
    """One step's loss parts and gradients (see the module docstring for the equations).

    x: (n, C, H, W) or (n, d) float images, eps: (n, D) standard normal draws. Writes dL/dtheta, for
    L the batch mean of the objective, into every parameter's `.grad` (overwriting it), and returns
    the batch sums (shape (4,), the dtype of x): objective, -ELBO, reconstruction -log p(x|z), KL.
    `plan`: the model's `Plan`, if the caller keeps one. `mm_dtype`: None (float32 throughout) or
    torch.bfloat16 for the products (module docstring).
    """
    kind, enc, head_mu, head_lv, dec, ar = plan if plan is not None else Plan.of(model)
    n = x.shape[0]
    x = x.reshape(n, -1)
    low = mm_dtype
    if low is None:
        lw = lambda t: t  # noqa: E731 - the float32 path: every tensor as it is
    else:
        lw = lambda t: t.to(low)  # noqa: E731 - a product's input in low precision
    w_enc = [lw(w) for w, _ in enc]
    w_dec = [lw(w) for w, _ in dec]
    w_mu, w_lv = lw(head_mu[0]), lw(head_lv[0])

    hs = [x]  # inputs of each encoder layer, then its output (float32)
    hl = [lw(x)]  # the same as product inputs (low precision with mm_dtype)
    for (_, b), w in zip(enc, w_enc, strict=True):
        hs.append(_act_(_linear(hl[-1], w, b, low), kind))
        hl.append(lw(hs[-1]))
    h = hl[-1]
    mu = _linear(h, w_mu, head_mu[1], low)
    lv = _linear(h, w_lv, head_lv[1], low)
    std = lv.mul(0.5).exp_()
    z = torch.addcmul(mu, std, eps)
    gs, gl = [z], [lw(z)]
    for (_, b), w in zip(dec[:-1], w_dec[:-1], strict=True):
        gs.append(_act_(_linear(gl[-1], w, b, low), kind))
        gl.append(lw(gs[-1]))
    out = dec[-1]
    logits = _linear(gl[-1], w_dec[-1], out[1], low)
    if ar is not None:  # + a(x_<i, z) = (M2 . V) relu((M1 . W) x + b + U z)
        w_x, v = lw(ar.x_in.weight * ar.m1), lw(ar.out.weight * ar.m2)
        w_z = lw(ar.z_in.weight)
        h_ar = _act_(_linear(hl[0], w_x, ar.x_in.bias, low).add_(_mm(gl[0], w_z.t(), low)), "relu")
        h_ar = ar.drop(h_ar)  # the identity unless the term trains with dropout
        h_arl = lw(h_ar)
        logits.add_(_mm(h_arl, v.t(), low))

    recon = F.softplus(logits).sum() - torch.dot(x.reshape(-1), logits.reshape(-1))
    var = std * std
    kl_d = (mu * mu).add_(var).sub_(lv).sub_(1.0).mul_(0.5)  # (n, D)
    kl = kl_d.sum()
    if free_bits > 0:
        active = kl_d >= free_bits
        kl_obj = kl_d.clamp(min=free_bits).sum()
    else:
        active, kl_obj = None, kl

    scale = 1.0 / n
    dl = torch.sigmoid(logits).sub_(x).mul_(scale)
    _layer_backward(dl, gl[-1], out, low)
    dz_ar = None
    if ar is not None:  # dV = (dl^T h) . M2, dh = (dl (M2 . V)) . relu'(h), dW = (dh^T x) . M1, ...
        torch.mul(_mm(dl.t(), h_arl, low), ar.m2, out=_grad(ar.out.weight))
        da_ar = _act_backward(_mm(dl, v, low), h_ar, "relu")
        if ar.drop.training and ar.drop.p > 0:
            da_ar.mul_(ar.drop.scale)
        torch.mul(_mm(da_ar.t(), hl[0], low), ar.m1, out=_grad(ar.x_in.weight))
        torch.sum(da_ar, 0, out=_grad(ar.x_in.bias))
        _grad(ar.z_in.weight).copy_(_mm(da_ar.t(), gl[0], low))
        dz_ar = _mm(da_ar, w_z, low)
    grad = dl
    for j in range(len(dec) - 1, 0, -1):  # decoder hidden layers, last first; gs[j] is dec[j-1]'s output
        da = _act_backward(_mm(grad, w_dec[j], low), gs[j], kind)
        _layer_backward(da, gl[j - 1], dec[j - 1], low)
        grad = da
    dz = _mm(grad, w_dec[0], low)
    if dz_ar is not None:
        dz.add_(dz_ar)
    kl_scale = beta * scale
    dmu_kl = mu * kl_scale
    dlv_kl = var.sub(1.0).mul_(0.5 * kl_scale)
    if active is not None:
        dmu_kl.mul_(active)
        dlv_kl.mul_(active)
    dlv = (dz * eps).mul_(std).mul_(0.5).add_(dlv_kl)
    dmu = dz.add_(dmu_kl)
    _layer_backward(dmu, h, head_mu, low)
    _layer_backward(dlv, h, head_lv, low)
    if enc:
        if low is None:
            grad = torch.mm(dmu, head_mu[0]).addmm_(dlv, head_lv[0])
        else:
            grad = _mm(dmu, w_mu, low).add_(_mm(dlv, w_lv, low))
        for i in range(len(enc), 0, -1):  # encoder layers, last first; hs[i] is enc[i-1]'s output
            da = _act_backward(grad, hs[i], kind)
            _layer_backward(da, hl[i - 1], enc[i - 1], low)
            if i > 1:
                grad = _mm(da, w_enc[i - 1], low)
    return torch.stack([recon + beta * kl_obj, recon + kl, recon, kl])
