"""A stack of `LayerSpec`s on an input shape -> one `LayerRow` per layer (shape, params, MACs...).

Shapes are per sample, without the batch: (C, H, W) for images, (N,) for vectors. Every check that
torch makes when it builds or runs the module is made here first, so that a stack either gets its
numbers or one sentence saying which layer and argument is wrong (`SpecError`).

Bounds: every dimension a layer outputs, the length of a flattened vector included, is at most
`values.MAX_SIZE` = 2**31 - 1 (as its arguments and the input are), so that padding or upsampling
cannot grow a size without end. The receptive field is computed within `field.MAX_FIELD_STEPS`
steps per axis; a stack that needs more (only position-dependent resampling on axes of hundreds of
thousands of pixels) gets every other number and the field reported as not computed (None).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from vaekit.arch import arith, field
from vaekit.arch.spec import ACTIVATIONS, LayerSpec
from vaekit.arch.values import MAX_SIZE, shown
from vaekit.config import spaced_parts, spell
from vaekit.errors import SpecError

Shape = tuple[int, ...]
AXES = ("H", "W")
MAX_INPUT_CHARS = 100  # characters of `--input`, checked before it is split


@dataclass(frozen=True)
class LayerRow:
    """The numbers of one layer of a stack, for one sample."""

    index: int
    spec: LayerSpec
    input_shape: Shape
    output_shape: Shape
    weight_params: int
    bias_params: int
    macs: int
    receptive_field: tuple[int, int] | None
    jump: tuple[Fraction, Fraction] | None

    @property
    def layer(self) -> str:
        return self.spec.text

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def output_bytes(self) -> int:
        return arith.output_bytes(self.output_shape)

    def to_json(self) -> dict[str, Any]:
        """The row with the field names of `vaekit arch --json` (receptive_field null for a flat
        input, or when it was not computed within `field.MAX_FIELD_STEPS`)."""
        jump = None if self.jump is None else [_jump_json(j) for j in self.jump]
        return {
            "layer": self.layer, "output_shape": list(self.output_shape), "params": self.params,
            "weight_params": self.weight_params, "bias_params": self.bias_params,
            "macs": self.macs,
            "receptive_field": None if self.receptive_field is None else list(
                self.receptive_field),
            "jump": jump, "output_bytes": self.output_bytes,
        }


def _jump_json(value: Fraction) -> int | float | str:
    """A jump for JSON: an int, else a float, else (beyond a float's range) the fraction 'p/q'."""
    if value.denominator == 1:
        return int(value)
    try:
        return float(value)
    except OverflowError:
        return str(value)


@dataclass(frozen=True)
class Geometry:
    """Per-axis (height, width) geometry of a sliding-window layer, padding resolved."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad_start: tuple[int, int]
    pad_end: tuple[int, int]
    dilation: tuple[int, int]


def geometry(spec: LayerSpec) -> Geometry:
    """Kernel, stride, padding (before, after) and dilation of Conv2d, ConvTranspose2d, pools."""
    kernel = spec["kernel_size"]
    dilation = spec.params.get("dilation", (1, 1))
    stride = spec["stride"] if spec["stride"] is not None else kernel  # pools: stride=kernel
    padding = spec["padding"]
    if padding == "valid":
        padding = (0, 0)
    if padding == "same":
        start, end = zip(*(arith.same_padding(k, d) for k, d in zip(kernel, dilation,
                                                                      strict=True)), strict=True)
        return Geometry(kernel, stride, start, end, dilation)
    return Geometry(kernel, stride, padding, padding, dilation)


def _fail(row: int, spec: LayerSpec, arg: str, reason: str) -> SpecError:
    return SpecError(f"layer {row} {spec.text}: {arg} {reason}.")


def _hw(values: Sequence[int], sep: str = "x") -> str:
    return sep.join(str(v) for v in values)


def _spatial(row: int, spec: LayerSpec, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SpecError(f"layer {row} {spec.text}: the input must be an image C,H,W but is a "
                        f"flat vector of {shape[0]} ({spec.kind} works on images).")
    return shape[0], shape[1], shape[2]


def _check_groups(row: int, spec: LayerSpec, c_in: int) -> None:
    groups = spec["groups"]
    for name, channels in (("in_channels", c_in), ("out_channels", spec["out_channels"])):
        if channels % groups:
            raise _fail(row, spec, "groups", f"= {groups} does not divide {name} = {channels}")


def _sliding_output(row: int, spec: LayerSpec, hw: tuple[int, int], g: Geometry) -> list[int]:
    """Output H, W of Conv2d / MaxPool2d / AvgPool2d, with torch's checks."""
    pool = spec.kind.endswith("Pool2d")
    out = []
    for axis, size, k, s, p0, p1, d in zip(AXES, hw, g.kernel, g.stride, g.pad_start, g.pad_end,
                                            g.dilation, strict=True):
        k_eff = d * (k - 1) + 1
        if pool and p0 > k // 2:
            raise _fail(row, spec, "padding", f"{p0} is more than half the kernel size {k} "
                        f"along {axis} (torch requires padding <= kernel_size // 2)")
        if pool:
            n = arith.pool2d_output_size(size, k, s, p0, d, spec["ceil_mode"])
        else:
            n = arith.conv2d_output_size(size, k, s, p0, d, padding_end=p1)
            if size + p0 + p1 < k_eff:
                what = f"{k_eff} (dilated)" if d > 1 else str(k)
                raise _fail(row, spec, "kernel_size", f"{what} is larger than the padded input "
                            f"{size + p0 + p1} along {axis} ({size} + padding {p0 + p1})")
        if n < 1:
            raise _fail(row, spec, "kernel_size", f"{k} gives an output size {n} < 1 along "
                        f"{axis} for input {size} (padding {p0}, dilation {d}, stride {s})")
        out.append(n)
    return out


def layer_output(row: int, spec: LayerSpec, shape: Shape) -> tuple[Shape, int, int, int]:
    """(output shape, weights, biases, MACs) of one layer on an input `shape`, or SpecError; every
    output dimension is at most MAX_SIZE."""
    result = _layer_output(row, spec, shape)
    for axis, n in zip(("C", *AXES) if len(result[0]) == 3 else ("N",), result[0], strict=True):
        if n > MAX_SIZE:
            raise SpecError(f"layer {row} {spec.text}: the output size {n:,} along {axis} is "
                            f"larger than {MAX_SIZE:,} (2**31 - 1, the bound on any size).")
    return result


def shape_walk(specs: Sequence[LayerSpec], input_shape: Shape) -> str:
    """What `analyze` would say of the stack's shapes on `input_shape`, without receptive fields
    (a few operations a layer): 'fits', 'too large' when a layer's output is larger than MAX_SIZE,
    'fails' for any other SpecError (an input too small for a kernel, a Linear without Flatten)."""
    shape = tuple(input_shape)
    for row, spec in enumerate(specs, start=1):
        try:
            shape = _layer_output(row, spec, shape)[0]
        except SpecError:
            return "fails"
        if max(shape) > MAX_SIZE:
            return "too large"
    return "fits"


def _layer_output(row: int, spec: LayerSpec, shape: Shape) -> tuple[Shape, int, int, int]:
    kind = spec.kind
    if kind in ACTIVATIONS or kind == "Dropout":
        return shape, 0, 0, 0
    if kind == "Flatten":
        return (math.prod(shape),), 0, 0, 0  # (C*H*W,)
    if kind == "Linear":
        if len(shape) != 1:
            raise _fail(row, spec, "in_features", f"cannot be inferred from the image shape "
                        f"{_hw(shape)} (torch would apply Linear to the last axis only); put "
                        "Flatten() before Linear")
        weights, biases = arith.linear_params(shape[0], spec["out_features"], spec["bias"])
        return (spec["out_features"],), weights, biases, arith.linear_macs(shape[0],
                                                                            spec["out_features"])
    c, h, w = _spatial(row, spec, shape)
    if kind == "BatchNorm2d":
        return shape, *arith.batch_norm2d_params(c, spec["affine"]), 0
    if kind == "Conv2d":
        _check_groups(row, spec, c)
        g = geometry(spec)
        if spec["padding"] == "same" and g.stride != (1, 1):
            raise _fail(row, spec, "padding", "'same' is not supported by torch for strided "
                        f"convolutions (stride {_hw(g.stride)})")
        for axis, size, p0, p1 in zip(AXES, (h, w), g.pad_start, g.pad_end, strict=True):
            mode = spec["padding_mode"]
            if (mode == "reflect" and max(p0, p1) >= size) or (
                    mode == "circular" and max(p0, p1) > size):
                bound = "smaller than" if mode == "reflect" else "at most"
                raise _fail(row, spec, "padding", f"{max(p0, p1)} must be {bound} the input size "
                            f"{size} along {axis} for padding_mode={mode!r}")
        out_h, out_w = _sliding_output(row, spec, (h, w), g)
        out_c = spec["out_channels"]
        weights, biases = arith.conv2d_params(c, out_c, g.kernel, spec["groups"], spec["bias"])
        macs = arith.conv2d_macs(c, out_c, g.kernel, (out_h, out_w), spec["groups"])
        return (out_c, out_h, out_w), weights, biases, macs
    if kind == "ConvTranspose2d":
        _check_groups(row, spec, c)
        g = geometry(spec)
        out = []
        for axis, size, k, s, p, op, d in zip(AXES, (h, w), g.kernel, g.stride, g.pad_start,
                                              spec["output_padding"], g.dilation, strict=True):
            if op >= s and op >= d:
                raise _fail(row, spec, "output_padding", f"{op} must be smaller than stride "
                            f"{s} or dilation {d} along {axis}")
            n = arith.conv_transpose2d_output_size(size, k, s, p, op, d)
            if n < 1:
                raise _fail(row, spec, "padding", f"{p} gives an output size {n} < 1 along "
                            f"{axis} for input {size}")
            out.append(n)
        out_c = spec["out_channels"]
        weights, biases = arith.conv_transpose2d_params(c, out_c, g.kernel, spec["groups"],
                                                        spec["bias"])
        macs = arith.conv_transpose2d_macs(c, out_c, g.kernel, (h, w), spec["groups"])
        return (out_c, out[0], out[1]), weights, biases, macs
    if kind in ("MaxPool2d", "AvgPool2d"):
        return (c, *_sliding_output(row, spec, (h, w), geometry(spec))), 0, 0, 0
    if kind == "AdaptiveAvgPool2d":
        out = [size if n is None else n for n, size in zip(spec["output_size"], (h, w),
                                                           strict=True)]
        return (c, out[0], out[1]), 0, 0, 0
    if kind == "Upsample":
        if spec["size"] is not None:
            return (c, *spec["size"]), 0, 0, 0
        out = [arith.upsample_nearest_output_size(size, f)
               for size, f in zip((h, w), spec["scale_factor"], strict=True)]
        for axis, n, size in zip(AXES, out, (h, w), strict=True):
            if n < 1:
                raise _fail(row, spec, "scale_factor", f"gives an output size {n} < 1 along "
                            f"{axis} for input {size}")
        return (c, out[0], out[1]), 0, 0, 0
    raise AssertionError(f"no arithmetic for {kind}")  # pragma: no cover - SIGNATURES is closed


def index_maps(spec: LayerSpec, shape: Shape, out: Shape) -> list[field.IndexMap] | None:
    """Per-axis index maps (output index -> previous-layer indices) of a spatial layer; None for
    pointwise layers (activations, batch norm, dropout) that keep each unit's field."""
    kind = spec.kind
    if kind in ("Conv2d", "MaxPool2d", "AvgPool2d"):
        g = geometry(spec)
        return [field.conv_index_map(g.kernel[i], g.stride[i], g.pad_start[i], g.dilation[i])
                for i in range(2)]
    if kind == "ConvTranspose2d":
        g = geometry(spec)
        return [field.conv_transpose_index_map(g.kernel[i], g.stride[i], g.pad_start[i],
                                               g.dilation[i]) for i in range(2)]
    if kind == "AdaptiveAvgPool2d":
        return [field.adaptive_index_map(shape[i + 1], out[i + 1]) for i in range(2)]
    if kind == "Upsample":
        scale = spec["scale_factor"]
        if spec["size"] is not None or spec["recompute_scale_factor"]:
            scale = (None, None)
        return [field.upsample_index_map(shape[i + 1], out[i + 1], scale[i]) for i in range(2)]
    return None


def _jump_factor(spec: LayerSpec, shape: Shape, out: Shape, axis: int) -> Fraction:
    """How many previous-layer units one step of this layer's output moves, on average."""
    kind = spec.kind
    if kind in ("Conv2d", "MaxPool2d", "AvgPool2d"):
        return Fraction(geometry(spec).stride[axis])
    if kind == "ConvTranspose2d":
        return Fraction(1, geometry(spec).stride[axis])
    if kind == "Upsample" and spec["size"] is None and not spec["recompute_scale_factor"]:
        return 1 / Fraction(str(spec["scale_factor"][axis]))  # 1.5 -> 2/3, as written
    if kind in ("AdaptiveAvgPool2d", "Upsample"):
        return Fraction(shape[axis + 1], out[axis + 1])
    return Fraction(1)


def analyze(specs: Sequence[LayerSpec], input_shape: Shape) -> list[LayerRow]:
    """Run a stack on an input shape: one LayerRow per layer, or SpecError at the first bad one.

    Receptive field: per axis, the largest over the layer's output units (`field.AxisField`);
    a Linear reads every unit of the last image, and sees the input pixels these depend on,
    padding not counted (`field.depends_on`: the whole image unless strides or resampling skip
    some); None for a flat input, and from the layer on where it would take more than
    `field.MAX_FIELD_STEPS` steps. Jump: input pixels between
    neighbouring output units (an average after non-integer resampling); None after Flatten or
    Linear.
    """
    rows: list[LayerRow] = []
    shape = tuple(input_shape)
    image = shape[1:] if len(shape) == 3 else None
    fields = [field.AxisField(), field.AxisField()]
    chain: list[list[field.IndexMap]] = [[], []]  # per axis, the maps so far (`field.depends_on`)
    sizes: list[list[int]] = [[], []]  # per axis, the size each of them reads
    rf: tuple[int, int] | None = (1, 1) if image else None
    jump: tuple[Fraction, Fraction] | None = (Fraction(1), Fraction(1)) if image else None
    fields_computable = True
    spatial = shape  # the last image shape: what Flatten flattens
    for row, spec in enumerate(specs, start=1):
        out, weights, biases, macs = layer_output(row, spec, shape)
        maps = index_maps(spec, shape, out)
        if maps is not None and jump is not None:
            if fields_computable:
                try:
                    for axis in range(2):
                        fields[axis].push(maps[axis])
                        chain[axis].append(maps[axis])
                        sizes[axis].append(shape[axis + 1])
                    rf = (fields[0].max_field(out[1]), fields[1].max_field(out[2]))
                except field.FieldWorkExceeded:
                    fields_computable, rf = False, None
            jump = (jump[0] * _jump_factor(spec, shape, out, 0),
                    jump[1] * _jump_factor(spec, shape, out, 1))
        elif spec.kind == "Linear" and image is not None:
            rf, jump = _flat_field(chain, sizes, spatial) if fields_computable else None, None
        elif spec.kind == "Flatten":
            jump = None
        rows.append(LayerRow(row, spec, shape, out, weights, biases, macs, rf, jump))
        if len(out) == 3:
            spatial = out
        shape = out
    return rows


def _flat_field(chain: list[list[field.IndexMap]], sizes: list[list[int]],
                spatial: Shape) -> tuple[int, int] | None:
    """The field of a layer that reads every unit of the image `spatial` (Linear after
    Flatten): per axis, the span of the input pixels those units depend on (0 if none); None if
    that takes more than `field.MAX_FIELD_STEPS` steps."""
    try:
        spans = [field.depends_on(chain[a], sizes[a], spatial[a + 1]) for a in range(2)]
    except field.FieldWorkExceeded:
        return None
    h, w = ((0 if s is None else s[1] - s[0] + 1) for s in spans)
    return h, w


def totals(rows: Sequence[LayerRow]) -> dict[str, int]:
    """Sums over a stack: params (weights + biases), MACs and output bytes (all activations)."""
    return {
        "total_params": sum(r.params for r in rows),
        "total_weight_params": sum(r.weight_params for r in rows),
        "total_bias_params": sum(r.bias_params for r in rows),
        "total_macs": sum(r.macs for r in rows),
        "total_output_bytes": sum(r.output_bytes for r in rows),
    }


def parse_input_shape(text: str) -> tuple[int, ...]:
    """`C,H,W` or `CxHxW` (an image) or `N` (a flat vector) -> (C, H, W) or (N,), each dimension
    in [1, MAX_SIZE]; a text longer than MAX_INPUT_CHARS is refused before it is split. Spaces are
    read as in any size (`config.spaced_parts`): ASCII spaces beside a separator ('1, 28, 28'), no
    whitespace around the whole (' 1x8x8', as around any number) and no other whitespace."""
    if len(text) > MAX_INPUT_CHARS:
        raise SpecError(f"--input `{text[:20]}...` is {len(text):,} characters long; expected "
                        f"C,H,W or N in at most {MAX_INPUT_CHARS} characters.")
    parts = spaced_parts(text, ",xX") or []
    # ASCII digits only: int() also reads other scripts' digits ('٣'), '+3' and '1_0'
    values = [int(p) for p in parts if re.fullmatch(r"[0-9]+", p)]  # at most 100 digits: cheap
    if len(parts) not in (1, 3) or len(values) != len(parts) or min(values) < 1:
        raise SpecError(f"--input must be C,H,W (or CxHxW) or N with positive integers, "
                        f"got {spell(text)}.")
    if max(values) > MAX_SIZE:
        raise SpecError(f"--input {text!r} has a dimension {shown(max(values))} larger than "
                        f"{MAX_SIZE:,} (2**31 - 1, the bound on any size).")
    return tuple(values)
