"""Receptive fields (Ex.1: what a unit of a feature map sees), per axis, in pixels of the input
image, counting padded positions as pixels (the "theoretical" field of Araujo et al., "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019):

    r_out = r_in + (k_eff - 1) j_in,   j_out = j_in s,   k_eff = d (k - 1) + 1   (`receptive_field_step`)

for a chain of convolutions and pooling, and in general the hull of the input pixels a unit reads
through each layer's index map (`IndexMap`, `AxisField`), whose work does not grow with the sizes
for the usual layers and is bounded by MAX_FIELD_STEPS for the rest. A layer that reads every unit
(Linear after Flatten) sees the input pixels those units depend on, padding not counted
(`depends_on`). Pure ints, no torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

from vaekit.arch.arith import adaptive_pool_window, upsample_nearest_source_index

MAX_FIELD_STEPS = 1 << 18
"""Work bound of one `AxisField` (about a second of Python): 262,144 steps, a step being a unit
whose field is computed or a read scanned one by one. Stacks of convolutions, pooling, transposed
convolutions with dilation 1, adaptive pooling to small outputs and 2x upsampling need a few steps
per layer at any size (see `AxisField`); only position-dependent maps on huge axes reach the bound
(nearest upsampling by 1.5 to more than ~200,000 pixels, Upsample(size=...) to 2**31 - 1)."""


class FieldWorkExceeded(Exception):
    """The receptive field needs more than `AxisField.max_steps` steps (`vaekit.arch.stack` then
    reports it as not computed; the other numbers of the row are exact)."""


class IndexMap:
    """Output index -> indices of the previous layer it reads, along one axis, padding included,
    in increasing order; with what `AxisField` may use to avoid visiting every unit:

    - `period` (P, Q): reads(o + P) = reads(o) + Q for every integer o, or None if there is none.
    - `ordered`: every o reads at least one index, and min(reads(o)) and max(reads(o)) never
      decrease as o grows.
    """

    def __init__(self, reads: Callable[[int], Sequence[int]], period: tuple[int, int] | None,
                 ordered: bool) -> None:
        self.reads, self.period, self.ordered = reads, period, ordered

    def __call__(self, index: int) -> Sequence[int]:
        return self.reads(index)


def conv_index_map(kernel_size: int, stride: int, padding: int, dilation: int = 1) -> IndexMap:
    """Conv2d and pooling: output o reads o*stride - padding + j*dilation, j = 0..kernel_size-1
    (a range: no list of kernel_size numbers is built). Period (1, stride), ordered."""

    def reads(o: int) -> range:
        first = o * stride - padding
        return range(first, first + (kernel_size - 1) * dilation + 1, dilation)

    return IndexMap(reads, (1, stride), ordered=True)


def conv_transpose_index_map(
    kernel_size: int, stride: int, padding: int, dilation: int = 1
) -> IndexMap:
    """ConvTranspose2d: input i is scattered to outputs i*stride - padding + j*dilation, so output
    o reads every i = (o + padding - j*dilation)/stride that is an integer (possibly none).

    Solved without looping over j: with g = gcd(dilation, stride), t = o + padding must be a
    multiple of g; then j = j0 (mod stride/g), j0 = (t/g) * (dilation/g)^-1 mod (stride/g), and the
    reads are (t - j*dilation)/stride for j = j0, j0 + stride/g, ... < kernel_size: a range of step
    dilation/g. Period (stride, 1); ordered when stride = 1, or dilation = 1 and kernel_size >=
    stride (then every output reads a contiguous run of inputs).
    """
    g = math.gcd(dilation, stride)
    s_g, d_g = stride // g, dilation // g
    inverse = pow(d_g, -1, s_g) if s_g > 1 else 0

    def reads(o: int) -> range:
        t = o + padding
        if t % g:
            return range(0)
        j0 = (t // g) * inverse % s_g
        if j0 >= kernel_size:
            return range(0)
        j_last = j0 + (kernel_size - 1 - j0) // s_g * s_g
        return range((t - j_last * dilation) // stride, (t - j0 * dilation) // stride + 1, d_g)

    ordered = stride == 1 or (dilation == 1 and kernel_size >= stride)
    return IndexMap(reads, (stride, 1), ordered)


def adaptive_index_map(size: int, output_size: int) -> IndexMap:
    """AdaptiveAvgPool2d: output o reads its window [floor(o*H_in/H_out), ceil((o+1)*H_in/H_out)).
    Period (H_out/g, H_in/g) with g = gcd(H_in, H_out), ordered."""
    g = math.gcd(size, output_size)
    return IndexMap(lambda o: range(*adaptive_pool_window(size, output_size, o)),
                    (output_size // g, size // g), ordered=True)


def upsample_index_map(size: int, output_size: int, scale_factor: float | None) -> IndexMap:
    """Upsample(mode='nearest'): output o reads one input pixel, `upsample_nearest_source_index`.
    Ordered; period (1, 1) when H_out = H_in, (2, 1) when H_out = 2*H_in, else none (float32
    rounding and the clamp at the last pixel)."""
    period = {size: (1, 1), 2 * size: (2, 1)}.get(output_size)
    return IndexMap(lambda o: [upsample_nearest_source_index(o, size, output_size, scale_factor)],
                    period, ordered=True)


Interval = tuple[int, int] | None


class AxisField:
    """Exact receptive field along one axis of a stack of layers, by composing index maps.

    The field of output o of layer l is the interval of input-image pixels spanned by the fields
    of the units of layer l-1 that o reads; an input pixel's field is itself. Padded positions are
    extended with the same maps, so the field counts padding as pixels. For stacks of convolutions
    and pooling this equals the recurrence r_out = r_in + (k_eff - 1)*j_in, j_out = j_in*stride,
    k_eff = dilation*(k - 1) + 1 (Araujo et al., "Computing receptive fields of convolutional
    neural networks", Distill 2019); after transposed convolutions, upsampling or adaptive pooling
    the field depends on the output position, and `max_field` reports the largest.

    The work does not grow with the sizes, by two exact shortcuts:

    - Periods. The field of layer 0 moves by 1 when the unit does (field(u + 1) = field(u) + 1).
      If layer l-1's field has period (P', S') (field(u + P') = field(u) + S') and layer l's map
      has period (P, Q), then with g = gcd(Q, P') layer l's field has period (P*P'/g, S'*Q/g). Only
      units 0..P-1 of a layer are computed; the others are shifted copies, and the largest field
      over any number of outputs is the largest over one period (one unit for a conv stack).
    - Order. If every unit of layer l-1 sees a pixel and first and last never decrease with the
      unit, a unit's field is [first(min read), last(max read)]: two look-ups, whatever the kernel.

    Otherwise units and reads are visited one by one, at most `max_steps` in all
    (`MAX_FIELD_STEPS`); beyond that `FieldWorkExceeded` is raised. The evaluation keeps its own
    stack (no recursion), so a stack of any depth is fine.
    """

    def __init__(self, max_steps: int = MAX_FIELD_STEPS) -> None:
        self._maps: list[IndexMap] = []
        self._memo: list[dict[int, Interval]] = []
        self._periods: list[tuple[int, int] | None] = [(1, 1)]  # per level, level 0 = the input
        self._ordered: list[bool] = [True]
        self.max_steps = max_steps
        self.steps = 0

    def push(self, index_map: Callable[[int], Sequence[int]]) -> None:
        """Add a layer on top of the stack: an `IndexMap`, or any callable, taken as an IndexMap
        with no period, not ordered, its reads sorted."""
        if not isinstance(index_map, IndexMap):
            plain = index_map

            def reads(o: int) -> list[int]:
                return sorted(plain(o))

            index_map = IndexMap(reads, None, ordered=False)
        period = index_map.period
        below = self._periods[-1]
        if period is None or below is None:
            self._periods.append(None)
        else:
            (p, q), (p_below, s_below) = period, below
            g = math.gcd(q, p_below)
            self._periods.append((p * p_below // g, s_below * q // g))
        self._ordered.append(self._ordered[-1] and index_map.ordered)
        self._maps.append(index_map)
        self._memo.append({})

    def _known(self, index: int, level: int) -> tuple[bool, Interval]:
        """(True, field) if the field of unit `index` of `level` is known without work."""
        if level == 0:
            return True, (index, index)
        period = self._periods[level]
        shift, key, move = (*divmod(index, period[0]), period[1]) if period else (0, index, 0)
        memo = self._memo[level - 1]
        if key not in memo:
            return False, None
        seen = memo[key]
        if seen is None or not shift:
            return True, seen
        return True, (seen[0] + shift * move, seen[1] + shift * move)

    def _step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.max_steps:
            raise FieldWorkExceeded(f"the receptive field needs more than {self.max_steps:,} steps")

    def interval(self, index: int, level: int | None = None) -> Interval:
        """Input-image pixels [first, last] seen by unit `index` of layer `level` (default: top);
        None if the unit reads no input pixel (a transposed conv with gcd(stride, dilation) > 1).
        Raises `FieldWorkExceeded` past `max_steps`."""
        level = len(self._maps) if level is None else level
        todo = [(index, level)]
        while todo:
            unit, lv = todo[-1]
            if self._known(unit, lv)[0]:
                todo.pop()
                continue
            period = self._periods[lv]
            key = unit % period[0] if period else unit
            reads = self._maps[lv - 1](key)
            result: Interval
            if self._ordered[lv - 1] and len(reads):  # [first(min read), last(max read)]
                (lo_done, lo), (hi_done, hi) = (self._known(reads[0], lv - 1),
                                                self._known(reads[-1], lv - 1))
                if not (lo_done and hi_done):
                    todo += [(r, lv - 1) for r, done in ((reads[0], lo_done), (reads[-1], hi_done))
                             if not done]
                    continue
                assert lo is not None and hi is not None  # an ordered level sees pixels everywhere
                result = (lo[0], hi[1])
            else:
                self._step(len(reads))
                fields = [self._known(r, lv - 1) for r in reads]
                missing = [(r, lv - 1) for r, (done, _) in zip(reads, fields, strict=True)
                           if not done]
                if missing:
                    todo += missing
                    continue
                seen = [f for _, f in fields if f is not None]
                result = (min(f[0] for f in seen), max(f[1] for f in seen)) if seen else None
            self._step()
            self._memo[lv - 1][key] = result
            todo.pop()
        return self._known(index, level)[1]

    def max_field(self, output_size: int) -> int:
        """Largest field, in input pixels, over the units 0..output_size-1 of the top layer (over
        one period of them when the top layer has one)."""
        period = self._periods[-1]
        units = range(min(output_size, period[0]) if period else output_size)
        sizes = (self.interval(o) for o in units)
        return max((last - first + 1 for first, last in filter(None, sizes)), default=0)


def receptive_field_step(r_in: int, j_in: int, kernel_size: int, stride: int,
                         dilation: int = 1) -> tuple[int, int]:
    """One step of the classical recurrence for convolutions and pooling:
    r_out = r_in + (dilation*(kernel_size - 1) + 1 - 1) * j_in, j_out = j_in * stride
    (Araujo et al., Distill 2019, eq. 2; Dumoulin & Visin)."""
    return r_in + dilation * (kernel_size - 1) * j_in, j_in * stride


def _gapless(index_map: IndexMap) -> bool:
    """Whether the reads of any run of outputs o = a..b are one run of indices, reads(a)[0] to
    reads(b)[-1]: ordered, each output reads a run, and the next output's run starts at most one
    past the end of this one's. Checked over one period (the map repeats beyond it)."""
    if index_map.period is None or not index_map.ordered:
        return False
    runs = [index_map(o) for o in range(index_map.period[0] + 1)]
    return all(len(r) and r[-1] - r[0] + 1 == len(r) for r in runs) and all(
        after[0] <= before[-1] + 1 for before, after in itertools.pairwise(runs))


def depends_on(maps: Sequence[IndexMap], sizes: Sequence[int], count: int,
               max_steps: int = MAX_FIELD_STEPS) -> Interval:
    """Input pixels [first, last] that units 0..count-1 of the top layer, together, depend on:
    what a layer that reads every one of them (Linear after Flatten) sees, as the non-zero
    gradients of the real modules give it. `maps[l]` reads units 0..sizes[l]-1 of the layer
    below (sizes[0]: the image); a read outside them is padding and depends on no pixel, so unlike
    `AxisField` padding is not counted here. None if the units read only padding.

    Walks down the layers with the units read as sorted runs [a, b]: a run of a `_gapless` map
    reads one run (two look-ups), otherwise its units are visited one by one; at most `max_steps`
    runs and units in all, beyond that `FieldWorkExceeded`."""
    runs = [(0, count - 1)]
    steps = 0

    def step(count: int) -> None:
        nonlocal steps
        steps += count
        if steps > max_steps:
            raise FieldWorkExceeded(f"the receptive field needs more than {max_steps:,} steps")

    for index_map, size in zip(reversed(maps), reversed(sizes), strict=True):
        read: list[tuple[int, int]] = []
        if _gapless(index_map):
            step(len(runs))
            read = [(index_map(a)[0], index_map(b)[-1]) for a, b in runs]
        else:
            for a, b in runs:
                step(b - a + 1)
                for o in range(a, b + 1):
                    r = index_map(o)
                    if len(r) and r[-1] - r[0] + 1 == len(r):
                        read.append((r[0], r[-1]))
                    else:
                        step(len(r))
                        read += [(i, i) for i in r]
        runs = []
        for first, last in sorted((max(a, 0), min(b, size - 1)) for a, b in read):
            if first > last:
                continue
            if runs and first <= runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], max(runs[-1][1], last))
            else:
                runs.append((first, last))
        if not runs:
            return None
    return (runs[0][0], runs[-1][1])
