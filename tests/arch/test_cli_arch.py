"""`vaekit arch` through vaekit.cli.main: table, --json, --explain, --sheet, --scaling, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vaekit.arch.explain import explain_layer
from vaekit.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["arch", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_is_the_issue_example_for_the_sheet_q2_q3_case(capsys: Any) -> None:
    status, out, err = run(capsys, "--input", "3,10,10", "Conv2d(20, kernel_size=3)", "--json")
    assert status == 0 and err == ""
    assert json.loads(out) == {
        "input": [3, 10, 10],
        "layers": [{"layer": "Conv2d(20, kernel_size=3)", "output_shape": [20, 8, 8],
                    "params": 560, "weight_params": 540, "bias_params": 20, "macs": 34560,
                    "receptive_field": [3, 3], "jump": [1, 1], "output_bytes": 5120}],
        "total_params": 560, "total_macs": 34560,
    }


def test_json_of_a_stack_with_flat_input_and_fractional_jump(capsys: Any) -> None:
    status, out, _ = run(capsys, "--input", "1x8x8", "Upsample(scale_factor=2)", "Conv2d(2, 4)",
                         "Flatten()", "Linear(5, bias=False)", "--json")
    data = json.loads(out)
    assert status == 0 and data["input"] == [1, 8, 8]
    layers = data["layers"]
    assert [x["output_shape"] for x in layers] == [[1, 16, 16], [2, 13, 13], [338], [5]]
    assert layers[1]["jump"] == [0.5, 0.5] and layers[1]["receptive_field"] == [3, 3]
    assert layers[2]["jump"] is None and layers[3]["receptive_field"] == [8, 8]
    assert layers[3]["params"] == layers[3]["weight_params"] == 338 * 5
    assert data["total_params"] == sum(x["params"] for x in layers) == 2 * 16 + 2 + 1690
    status, out, _ = run(capsys, "--input", "784", "Linear(400)", "ReLU()", "--json")
    data = json.loads(out)
    assert data["input"] == [784] and data["layers"][0]["receptive_field"] is None
    assert data["total_macs"] == 784 * 400


def test_a_linear_after_strides_sees_the_pixels_its_inputs_depend_on(capsys: Any) -> None:
    """A stride of 5 on 10 pixels reads pixels 0 and 5 of each axis: the Linear sees 6x6 (as
    gradients give it: test_arith.py), in the table, --json and --explain."""
    stack = ["--input", "1,10,10", "Conv2d(1, 1, stride=5)", "Flatten()", "Linear(2)"]
    status, out, _ = run(capsys, *stack, "--json")
    assert status == 0
    assert [x["receptive_field"] for x in json.loads(out)["layers"]] == [[1, 1], [1, 1], [6, 6]]
    status, out, _ = run(capsys, *stack, "--explain")
    assert "3  Linear(2)               2           10     8  6x6" in out
    assert ("receptive field = 6x6 of the 10x10 image: every output reads every input, and these "
            "depend only on the input pixels in a span of 6 rows and 6 columns") in out
    assert "whole image" not in out
    status, out, _ = run(capsys, "--input", "1,1,2000000", "Conv2d(1, 1, stride=2)", "Flatten()",
                         "Linear(2)", "--explain")
    assert status == 0 and "3  Linear(2)  " in out
    assert "receptive field not computed: it would take more than 262,144 steps" in out
    assert "field '-' on an image: not computed" in out


def test_table_has_columns_totals_and_the_mac_convention(capsys: Any) -> None:
    status, out, _ = run(capsys, "--input", "3,10,10", "Conv2d(20, kernel_size=3)", "ReLU()",
                         "MaxPool2d(2)")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "input 3x10x10 (C x H x W)"
    assert lines[1].split() == ["#", "layer", "output", "params", "MACs", "field", "jump",
                                "memory"]
    assert lines[2].split()[:7] == ["1", "Conv2d(20,", "kernel_size=3)", "20x8x8", "560",
                                    "34,560", "3x3"]
    assert lines[4].split()[:6] == ["3", "MaxPool2d(2)", "20x4x4", "0", "0", "4x4"]
    assert lines[5].split()[:3] == ["total", "560", "34,560"]
    assert "MACs: 1 multiply-add = 1 MAC" in out
    assert "540 weights + 20 biases = 560" in out


def test_explain_puts_the_numbers_in_the_formula(capsys: Any) -> None:
    status, out, _ = run(capsys, "--input", "3,10,10", "Conv2d(20, kernel_size=3, stride=2)",
                         "--explain")
    assert status == 0
    assert "H_out = floor((10 + 2*0 - 1*(3-1) - 1)/2 + 1) = 4" in out
    assert "W_out = floor((10 + 2*0 - 1*(3-1) - 1)/2 + 1) = 4" in out
    assert "weights = C_out * C_in/groups * k_h * k_w = 20 * 3/1 * 3 * 3 = 540" in out
    assert "MACs = C_out * H_out * W_out * C_in/groups * k_h * k_w = 20 * 4 * 4 * 3/1 * 3 * 3 " \
           "= 8,640" in out
    assert "receptive field H = r_in + dilation*(k-1)*j_in = 1 + 1*(3-1)*1 = 3" in out


def test_explain_covers_every_layer_kind(capsys: Any) -> None:
    status, out, _ = run(
        capsys, "--input", "3,9,12", "Conv2d(8, (2, 4), padding='same')", "BatchNorm2d()",
        "MaxPool2d(3, stride=2, ceil_mode=True)", "AvgPool2d(2, padding=1)",
        "ConvTranspose2d(4, 3, stride=2, output_padding=1)", "Upsample(scale_factor=1.5)",
        "AdaptiveAvgPool2d((3, None))", "GELU()", "Dropout()", "Flatten()", "Linear(7)",
        "--explain")
    assert status == 0
    assert "pads before+after: H 0+1, W 1+2" in out
    assert "H_out = floor((9 + 0 + 1 - 1*(2-1) - 1)/1 + 1) = 9" in out
    assert "params = gamma + beta = C + C = 8 + 8 = 16" in out
    assert "W_out = ceil((12 + 2*0 - 1*(3-1) - 1)/2) + 1 = 6" in out  # floor mode: 5
    assert "H_out = floor((4 + 2*1 - 1*(2-1) - 1)/2 + 1) = 3" in out
    assert "H_out = (3-1)*2 - 2*0 + 1*(3-1) + 1 + 1 = 8" in out
    assert "MACs = C_in * H_in * W_in * C_out/groups * k_h * k_w (on the input size) = " \
           "8 * 3 * 4 * 4/1 * 3 * 3 = 3,456" in out
    assert "H_out = floor(H_in * scale_factor) = floor(8 * 1.5) = 12" in out
    assert "H_out = output_size = 3 (windows of 4 pixels)" in out
    assert "N = C*H*W = 4*3*15 = 180" in out
    assert "weights = in_features * out_features = 180 * 7 = 1,260" in out
    assert "receptive field = the whole image 9x12" in out


def test_explain_layer_function_matches_the_issue_example() -> None:
    lines = explain_layer("Conv2d(20, kernel_size=3, stride=2)", (3, 10, 10))
    assert "H_out = floor((10 + 2*0 - 1*(3-1) - 1)/2 + 1) = 4" in lines


def test_explain_receptive_field_recurrence_with_dilation_and_stride(capsys: Any) -> None:
    """Araujo et al.: k_eff = d(k-1) + 1 = 5 -> r = 5, j = 2; then 3x3 -> 5 + 2*2 = 9, j = 2."""
    status, out, _ = run(capsys, "--input", "1,32,32", "Conv2d(4, 3, stride=2, dilation=2)",
                         "Conv2d(4, 3)", "--explain")
    assert status == 0
    assert "receptive field H = r_in + dilation*(k-1)*j_in = 1 + 2*(3-1)*1 = 5; jump = " \
           "j_in*stride = 1*2 = 2" in out
    assert "receptive field W = r_in + dilation*(k-1)*j_in = 5 + 1*(3-1)*2 = 9; jump = " \
           "j_in*stride = 2*1 = 2" in out


def test_explain_shows_torch_ceil_mode_rule(capsys: Any) -> None:
    """ceil((4 + 2 - 1 - 1)/3) + 1 = 3 windows, but the third would start at 2*3 = 6 >= 4 + 1,
    inside the right padding, so torch keeps 2 (torch.nn.MaxPool2d gives 2x2 here)."""
    status, out, _ = run(capsys, "--input", "1,4,4", "MaxPool2d(2, stride=3, padding=1, "
                         "ceil_mode=True)", "--explain")
    assert status == 0
    assert "H_out = ceil((4 + 2*1 - 1*(2-1) - 1)/3) + 1 = 3 - 1 (the last window would start " \
           "at 2*3 >= 4 + 1) = 2" in out


def test_sheet_prints_the_three_answers(capsys: Any) -> None:
    status, out, _ = run(capsys, "--sheet")
    assert status == 0
    assert "10x10x3" in out and "(H x W x C)" in out
    assert "(10*10*3) * (10*10*20) = 300 * 2,000 = 600,000" in out
    assert "3*3*3*20 + 20 = 540 weights + 20 biases = 560" in out
    assert "floor((10 + 2*0 - 3)/1 + 1) = 8 -> 8x8x20" in out
    assert "floor((10 + 2*0 - 3)/2 + 1) = 4 -> 4x4x20" in out


def test_sheet_json(capsys: Any) -> None:
    status, out, _ = run(capsys, "--sheet", "--json")
    data = json.loads(out)
    assert status == 0
    assert data["q1"]["params"] == 600_000
    assert data["q2"] == {"weights": 540, "biases": 20, "params": 560}
    assert data["q3"] == {"no_padding": [8, 8, 20], "stride2": [4, 4, 20]}


def test_scaling_table_and_plot(capsys: Any, tmp_path: Any) -> None:
    png = tmp_path / "scaling.png"
    status, out, _ = run(capsys, "--scaling", "--plot", str(png))
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0].isdigit()}
    assert list(rows) == ["10", "28", "64", "224", "1024"]
    assert rows["10"][1] == "600,000" and rows["10"][4] == "560"
    assert rows["1024"][1] == f"{(3 * 1024**2) * (20 * 1024**2):,}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    status, out, _ = run(capsys, "--scaling", "--json")
    data = json.loads(out)["rows"]
    assert [r["side"] for r in data] == [10, 28, 64, 224, 1024]
    assert data[3]["dense_bytes"] == 4 * (224 * 224 * 3) * (224 * 224 * 20)


@pytest.mark.parametrize(("argv", "words"), [
    (["--input", "3,10,10", "Conv2d(20, kernel_size=13)"],
     ["layer 1 Conv2d(20, kernel_size=13)", "kernel_size", "larger than the padded input"]),
    (["--input", "3,10,10", "Conv2d(20, 3)", "Linear(10)"], ["layer 2", "Flatten()"]),
    (["--input", "3,10,10", "Conv3d(20, 3)"], ["unknown layer", "Conv3d"]),
    (["--input", "3,10,10", "Conv2d(20, 3, groups=2)"], ["groups", "in_channels = 3"]),
    (["--input", "3,10", "ReLU()"], ["--input"]),
    (["--input", "3,10,10"], ["at least one LAYER"]),
    (["Conv2d(20, 3)"], ["--input"]),
    (["--plot", "x.png"], ["--scaling"]),
    (["--sheet", "--input", "3,10,10"], ["--sheet"]),
    # an empty --input is an --input given: named as such, not asked for as missing
    (["--input", "", "ReLU()"], ["--input must be C,H,W", 'got "".']),
    (["--input", "", "--scaling"], ["take no --input"]),
])
def test_bad_input_exits_2_with_one_sentence(capsys: Any, argv: list[str],
                                             words: list[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("vaekit arch: error: ") and err.count("\n") == 1
    message = err.removeprefix("vaekit arch: error: ").strip()
    assert message.endswith(".")
    for word in words:
        assert word in message


def test_help_shows_examples(capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        main(["arch", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--explain" in out and "--sheet" in out
    assert "ConvTranspose2d" in out


@pytest.mark.parametrize("flags, named", [
    (["--input", "3,10,10", "Conv2d(20, 3)", "--json"], "--json"),
    (["--sheet"], "--sheet"), (["--sheet", "--json"], "--sheet"), (["--scaling"], "--scaling"),
    (["--scaling", "--json"], "--scaling"),
])
def test_explain_with_an_output_without_its_table_is_refused(capsys: Any, flags: list[str],
                                                              named: str) -> None:
    """--explain writes under the rows of the LAYER table; --json, --sheet and --scaling print none,
    so they would drop it without a word: refused in one sentence naming both flags."""
    status, out, err = run(capsys, *flags, "--explain")
    assert status == 2 and out == "", out
    assert err.count("\n") == 1 and "--explain" in err and named in err, err
    status, out, err = run(capsys, *flags)  # the same without --explain: printed
    assert status == 0 and out and err == ""


@pytest.mark.parametrize("given", [[], ["--input", "1,8,8", "Conv2d(4, 3)"]])
def test_the_plot_refusal_s_command_runs(capsys: Any, tmp_path: Any, given: list[str]) -> None:
    """--plot without --scaling: the sentence's command, run as it is (with the file named), draws the
    table; "add --scaling" beside an --input and a LAYER was refused again."""
    status, _, err = run(capsys, *given, "--plot", "x.png")
    assert status == 2 and "takes no --input and no LAYER" in err, err
    advice = err[err.index("`") + 1 : err.rindex("`")].split()
    assert advice == ["vaekit", "arch", "--scaling", "--plot", "FILE"], advice
    status, out, err = run(capsys, *advice[2:-1], str(tmp_path / "table.png"))  # run() says `arch`
    assert status == 0 and (tmp_path / "table.png").stat().st_size > 0, err
