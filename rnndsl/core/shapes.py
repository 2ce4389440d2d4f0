"""Shape rules of the op table: (argument types, attrs) -> the result's type, or ShapeError
with a message ({expr} is the expression's text, filled in by the checker) and a hint."""
from __future__ import annotations

import math

from .types import SCALAR, Dim, Kind, ShapeError, Type, floats


def float_arg(t: Type, what: str) -> Type:
    if t.kind is Kind.INDEX:
        raise ShapeError(f"{what} is a class index, not a number",
                         "class indices are used by cross_entropy and ctc, or look up a column: W @ x[t]")
    return Type(Kind.FLOAT, t.shape)


def same(name: str):
    """Elementwise: equal shapes, or one side a scalar (numeric constants broadcast)."""
    def rule(types, attrs):
        a, b = (float_arg(t, f"an operand of {name}") for t in types)
        if a.rank == 0 or b.rank == 0 or a.dims == b.dims:
            return b if a.rank == 0 else a
        raise ShapeError(f"shape mismatch in {{expr}}: {a} {name} {b}",
                         "elementwise operands need the same shape (or one must be a scalar)")
    return rule


def unary(types, attrs):
    return float_arg(types[0], "the argument")


def dropout(types, attrs):
    if not 0 <= attrs["p"] < 1:
        raise ShapeError(f"{{expr}}: the dropout probability must lie in [0, 1), got {attrs['p']:g}",
                         "p is the fraction of units dropped: dropout(h[t-1], 0.25)")
    if attrs["same"] not in (0, 1):
        raise ShapeError("{expr}: same is 0 (a new mask at every step) or 1 (one mask per sequence)")
    return float_arg(types[0], "the argument")


def _runs(fn: str, attrs, example: str) -> None:
    width, n = attrs["width"], attrs["n"]
    if width != int(width) or width < 0:
        raise ShapeError(f"{{expr}}: width is the longest run {fn} zeros, a whole number >= 0, got {width:g}",
                         f"for example {example}")
    if n < 1:
        raise ShapeError(f"{{expr}}: n is how many runs {fn} zeros, a whole number >= 1, got {n}",
                         f"for example {example}")


def mask_steps(types, attrs):
    _runs("mask_steps", attrs, "mask_steps(x[t], 10, n=2): two runs of up to 10 steps")
    return float_arg(types[0], "the argument")


def mask_band(types, attrs):
    _runs("mask_band", attrs, "mask_band(x[t], 4, n=2): two runs of up to 4 entries")
    t = float_arg(types[0], "the argument")
    if t.rank == 0:
        raise ShapeError("{expr} zeros runs of a vector's entries, got a scalar",
                         "mask_steps zeros whole steps of a scalar sequence")
    return t


def vector(types, attrs):
    t = float_arg(types[0], "the argument")
    if t.rank == 0:
        raise ShapeError("{expr} needs a vector, got a scalar")
    return t


def matmul(types, attrs):
    a, b = types
    if b.kind is Kind.INDEX and a.kind is not Kind.INDEX:
        return _embed(a, b)
    if Kind.INDEX in (a.kind, b.kind):
        raise ShapeError("a class index cannot be multiplied", "an embedding is written W @ x: the matrix first")
    if not (1 <= a.rank <= 2 and 1 <= b.rank <= 2):
        raise ShapeError(f"@ takes vectors and matrices, got {a} @ {b}")
    inner_a, inner_b = a.shape[-1], b.shape[0]
    if inner_a != inner_b:
        raise ShapeError(f"shape mismatch in {{expr}}: {a} @ {b}",
                         f"the inner sizes differ: {inner_a} vs {inner_b}")
    return floats(*(a.shape[:-1] + b.shape[1:]))


def _embed(w: Type, index: Type) -> Type:
    """W @ w[t] with w a class index: W's column for that class (an embedding lookup)."""
    if w.rank != 2:
        raise ShapeError(f"W @ a class index takes a matrix W [m, classes], got {w}")
    if w.shape[1] != index.classes:
        raise ShapeError(f"shape mismatch in {{expr}}: {w} @ a class of {index.classes}",
                         f"the matrix needs one column per class: {index.classes}")
    return floats(w.shape[0])


def last_axis(types, attrs):
    """sum, mean, max, min of a value's entries: [n] -> [], [m, n] -> [m]."""
    t = float_arg(types[0], "the argument")
    if t.rank == 0:
        raise ShapeError("{expr} reduces the entries of a vector, got a scalar",
                         "over time write sum_t, mean_t, max_t or min_t; max(x, c) takes a constant c")
    return floats(*t.shape[:-1])


def slice_vector(types, attrs):
    """slice(x, start, stop): entries start..stop-1 of a vector."""
    t = float_arg(types[0], "the argument")
    start, stop = attrs["start"], attrs["stop"]
    if t.rank != 1:
        raise ShapeError(f"slice takes a vector, got {t}")
    if start != int(start) or stop != int(stop) or not 0 <= start < stop <= t.dims[0]:
        raise ShapeError(f"{{expr}} is not a part of {t}",
                         f"whole numbers with 0 <= start < stop <= {t.dims[0]}")
    return floats(Dim(int(stop - start)))


def concat(types, attrs):
    ts = [float_arg(t, "an operand of concat") for t in types]
    if any(t.rank == 0 for t in ts):
        raise ShapeError("concat joins vectors (or arrays along their first axis), got a scalar")
    rest = {t.dims[1:] for t in ts}
    if len(rest) > 1:
        raise ShapeError("concat: " + ", ".join(str(t) for t in ts) + " differ beyond their first axis")
    total = sum(t.shape[0].value for t in ts)
    name = "+".join(t.shape[0].name or str(t.shape[0].value) for t in ts)
    return floats(Dim(total, name), *ts[0].shape[1:])


def flatten(types, attrs):
    t = float_arg(types[0], "the argument")
    return floats(Dim(math.prod(t.dims), "*".join(d.name or str(d.value) for d in t.shape)))


def out_size(n: int, k: int, stride: int, pad: int, what: str) -> int:
    size = (n + 2 * pad - k) // stride + 1
    if size < 1 or stride < 1 or pad < 0:
        raise ShapeError(f"{what}: a window of {k} with stride {stride} and padding {pad} "
                         f"does not fit a size of {n}")
    return size


def conv2d(types, attrs):
    x, w = (float_arg(t, "an operand of conv2d") for t in types)
    if x.rank != 3 or w.rank != 4:
        raise ShapeError(f"conv2d takes an image [C, H, W] and filters [O, C, KH, KW], got {x} and {w}")
    if x.shape[0] != w.shape[1]:
        raise ShapeError(f"conv2d: the image has C={x.shape[0]} channels but the filters take {w.shape[1]}")
    s, p = int(attrs["stride"]), int(attrs["pad"])
    h = out_size(x.dims[1], w.dims[2], s, p, "conv2d")
    v = out_size(x.dims[2], w.dims[3], s, p, "conv2d")
    return floats(w.shape[0], Dim(h), Dim(v))


def maxpool2d(types, attrs):
    x = float_arg(types[0], "the argument of maxpool2d")
    if x.rank != 3:
        raise ShapeError(f"maxpool2d takes an image [C, H, W], got {x}")
    k, s = int(attrs["size"]), int(attrs["stride"] or attrs["size"])
    return floats(x.shape[0], Dim(out_size(x.dims[1], k, s, 0, "maxpool2d")),
                  Dim(out_size(x.dims[2], k, s, 0, "maxpool2d")))


def classes_match(y: Type, target: Type, fn: str) -> None:
    if y.kind is not Kind.FLOAT or y.rank != 1:
        raise ShapeError(f"{fn} takes scores as a vector [K], got {y}")
    if target.kind is Kind.FLOAT:
        raise ShapeError(f"{fn} takes class indices as its target, got floats {target}",
                         "declare the target as {index: K}; for real-valued targets use mse")
    if target.classes != y.shape[0]:
        raise ShapeError(f"{fn}: {y.shape[0]} scores but the target has {target.classes} classes")


def cross_entropy(types, attrs):
    classes_match(types[0], types[1], "cross_entropy")
    return SCALAR


def mse(types, attrs):
    y, target = (float_arg(t, "an operand of mse") for t in types)
    if y.dims != target.dims:
        raise ShapeError(f"shape mismatch in {{expr}}: {y} vs {target}")
    return SCALAR


def ctc(types, attrs):
    classes_match(types[0], types[1], "ctc")
    blank = int(attrs["blank"])
    if not 0 <= blank < types[0].dims[0]:
        raise ShapeError(f"ctc: blank={blank} is not a class of {types[0]}")
    return SCALAR


def sample(types, attrs):
    y = vector(types, attrs)
    return Type(Kind.INDEX, (), y.shape[0])
