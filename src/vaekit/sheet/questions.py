r"""The questions of the sheet "TD-2: CNN and VAE" and the sheet's own solutions, in its words and
its order (formulas as the sheet writes them, `$...$` inline and `$$...$$` displayed; Exercise 1
has no written solution). The corrections are `vaekit.sheet.errata`'s, never edits of this text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One question: `id` (ex1-q1 ...), `label` (Ex.1 Q1), the sheet's question and solution."""

    id: str
    label: str
    text: str
    solution: str


EX1_Q1 = Question("ex1-q1", "Ex.1 Q1", (
    r"Let consider a linear layer (with no bias). it takes as input $x \in \mathbb{R}^{10 \times 10 "
    r"\times 3}$ an image and produce an intermediate representation $z^{(1)} \in \mathbb{R}^{10 \times "
    r"10 \times 20}$. How many trainable parameters (float) the model has (you can consider flattening "
    r"input/output)? What problem can we have if the input size of the image is high?"), "")

EX1_Q2 = Question("ex1-q2", "Ex.1 Q2", (
    r"Let consider a CNN 2 dimensional layer, it takes as input $x \in \mathbb{R}^{10 \times 10 \times "
    r"3}$ an image and produce 20 features maps, the kernel or filter size are 3×3 . How many trainable "
    r"parameters (float) the model has?"), "")

EX1_Q3 = Question("ex1-q3", "Ex.1 Q3", (
    "Considering the same architecture, what is the size of the features maps without considering "
    "padding? If we consider a stride of 2?"), "")

EX2_Q1 = Question("ex2-q1", "Ex.2 Q1", (
    r"Show that $\log(p(x)) \geq \mathbf{E}_{z \sim q_\psi(z|x)} [\log p_\theta(x|z)] - D_{KL} "
    r"[q_\psi(z|x) || p(z)]$"), (
    r"Start from $\log(p(x)) = \log \int_z p(x, y) dz = \log \int_z p(x, y) \frac{q(z|x)}{q(z|x)} dz "
    r"= \log \int_z q(z|x) \frac{p(x, y)}{q(z|x)} dz$ And notice that log is concave (so Jensen) "
    r"$\log \int_z q(z|x) \frac{p(x, y)}{q(z|x)} dz \geq \int_z q(z|x) \log \left(\frac{p(x, y)}"
    r"{q(z|x)} \right)$ Then see the course"))

EX2_Q2 = Question("ex2-q2", "Ex.2 Q2", (
    "What measures the KL divergence? When it is equals to 0? Provide the associated formula for two "
    "distributions q and p"), (
    r"It is a dissimilarity metrics over two distribution, it is minimum when the two distribution "
    r"are equals. $$KL(p(x)||q(x)) = \int_x p(x) \log \left(\frac{p(x)}{q(x)} \right)$$ Positivity. "
    r"Notice that : $$\int_x p(x) \log \left(\frac{p(x)}{q(x)} \right) = - \int_x p(x) \log "
    r"\left(\frac{q(x)}{p(x)} \right)$$ By Jensen's inequality we have (minus log is convex) : "
    r"$$\begin{aligned} \int_x p(x) \log \left(\frac{p(x)}{q(x)} \right) &\geq - \log \left(\int_x "
    r"p(x) \frac{q(x)}{p(x)} \right) \\ &\geq - \log \left(\int_x q(x) \right) \\ &\geq - \log(1) \\ "
    r"&\geq 0 \end{aligned}$$"))

EX2_Q3 = Question("ex2-q3", "Ex.2 Q3", (
    r"Let consider $p(z)$ as the standard normal distribution (i.e $\mathcal{N}(0, 1)$) and "
    r"$q_\psi(z|x)$ a normal distribution parametrized by $\sigma^2, \mu$, what is the expression of "
    r"$D_{KL}(q_\psi(z|x) || p(z))$?"), (
    r"The PDF of $q(z|x)$ is $\frac{1}{\sigma\sqrt{2\pi}} e^{-\frac{1}{2}\left(\frac{z-\mu}{\sigma}"
    r"\right)^2}$; the PDF of $p(z)$ is $\frac{1}{\sqrt{2\pi}} e^{-\frac{1}{2}(z^2)}$. "
    'Thus, $$\\begin{aligned} KL(q(z|x) || p(z)) &= \\mathbb{E}_{z \\sim q(z|x)} \\left[\\log '
    '\\left(\\frac{q(z|x)}{p(z)} \\right) \\right] \\\\ &= \\mathbb{E}_{z \\sim q(z|x)} \\left[\\log '
    '\\left(\\frac{\\frac{1}{\\sigma\\sqrt{2\\pi}} e^{-\\frac{1}{2} \\left(\\frac{z-\\mu}{\\sigma} '
    '\\right)^2}}{\\frac{1}{\\sqrt{2\\pi}} e^{-\\frac{1}{2} (z^2)}} \\right) \\right] \\\\ &= '
    '\\mathbb{E}_{z \\sim q(z|x)} \\left[\\log \\left(\\frac{1}{\\sigma\\sqrt{2\\pi}} e^{-\\frac{1}{2} '
    '\\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) - \\log \\left(\\frac{1}{\\sqrt{2\\pi}} '
    'e^{-\\frac{1}{2} (z^2)} \\right) \\right] \\\\ &= \\mathbb{E}_{z \\sim q(z|x)} \\left[\\log '
    '\\left(\\frac{1}{\\sigma\\sqrt{2\\pi}} \\right) + \\log \\left(e^{-\\frac{1}{2} '
    '\\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) - \\log \\left(\\frac{1}{\\sqrt{2\\pi}} \\right) - '
    '\\log \\left(e^{-\\frac{1}{2} (z^2)} \\right) \\right] \\\\ &= \\mathbb{E}_{z \\sim q(z|x)} '
    '\\left[\\log \\left(\\frac{\\sqrt{2\\pi}}{\\sigma\\sqrt{2\\pi}} \\right) + \\log '
    '\\left(e^{-\\frac{1}{2} '
    '\\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) - \\log \\left(e^{-\\frac{1}{2} (z^2)} \\right) '
    '\\right] \\\\ &= \\mathbb{E}_{z \\sim q(z|x)} \\left[-\\log(\\sigma) + \\log \\left(e^{-\\frac{1}{2} '
    '\\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) - \\log \\left(e^{-\\frac{1}{2} (z^2)} \\right) '
    '\\right] \\\\ &= \\mathbb{E}_{z \\sim q(z|x)} [-\\log(\\sigma)] + \\mathbb{E}_{z \\sim q(z|x)} '
    '\\left[\\log \\left(e^{-\\frac{1}{2} \\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) \\right] - '
    '\\mathbb{E}_{z \\sim q(z|x)} \\left[\\log \\left(e^{-\\frac{1}{2} (z^2)} \\right) \\right] \\\\ &= '
    '\\int_z -\\log(\\sigma) q(z|x) + \\mathbb{E}_{z \\sim q(z|x)} \\left[\\log \\left(e^{-\\frac{1}{2} '
    '\\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) \\right] - \\mathbb{E}_{z \\sim q(z|x)} '
    '\\left[\\log \\left(e^{-\\frac{1}{2} (z^2)} \\right) \\right] \\\\ &= -\\log(\\sigma) \\int_z q(z|x) + '
    '\\mathbb{E}_{z \\sim q(z|x)} \\left[\\log \\left(e^{-\\frac{1}{2} \\left(\\frac{z-\\mu}{\\sigma} '
    '\\right)^2} \\right) \\right] - \\mathbb{E}_{z \\sim q(z|x)} \\left[\\log \\left(e^{-\\frac{1}{2} '
    '(z^2)} \\right) \\right] \\\\ &= -\\log(\\sigma) + \\mathbb{E}_{z \\sim q(z|x)} \\left[\\log '
    '\\left(e^{-\\frac{1}{2} \\left(\\frac{z-\\mu}{\\sigma} \\right)^2} \\right) \\right] - \\mathbb{E}_{z '
    '\\sim q(z|x)} \\left[\\log \\left(e^{-\\frac{1}{2} (z^2)} \\right) \\right] \\\\ &= -\\log(\\sigma) + '
    '\\mathbb{E}_{z \\sim q(z|x)} \\left[-\\frac{1}{2} \\left(\\frac{z-\\mu}{\\sigma} \\right)^2 \\right] '
    '- \\mathbb{E}_{z \\sim q(z|x)} \\left[-\\frac{1}{2} (z^2) \\right] \\\\ &= -\\log(\\sigma) - '
    '\\frac{1}{2\\sigma^2} \\mathbb{E}_{z \\sim q(z|x)} [(z-\\mu)^2] + \\frac{1}{2} \\mathbb{E}_{z \\sim '
    'q(z|x)} [(z^2)] \\end{aligned}$$ Note that $\\mathbb{E}_{z \\sim q(z|x)} [(z-\\mu)^2]$ is the '
    'definition of the variance Note that : $$\\begin{aligned} \\mathbb{E}_{z \\sim q(z|x)} [z^2] '
    '&= \\mathbb{E}_{z \\sim q(z|x)} [(z-\\mu)^2 - \\mu^2 + 2\\mu z] \\\\ &= \\mathbb{E}_{z \\sim q(z|x)} '
    '[(z-\\mu)^2] - \\mu^2 - \\mathbb{E}_{z \\sim q(z|x)} [2\\mu z] \\\\ &= \\sigma^2 - \\mu^2 + 2\\mu '
    '\\mathbb{E}_{z \\sim q(z|x)} [z] \\\\ &= \\sigma^2 - \\mu^2 + 2\\mu^2 \\\\ &= \\sigma^2 + \\mu^2 '
    '\\end{aligned}$$ Thus, $$\\begin{aligned} KL(q(z|x) || p(z)) &= -\\log(\\sigma) - '
    '\\frac{1}{2\\sigma^2}\\sigma^2 + \\frac{1}{2}\\sigma^2 - \\frac{1}{2}\\mu^2 \\\\ &= -\\log(\\sigma) - '
    '\\frac{1}{2} + \\frac{1}{2}\\sigma^2 + \\frac{1}{2}\\mu^2 \\\\ &= -\\log(\\sigma) - \\frac{1}{2} + '
    '\\frac{1}{2}\\sigma^2 + \\frac{1}{2}\\mu^2 \\\\ &= -\\frac{1}{2}(2\\log(\\sigma) + 1 - \\sigma^2 - '
    '\\mu^2) \\\\ &= -\\frac{1}{2}(\\log(\\sigma^2) + 1 - \\sigma^2 - \\mu^2) \\end{aligned}$$'))

EX2_Q4 = Question("ex2-q4", "Ex.2 Q4", (
    r"What is the loss associated to the ELBO (gradient descent) considering $p(z)$ as the standard "
    r"normal distribution (i.e $\mathcal{N}(0, 1)$) and $q(z|x)$ a normal distribution parametrized "
    r"by $\sigma^2, \mu$."), (
    r"$\mathcal{L} = -\mathbb{E}_{z \sim q_\psi(z|x)} [p_\theta(x|z)] - \frac{1}{2}(\log(\sigma^2) + "
    r"1 - \sigma^2 - \mu^2)$"))

EX2_Q5 = Question("ex2-q5", "Ex.2 Q5", (
    r"How can we approximate $\mathbb{E}_{z \sim q_\psi(z|x)} [-\log(p_\theta(x|z))]$"), (
    "Monte-Carlo to approximate the gradient (policy gradient). Use the reparametrization trick which "
    "also use monte-carlo to approximate z."))

EX2_Q6 = Question("ex2-q6", "Ex.2 Q6", (
    r"Let assume (in addition) that we consider reparametrization trick evaluating only one sample "
    r"(not a good monte-carlo estimation for). We consider $q_{enc}$ an MLP producing a representation "
    r"of $x$, $q_\mu, q_\sigma$ layers producing the mean and the variance for distribution "
    r"$q_\psi(z|x)$, $p_{dec}$ the decoder function (modeling $p_\theta(x|z)$). Rewrite the loss "
    r"function :"), (
    r"Let consider $\epsilon \sim \mathcal{N}(0, 1)$ and that $\mu_x = q_\mu(q_{enc}(x))$ and "
    r"$\sigma_x = q_\sigma(q_{enc}(x))$ then under above condition the loss can be written as : "
    r"$$\mathcal{L}(x) = -\log(p_{dec}(\sigma_x \epsilon + \mu_x)) - \frac{1}{2}(\log(\sigma_x^2) + 1 "
    r"- \sigma_x^2 - \mu_x^2)$$ Notice we can use any gradient descent algorithm to optimize this loss"))

QUESTIONS: tuple[Question, ...] = (EX1_Q1, EX1_Q2, EX1_Q3, EX2_Q1, EX2_Q2, EX2_Q3, EX2_Q4, EX2_Q5,
                                   EX2_Q6)
