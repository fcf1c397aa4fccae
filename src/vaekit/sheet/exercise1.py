"""Exercise 1 answered: the parameter counts and feature-map sizes of `vaekit.arch.sheet` (computed by
`vaekit.arch.arith`), each held against the torch module it counts, and Q1's "problem with large
images" as numbers: the scaling table of dense against conv parameters and memory, and the dense
and conv classifiers trained side by side (`vaekit.classify.compare`, or its compare.json read from
a directory).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaekit import runs
from vaekit.arch import sheet as arch_sheet
from vaekit.arch.table import dims
from vaekit.classify import compare as cmp
from vaekit.classify.compare_table import rows_fault
from vaekit.classify.config import ClassifierConfig
from vaekit.classify.figure import compare_figure
from vaekit.device import format_bytes
from vaekit.errors import ConfigError
from vaekit.regular import read_regular
from vaekit.report.figures import scaling_figure
from vaekit.sheet.answer import Answer, Check, Table, thousands

QUICK_SIDES, QUICK_COMPARE_EPOCHS, QUICK_IMAGES = (28, 56), 1, 2000  # --quick: about a minute
Log = Callable[[str], None]


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def question1(work: Path) -> Answer:
    """Ex.1 Q1: (H*W*C_in) * (H*W*C_out) weights, held against torch.nn.Linear(bias=False)."""
    a = arch_sheet.exercise1()
    h, w, c = arch_sheet.INPUT_HWC
    maps = arch_sheet.MAPS
    torch_count = _numel(nn.Linear(a.q1_in_features, a.q1_out_features, bias=False))
    formula = (rf"(H \cdot W \cdot C_{{in}}) \times (H \cdot W \cdot C_{{out}}) = ({h} \cdot {w} \cdot {c}) "
               rf"\times ({h} \cdot {w} \cdot {maps}) = {thousands(a.q1_in_features)} \times "
               rf"{thousands(a.q1_out_features)} = {thousands(a.q1_params)}")
    rows = arch_sheet.scaling_table()
    big = next(r for r in rows if r.side == arch_sheet.LARGE_SIDE)
    text = (f"Flattened, the layer maps {a.q1_in_features:,} inputs to {a.q1_out_features:,} outputs: "
            f"{a.q1_params:,} weights. Its count grows as the square of the pixels, (side^2)^2: at "
            f"{big.side}x{big.side}x{c} it is {big.dense_params:,} weights "
            f"({format_bytes(big.dense_bytes, 1)} in float32) against {big.conv_params:,} for Q2's "
            "convolution, whose weights are shared across positions. Memory, compute and the data "
            "needed to fit so many weights explode, and the layer ignores that neighbouring pixels go "
            "together; the table and the trained classifiers below measure it.")
    scaling = Table("Dense layer HxWx3 -> HxWx20 (no bias) against a 3x3 conv with 20 maps (with bias), "
                    "parameters and float32 bytes (vaekit.arch.sheet.scaling_table)",
                    ("side", "dense params", "dense float32", "conv params", "conv float32", "dense/conv"),
                    [(r.side, r.dense_params, format_bytes(r.dense_bytes, 1), r.conv_params,
                      format_bytes(r.conv_bytes, 1), f"{r.dense_params // r.conv_params:,}x") for r in rows],
                    (0, 1, 3))
    figure = scaling_figure(rows, work / "scaling.png")
    check = Check("torch.nn.Linear(bias=False)", torch_count == a.q1_params,
                  f"torch.nn.Linear({a.q1_in_features}, {a.q1_out_features}, bias=False) holds "
                  f"{torch_count:,} parameters; arith.linear_params gives {a.q1_params:,}")
    numbers = {"in_features": a.q1_in_features, "out_features": a.q1_out_features, "params": a.q1_params,
               "torch_params": torch_count, "scaling": arch_sheet.scaling_json(rows)["rows"]}
    return Answer("ex1-q1", [formula], text, [check], [scaling],
                  [(figure, "Parameters (left) and float32 memory (right) of the dense layer and the "
                            "conv as the image side grows, log-log.")], numbers)


def question2() -> Answer:
    """Ex.1 Q2: k_h*k_w*C_in*C_out + C_out, held against torch.nn.Conv2d."""
    a = arch_sheet.exercise1()
    c, k, maps = arch_sheet.INPUT_HWC[2], arch_sheet.KERNEL, arch_sheet.MAPS
    torch_count = _numel(nn.Conv2d(c, maps, k))
    formula = (rf"k_h k_w C_{{in}} C_{{out}} + C_{{out}} = {k} \cdot {k} \cdot {c} \cdot {maps} + {maps} = "
               rf"{a.q2_weights} + {a.q2_biases} = {a.q2_params}")
    text = (f"{a.q2_weights} weights (20 filters of {k}x{k}x{c}) and {a.q2_biases} biases, whatever the "
            "image size.")
    check = Check("torch.nn.Conv2d", torch_count == a.q2_params,
                  f"torch.nn.Conv2d({c}, {maps}, {k}) holds {torch_count} parameters; "
                  f"arith.conv2d_params gives {a.q2_weights} + {a.q2_biases}")
    return Answer("ex1-q2", [formula], text, [check],
                  numbers={"weights": a.q2_weights, "biases": a.q2_biases, "params": a.q2_params,
                           "torch_params": torch_count})


def question3() -> Answer:
    """Ex.1 Q3: floor((H + 2p - k)/s + 1), held against the shape torch.nn.Conv2d gives."""
    a = arch_sheet.exercise1()
    h, w, c = arch_sheet.INPUT_HWC
    k, maps = arch_sheet.KERNEL, arch_sheet.MAPS
    formulas, checks = [r"H_{out} = \left\lfloor \frac{H_{in} + 2p - k}{s} + 1 \right\rfloor"], []
    for stride, out in zip(arch_sheet.Q3_STRIDES, (a.q3_no_padding, a.q3_stride2), strict=True):
        formulas.append(rf"s = {stride}:\ \left\lfloor \frac{{{h} + 2 \cdot 0 - {k}}}{{{stride}}} + 1 "
                        rf"\right\rfloor = {out[0]} \ \Rightarrow\ {out[0]} \times {out[1]} \times {out[2]}")
        with torch.no_grad():
            shape = nn.Conv2d(c, maps, k, stride=stride)(torch.zeros(1, c, h, w)).shape  # (1, C, H, W)
        got = (int(shape[2]), int(shape[3]), int(shape[1]))
        checks.append(Check(f"torch.nn.Conv2d stride {stride}", got == out,
                            f"a {h}x{w}x{c} input through torch.nn.Conv2d({c}, {maps}, {k}, stride={stride}) "
                            f"comes out {dims(got)}; arith gives {dims(out)}"))
    text = (f"Without padding the {k}x{k} filter fits {a.q3_no_padding[0]} positions per row: "
            f"{dims(a.q3_no_padding)}; with stride 2 every other position: {dims(a.q3_stride2)}.")
    return Answer("ex1-q3", formulas, text, checks,
                  numbers={"no_padding": list(a.q3_no_padding), "stride2": list(a.q3_stride2)})


def compare_rows(compare_dir: Path | None, work: Path, quick: bool, seed: int, data_dir: str | None,
                 threads: int, log: Log) -> tuple[list[dict[str, Any]], Path]:
    """The dense and conv classifiers side by side: OUT/compare.json of an existing `vaekit classify
    --compare` (`compare_dir`), or a new compare trained into work/compare (with `quick` at QUICK_SIDES,
    QUICK_COMPARE_EPOCHS and QUICK_IMAGES, else at the compare's defaults); the rows and their figure."""
    if compare_dir is not None:
        path = compare_dir / cmp.JSON_NAME
        try:
            rows = runs.parse_json(read_regular(path, "the compare.json of `vaekit classify --compare`",
                                                      ConfigError))
        except (OSError, ValueError) as err:
            why = str(getattr(err, "strerror", None) or err).rstrip(".")
            raise ConfigError(f"--compare {compare_dir}: {path.name} is not readable ({why}); expected the "
                              "directory `vaekit classify --compare` wrote.") from None
        fault = rows_fault(rows)
        if fault is not None:
            raise ConfigError(f"--compare {compare_dir}: {path.name} is not the rows of `vaekit classify "
                              f"--compare` ({fault}); give the directory such a compare wrote, or leave "
                              "--compare out to train one.")
        rows.sort(key=lambda row: (cmp.MODELS.index(row["model"]), row["side"]))  # as the compare wrote them
        return rows, compare_figure(rows, work / cmp.FIGURE_NAME)
    config = ClassifierConfig()
    config.train.seed, config.train.threads = seed, threads
    if data_dir is not None:
        config.data.data_dir = data_dir
    sides, epochs, images = ((QUICK_SIDES, QUICK_COMPARE_EPOCHS, QUICK_IMAGES) if quick
                             else (cmp.SIDES, cmp.EPOCHS, cmp.TRAIN_IMAGES))
    log(f"Ex.1 Q1: training the dense and the cnn classifier at {', '.join(map(str, sides))} px")
    rows = cmp.compare(config, work / "compare", sides, epochs, images, show_bar=False,
                       log=lambda _line: None)
    return rows, work / "compare" / cmp.FIGURE_NAME


def compare_part(answer: Answer, rows: list[dict[str, Any]], figure: Path) -> None:
    """Add the compare's table, figure and check to Q1's answer."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    answer.tables.append(Table(
        "The dense and the cnn preset trained on the same images resized to each side (vaekit "
        "classify --compare): parameters, multiply-adds per image, memory, seconds per "
        "epoch, accuracy", ("model", "side", "params", "MACs", "peak MiB", "s/epoch", "train acc",
                            "test acc", "epochs", "train images"),
        [(r["model"], r["side"], r["params"], r["macs"], r.get("peak_memory_mb"), r.get("epoch_seconds"),
          pct(r.get("train_accuracy")), pct(r.get("test_accuracy")), r.get("epochs"), r.get("train_images"))
         for r in rows], (1, 2, 3, 4, 5, 9)))
    answer.figures.append((figure, "The compare's four panels against the image side: parameters, "
                                   "memory, seconds per epoch, accuracy."))
    dense = [r for r in rows if r["model"] == "dense"]
    conv = [r for r in rows if r["model"] == "cnn"]
    if len(dense) > 1 and len(conv) > 1:
        d0, d1, c0, c1 = dense[0], dense[-1], conv[0], conv[-1]
        grows = d1["params"] > d0["params"] and c1["params"] == c0["params"]
        answer.checks.append(Check(
            "dense grows, conv does not", grows,
            f"from {d0['side']} to {d1['side']} px the dense's parameters go {d0['params']:,} -> "
            f"{d1['params']:,} (x{d1['params'] / d0['params']:.2f} for x{(d1['side'] / d0['side']) ** 2:.2f} "
            f"the pixels), the cnn's {c0['params']:,} -> {c1['params']:,}"))
    answer.numbers["compare"] = rows
