"""The sheet's loss and its gradient for the MLP VAE, derived by hand instead of by autograd.

For `MLPVAE` with a Bernoulli decoder (factorized or autoregressive), ReLU or tanh layers and the
one-sample ELBO (Ex.2 Q6), or K samples per image (the K-sample ELBO, IWAE-K: below), one training
step is a short, fixed chain of matrix products; autograd
records about 30 nodes per step around them, and each small node costs more on a CPU than its
arithmetic. `backprop` computes the same loss and writes the same gradients into each parameter's
`.grad` with the products of the chain rule written out, `out=` buffers and no graph.
tests/vae/test_backprop.py (tests/vae/test_autoregressive.py for the autoregressive term) holds it
against autograd on `prob.negative_elbo` (loss terms and every gradient); the training loop uses it
through `vaekit.train.engines.BackpropEngine` when `faster(model, loop)` (with `train.engine = "auto"`),
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
the ReLU and the dropped units. The products with M1 . W and M2 . V run on the masks' bands
(`vaekit.vae.banded`: only their blocks that are not zero).

K samples per image (eps (K, n, D)): the decoder runs on the K n rows z_kb = mu_b + sigma_b eps_kb
(sample-major, as `prob.log_px_samples`), the autoregressive pixel part (M1 . W) x + b once per
image and broadcast over the K samples, so dW = ((sum_k dr_k)^T x) . M1 and db = sum of the same.
Each row's dl is scaled by c_kb, and the latent gradients summed over k:

    K-sample ELBO:  c_kb = 1 / (K n); dmu, dlv as above with the closed-form KL
    IWAE-K (Burda et al. 2016, eq. 8 and its gradient, eq. 14):
        log w_kb = log p(x_b|z_kb) + log N(z_kb; 0, I) - log N(z_kb; mu_b, sigma_b^2)
                 = log p(x_b|z_kb) - |z_kb|^2 / 2 + |eps_kb|^2 / 2 + sum_d lv_bd / 2
        L = 1/n sum_b [log K - logsumexp_k log w_kb],   c_kb = softmax_k(log w_.b)_k / n
        dz_kb = (decoder's dz_kb) + c_kb z_kb                       (from log p(z))
        dmu_b = sum_k dz_kb,  dlv_b = sum_k dz_kb eps_kb sigma_b / 2 - 1 / (2 n)   (from log q, eps fixed)

With `mm_dtype=torch.bfloat16` every matrix product above takes bfloat16 inputs (the weights cast
once per step, the activations as they are made) and gives float32 results; the weights, their
gradients, the biases, the element-wise terms and the sums stay float32 (mixed precision as in
Micikevicius et al., "Mixed Precision Training", ICLR 2018, with bfloat16's float32 exponent range
instead of loss scaling: Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019).
On a CPU with AVX-512 BF16 / AMX the products run several times faster (bench/quality.py's
`--precision` compares the NLL at the same budget).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import OBJECTIVES, LoopConfig
from vaekit.vae.autoregressive import AutoregressiveTerm
from vaekit.vae.models import MLPVAE, VAEBase

ACTIVATIONS = ("relu", "tanh")
_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default  # grad * (out > 0), one kernel
_TANH_BACKWARD = torch.ops.aten.tanh_backward.default  # grad * (1 - out^2), one kernel


def supports(model: VAEBase, loop: LoopConfig) -> bool:
    """Whether `backprop` computes this model's training objective: an MLPVAE with a Bernoulli
    decoder (factorized or autoregressive), the N(0, I) prior and ReLU/tanh layers (not gated),
    trained on the K-sample ELBO (any beta, warm-up and free bits) or IWAE-K, any K, with the
    reparameterization estimator."""
    return (type(model) is MLPVAE and model.likelihood == "bernoulli" and model.closed_form_kl
            and _activation(model) in ACTIVATIONS and loop.objective in OBJECTIVES
            and loop.samples >= 1 and loop.estimator == "reparam")


def faster(model: VAEBase, loop: LoopConfig) -> bool:
    """Whether `backprop` is measured faster than autograd for this run (what `train.engine = "auto"`
    takes): wherever it `supports` one sample per image, and K > 1 samples on the factorized decoder.
    With the autoregressive term and K > 1 autograd is as fast or faster (its bfloat16 activations
    halve the traffic of the (K B, units) tensors, which stay float32 here), so that case stays
    with autograd (bench/engine_speed.py; figures in docs/benchmarks.md, "Figures once kept in
    docstrings")."""
    return supports(model, loop) and (loop.samples == 1 or getattr(model, "p_ar", None) is None)


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


def _layer_backward(da: Tensor, h_in: Tensor, layer: Layer, low: torch.dtype | None = None,
                    da_low: Tensor | None = None) -> None:
    """dW = da^T h_in, db = sum over rows of da, into the parameters' gradient buffers; with `low`,
    the product from `low` inputs (h_in already `low`; `da_low`: da already cast, if the caller has
    it)."""
    if low is None:
        torch.mm(da.t(), h_in, out=_grad(layer[0]))
    else:
        _grad(layer[0]).copy_(torch.mm((da.to(low) if da_low is None else da_low).t(), h_in))
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
             plan: Plan | None = None, mm_dtype: torch.dtype | None = None,
             objective: str = "elbo") -> Tensor:
    """One step's loss parts and gradients (see the module docstring for the equations).

    x: (n, C, H, W) or (n, d) float images, eps: (n, D) or (K, n, D) standard normal draws (K
    samples per image). Writes dL/dtheta, for L the batch mean of the objective, into every
    parameter's `.grad` (overwriting it), and returns the batch sums (shape (4,), the dtype of x):
    objective, -ELBO, reconstruction -log p(x|z) (the mean over the K samples), KL (closed form).
    `objective`: "elbo" (the K-sample ELBO with beta and free bits) or "iwae" (-L_K; beta 1, no
    free bits). `plan`: the model's `Plan`, if the caller keeps one. `mm_dtype`: None (float32
    throughout) or torch.bfloat16 for the products (module docstring).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    kind, enc, head_mu, head_lv, dec, ar = plan if plan is not None else Plan.of(model)
    n = x.shape[0]
    x = x.reshape(n, -1)
    eps = eps if eps.dim() == 3 else eps.unsqueeze(0)  # (K, n, D)
    k = eps.shape[0]
    rows = k * n  # the decoder's rows: sample-major, as eps and prob.log_px_samples lay them out
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
    z = torch.addcmul(mu, std, eps).reshape(rows, -1)  # (K n, D)
    gs, gl = [z], [lw(z)]
    for (_, b), w in zip(dec[:-1], w_dec[:-1], strict=True):
        gs.append(_act_(_linear(gl[-1], w, b, low), kind))
        gl.append(lw(gs[-1]))
    out = dec[-1]
    logits = _linear(gl[-1], w_dec[-1], out[1], low)  # (K n, d)
    if ar is not None:  # + a(x_<i, z) = (M2 . V) relu((M1 . W) x + b + U z), on the masks' bands
        w_x, v = lw(ar.x_in.weight * ar.m1), lw(ar.out.weight * ar.m2)
        w_z = lw(ar.z_in.weight)
        h_ar = _mm(w_z, gl[0].t(), low).t()  # (K n, units), laid out (units, K n) as the bands' products
        pixel = ar.band1.forward(hl[0], w_x)  # once per image
        pixel = (pixel if low is None else pixel.float()).add_(ar.x_in.bias)
        h_ar.view(k, n, -1).add_(pixel)
        h_ar = ar.drop(_act_(h_ar, "relu"))  # the identity unless the term trains with dropout
        h_arl = lw(h_ar)
        logits.add_(ar.band2.forward(h_arl, v))

    xs = x if k == 1 else x.expand(k, n, -1).reshape(rows, -1)  # each row's image
    if objective == "iwae" or k > 1:  # log p(x|z_k) per sample (K, n)
        log_px = (logits * xs).sum(1).sub_(F.softplus(logits).sum(1)).view(k, n)
        recon = -log_px.sum() / k
    else:
        recon = F.softplus(logits).sum() - torch.dot(x.reshape(-1), logits.reshape(-1))
    var = std * std
    kl_d = (mu * mu).add_(var).sub_(lv).sub_(1.0).mul_(0.5)  # (n, D)
    kl = kl_d.sum()
    scale = 1.0 / n
    if objective == "iwae":  # log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), eps held fixed
        zk = z.view(k, n, -1)
        log_w = log_px + (eps * eps).sum(2).sub_((zk * zk).sum(2)).mul_(0.5).add_(lv.sum(1) * 0.5)
        loss = (math.log(k) * n) - torch.logsumexp(log_w, 0).sum()
        coef = torch.softmax(log_w, 0).mul_(scale)  # dL/d log w_k = -w_k / sum_j w_j / n
        dl = torch.sigmoid(logits).sub_(xs).mul_(coef.reshape(rows, 1))
        active = None
    else:
        if free_bits > 0:
            active = kl_d >= free_bits
            kl_obj = kl_d.clamp(min=free_bits).sum()
        else:
            active, kl_obj = None, kl
        loss = recon + beta * kl_obj
        dl = torch.sigmoid(logits).sub_(xs).mul_(scale / k)

    dll = lw(dl)  # each product input cast once, however many products take it
    _layer_backward(dl, gl[-1], out, low, dll)
    dz_ar = None
    if ar is not None:  # dV = (dl^T h) . M2, dh = (dl (M2 . V)) . relu'(h), dW = (dh^T x) . M1, ...
        torch.mul(ar.band2.backward_weight(dll, h_arl), ar.m2, out=_grad(ar.out.weight))
        da_ar = _act_backward(ar.band2.backward_input(dll, v), h_ar, "relu")
        if ar.drop.training and ar.drop.p > 0:
            da_ar.mul_(ar.drop.scale)
        da_arl = lw(da_ar)
        da_px = da_ar if k == 1 else da_ar.view(k, n, -1).sum(0)  # the pixel part's, per image
        da_pxl = da_arl if k == 1 else lw(da_px)
        torch.mul(ar.band1.backward_weight(da_pxl, hl[0]), ar.m1, out=_grad(ar.x_in.weight))
        torch.sum(da_px, 0, out=_grad(ar.x_in.bias))
        _grad(ar.z_in.weight).copy_(_mm(da_arl.t(), gl[0], low))
        dz_ar = _mm(da_arl, w_z, low)
    grad_l = dll  # the gradient reaching each decoder layer's output, cast for the products
    for j in range(len(dec) - 1, 0, -1):  # decoder hidden layers, last first; gs[j] is dec[j-1]'s output
        da = _act_backward(_mm(grad_l, w_dec[j], low), gs[j], kind)
        grad_l = lw(da)
        _layer_backward(da, gl[j - 1], dec[j - 1], low, grad_l)
    dz = _mm(grad_l, w_dec[0], low)
    if dz_ar is not None:
        dz.add_(dz_ar)
    if objective == "iwae":  # + w_k z_k / n from log p(z_k); - 1/2n from log q's + 1/2 sum lv
        dz.addcmul_(z, coef.reshape(rows, 1))
        dlv_kl = torch.full_like(lv, -0.5 * scale)
        dmu_kl = None
    else:
        kl_scale = beta * scale
        dmu_kl = mu * kl_scale
        dlv_kl = var.sub(1.0).mul_(0.5 * kl_scale)
        if active is not None:
            dmu_kl.mul_(active)
            dlv_kl.mul_(active)
    dz3 = dz.view(k, n, -1)
    dlv = (dz3 * eps).sum(0).mul_(std).mul_(0.5).add_(dlv_kl)
    dmu = dz3.sum(0) if k > 1 else dz3[0]
    if dmu_kl is not None:
        dmu.add_(dmu_kl)
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
    return torch.stack([loss, recon + kl, recon, kl])
