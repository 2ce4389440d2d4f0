"""The op table: for each op its spelling, shape rule and forward formula, written once.

Value types (`Dim`, `Kind`, `Type`) live here because the shape rules speak about them.
Forward formulas are batch-polymorphic NumPy-style functions of an array module `xp`:
the trailing axes of every argument are the spec's shape, any leading axes are batch
(and time), so the reference interpreter calls them on single examples and emitted code
calls them on whole batches. Scalars are aligned to the result's rank by the caller.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


# ---- value types ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Dim:
    """A size, remembering the dim name it came from (for messages such as `[H=16]`)."""
    value: int
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.name}={self.value}" if self.name and self.name != str(self.value) else str(self.value)


class Kind(enum.Enum):
    FLOAT = "float"
    ONEHOT = "onehot"     # a class index used as a one-hot vector of `classes` entries
    INDEX = "index"       # a class index in [0, classes)


@dataclass(frozen=True)
class Type:
    kind: Kind
    shape: tuple          # tuple[Dim, ...]; never mentions batch or time
    classes: Dim | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dims(self) -> tuple:
        return tuple(d.value for d in self.shape)

    def __str__(self) -> str:
        shape = "[" + ", ".join(str(d) for d in self.shape) + "]"
        return shape if self.kind is Kind.FLOAT else f"{self.kind.value}({self.classes}) {shape}"


def floats(*shape: Dim) -> Type:
    return Type(Kind.FLOAT, tuple(shape))


SCALAR = floats()


class ShapeError(Exception):
    """Raised by a shape rule; the checker adds the position and the expression's text."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


# ---- ops -----------------------------------------------------------------------------------

class Op(enum.Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    NEG = "neg"
    MATMUL = "@"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    EXP = "exp"
    LOG = "log"
    SOFTPLUS = "softplus"
    ABS = "abs"
    CLIP = "clip"
    MIN = "min"
    MAX = "max"
    SOFTMAX = "softmax"
    LOG_SOFTMAX = "log_softmax"
    CONCAT = "concat"
    FLATTEN = "flatten"
    CONV2D = "conv2d"
    MAXPOOL2D = "maxpool2d"
    CROSS_ENTROPY = "cross_entropy"
    MSE = "mse"
    CTC = "ctc"
    SAMPLE = "sample"


@dataclass(frozen=True)
class OpDef:
    op: Op
    arity: int                    # array arguments; -1 for any number (concat)
    shape: Callable               # (arg types, attrs) -> result Type, or raise ShapeError
    forward: Callable             # (xp, *arrays, **attrs) -> array
    attrs: tuple = ()             # constant arguments: (name, default or None if required)
    ranked: bool = False          # forward also takes ranks=(spec rank of each argument)
    doc: str = ""


def _float_arg(t: Type, what: str) -> Type:
    if t.kind is Kind.INDEX:
        raise ShapeError(f"{what} is a class index, not a number",
                         "class indices are used by cross_entropy, ctc or as onehot inputs")
    return Type(Kind.FLOAT, t.shape)


def _same(name: str):
    """Elementwise: equal shapes, or one side a scalar (numeric constants broadcast)."""
    def rule(types, attrs):
        a, b = (_float_arg(t, f"an operand of {name}") for t in types)
        if a.rank == 0 or b.rank == 0 or a.dims == b.dims:
            return b if a.rank == 0 else a
        raise ShapeError(f"shape mismatch in {{expr}}: {a} {name} {b}",
                         "elementwise operands need the same shape (or one must be a scalar)")
    return rule


def _unary(types, attrs):
    return _float_arg(types[0], "the argument")


def _vector(types, attrs):
    t = _float_arg(types[0], "the argument")
    if t.rank == 0:
        raise ShapeError("{expr} needs a vector, got a scalar")
    return t


def _matmul(types, attrs):
    a, b = types
    if Kind.INDEX in (a.kind, b.kind):
        raise ShapeError("a class index cannot be multiplied", "declare the input as {onehot: V} to use W @ x")
    if not (1 <= a.rank <= 2 and 1 <= b.rank <= 2):
        raise ShapeError(f"@ takes vectors and matrices, got {a} @ {b}")
    inner_a, inner_b = a.shape[-1], b.shape[0]
    if inner_a != inner_b:
        raise ShapeError(f"shape mismatch in {{expr}}: {a} @ {b}",
                         f"the inner sizes differ: {inner_a} vs {inner_b}")
    return floats(*(a.shape[:-1] + b.shape[1:]))


def _concat(types, attrs):
    ts = [_float_arg(t, "an operand of concat") for t in types]
    if any(t.rank == 0 for t in ts):
        raise ShapeError("concat joins vectors (or arrays along their first axis), got a scalar")
    rest = {t.dims[1:] for t in ts}
    if len(rest) > 1:
        raise ShapeError("concat: " + ", ".join(str(t) for t in ts) + " differ beyond their first axis")
    total = sum(t.shape[0].value for t in ts)
    name = "+".join(t.shape[0].name or str(t.shape[0].value) for t in ts)
    return floats(Dim(total, name), *ts[0].shape[1:])


def _flatten(types, attrs):
    t = _float_arg(types[0], "the argument")
    return floats(Dim(math.prod(t.dims), "*".join(d.name or str(d.value) for d in t.shape)))


def _out_size(n: int, k: int, stride: int, pad: int, what: str) -> int:
    size = (n + 2 * pad - k) // stride + 1
    if size < 1 or stride < 1 or pad < 0:
        raise ShapeError(f"{what}: a window of {k} with stride {stride} and padding {pad} "
                         f"does not fit a size of {n}")
    return size


def _conv2d(types, attrs):
    x, w = (_float_arg(t, "an operand of conv2d") for t in types)
    if x.rank != 3 or w.rank != 4:
        raise ShapeError(f"conv2d takes an image [C, H, W] and filters [O, C, KH, KW], got {x} and {w}")
    if x.shape[0] != w.shape[1]:
        raise ShapeError(f"conv2d: the image has {x.shape[0]} channels but the filters take {w.shape[1]}")
    s, p = int(attrs["stride"]), int(attrs["pad"])
    h = _out_size(x.dims[1], w.dims[2], s, p, "conv2d")
    v = _out_size(x.dims[2], w.dims[3], s, p, "conv2d")
    return floats(w.shape[0], Dim(h), Dim(v))


def _maxpool2d(types, attrs):
    x = _float_arg(types[0], "the argument of maxpool2d")
    if x.rank != 3:
        raise ShapeError(f"maxpool2d takes an image [C, H, W], got {x}")
    k, s = int(attrs["size"]), int(attrs["stride"] or attrs["size"])
    return floats(x.shape[0], Dim(_out_size(x.dims[1], k, s, 0, "maxpool2d")),
                  Dim(_out_size(x.dims[2], k, s, 0, "maxpool2d")))


def _classes_match(y: Type, target: Type, fn: str) -> None:
    if y.kind is not Kind.FLOAT or y.rank != 1:
        raise ShapeError(f"{fn} takes scores as a vector [K], got {y}")
    if target.kind is Kind.FLOAT:
        raise ShapeError(f"{fn} takes class indices as its target, got floats {target}",
                         "declare the target as {index: K}; for real-valued targets use mse")
    if target.classes != y.shape[0]:
        raise ShapeError(f"{fn}: {y.shape[0]} scores but the target has {target.classes} classes")


def _cross_entropy(types, attrs):
    _classes_match(types[0], types[1], "cross_entropy")
    return SCALAR


def _mse(types, attrs):
    y, target = (_float_arg(t, "an operand of mse") for t in types)
    if y.dims != target.dims:
        raise ShapeError(f"shape mismatch in {{expr}}: {y} vs {target}")
    return SCALAR


def _ctc(types, attrs):
    _classes_match(types[0], types[1], "ctc")
    blank = int(attrs["blank"])
    if not 0 <= blank < types[0].dims[0]:
        raise ShapeError(f"ctc: blank={blank} is not a class of {types[0]}")
    return SCALAR


def _sample(types, attrs):
    y = _vector(types, attrs)
    return Type(Kind.INDEX, (), y.shape[0])


# ---- forward formulas (batch-polymorphic) ----------------------------------------------------

def sigmoid(xp, x):
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def log_softmax(xp, x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def matmul(xp, a, b, ranks):
    """Spec-level `a @ b` for vectors and matrices, with leading batch axes on either side."""
    spec = {(2, 1): "...mn,...n->...m", (1, 2): "...n,...nm->...m",
            (2, 2): "...mn,...nk->...mk", (1, 1): "...n,...n->..."}[tuple(ranks)]
    return xp.einsum(spec, a, b)


def concat(xp, *parts, ranks):
    return xp.concatenate(parts, axis=-ranks[0])


def flatten(xp, x, ranks):
    return x.reshape(x.shape[:x.ndim - ranks[0]] + (-1,))


def cross_entropy(xp, y, target):
    logp = log_softmax(xp, y)
    if target.dtype.kind == "f":                       # onehot target given as vectors
        return -(logp * target).sum(axis=-1)
    return -xp.take_along_axis(logp, target[..., None].astype(np.int64), axis=-1)[..., 0]


def mse(xp, y, target, ranks):
    squared = (y - target) ** 2
    return squared.mean(axis=tuple(range(-ranks[0], 0))) if ranks[0] else squared


def _windows(xp, x, kh, kw, stride, pad):
    """Sliding kh x kw windows over the last two axes: (..., C, H', W', kh, kw)."""
    if pad:
        x = xp.pad(x, [(0, 0)] * (x.ndim - 2) + [(pad, pad), (pad, pad)])
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))
    return win[..., ::stride, ::stride, :, :]


def conv2d(xp, x, w, stride=1, pad=0):
    win = _windows(xp, x, w.shape[-2], w.shape[-1], int(stride), int(pad))
    return xp.einsum("...chwij,...ocij->...ohw", win, w)


def maxpool2d(xp, x, size=2, stride=None):
    size = int(size)
    return _windows(xp, x, size, size, int(stride or size), 0).max(axis=(-2, -1))


def ctc(xp, y, labels, blank=0):
    """-log p(labels | y) for one sequence: scores y (T, K), labels (U,). Log-space forward."""
    logp = log_softmax(xp, y)
    ext = [int(blank)]
    for label in labels:
        ext += [int(label), int(blank)]
    n, T = len(ext), len(logp)
    alpha = np.full(n, -np.inf)
    alpha[0] = logp[0, ext[0]]
    if n > 1:
        alpha[1] = logp[0, ext[1]]
    for t in range(1, T):
        prev = alpha.copy()
        for s in range(n):
            terms = [prev[s]] + ([prev[s - 1]] if s >= 1 else [])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(prev[s - 2])
            alpha[s] = np.logaddexp.reduce(terms) + logp[t, ext[s]]
    total = np.logaddexp(alpha[-1], alpha[-2]) if n > 1 else alpha[-1]
    return -total


def sample(xp, y, rng=None, temperature=1.0):
    """Draw a class from softmax(y / temperature); greedy (argmax) when temperature is 0."""
    if temperature == 0:
        return y.argmax(axis=-1)
    p = softmax(xp, y / temperature)
    u = (rng or np.random.default_rng()).random(p.shape[:-1] + (1,))
    return (p.cumsum(axis=-1) < u).sum(axis=-1).clip(0, p.shape[-1] - 1)


TABLE: dict[Op, OpDef] = {d.op: d for d in [
    OpDef(Op.ADD, 2, _same("+"), lambda xp, a, b: a + b),
    OpDef(Op.SUB, 2, _same("-"), lambda xp, a, b: a - b),
    OpDef(Op.MUL, 2, _same("*"), lambda xp, a, b: a * b),
    OpDef(Op.DIV, 2, _same("/"), lambda xp, a, b: a / b),
    OpDef(Op.NEG, 1, _unary, lambda xp, a: -a),
    OpDef(Op.MATMUL, 2, _matmul, matmul, ranked=True, doc="[m,n] @ [n] -> [m]; also [n] @ [n,m], [m,n] @ [n,k]"),
    OpDef(Op.TANH, 1, _unary, lambda xp, x: xp.tanh(x)),
    OpDef(Op.SIGMOID, 1, _unary, sigmoid),
    OpDef(Op.RELU, 1, _unary, lambda xp, x: xp.maximum(x, 0.0)),
    OpDef(Op.EXP, 1, _unary, lambda xp, x: xp.exp(x)),
    OpDef(Op.LOG, 1, _unary, lambda xp, x: xp.log(x)),
    OpDef(Op.SOFTPLUS, 1, _unary, lambda xp, x: xp.logaddexp(0.0, x)),
    OpDef(Op.ABS, 1, _unary, lambda xp, x: xp.abs(x)),
    OpDef(Op.CLIP, 1, _unary, lambda xp, x, lo, hi: xp.clip(x, lo, hi), attrs=(("lo", None), ("hi", None))),
    OpDef(Op.MIN, 1, _unary, lambda xp, x, c: xp.minimum(x, c), attrs=(("c", None),)),
    OpDef(Op.MAX, 1, _unary, lambda xp, x, c: xp.maximum(x, c), attrs=(("c", None),)),
    OpDef(Op.SOFTMAX, 1, _vector, softmax),
    OpDef(Op.LOG_SOFTMAX, 1, _vector, log_softmax),
    OpDef(Op.CONCAT, -1, _concat, concat, ranked=True),
    OpDef(Op.FLATTEN, 1, _flatten, flatten, ranked=True),
    OpDef(Op.CONV2D, 2, _conv2d, conv2d, attrs=(("stride", 1), ("pad", 0))),
    OpDef(Op.MAXPOOL2D, 1, _maxpool2d, maxpool2d, attrs=(("size", 2), ("stride", 0))),
    OpDef(Op.CROSS_ENTROPY, 2, _cross_entropy, cross_entropy),
    OpDef(Op.MSE, 2, _mse, mse, ranked=True),
    OpDef(Op.CTC, 2, _ctc, ctc, attrs=(("blank", 0),), doc="whole sequences: ctc(y, labels, blank=0)"),
    OpDef(Op.SAMPLE, 1, _sample, sample),
]}

BY_SPELLING = {op.value: op for op in Op if op.value.isidentifier() and op is not Op.NEG}
UNARY_OPS = {Op.NEG, Op.TANH, Op.SIGMOID, Op.RELU, Op.EXP, Op.LOG, Op.SOFTPLUS, Op.ABS,
             Op.CLIP, Op.MIN, Op.MAX}
ELEMENTWISE = UNARY_OPS | {Op.ADD, Op.SUB, Op.MUL, Op.DIV}
