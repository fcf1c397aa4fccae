"""vaekit.arch.sheet: the sheet's Exercise 1 answers and the dense-vs-conv scaling table, held
against real torch.nn modules (parameter counts, output shapes of a run on zeros) and the side^4
closed form; the prose and the JSON carry the same numbers."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vaekit.arch import sheet

# The sheet's statement, typed from the sheet (not from vaekit): x in R^{10x10x3}, 20 maps, 3x3.
H, W, C, MAPS, K = 10, 10, 3, 20, 3


def dense(side: int, c_in: int = C, c_out: int = MAPS) -> nn.Linear:
    """Q1's dense layer for a square image, on the meta device (no memory even at 1024x1024)."""
    return nn.Linear(side * side * c_in, side * side * c_out, bias=False, device="meta")


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hwc(t: torch.Tensor) -> tuple[int, ...]:
    """(1, C, H, W) -> (H, W, C), the sheet's order."""
    return (t.shape[2], t.shape[3], t.shape[1])


# ----------------------------------------------------------------------------- the answers


def test_the_statement_is_the_sheets() -> None:
    assert sheet.INPUT_HWC == (H, W, C) and sheet.MAPS == MAPS and sheet.KERNEL == K


def test_q1_dense_params_is_torchs_count_600000() -> None:
    answers = sheet.exercise1()
    layer = nn.Linear(H * W * C, H * W * MAPS, bias=False)
    assert (answers.q1_in_features, answers.q1_out_features) == (layer.in_features,
                                                                  layer.out_features)
    assert answers.q1_params == numel(layer) == 600_000  # the sheet's answer


def test_q2_conv_params_is_torchs_count_540_plus_20() -> None:
    answers = sheet.exercise1()
    conv = nn.Conv2d(C, MAPS, K)
    assert answers.q2_weights == conv.weight.numel() == 540
    assert answers.q2_biases == conv.bias.numel() == 20
    assert answers.q2_params == numel(conv) == 560


def test_q3_output_sizes_are_torchs_8x8x20_and_4x4x20() -> None:
    answers = sheet.exercise1()
    x = torch.zeros(1, C, H, W)
    assert answers.q3_no_padding == hwc(nn.Conv2d(C, MAPS, K)(x)) == (8, 8, 20)
    assert answers.q3_stride2 == hwc(nn.Conv2d(C, MAPS, K, stride=2)(x)) == (4, 4, 20)
    for stride in (1, 2, 3, 7, 8):
        assert sheet.q3_output_hwc(stride) == hwc(nn.Conv2d(C, MAPS, K, stride=stride)(x))


# ----------------------------------------------------------------------------- the scaling table


def test_scaling_table_matches_torch_parameter_counts_and_float32_bytes() -> None:
    rows = sheet.scaling_table()
    assert [r.side for r in rows] == list(sheet.SCALING_SIDES)
    conv = nn.Conv2d(C, MAPS, K, device="meta")
    for r in rows:
        layer = dense(r.side)
        assert r.dense_params == numel(layer)
        assert r.conv_params == numel(conv)
        assert r.dense_bytes == layer.weight.numel() * layer.weight.element_size()
        assert r.conv_bytes == sum(p.numel() * p.element_size() for p in conv.parameters())


def test_dense_grows_as_side_to_the_fourth_and_conv_stays() -> None:
    """(side^2*3)*(side^2*20) = 60*side^4: dense(s) * 10^4 == dense(10) * s^4 exactly."""
    rows = sheet.scaling_table([10, 11, 28, 100, 224])
    base = rows[0]
    for r in rows:
        assert r.dense_params * 10**4 == base.dense_params * r.side**4
        assert r.conv_params == base.conv_params


@pytest.mark.parametrize(("c_in", "c_out", "k"), [(1, 1, 1), (1, 5, 5), (4, 2, 7)])
def test_scaling_table_for_other_layers(c_in: int, c_out: int, k: int) -> None:
    for r in sheet.scaling_table([3, 9], in_channels=c_in, out_channels=c_out, kernel_size=k):
        assert r.dense_params == numel(dense(r.side, c_in, c_out))
        assert r.conv_params == numel(nn.Conv2d(c_in, c_out, k, device="meta"))


# ----------------------------------------------------------------------------- text and JSON


def test_exercise1_text_has_torchs_numbers_in_the_formulas() -> None:
    text = sheet.exercise1_text()
    q1 = numel(nn.Linear(H * W * C, H * W * MAPS, bias=False))
    conv = nn.Conv2d(C, MAPS, K)
    x = torch.zeros(1, C, H, W)
    assert text.startswith("TD-2 Exercise 1: input x in R^10x10x3 (H x W x C)\n\n")
    assert f"(10*10*3) * (10*10*20) = 300 * 2,000 = {q1:,}" in text
    assert (f"3*3*3*20 + 20 = {conv.weight.numel()} weights + {conv.bias.numel()} biases = "
            f"{numel(conv)}") in text
    for stride in (1, 2):
        h, w, c = hwc(nn.Conv2d(C, MAPS, K, stride=stride)(x))
        assert f"floor((10 + 2*0 - 3)/{stride} + 1) = {h} -> {h}x{w}x{c}" in text
    big = numel(dense(224))
    assert f"at 224x224x3 it is {big:,} ({big * 4 / 2**30:.1f} GiB in float32)" in text


def test_exercise1_json_is_json_with_torchs_numbers() -> None:
    data = json.loads(json.dumps(sheet.exercise1_json()))
    x = torch.zeros(1, C, H, W)
    assert data["notation"] == "H x W x C" and data["input"] == [H, W, C]
    assert data["q1"]["params"] == numel(nn.Linear(H * W * C, H * W * MAPS, bias=False))
    assert data["q2"]["params"] == data["q2"]["weights"] + data["q2"]["biases"] == numel(
        nn.Conv2d(C, MAPS, K))
    assert data["q3"]["stride2"] == list(hwc(nn.Conv2d(C, MAPS, K, stride=2)(x)))


def test_scaling_text_has_a_line_per_side_with_torchs_counts() -> None:
    rows = sheet.scaling_table()
    lines = {line.split()[0]: line.split() for line in sheet.scaling_text(rows).splitlines()
             if line.split() and line.split()[0].isdigit()}
    assert list(lines) == [str(s) for s in sheet.SCALING_SIDES]
    conv = numel(nn.Conv2d(C, MAPS, K, device="meta"))
    for side, cells in lines.items():
        d = numel(dense(int(side)))
        assert cells[1] == f"{d:,}" and cells[4] == f"{conv:,}" and cells[-1] == f"{d // conv:,}x"


def test_scaling_json_rows_are_the_table() -> None:
    rows = sheet.scaling_table([5, 50])
    data = json.loads(json.dumps(sheet.scaling_json(rows)))["rows"]
    assert [d["side"] for d in data] == [5, 50]
    for d in data:
        assert d["dense_params"] == numel(dense(d["side"]))
        assert d["dense_bytes"] == 4 * d["dense_params"] and d["conv_bytes"] == 4 * d["conv_params"]
