"""Autocast bf16 on the CPU: how far the conv VAE's bf16 gradients are from float32's, per parameter.

The diagnostic of the CPU autocast test (tests/train/test_cuda.py): its config (conv VAE, channels
8, 16, latent 4, a batch of 32 binary 16x16 images, one step of `AutogradEngine`), once in float32
and once under torch.autocast(cpu, bfloat16), both on the same float32 eps (the engine's `noise`),
with oneDNN (mkldnn) on and off. Per parameter:

- rel: |g_bf16 - g_f32| / |g_f32|, the figure the test bounded (by 0.1, before);
- cos: the cosine similarity of g_bf16 and g_f32;
- emu: |g_bf16 - g_emu| / |g_f32|, where g_emu is the autocast rule emulated in float64: every op on
  the bfloat16 or float32 operands it is given, computed in float64 and rounded once to the dtype
  of its result. 0 where the kernels sum in float32 and round once (oneDNN's); a few % where a path
  rounds more often (e.g. bias added apart); large where a kernel sums in bfloat16.
- rule: g_emu against the float32 step emulated alike: what the rule itself costs, with any kernel.
- own: rel and cos with each run drawing eps itself, as the engine does by itself (and the test
  did): in the dtype of mu, bfloat16 under autocast. Whether a bfloat16 draw is the float32 draw
  rounded depends on torch's version (2.13: yes; 2.11: other numbers, another gradient sample).

Also the relative difference of the two draws, the cancellation in the first conv's weight gradient
(|x|^T|dy| against |x^T dy|, norms), torch's version, its CPU capability, the CPU's avx512_bf16 /
amx_bf16 flags, oneDNN's version and the threads. Exits 0: it measures, it does not judge. No CUDA
needed; about 10 s on 2 cores.

    PYTHONPATH=src python bench/autocast_cpu.py [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.grad import conv2d_weight
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vaekit.config import TrainConfig  # noqa: E402
from vaekit.train.engines import make_engine  # noqa: E402
from vaekit.vae.models import build_model  # noqa: E402

FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")
Grads = dict[str, torch.Tensor]


def conv_config(precision: str = "float32") -> TrainConfig:
    """The config of tests/train/test_cuda.py's autocast test."""
    config = TrainConfig()
    config.model.kind, config.model.channels = "conv", [8, 16]
    config.model.hidden, config.model.latent = [], 4
    config.model.image_shape = [1, 16, 16]
    config.train.precision = precision
    return config


def batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(32, 1, 16, 16, generator=g) < 0.3).float()


def noise() -> torch.Tensor:
    """The test's eps, (K, B, D) = (1, 32, 4), drawn in float32 from the step's generator."""
    return torch.randn((1, 32, 4), generator=torch.Generator().manual_seed(1))


def loss_and_grads(precision: str, eps: torch.Tensor | None = None,
                   first_conv: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Grads]:
    """The step of the test: its sums and float32 gradients. `eps`: the noise given to the engine
    (None: the engine draws it from the generator, in the dtype of mu, bfloat16 under autocast).
    `first_conv`, if given, receives the first conv's input 'x' and the gradient of its output 'dy'."""
    config = conv_config(precision)
    torch.manual_seed(0)
    model = build_model(config)
    engine = make_engine(model, config.train)
    engine.noise = eps  # type: ignore[attr-defined]
    if first_conv is not None:
        conv = model.q_enc[0]  # type: ignore[index]

        def keep(_m: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            first_conv["x"] = inputs[0].detach()
            out.register_hook(lambda dy: first_conv.__setitem__("dy", dy.detach()))

        conv.register_forward_hook(keep)
    sums = engine.loss_and_grads(model, batch(), 1.0, torch.Generator().manual_seed(1))
    return sums, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


class Float64Rule(TorchDispatchMode):
    """Every op computed in float64 on the operands it gets (bfloat16 or float32 values, exact in
    float64), its result rounded once to the dtype the op gives: the arithmetic the dtypes
    prescribe, with sums as good as exact. Views, in-place ops, casts and random draws run as is."""

    PASS = (torch.ops.aten._to_copy.default, torch.ops.aten.clone.default, torch.ops.aten.detach.default)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if (func in self.PASS or func.is_view or func._schema.is_mutable
                or torch.Tag.nondeterministic_seeded in func.tags):
            return out

        def up(t: Any) -> Any:
            floats = (torch.bfloat16, torch.float32)
            return t.double() if isinstance(t, torch.Tensor) and t.dtype in floats else t

        exact = func(*tree_map(up, args), **tree_map(up, kwargs))

        def down(o: Any, e: Any) -> Any:
            floating = isinstance(o, torch.Tensor) and o.dtype.is_floating_point
            return e.to(o.dtype) if floating and isinstance(e, torch.Tensor) else o

        if isinstance(out, (tuple, list)):  # convolution_backward's (grad_input, grad_weight, grad_bias)
            return type(out)(down(o, e) for o, e in zip(out, exact, strict=True))
        return down(out, exact)


def rel(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / scale.double().norm().clamp(min=1e-30))


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def flat(grads: Grads) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads.values()])


def cpu_info() -> dict[str, Any]:
    """The model name and the flags of FLAGS from /proc/cpuinfo (None where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or None, **{f: None for f in FLAGS}}
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    return {"model": model.group(1).strip() if model else None,
            **{f: (f in have) if flags else None for f in FLAGS}}


def onednn_version() -> str | None:
    found = re.search(r"(?:oneDNN|MKL-DNN|Intel\(R\) MKL-DNN)\s*v?([0-9][0-9.]*)", torch.__config__.show())
    return found.group(1) if found else None


@contextlib.contextmanager
def mkldnn(enabled: bool) -> Iterator[None]:
    """oneDNN on or off while the block runs (not `mkldnn.flags`, which also sets and warns of TF32)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def compare(bf: Grads, f32: Grads, emu: Grads | None = None) -> dict[str, dict[str, float]]:
    """Per parameter and for all of them ('all'): rel, cos and (with `emu`) emu of the docstring."""
    pairs = {**{n: (bf[n], f32[n], None if emu is None else emu[n]) for n in f32},
             "all": (flat(bf), flat(f32), None if emu is None else flat(emu))}
    out = {}
    for name, (b, f, e) in pairs.items():
        out[name] = {"rel": rel(b, f, f), "cos": cos(b, f)}
        if e is not None:
            out[name]["emu"] = rel(b, e, f)
    return out


def measure() -> dict[str, Any]:
    """Everything the module docstring lists, as one dict."""
    eps = noise()
    drawn = torch.randn((1, 32, 4), generator=torch.Generator().manual_seed(1), dtype=torch.bfloat16)
    with Float64Rule():
        _, emu_f32 = loss_and_grads("float32", eps)
        _, emu_bf16 = loss_and_grads("bf16", eps)
    runs: dict[str, Any] = {}
    for label, enabled in (("mkldnn_on", True), ("mkldnn_off", False)):
        with mkldnn(enabled):
            first: dict[str, torch.Tensor] = {}
            f32_sums, f32 = loss_and_grads("float32", eps, first)
            bf_sums, bf = loss_and_grads("bf16", eps)
        conv = conv2d_weight(first["x"].abs(), f32["q_enc.0.weight"].shape, first["dy"].abs(),
                                           stride=2, padding=1)
        runs[label] = {"sums_float32": f32_sums.tolist(), "sums_bf16": bf_sums.tolist(),
                       "f32_to_emulation": rel(f32["q_enc.0.weight"], emu_f32["q_enc.0.weight"],
                                               emu_f32["q_enc.0.weight"]),
                       "first_conv_cancellation": float(conv.norm() / f32["q_enc.0.weight"].norm()),
                       "params": compare(bf, f32, emu_bf16)}
    # as the engine runs by itself (and the test did): eps drawn from the generator, each run in
    # its own dtype (bfloat16 under autocast)
    _, own_f32 = loss_and_grads("float32")
    _, own_bf16 = loss_and_grads("bf16")
    rule = {n: v["rel"] for n, v in compare(emu_bf16, emu_f32).items()}
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": cpu_info(), "onednn": onednn_version(),
            "mkldnn_available": torch.backends.mkldnn.is_available(),
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "eps_bf16_draw_vs_float32": rel(drawn, eps, eps),
            "rule_rel": rule, "runs": runs, "own_draws": compare(own_bf16, own_f32)}


def render(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    lines = [f"torch {result['torch']} (python {result['python']}), capability {result['cpu_capability']}, "
             f"oneDNN {result['onednn']} (available: {result['mkldnn_available']}), "
             f"threads {result['threads']}",
             f"cpu {cpu['model']}: " + ", ".join(f"{f} {cpu[f]}" for f in FLAGS),
             f"eps drawn in bfloat16 against eps drawn in float32 (same generator, seed 1): relative "
             f"difference {result['eps_bf16_draw_vs_float32']:.2g} (about 2e-3 where a bfloat16 draw is "
             f"the float32 draw rounded, about 1.4 where it is other numbers)"]
    for label, run in result["runs"].items():
        lines.append(f"{label}: first conv cancellation |x|^T|dy| / |x^T dy| = "
                     f"{run['first_conv_cancellation']:.1f}; float32 against its emulation "
                     f"{run['f32_to_emulation']:.1e}")
    head = f"{'parameter':18s} {'rule':>7s}" + "".join(
        f" {f'{k} ({label[7:]})':>10s}" for label in result["runs"] for k in ("rel", "cos", "emu"))
    lines.append("same float32 eps given to both runs:" + " " * 33 + "| own draws (mkldnn on):")
    lines.append(head + f" {'rel (own)':>10s} {'cos (own)':>10s}")
    for name, rule in result["rule_rel"].items():
        cells = "".join(f" {run['params'][name]['rel']:10.4f} {run['params'][name]['cos']:10.5f}"
                        f" {run['params'][name]['emu']:10.1e}" for run in result["runs"].values())
        own = result["own_draws"][name]
        lines.append(f"{name:18s} {rule:7.4f}{cells} {own['rel']:10.4f} {own['cos']:10.5f}")
    lines.append("rule: the autocast rule's own error (emulated bf16 against emulated float32, same eps); "
                 "rel, cos: bf16 against float32 here; emu: bf16 here against the emulated rule; "
                 "own: each run drawing its eps itself, as the engine does")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's CPU threads (default: as torch starts)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = measure()
    print(json.dumps(result) if args.json else render(result))


if __name__ == "__main__":
    main()
