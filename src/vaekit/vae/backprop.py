"""The sheet's loss and its gradient for the MLP VAE, derived by hand instead of by autograd.

For `MLPVAE` with a Bernoulli decoder (factorized or autoregressive), ReLU or tanh layers and the
one-sample ELBO (Ex.2 Q6), or K samples per image (the K-sample ELBO, IWAE-K), one training step is
a short, fixed chain of matrix products; autograd records about 30 nodes per step around them, and
each small node costs more on a CPU than its arithmetic. `backprop` computes the same loss and
writes the same gradients into each parameter's `.grad` with the products of the chain rule written
out, `out=` buffers and no graph. tests/vae/test_backprop.py (tests/vae/test_autoregressive.py for
the autoregressive term) holds it against autograd on `prob.negative_elbo` (loss terms and every
gradient), and tests/vae/test_backprop_terms.py its log-densities, KL and IWAE bound against
`vaekit.vae.prob`; the training loop uses it through `vaekit.train.engines.BackpropEngine` when
`faster(model, loop)` (with `train.engine = "auto"`), and autograd otherwise.

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

act'(a) from the layer's output h: ReLU 1[h > 0], tanh 1 - h^2. Each term (the pixels', the KL,
K samples and IWAE-K, the autoregressive decoder's) has its functions below, each with its equation.

With `mm_dtype=torch.bfloat16` every matrix product above takes bfloat16 inputs (the weights cast
once per step, the activations as they are made) and gives float32 results; the weights, their
gradients, the biases, the element-wise terms and the sums stay float32 (mixed precision as in
Micikevicius et al., "Mixed Precision Training", ICLR 2018, with bfloat16's float32 exponent range
instead of loss scaling: Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019).
bench/quality.py's `--precision` compares the NLL at the same budget.
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


def _low(t: Tensor, low: torch.dtype | None) -> Tensor:
    """t as a product's input: t itself without `low` (float32 throughout), else t cast to `low`."""
    return t if low is None else t.to(low)


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


# ----------------------------------------------------------------------------- the MLPs


class _Weights(NamedTuple):
    """The plan's weights as the products' inputs, cast once per step (themselves in float32)."""

    enc: list[Tensor]
    mu: Tensor
    logvar: Tensor
    dec: list[Tensor]

    @classmethod
    def of(cls, plan: Plan, low: torch.dtype | None) -> _Weights:
        return cls([_low(w, low) for w, _ in plan.enc], _low(plan.mu[0], low),
                   _low(plan.logvar[0], low), [_low(w, low) for w, _ in plan.dec])


def _stack_forward(h: Tensor, layers: list[Layer], weights: list[Tensor], kind: str,
                   low: torch.dtype | None) -> tuple[list[Tensor], list[Tensor]]:
    """h_i = act(h_{i-1} W_i^T + b_i) from h_0 = h through `layers` (q_enc's, or p_dec's hidden
    ones): ([h_0, ..., h_m] in float32, the same as the products' inputs)."""
    hs, hl = [h], [_low(h, low)]
    for (_, b), w in zip(layers, weights, strict=True):
        hs.append(_act_(_linear(hl[-1], w, b, low), kind))
        hl.append(_low(hs[-1], low))
    return hs, hl


def _stack_backward(da: Tensor, da_low: Tensor, hs: list[Tensor], hl: list[Tensor],
                    layers: list[Layer], weights: list[Tensor], kind: str,
                    low: torch.dtype | None) -> Tensor:
    """From da = dL/da_m of the last of `layers` (its product input `da_low`), each layer last
    first: dW_i = da_i^T h_{i-1}, db_i = sum_rows da_i, da_{i-1} = (da_i W_i) . act'(h_{i-1}), with
    h_i = hs[i] (product inputs hl[i]) as `_stack_forward` gives them. Returns da_1 as a product
    input (dL/dh_0 = da_1 W_1 is the caller's to take)."""
    for i in range(len(layers), 0, -1):
        _layer_backward(da, hl[i - 1], layers[i - 1], low, da_low)
        if i > 1:
            da = _act_backward(_mm(da_low, weights[i - 1], low), hs[i - 1], kind)
            da_low = _low(da, low)
    return da_low


def _encoder_backward(dmu: Tensor, dlv: Tensor, hs: list[Tensor], hl: list[Tensor], plan: Plan,
                      w: _Weights, low: torch.dtype | None) -> None:
    """q_mu's and q_logvar's gradients from dmu, dlv; then dh = dmu W_mu + dlv W_lv and q_enc's."""
    dmu_low, dlv_low = _low(dmu, low), _low(dlv, low)
    _layer_backward(dmu, hl[-1], plan.mu, low, dmu_low)
    _layer_backward(dlv, hl[-1], plan.logvar, low, dlv_low)
    if not plan.enc:
        return
    if low is None:
        grad = torch.mm(dmu, plan.mu[0]).addmm_(dlv, plan.logvar[0])
    else:
        grad = _mm(dmu_low, w.mu, low).add_(_mm(dlv_low, w.logvar, low))
    da = _act_backward(grad, hs[-1], plan.kind)
    _stack_backward(da, _low(da, low), hs, hl, plan.enc, w.enc, plan.kind, low)


# ----------------------------------------------------------------------------- the pixels' term


def _log_bernoulli_rows(xs: Tensor, logits: Tensor) -> Tensor:
    """log p(x|z) = sum_pixels x l - softplus(l) per row: Bernoulli(sigmoid(l)) (AEVB appendix
    C.1; `prob.log_bernoulli`, held against it by tests/vae/test_backprop_terms.py). (rows, d) ->
    (rows,)."""
    return (logits * xs).sum(1).sub_(F.softplus(logits).sum(1))


def _neg_log_bernoulli_sum(x: Tensor, logits: Tensor) -> Tensor:
    """-sum_rows log p(x|z) = sum softplus(l) - x . l over the whole batch, one scalar: the same
    Bernoulli term as `_log_bernoulli_rows` in two reductions, for one sample per image."""
    return F.softplus(logits).sum() - torch.dot(x.reshape(-1), logits.reshape(-1))


def _logits_grad(logits: Tensor, xs: Tensor, c: float | Tensor) -> Tensor:
    """dl = c (sigmoid(l) - x) = c d(softplus(l) - x l)/dl, per row's weight c_kb: 1 / (K n) for the
    K-sample ELBO, w_kb / n for IWAE-K (`_iwae_loss_and_weights`)."""
    return torch.sigmoid(logits).sub_(xs).mul_(c)


# ----------------------------------------------------------------------------- the KL term


def _gaussian_kl_per_dim(mu: Tensor, lv: Tensor, var: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - log sigma^2 - 1) / 2 per latent dim, with
    var = sigma^2 (Ex.2 Q3; Kingma & Welling 2014, eq. 10 and appendix B; `prob.gaussian_kl_per_dim`,
    held against it by tests/vae/test_backprop_terms.py). (n, D)."""
    return (mu * mu).add_(var).sub_(lv).sub_(1.0).mul_(0.5)


def _elbo_loss(recon: Tensor, kl_d: Tensor, kl: Tensor, beta: float,
               free_bits: float) -> tuple[Tensor, Tensor | None]:
    """The batch's objective recon + beta sum_d max(kl_d, free_bits) (beta-VAE, Higgins et al.
    2017; free bits, Kingma et al. 2016, eq. 15 per dimension) and the mask [kl_d >= free_bits]
    where the floor is on (None: every dimension active)."""
    if free_bits > 0:
        return recon + beta * kl_d.clamp(min=free_bits).sum(), kl_d >= free_bits
    return recon + beta * kl, None


def _kl_grads(mu: Tensor, var: Tensor, c: float, active: Tensor | None) -> tuple[Tensor, Tensor]:
    """d(c sum_d max(kl_d, free_bits)) / d(mu, lv) = c [active] (mu, (sigma^2 - 1) / 2), c = beta/n."""
    dmu_kl, dlv_kl = mu * c, var.sub(1.0).mul_(0.5 * c)
    if active is not None:
        dmu_kl.mul_(active)
        dlv_kl.mul_(active)
    return dmu_kl, dlv_kl


# ----------------------------------------------------------------------------- K samples, IWAE-K


def _iwae_log_weights(log_px: Tensor, eps: Tensor, z: Tensor, lv: Tensor) -> Tensor:
    """log w_kb = log p(x_b|z_kb) + log N(z_kb; 0, I) - log N(z_kb; mu_b, sigma_b^2)
               = log p(x_b|z_kb) - |z_kb|^2 / 2 + |eps_kb|^2 / 2 + sum_d lv_bd / 2
    (Burda et al. 2016, eq. 8; the log 2 pi cancel; `prob.LogTerms.log_w`, held against it by
    tests/vae/test_backprop_terms.py). log_px, (K, n); eps (K, n, D); z (K n, D); lv (n, D)."""
    zk = z.view(log_px.shape[0], log_px.shape[1], -1)  # (K, n, D)
    return log_px + (eps * eps).sum(2).sub_((zk * zk).sum(2)).mul_(0.5).add_(lv.sum(1) * 0.5)


def _iwae_loss_and_weights(log_w: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """-sum_b L_K(x_b) = sum_b [log K - logsumexp_k log w_kb] (Burda et al. 2016, eq. 8;
    `prob.iwae_bound`) and each sample's weight in its gradient (eq. 14), c_kb = w~_kb scale with
    w~_kb = softmax_k(log w_.b)_k, scale = 1/n: dL/d log w_kb = -c_kb. (K, n) -> ((), (K, n))."""
    k, n = log_w.shape
    loss = (math.log(k) * n) - torch.logsumexp(log_w, 0).sum()
    return loss, torch.softmax(log_w, 0).mul_(scale)


def _iwae_latent_grads(dz: Tensor, z: Tensor, c: Tensor, lv: Tensor, scale: float) -> Tensor:
    """IWAE-K's terms of log p(z) and log q(z|x) (eps held fixed): dz_kb += c_kb z_kb in place
    (from -|z|^2/2), and dlv = -1/(2n) (from sum_d lv_d/2, summed over k since sum_k w~_kb = 1)."""
    dz.addcmul_(z, c.reshape(-1, 1))
    return torch.full_like(lv, -0.5 * scale)


def _reparameterize_backward(dz: Tensor, eps: Tensor, std: Tensor, dmu_kl: Tensor | None,
                             dlv_kl: Tensor) -> tuple[Tensor, Tensor]:
    """Through z_kb = mu_b + sigma_b eps_kb (Kingma & Welling 2014, eq. 10), summed over the K
    samples: dmu = sum_k dz_k (+ dmu_kl), dlv = sum_k dz_k eps_k sigma / 2 + dlv_kl."""
    dz3 = dz.view(eps.shape)  # (K, n, D)
    dlv = (dz3 * eps).sum(0).mul_(std).mul_(0.5).add_(dlv_kl)
    dmu = dz3.sum(0) if eps.shape[0] > 1 else dz3[0]
    if dmu_kl is not None:
        dmu.add_(dmu_kl)
    return dmu, dlv


# ----------------------------------------------------------------------------- autoregressive term


class _ARState(NamedTuple):
    """What `_ar_backward` takes from `_ar_forward`: the term, M2 . V and U as product inputs, r
    (K n, units) in float32 and as a product input."""

    ar: AutoregressiveTerm
    v: Tensor
    w_z: Tensor
    r: Tensor
    r_low: Tensor


def _ar_forward(ar: AutoregressiveTerm, logits: Tensor, x_low: Tensor, z_low: Tensor, k: int,
                low: torch.dtype | None) -> _ARState:
    """l <- l + r (M2 . V)^T in place, r = relu((M1 . W) x + b + U z) . m s (`vaekit.vae.
    autoregressive`: masks M1, M2, parameters W, b, U, V), m the term's dropout mask in training
    mode (`AutoregressiveTerm.drop`, drawn as the autograd forward draws it), s = 1 / (1 - p); m = 1,
    s = 1 without dropout. The pixel part (M1 . W) x + b runs once per image and is broadcast over
    the K samples (rows sample-major); the products with M1 . W and M2 . V run on the masks' bands
    (`vaekit.vae.banded`: only their blocks that are not zero)."""
    w_x, v = _low(ar.x_in.weight * ar.m1, low), _low(ar.out.weight * ar.m2, low)
    w_z = _low(ar.z_in.weight, low)
    r = _mm(w_z, z_low.t(), low).t()  # (K n, units), laid out (units, K n) as the bands' products
    pixel = ar.band1.forward(x_low, w_x)  # once per image
    pixel = (pixel if low is None else pixel.float()).add_(ar.x_in.bias)
    r.view(k, x_low.shape[0], -1).add_(pixel)
    r = ar.drop(_act_(r, "relu"))  # the identity unless the term trains with dropout
    r_low = _low(r, low)
    logits.add_(ar.band2.forward(r_low, v))
    return _ARState(ar, v, w_z, r, r_low)


def _ar_backward(st: _ARState, dl_low: Tensor, x_low: Tensor, z_low: Tensor, k: int,
                 low: torch.dtype | None) -> Tensor:
    """The term's gradients from dl, and its share of dz (`_ar_forward`'s names):

        dV = (dl^T r) . M2,  dr = (dl (M2 . V)) . 1[r > 0] s,  dW = ((sum_k dr_k)^T x) . M1,
        db = sum_rows sum_k dr_k,  dU = dr^T z,  returns dr U

    1[r > 0] covers both the ReLU and the dropped units."""
    ar = st.ar
    torch.mul(ar.band2.backward_weight(dl_low, st.r_low), ar.m2, out=_grad(ar.out.weight))
    dr = _act_backward(ar.band2.backward_input(dl_low, st.v), st.r, "relu")
    if ar.drop.training and ar.drop.p > 0:
        dr.mul_(ar.drop.scale)
    dr_low = _low(dr, low)
    dr_px = dr if k == 1 else dr.view(k, x_low.shape[0], -1).sum(0)  # the pixel part's, per image
    dr_pxl = dr_low if k == 1 else _low(dr_px, low)
    torch.mul(ar.band1.backward_weight(dr_pxl, x_low), ar.m1, out=_grad(ar.x_in.weight))
    torch.sum(dr_px, 0, out=_grad(ar.x_in.bias))
    _grad(ar.z_in.weight).copy_(_mm(dr_low.t(), z_low, low))
    return _mm(dr_low, st.w_z, low)


# ----------------------------------------------------------------------------- the step


def _encode(plan: Plan, w: _Weights, x: Tensor, eps: Tensor, low: torch.dtype | None
            ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor, Tensor, Tensor]:
    """q_enc, q_mu, q_logvar and z = mu + sigma eps: (hs, hl, mu, lv, sigma, z (K n, D)), z's rows
    sample-major (the decoder's rows), as eps and prob.log_px_samples lay them out."""
    hs, hl = _stack_forward(x, plan.enc, w.enc, plan.kind, low)
    mu, lv = _linear(hl[-1], w.mu, plan.mu[1], low), _linear(hl[-1], w.logvar, plan.logvar[1], low)
    std = lv.mul(0.5).exp_()
    return hs, hl, mu, lv, std, torch.addcmul(mu, std, eps).reshape(-1, mu.shape[1])  # z (K n, D)


def _decode(plan: Plan, w: _Weights, z: Tensor, x_low: Tensor, k: int, low: torch.dtype | None
            ) -> tuple[list[Tensor], list[Tensor], Tensor, _ARState | None]:
    """p_dec (with its autoregressive term): (gs, gl, the logits (K n, d), the term's state)."""
    gs, gl = _stack_forward(z, plan.dec[:-1], w.dec[:-1], plan.kind, low)
    logits = _linear(gl[-1], w.dec[-1], plan.dec[-1][1], low)  # (K n, d)
    ar_state = None if plan.ar is None else _ar_forward(plan.ar, logits, x_low, gl[0], k, low)
    return gs, gl, logits, ar_state


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
    plan = plan if plan is not None else Plan.of(model)
    n, low = x.shape[0], mm_dtype
    x = x.reshape(n, -1)
    eps = eps if eps.dim() == 3 else eps.unsqueeze(0)  # (K, n, D)
    k = eps.shape[0]
    w = _Weights.of(plan, low)
    hs, hl, mu, lv, std, z = _encode(plan, w, x, eps, low)
    gs, gl, logits, ar_state = _decode(plan, w, z, hl[0], k, low)
    xs = x if k == 1 else x.expand(k, n, -1).reshape(k * n, -1)  # each decoder row's image
    var = std * std
    kl_d = _gaussian_kl_per_dim(mu, lv, var)  # (n, D)
    kl = kl_d.sum()
    scale = 1.0 / n
    if objective == "iwae":
        log_px = _log_bernoulli_rows(xs, logits).view(k, n)  # (K, n)
        recon = -log_px.sum() / k
        loss, c = _iwae_loss_and_weights(_iwae_log_weights(log_px, eps, z, lv), scale)
        dl = _logits_grad(logits, xs, c.reshape(-1, 1))
    else:
        recon = (-_log_bernoulli_rows(xs, logits).view(k, n).sum() / k if k > 1
                 else _neg_log_bernoulli_sum(x, logits))
        loss, active = _elbo_loss(recon, kl_d, kl, beta, free_bits)
        dl = _logits_grad(logits, xs, scale / k)

    dl_low = _low(dl, low)  # each product input cast once, however many products take it
    dz = _mm(_stack_backward(dl, dl_low, gs, gl, plan.dec, w.dec, plan.kind, low), w.dec[0], low)
    if ar_state is not None:
        dz.add_(_ar_backward(ar_state, dl_low, hl[0], gl[0], k, low))
    if objective == "iwae":
        dmu_kl, dlv_kl = None, _iwae_latent_grads(dz, z, c, lv, scale)
    else:
        dmu_kl, dlv_kl = _kl_grads(mu, var, beta * scale, active)
    dmu, dlv = _reparameterize_backward(dz, eps, std, dmu_kl, dlv_kl)
    _encoder_backward(dmu, dlv, hs, hl, plan, w, low)
    return torch.stack([loss, recon + kl, recon, kl])
