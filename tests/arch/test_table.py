"""vaekit.arch.table: shapes as text, and the table of a stack holding torch's output shapes,
parameters and FLOPs / 2 (its bytes: tests/test_device.py)."""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vaekit.arch.explain import explain_row
from vaekit.arch.spec import parse_stack
from vaekit.arch.stack import analyze
from vaekit.arch.table import dims, stack_table


def test_dims() -> None:
    assert dims((20, 8, 8)) == "20x8x8"
    assert dims((Fraction(1, 2), Fraction(4, 2))) == "1/2x2"
    assert dims(None) == "-"


def test_stack_table_has_torchs_shapes_params_and_macs() -> None:
    texts = ["Conv2d(8, 3, stride=2, padding=1)", "ReLU()", "Flatten()", "Linear(5)"]
    modules = [nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 4, 5)]
    rows = analyze(parse_stack(texts), (3, 9, 7))
    lines = stack_table((3, 9, 7), rows).splitlines()
    assert lines[0] == "input 3x9x7 (C x H x W)"
    x = torch.zeros(1, 3, 9, 7)
    total_params = total_macs = 0
    for i, module in enumerate(modules):
        with FlopCounterMode(display=False) as counter:
            x = module(x)
        params = sum(p.numel() for p in module.parameters())
        macs = counter.get_total_flops() // 2
        total_params, total_macs = total_params + params, total_macs + macs
        cells = lines[2 + i].split()
        assert cells[0] == str(i + 1)
        assert "x".join(map(str, x.shape[1:])) in cells and f"{params:,}" in cells and f"{macs:,}" in cells
    assert lines[2 + len(modules)].split()[:3] == ["total", f"{total_params:,}", f"{total_macs:,}"]
    assert any(line.startswith("field, jump:") for line in lines)  # an image has a field


def test_stack_table_explain_puts_each_rows_formulas_under_it() -> None:
    rows = analyze(parse_stack(["Linear(4)", "Tanh()"]), (6,))
    plain = stack_table((6,), rows).splitlines()
    explained = stack_table((6,), rows, explain=True).splitlines()
    expected = [*plain[:3], *explain_row(rows[0]), plain[3], *explain_row(rows[1], rows[0]), *plain[4:]]
    assert [line.strip() for line in explained] == [line.strip() for line in expected]
    assert all(line.startswith("     ") for line in explained[3:3 + len(explain_row(rows[0]))])
    assert not any(line.startswith("field, jump:") for line in plain)  # a vector has no field
