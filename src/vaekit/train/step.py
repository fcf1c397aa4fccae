"""One optimizer step of the training loop, and how it runs: eagerly, or captured whole in a CUDA
graph and replayed.

    step(x, y, beta, generator, check) -> sums

takes a batch (x, y) (y None for the VAE), the KL weight of the step and the run's generator; the
engine (`vaekit.train.engines`) writes the gradients, they are clipped to the run's max norm, and
the optimizer updates the weights. `check(sums)` (the loop's divergence check, or None) sees the
batch sums before the update where the step can stop in between (eager), after it where the whole
step is one graph. Returns the engine's batch sums.

    EagerStep(engine, model, optimizer, clip)   loss_and_grads, clip_grad_norm_, optimizer.step():
                                                each kernel launched from Python
    GraphStep(engine, model, optimizer, clip)   the same kernels captured once per batch shape in a
                                                CUDA graph (`torch.cuda.CUDAGraph`) and replayed:
                                                the host issues a few launches a step instead of
                                                hundreds, which is what a small model's step on a
                                                GPU waits for
    make_step(engine, model, optimizer, clip, capture)
                                                GraphStep where it applies (`graph_applies`), else
                                                EagerStep

A captured step computes what the eager one does, draw for draw: the batch and its eps are made
outside the graph from the run's generator, in the eager order (the batch's binarization, then
eps, through the engine's `noise_shape`), and copied into the graph's static inputs, as are beta
and the learning rate (0-dim tensors, so a warm-up or a schedule changes them without a new
capture). The first `WARM_STEPS` steps of each batch shape run eagerly on a side stream (real steps
of the run: they create Adam's state, cuBLAS's workspaces and autocast's casts before the capture,
as the CUDA-graphs recipe of the PyTorch documentation asks), the next one is captured, and every
later one replays. Dropout inside the graph draws from the default CUDA generator, whose offsets
graphs advance on each replay.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from vaekit.train.engines import Engine
from vaekit.train.optim import fused_step, graph_safe_optimizer

WARM_STEPS = 2  # eager steps of each batch shape before its capture

Check = Callable[[Tensor], None]  # the loop's check of a step's batch sums (raises to stop the run)


class Step(Protocol):
    """What the training loop calls once per batch (see the module docstring)."""

    def __call__(self, x: Tensor, y: Tensor | None, beta: float, generator: torch.Generator,
                 check: Check | None = None) -> Tensor: ...


class EagerStep:
    """The engine's gradients, `check`, the clip, the optimizer's step: launched op by op."""

    def __init__(self, engine: Engine, model: nn.Module, optimizer: torch.optim.Optimizer,
                 clip: float) -> None:
        self.engine, self.model, self.optimizer, self.clip = engine, model, optimizer, clip
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __call__(self, x: Tensor, y: Tensor | None, beta: float | Tensor, generator: torch.Generator,
                 check: Check | None = None) -> Tensor:
        sums = self.engine.loss_and_grads(self.model, x, beta, generator, y)  # type: ignore[arg-type]
        if check is not None:
            check(sums)
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.optimizer.step()
        return sums


class _Captured:
    """One batch shape's graph and its static inputs and output."""

    def __init__(self, x: Tensor, y: Tensor | None, noise: Tensor | None) -> None:
        self.graph = torch.cuda.CUDAGraph()
        self.x, self.y, self.noise = x.clone(), None if y is None else y.clone(), noise
        self.sums: Tensor | None = None


class GraphStep:
    """`EagerStep`'s kernels captured in one CUDA graph per batch shape and replayed (see the
    module docstring). Should a capture fail (an op that syncs with the host, a library that does
    not allow capture), the step says so once and runs eagerly from then on."""

    def __init__(self, engine: Engine, model: nn.Module, optimizer: torch.optim.Optimizer,
                 clip: float) -> None:
        self.eager = EagerStep(engine, model, optimizer, clip)
        self.engine, self.model, self.optimizer, self.clip = engine, model, optimizer, clip
        self.device = next(model.parameters()).device
        self.graphs: dict[tuple[int, ...], _Captured] = {}
        self.seen: dict[tuple[int, ...], int] = {}
        self.beta = torch.zeros((), device=self.device)
        self.lr = torch.zeros((), device=self.device)
        self._lr_value: float | None = None
        self.failed = False
        self.stream = torch.cuda.Stream(self.device)
        # handed to the engine inside the capture, never drawn from (the eps are `noise`): a
        # generator cannot be made while a capture is under way
        self.unused_generator = torch.Generator(device=self.device)

    def __call__(self, x: Tensor, y: Tensor | None, beta: float | Tensor, generator: torch.Generator,
                 check: Check | None = None) -> Tensor:
        if self.failed:
            return self.eager(x, y, beta, generator, check)
        key = tuple(x.shape)
        captured = self.graphs.get(key)
        if captured is None:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= WARM_STEPS:
                self.stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(self.stream):
                    sums = self.eager(x, y, beta, generator, check)
                torch.cuda.current_stream(self.device).wait_stream(self.stream)
                return sums
        self._inputs(beta)
        if captured is None:
            noise = self._noise(x, generator)
            captured = self._capture(x, y, noise)
            if captured is None:
                return self._eager_with(x, y, beta, generator, check, noise)
        else:
            captured.x.copy_(x)
            if y is not None and captured.y is not None:
                captured.y.copy_(y)
            if captured.noise is not None:  # torch.randn's draws, in place: randn is empty + normal_
                captured.noise.normal_(generator=generator)
        captured.graph.replay()
        assert captured.sums is not None
        if check is not None:
            check(captured.sums)
        return captured.sums

    def _inputs(self, beta: float | Tensor) -> None:
        """beta and the optimizer's learning rate into the graphs' 0-dim inputs (a launch each,
        no host sync); the learning rate only when the schedule changed it."""
        self.beta.fill_(beta)
        lr = float(self.optimizer.param_groups[0]["lr"])
        if lr != self._lr_value:
            self.lr.fill_(lr)
            self._lr_value = lr

    def _noise(self, x: Tensor, generator: torch.Generator) -> Tensor | None:
        """The step's eps, drawn from the run's generator as the engine would draw them."""
        shape = getattr(self.engine, "noise_shape", lambda _m, _b: None)(self.model, x.shape[0])
        if shape is None:
            return None
        return torch.randn(shape, generator=generator, device=x.device)

    def _eager_with(self, x: Tensor, y: Tensor | None, beta: float | Tensor, generator: torch.Generator,
                    check: Check | None, noise: Tensor | None) -> Tensor:
        """The eager step on eps already drawn (a failed capture's batch)."""
        self.engine.noise = noise  # type: ignore[attr-defined]
        try:
            return self.eager(x, y, beta, generator, check)
        finally:
            self.engine.noise = None  # type: ignore[attr-defined]

    def _capture(self, x: Tensor, y: Tensor | None, noise: Tensor | None) -> _Captured | None:
        captured = _Captured(x, y, None if noise is None else noise.clone())
        self.engine.noise = captured.noise  # type: ignore[attr-defined]
        try:
            torch.cuda.synchronize(self.device)
            with torch.cuda.graph(captured.graph, stream=self.stream):
                captured.sums = self.engine.loss_and_grads(self.model, captured.x, self.beta,  # type: ignore[arg-type]
                                                           self.unused_generator, captured.y)
                if self.clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.eager.params, self.clip, foreach=True)
                if not fused_step(self.optimizer, lr=self.lr):  # type: ignore[arg-type]
                    raise RuntimeError("the optimizer's fused step does not apply")
        except RuntimeError as err:
            warnings.warn(f"the training step could not be captured in a CUDA graph ({err}); it runs "
                          "eagerly.", RuntimeWarning, stacklevel=2)
            self.failed = True
            torch.cuda.synchronize(self.device)
            return None
        finally:
            self.engine.noise = None  # type: ignore[attr-defined]
        self.graphs[tuple(x.shape)] = captured
        return captured


def graph_applies(engine: Engine, model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """Whether a step can be captured: the model on a CUDA device, an engine that takes its eps
    from outside (`capturable`: not the score estimator's host-side baseline, not a distributed
    all-reduce), and an Adam(W) whose fused update `optim.fused_step` makes (no closure, no hooks)."""
    params = list(model.parameters())
    return (bool(params) and params[0].device.type == "cuda" and torch.cuda.is_available()
            and bool(getattr(engine, "capturable", False)) and graph_safe_optimizer(optimizer))


def make_step(engine: Engine, model: nn.Module, optimizer: torch.optim.Optimizer, clip: float,
              capture: bool = True) -> Step:
    """The step of a run: `GraphStep` where `capture` is asked and `graph_applies`, else `EagerStep`."""
    if capture and graph_applies(engine, model, optimizer):
        return GraphStep(engine, model, optimizer, clip)
    return EagerStep(engine, model, optimizer, clip)
