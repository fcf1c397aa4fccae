"""The layer language: `Conv2d(20, kernel_size=3, stride=2)` text <-> `LayerSpec`.

A layer is written as its torch.nn constructor call without the input size (in_channels,
in_features, num_features), which `vaekit.arch.stack` infers from the previous layer. Positional and
keyword arguments follow torch.nn's own names and order. The text is parsed with `ast` and only
literals are accepted (ints, floats, bools, strings, None, tuples): nothing is ever evaluated.

Every mistake raises `SpecError` with one sentence naming the layer, the argument and the reason.
Values torch accepts but with which a layer trains nothing are mistakes too: Dropout p = 1 (every
output 0), Softplus beta below 2**-23 (0: NaN; less: one constant near 0), BatchNorm2d momentum
outside [0, 1] (the running variance can turn negative: every output NaN in evaluation).

Bounds, far beyond any real network, so that no input makes the arithmetic slow or huge (each is
checked before the work it guards; `vaekit.arch.stack` checks the sizes a layer outputs):

- `MAX_SIZE` = 2**31 - 1 (2,147,483,647, the largest int32): every integer argument (channels,
  kernel, stride, padding, dilation, sizes) and every dimension of `--input`.
- `MAX_NUMBER` = 2**31 - 1: the magnitude of every number argument (scale_factor, eps, momentum,
  slopes, p); numbers must be finite (`1e999` is inf and is refused).
- `MAX_LAYER_CHARS` = 1,000 characters per layer text, checked before it is parsed (the longest
  spelling of a torch layer with every argument is under 200).
- `MAX_LAYERS` = 1,000 layers in one stack, checked before any is parsed.
- `vaekit.arch.stack.MAX_INPUT_CHARS` = 100 characters of `--input`, checked before it is split.
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from vaekit.arch.values import (
    FLOAT32_EPS,
    MAX_SIZE,
    REQUIRED,
    SOFTPLUS_BETA,
    Check,
    Literal,
    a_bool,
    a_pair,
    adaptive_size,
    an_int,
    bounded_number,
    choice,
    conv_padding,
    degenerate,
    excerpt,
    fixed,
    optional,
    scale,
    shown,
)
from vaekit.config import is_number
from vaekit.errors import SpecError

MAX_LAYER_CHARS = 1_000
MAX_LAYERS = 1_000

# ----------------------------------------------------------------------------- signatures
# torch.nn constructor arguments in torch's order, minus the inferred input size and device/dtype.

_INPLACE = ("inplace", False, a_bool)
SIGNATURES: dict[str, tuple[tuple[str, Any, Check], ...]] = {
    "Linear": (("out_features", REQUIRED, an_int(1)), ("bias", True, a_bool)),
    "Flatten": (
        ("start_dim", 1, fixed(1, "must be 1 (the batch is kept; no other is supported)")),
        ("end_dim", -1, fixed(-1, "must be -1 (flatten to a vector; no other is supported)")),
    ),
    "Conv2d": (
        ("out_channels", REQUIRED, an_int(1)), ("kernel_size", REQUIRED, a_pair(1)),
        ("stride", 1, a_pair(1)), ("padding", 0, conv_padding), ("dilation", 1, a_pair(1)),
        ("groups", 1, an_int(1)), ("bias", True, a_bool),
        ("padding_mode", "zeros", choice("zeros", "reflect", "replicate", "circular")),
    ),
    "ConvTranspose2d": (
        ("out_channels", REQUIRED, an_int(1)), ("kernel_size", REQUIRED, a_pair(1)),
        ("stride", 1, a_pair(1)), ("padding", 0, a_pair(0)), ("output_padding", 0, a_pair(0)),
        ("groups", 1, an_int(1)), ("bias", True, a_bool), ("dilation", 1, a_pair(1)),
        ("padding_mode", "zeros", choice("zeros")),
    ),
    "MaxPool2d": (
        ("kernel_size", REQUIRED, a_pair(1)), ("stride", None, optional(a_pair(1))),
        ("padding", 0, a_pair(0)), ("dilation", 1, a_pair(1)),
        ("return_indices", False,
         fixed(False, "must be False (with True the layer returns a tuple)")),
        ("ceil_mode", False, a_bool),
    ),
    "AvgPool2d": (
        ("kernel_size", REQUIRED, a_pair(1)), ("stride", None, optional(a_pair(1))),
        ("padding", 0, a_pair(0)), ("ceil_mode", False, a_bool),
        ("count_include_pad", True, a_bool), ("divisor_override", None, optional(an_int(1))),
    ),
    "AdaptiveAvgPool2d": (("output_size", REQUIRED, adaptive_size),),
    "BatchNorm2d": (
        ("eps", 1e-5, bounded_number(positive=True)), ("momentum", 0.1, optional(degenerate(
            bounded_number(), lambda m: 0 <= m <= 1,
            "must be between 0 and 1 (the running statistics are a weighted mean of the old and the "
            "batch's; a momentum outside [0, 1] can make the running variance negative and every output "
            "NaN)"))),
        ("affine", True, a_bool), ("track_running_stats", True, a_bool),
    ),
    "ReLU": (_INPLACE,),
    "LeakyReLU": (("negative_slope", 0.01, bounded_number()), _INPLACE),
    "Sigmoid": (),
    "Tanh": (),
    "ELU": (("alpha", 1.0, bounded_number()), _INPLACE),
    "GELU": (("approximate", "none", choice("none", "tanh")),),
    "SiLU": (_INPLACE,),
    "Softplus": (
        ("beta", 1.0, degenerate(bounded_number(), lambda b: b >= FLOAT32_EPS, SOFTPLUS_BETA)),
        ("threshold", 20.0, bounded_number()),
    ),
    "Dropout": (("p", 0.5, degenerate(bounded_number(), lambda p: 0 <= p < 1,
                                       "must be in [0, 1), a probability between 0 and 1 with 1 left out "
                                       "(p = 1 drops every unit: the layer outputs zeros and nothing "
                                       "before it trains)")), _INPLACE),
    "Upsample": (
        ("size", None, optional(a_pair(1))), ("scale_factor", None, optional(scale)),
        ("mode", "nearest", choice("nearest")),
        ("align_corners", None, fixed(None, "must be None for mode='nearest'")),
        ("recompute_scale_factor", None, optional(a_bool)),
    ),
}
# Layers whose torch signature starts with the inferred input size: a positional argument there
# would be that size, so none is taken (BatchNorm2d(64) is not eps = 64).
KEYWORDS_ONLY = frozenset({"BatchNorm2d"})
ACTIVATIONS = frozenset({"ReLU", "LeakyReLU", "Sigmoid", "Tanh", "ELU", "GELU", "SiLU",
                         "Softplus"})

# The language and its bounds in a paragraph, as `vaekit arch --help` ends.
LANGUAGE_HELP = """\
A LAYER is its torch.nn constructor call without the input size (in_channels, in_features,
num_features are inferred from the previous layer); quote it for the shell. Literals only.
Layers: """ + ", ".join(SIGNATURES) + f""".
Bounds: every size (argument, --input dimension, layer output) at most {MAX_SIZE:,} (2**31 - 1),
every number finite and at most that in magnitude, {MAX_LAYER_CHARS:,} characters a LAYER,
{MAX_LAYERS:,} LAYERs."""


# ----------------------------------------------------------------------------- the spec


@dataclass
class LayerSpec:
    """One layer as written: its kind, the arguments as the user wrote them, and `params`, every
    argument of the signature normalized (pairs as (height, width), defaults filled in)."""

    kind: str
    positional: tuple[Literal, ...] = ()
    keywords: tuple[tuple[str, Literal], ...] = ()
    params: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    @property
    def text(self) -> str:
        """The layer rendered back to its constructor call, e.g. `Conv2d(20, kernel_size=3)`."""
        return render(self)


def render_literal(value: Literal) -> str:
    """A literal as Python source: 3, 0.5, True, 'same', None, (3, 5)."""
    if isinstance(value, tuple):
        inner = ", ".join(render_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def render(spec: LayerSpec) -> str:
    """Render a spec as the constructor call it was parsed from (normalized spacing)."""
    args = [render_literal(v) for v in spec.positional]
    args += [f"{name}={render_literal(v)}" for name, v in spec.keywords]
    return f"{spec.kind}({', '.join(args)})"


def _literal(node: ast.expr, label: str, where: str, source: str, tiny: list[str],
             stand_in: bool = False) -> Literal:
    """Convert an ast node to a literal; anything else (names, calls, arithmetic) is refused,
    quoting its text from `source` (not `ast.unparse`, which recurses on a deep expression).
    The text of each number written below float's smallest normal is added to `tiny`
    (`_tiny`); with `stand_in`, such a number is read as that smallest normal, signed."""
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, bool | int | float | str)
    ):
        _plain_number(node, label, where, source)
        return _tiny(node, source, tiny, stand_in)
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)):
        _plain_number(node, label, where, source)
        _plain_number(node.operand, label, where, source)
        count = len(tiny)
        value = _tiny(node.operand, source, tiny, stand_in)
        if len(tiny) > count:  # with its sign
            tiny[-1] = (ast.get_source_segment(source, node) or tiny[-1]).replace("_", "")
        return -value if isinstance(node.op, ast.USub) else value  # type: ignore[operator]
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_literal(item, label, where, source, tiny, stand_in) for item in node.elts)
    written = ast.get_source_segment(source, node) or type(node).__name__
    raise SpecError(f"{label}: {where} must be a literal (integer, number, True/False, string "
                    f"or tuple), got `{excerpt(written)}`.")


def _plain_number(node: ast.expr, label: str, where: str, source: str) -> None:
    """A number written as the integer and number flags take one (`config.DECIMAL`, `NUMBER`):
    Python also reads '1_0' as 10, '+3' as 3 and '0x4', '0b1', '0o7' as 4, 1 and 7, which a flag
    refuses; one sentence for each."""
    number = isinstance(node, ast.Constant) and is_number(node.value)
    text = (ast.get_source_segment(source, node) or "") if number else ""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        odd = "a leading +"
    elif "_" in text:
        odd = "an underscore"
    elif text[:2].lower() in ("0x", "0b", "0o"):
        odd = "a base prefix (0x, 0b, 0o)"
    else:
        return
    written = ast.get_source_segment(source, node) or "?"
    raise SpecError(f"{label}: {where} must be a number written without {odd}, as a number flag "
                    f"takes one (such as 10, -3 or 0.5), got `{excerpt(written)}`.")


def _tiny(node: ast.Constant, source: str, tiny: list[str], stand_in: bool) -> Literal:
    """The constant's value; if it is a number written not 0 but below float's smallest normal
    (2.2e-308), its text is added to `tiny` (and with `stand_in` the smallest normal is returned):
    a subnormal, or 1e-400's 0.0, which a CPU that flushes denormals reads as 0 (as it parses
    one, under `vaekit.device.flush_denormals`), so a slope or p of 0, not the one written.
    Told from its text (`Decimal`, exact), as its float may already be 0.0."""
    if isinstance(node.value, float):
        written = (ast.get_source_segment(source, node) or "1").replace("_", "")
        with contextlib.suppress(InvalidOperation):
            if 0 < abs(Decimal(written)) < Decimal(sys.float_info.min):
                tiny.append(written)
                if stand_in:
                    return sys.float_info.min
    return cast(Literal, node.value)  # the caller took numbers, strings, True/False and None only


def _ascii_digits(source: str, label: str) -> None:
    """Other scripts' digits ('７', '٣'), which int() reads: a layer is typed in ASCII digits."""
    digit = next((ch for ch in source if ch.isdigit() and not ch.isascii()), None)
    if digit is not None:
        raise SpecError(f"{label}: numbers are written in ASCII digits 0-9, got {digit!r} "
                        f"(U+{ord(digit):04X}).")


def _no_comment(source: str, label: str) -> None:
    """A comment (`Linear(3)#junk`), which the parser drops: a layer is its call alone."""
    if "#" not in source:
        return
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - ast.parse read it already
        return
    comment = next((t.string for t in tokens if t.type == tokenize.COMMENT), None)
    if comment is not None:
        raise SpecError(f"{label}: has the comment `{excerpt(comment)}`, which is not part of a "
                        "layer; write the call alone, like Conv2d(20, kernel_size=3).")


def _dotted_name(node: ast.expr) -> str | None:
    """`Conv2d`, `nn.Conv2d`, `torch.nn.Conv2d` -> the dotted name; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _refuse_tiny(label: str, arg: str, check: Check, value: Literal, written: str,
                 stand_in: Literal, source: str) -> None:
    """Refuse an argument with a number written below float's smallest normal (`_tiny`): if the
    argument would take it at a normal size (`stand_in`), the sentence on subnormals; if not (an
    integer size, a probability below 0), the argument's own rule."""
    try:
        check(stand_in)
    except ValueError as at_normal_size:
        rule = str(at_normal_size)
        try:
            check(value)
        except ValueError as as_read:  # Linear(1e-400): must be an integer, got 0.0
            rule = str(as_read)
        raise SpecError(f"{label}: {arg} {rule} ({written} as written).") from None
    raise SpecError(f"{label}: {arg} must be 0 or at least {sys.float_info.min:.4g} in size, got "
                    f"{written} in `{excerpt(source)}`, which a float holds only as a subnormal "
                    "number or 0, and the CPU's flush-to-zero mode reads as 0.")


def _call_of(source: str, where: str) -> tuple[ast.Call, str]:
    """The call a layer's text is (`ReLU` alone is `ReLU()`) and its kind, a layer of SIGNATURES
    (a `nn.` or `torch.nn.` prefix dropped); a SpecError for a text too long, any other
    expression, a comment, or an unknown layer."""
    label = f"{where}`{excerpt(source)}`"
    if len(source) > MAX_LAYER_CHARS:
        raise SpecError(f"{where}`{source[:20]}...` is {len(source):,} characters long; "
                        f"expected a layer call of at most {MAX_LAYER_CHARS:,} characters.")
    not_a_call = SpecError(f"{label} is not a layer call like Conv2d(20, kernel_size=3).")
    _ascii_digits(source, label)
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # ValueError: surrogates
        raise not_a_call from None
    _no_comment(source, label)
    call = tree.body
    if isinstance(call, ast.Name | ast.Attribute):  # `ReLU` without parentheses
        call = ast.Call(func=call, args=[], keywords=[])
    if not isinstance(call, ast.Call):
        raise not_a_call
    name = _dotted_name(call.func)
    if name is None:
        raise not_a_call
    kind = name.removeprefix("torch.").removeprefix("nn.")
    if kind not in SIGNATURES:
        known = ", ".join(SIGNATURES)
        raise SpecError(f"{label}: unknown layer {shown(name)}; known layers are {known}.")
    return call, kind


def parse_layer(text: str, where: str = "") -> LayerSpec:
    """Parse one layer, e.g. `Conv2d(20, kernel_size=3, stride=2)`, into a validated LayerSpec.

    `where` prefixes error messages (e.g. "layer 2 "). A `nn.` or `torch.nn.` prefix is accepted.
    Raises SpecError for syntax errors, unknown layers or arguments, and bad values, and for a
    text longer than MAX_LAYER_CHARS (checked before parsing) or a value beyond MAX_SIZE or
    MAX_NUMBER (see the module docstring).
    """
    source = text.strip()
    call, kind = _call_of(source, where)
    signature = SIGNATURES[kind]
    names = [arg[0] for arg in signature]
    label = f"{where}{kind}"
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        raise SpecError(f"{label}: *args and **kwargs are not accepted; write the arguments out.")
    if len(call.args) > len(signature):
        raise SpecError(f"{label}: takes at most {len(signature)} positional arguments "
                        f"({', '.join(names) or 'none'}), got {len(call.args)}.")
    if kind in KEYWORDS_ONLY and call.args:
        by_name = ", ".join(n + "=..." for n in names)
        raise SpecError(f"{label}: takes its num_features from the previous layer and its other "
                        f"arguments by name ({by_name}); torch's first positional argument would be "
                        "num_features, so a number here is refused, not read as eps.")
    tiny: dict[str, tuple[str, Literal]] = {}  # argument -> a number written too small, stand-in

    def literal(node: ast.expr, arg: str) -> Literal:
        written: list[str] = []
        value = _literal(node, label, arg, source, written)
        if written:
            tiny[arg] = (written[0], _literal(node, label, arg, source, [], stand_in=True))
        return value

    positional = tuple(literal(a, names[i]) for i, a in enumerate(call.args))
    keywords: list[tuple[str, Literal]] = []
    given = dict(zip(names, positional, strict=False))
    for kw in call.keywords:
        assert kw.arg is not None
        if kw.arg not in names:
            hint = (" (it is inferred from the previous layer)"
                    if kw.arg in ("in_channels", "in_features", "num_features") else "")
            raise SpecError(f"{label}: unknown argument {shown(kw.arg)}{hint}; "
                            f"arguments are {', '.join(names) or 'none'}.")
        if kw.arg in given:
            raise SpecError(f"{label}: argument {kw.arg!r} is given twice.")
        value = literal(kw.value, kw.arg)
        given[kw.arg] = value
        keywords.append((kw.arg, value))
    spec = LayerSpec(kind, positional, tuple(keywords))
    for arg, default, check in signature:
        if arg not in given and default is REQUIRED:
            raise SpecError(f"{label}: missing required argument {arg!r}.")
        value = given.get(arg, default)
        if arg in tiny:
            _refuse_tiny(label, arg, check, value, *tiny[arg], source)
        try:
            spec.params[arg] = check(value) if arg in given else value
        except ValueError as err:
            raise SpecError(f"{label}: {arg} {err}.") from None
    for arg in ("kernel_size", "padding", "stride", "dilation", "output_padding"):
        if arg in spec.params and isinstance(spec.params[arg], int):
            spec.params[arg] = (spec.params[arg], spec.params[arg])
    if kind == "Upsample" and (spec["size"] is None) == (spec["scale_factor"] is None):
        raise SpecError(f"{label}: give exactly one of size and scale_factor.")
    if kind == "Upsample" and spec["size"] is not None and spec["recompute_scale_factor"]:
        raise SpecError(f"{label}: recompute_scale_factor=True needs scale_factor, not size.")
    return spec


def parse_stack(texts: Sequence[str]) -> list[LayerSpec]:
    """Parse several layers (at most MAX_LAYERS, counted before any is parsed); errors name the
    layer's position (1-based)."""
    if len(texts) > MAX_LAYERS:
        raise SpecError(f"{len(texts):,} layers given; a stack has at most {MAX_LAYERS:,}.")
    return [parse_layer(text, where=f"layer {i} ") for i, text in enumerate(texts, start=1)]
