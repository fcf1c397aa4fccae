"""Layer arithmetic: output sizes, trainable parameters, MACs and memory.

Pure functions on ints (no torch), one equation each, answering Exercise 1 of the TD-2 sheet
(`Ex.1 Q1` dense parameters, `Ex.1 Q2` convolution parameters, `Ex.1 Q3` feature-map sizes) for
any layer (`vaekit.arch.sheet` puts the sheet's own numbers in). The tests hold every function
against the real `torch.nn` module.

Sources: the shape formulas of the PyTorch documentation of each module (Conv2d, ConvTranspose2d,
MaxPool2d, AvgPool2d, Upsample) and V. Dumoulin & F. Visin, "A guide to convolution arithmetic for
deep learning" (2016), sections 2-4; pooling's ceil_mode rule from ATen's `pooling_output_shape`.

Conventions, chosen to match `torch.utils.flop_counter.FlopCounterMode` (and fvcore):

- MACs: one multiply-add = 1 MAC = 2 FLOPs, per sample (batch 1). Only the weight products of
  Linear, Conv2d and ConvTranspose2d count. Bias adds are *not* counted (flop_counter ignores the
  bias of `addmm` and `convolution`). Activations, pooling, batch norm, dropout, upsampling and
  flatten count 0 MACs.
- ConvTranspose2d MACs are counted on the *input* size (every input pixel is multiplied with the
  whole kernel once), not on the output size as torchinfo does.
- Memory: bytes of one sample's output tensor in float32 (4 bytes per element).
- Receptive field and jump: `vaekit.arch.field`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

FLOAT32_BYTES = 4

# ----------------------------------------------------------------------------- output sizes


def conv2d_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
    padding_end: int | None = None,
) -> int:
    """Output length of Conv2d (and of the pooling layers) along one axis.

    H_out = floor((H_in + 2*padding - dilation*(kernel_size - 1) - 1) / stride + 1)
    (PyTorch `nn.Conv2d` docs; Dumoulin & Visin, relationship 6). `padding_end`, if given, is the
    padding after the input when it differs from the padding before it (padding='same' with an
    even effective kernel); then 2*padding becomes padding + padding_end.
    """
    end = padding if padding_end is None else padding_end
    return (size + padding + end - dilation * (kernel_size - 1) - 1) // stride + 1


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """Padding before and after the input for Conv2d(padding='same') along one axis (stride 1).

    total = dilation*(kernel_size - 1), before = floor(total/2), after = total - before: torch pads
    the extra pixel of an odd total at the end (`nn.Conv2d` docs, `_conv_forward`).
    """
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def conv_transpose2d_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of ConvTranspose2d along one axis.

    H_out = (H_in - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1
    (PyTorch `nn.ConvTranspose2d` docs; Dumoulin & Visin, relationship 14).
    """
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def pool2d_output_size(
    size: int, kernel_size: int, stride: int, padding: int = 0, dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of MaxPool2d / AvgPool2d along one axis.

    H_out = floor_or_ceil((H_in + 2*padding - dilation*(kernel_size - 1) - 1)/stride) + 1
    (PyTorch `nn.MaxPool2d` docs). With ceil_mode, torch drops the last window if it would start
    in the right padding: if (H_out - 1)*stride >= H_in + padding then H_out -= 1 (ATen
    `pooling_output_shape_pad_lr`: "ensure that the last pooling starts inside the image").
    """
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def adaptive_pool_window(size: int, output_size: int, index: int) -> tuple[int, int]:
    """Input window [start, end) of output `index` of AdaptiveAvgPool2d along one axis.

    start = floor(index*H_in/H_out), end = ceil((index + 1)*H_in/H_out) (ATen `start_index`,
    `end_index` in AdaptivePooling.h). Windows may differ in length by one when H_out does not
    divide H_in.
    """
    return (index * size) // output_size, -((-(index + 1) * size) // output_size)


def adaptive_pool_window_lengths(size: int, output_size: int) -> list[int]:
    """The distinct window lengths of AdaptiveAvgPool2d along one axis, without visiting each
    window: with x = index*H_in mod H_out, window `index` has length ceil((x + H_in)/H_out), and x
    runs over the multiples of g = gcd(H_in, H_out) in [0, H_out), so the lengths are
    ceil(H_in/H_out) and ceil((H_in + H_out - g)/H_out) (equal, or one apart)."""
    g = math.gcd(size, output_size)
    return sorted({-(-size // output_size), -(-(size + output_size - g) // output_size)})


def upsample_nearest_output_size(size: int, scale_factor: float) -> int:
    """Output length of Upsample(mode='nearest', scale_factor=s): H_out = floor(H_in * s).

    (PyTorch `nn.Upsample` docs; `F.interpolate` computes it in double precision.)
    """
    return math.floor(size * scale_factor)


def _f32(x: float) -> float:
    """Round a double to the nearest float32, as C++ does when it stores into a `float`."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def upsample_nearest_source_index(
    index: int, size: int, output_size: int, scale_factor: float | None = None
) -> int:
    """Input pixel read by output `index` of nearest upsampling along one axis.

    src = min(floor(index * scale), H_in - 1) with scale = 1/scale_factor if given, else
    H_in/H_out, both in float32 (ATen `nearest_idx`; identity when H_out == H_in, index >> 1 when
    H_out == 2*H_in). Outside [0, H_out) the same map is extended without the clamp.
    """
    if output_size == size:
        return index
    if output_size == 2 * size:
        return index >> 1
    if scale_factor is not None and scale_factor > 0:
        scale = _f32(1.0 / scale_factor)
    else:
        scale = _f32(size / output_size)
    src = math.floor(_f32(_f32(float(index)) * scale))
    return min(src, size - 1) if 0 <= index < output_size else src


# ----------------------------------------------------------------------------- parameters


def linear_params(in_features: int, out_features: int, bias: bool = True) -> tuple[int, int]:
    """(weights, biases) of Linear: weights = in_features * out_features, biases = out_features.

    `Ex.1 Q1` of the sheet: flatten 10x10x3 -> 300 inputs, 10x10x20 -> 2000 outputs, no bias:
    300 * 2000 = 600,000 weights (PyTorch `nn.Linear` docs: weight (out, in), bias (out,)).
    """
    return in_features * out_features, out_features if bias else 0


def conv2d_params(
    in_channels: int, out_channels: int, kernel_size: tuple[int, int], groups: int = 1,
    bias: bool = True,
) -> tuple[int, int]:
    """(weights, biases) of Conv2d: weights = C_out * (C_in/groups) * k_h * k_w, biases = C_out.

    `Ex.1 Q2`: 20 * 3 * 3 * 3 = 540 weights + 20 biases = 560 (PyTorch `nn.Conv2d` docs: weight
    (C_out, C_in/groups, k_h, k_w), bias (C_out,)).
    """
    k_h, k_w = kernel_size
    return out_channels * (in_channels // groups) * k_h * k_w, out_channels if bias else 0


def conv_transpose2d_params(
    in_channels: int, out_channels: int, kernel_size: tuple[int, int], groups: int = 1,
    bias: bool = True,
) -> tuple[int, int]:
    """(weights, biases) of ConvTranspose2d: weights = C_in * (C_out/groups) * k_h * k_w,
    biases = C_out (PyTorch `nn.ConvTranspose2d` docs: weight (C_in, C_out/groups, k_h, k_w)).
    """
    k_h, k_w = kernel_size
    return in_channels * (out_channels // groups) * k_h * k_w, out_channels if bias else 0


def batch_norm2d_params(num_features: int, affine: bool = True) -> tuple[int, int]:
    """(weights, biases) of BatchNorm2d: gamma and beta, C each, when affine (else 0).

    The running mean and variance are buffers, not trainable parameters (PyTorch docs).
    """
    return (num_features, num_features) if affine else (0, 0)


# ----------------------------------------------------------------------------- MACs and memory


def linear_macs(in_features: int, out_features: int) -> int:
    """MACs of Linear per sample: in_features * out_features (bias adds not counted)."""
    return in_features * out_features


def conv2d_macs(
    in_channels: int, out_channels: int, kernel_size: tuple[int, int],
    output_hw: tuple[int, int], groups: int = 1,
) -> int:
    """MACs of Conv2d per sample: C_out * H_out * W_out * (C_in/groups) * k_h * k_w.

    Each output value is a dot product of the kernel with (C_in/groups)*k_h*k_w inputs; zeros of
    the padding are multiplied too (as flop_counter's `conv_flop_count`); bias adds not counted.
    """
    k_h, k_w = kernel_size
    return out_channels * output_hw[0] * output_hw[1] * (in_channels // groups) * k_h * k_w


def conv_transpose2d_macs(
    in_channels: int, out_channels: int, kernel_size: tuple[int, int],
    input_hw: tuple[int, int], groups: int = 1,
) -> int:
    """MACs of ConvTranspose2d per sample, on the input size: C_in * H_in * W_in * (C_out/groups)
    * k_h * k_w. Every input value is multiplied with its group's kernel once; this equals
    `torch.utils.flop_counter` / 2 (its `transposed=True` case) and fvcore.
    """
    k_h, k_w = kernel_size
    return in_channels * input_hw[0] * input_hw[1] * (out_channels // groups) * k_h * k_w


def output_bytes(shape: Sequence[int], bytes_per_element: int = FLOAT32_BYTES) -> int:
    """Memory of one sample's output: prod(shape) * 4 bytes in float32."""
    return math.prod(shape) * bytes_per_element
