"""The sheet's loss and its gradient for the MLP VAE, derived by hand instead of by autograd.

For `MLPVAE` with a Bernoulli decoder, ReLU or tanh layers and the one-sample ELBO (Ex.2 Q6), one
training step is a short, fixed chain of matrix products; autograd records about 30 nodes per step
around them, and each small node costs more on a CPU than its arithmetic. `backprop` computes the
same loss and writes the same gradients into each parameter's `.grad` with the products of the
chain rule written out, `out=` buffers and no graph. tests/vae/test_backprop.py holds it against
autograd on `prob.negative_elbo` (loss terms and every gradient); the training loop uses it through
`vaekit.train.engines.BackpropEngine` when `supports(model, loop)` (with `train.engine = "auto"`),
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
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import LoopConfig
from vaekit.vae.models import MLPVAE, VAEBase

ACTIVATIONS = ("relu", "tanh")
_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default  # grad * (out > 0), one kernel
_TANH_BACKWARD = torch.ops.aten.tanh_backward.default  # grad * (1 - out^2), one kernel


def supports(model: VAEBase, loop: LoopConfig) -> bool:
    """Whether `backprop` computes this model's training objective: an MLPVAE with a Bernoulli
    decoder, the N(0, I) prior and ReLU/tanh layers (not gated), trained on the one-sample ELBO
    with the reparameterization estimator (any beta, warm-up and free bits)."""
    return (type(model) is MLPVAE and model.likelihood == "bernoulli" and model.closed_form_kl
            and _activation(model) in ACTIVATIONS and loop.objective == "elbo" and loop.samples == 1
            and loop.estimator == "reparam")


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

    @property
    def latent_dim(self) -> int:
        return int(self.mu[0].shape[0])

    @classmethod
    def of(cls, model: MLPVAE) -> Plan:
        def linears(seq: nn.Module) -> list[Layer]:
            return [(m.weight, m.bias) for m in seq.children() if isinstance(m, nn.Linear)]

        return cls(_activation(model) or "relu", linears(model.q_enc),
                   (model.q_mu.weight, model.q_mu.bias), (model.q_logvar.weight, model.q_logvar.bias),
                   linears(model.p_dec))


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


def _layer_backward(da: Tensor, h_in: Tensor, layer: Layer) -> None:
    """dW = da^T h_in, db = sum over rows of da, into the parameters' gradient buffers."""
    torch.mm(da.t(), h_in, out=_grad(layer[0]))
    torch.sum(da, 0, out=_grad(layer[1]))


@torch.no_grad()
def backprop(model: MLPVAE, x: Tensor, eps: Tensor, beta: float = 1.0, free_bits: float = 0.0,
             plan: Plan | None = None) -> Tensor:
    """One step's loss parts and gradients (see the module docstring for the equations).

    x: (n, C, H, W) or (n, d) float images, eps: (n, D) standard normal draws. Writes dL/dtheta, for
    L the batch mean of the objective, into every parameter's `.grad` (overwriting it), and returns
    the batch sums (shape (4,), the dtype of x): objective, -ELBO, reconstruction -log p(x|z), KL.
    `plan`: the model's `Plan`, if the caller keeps one.
    """
    kind, enc, head_mu, head_lv, dec = plan if plan is not None else Plan.of(model)
    n = x.shape[0]
    x = x.reshape(n, -1)

    hs = [x]  # inputs of each encoder layer, then its output
    for w, b in enc:
        hs.append(_act_(torch.addmm(b, hs[-1], w.t()), kind))
    h = hs[-1]
    mu = torch.addmm(head_mu[1], h, head_mu[0].t())
    lv = torch.addmm(head_lv[1], h, head_lv[0].t())
    std = lv.mul(0.5).exp_()
    z = torch.addcmul(mu, std, eps)
    gs = [z]
    for w, b in dec[:-1]:
        gs.append(_act_(torch.addmm(b, gs[-1], w.t()), kind))
    out = dec[-1]
    logits = torch.addmm(out[1], gs[-1], out[0].t())

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
    _layer_backward(dl, gs[-1], out)
    grad = dl
    for j in range(len(dec) - 1, 0, -1):  # decoder hidden layers, last first; gs[j] is dec[j-1]'s output
        da = _act_backward(torch.mm(grad, dec[j][0]), gs[j], kind)
        _layer_backward(da, gs[j - 1], dec[j - 1])
        grad = da
    dz = torch.mm(grad, dec[0][0])
    kl_scale = beta * scale
    dmu_kl = mu * kl_scale
    dlv_kl = var.sub(1.0).mul_(0.5 * kl_scale)
    if active is not None:
        dmu_kl.mul_(active)
        dlv_kl.mul_(active)
    dlv = (dz * eps).mul_(std).mul_(0.5).add_(dlv_kl)
    dmu = dz.add_(dmu_kl)
    _layer_backward(dmu, h, head_mu)
    _layer_backward(dlv, h, head_lv)
    if enc:
        grad = torch.mm(dmu, head_mu[0]).addmm_(dlv, head_lv[0])
        for i in range(len(enc), 0, -1):  # encoder layers, last first; hs[i] is enc[i-1]'s output
            da = _act_backward(grad, hs[i], kind)
            _layer_backward(da, hs[i - 1], enc[i - 1])
            if i > 1:
                grad = torch.mm(da, enc[i - 1][0])
    return torch.stack([recon + beta * kl_obj, recon + kl, recon, kl])
