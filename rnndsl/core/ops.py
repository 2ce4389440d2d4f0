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

from . import kernels


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
    # ops a spec can write
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
    # ops the compiler introduces in programs
    COPY = "copy"
    EMBED = "embed"                    # W @ onehot(i): a column gather
    REDUCE_SUM = "reduce_sum"
    REDUCE_MEAN = "reduce_mean"
    REDUCE_MAX = "reduce_max"
    REDUCE_MIN = "reduce_min"
    GATHER = "gather"                  # v[end-k], v[k]
    SLICE = "slice"                    # a part of a fused buffer
    ONEHOT = "onehot"                  # class indices as vectors
    # backward ops, introduced by VJP rules
    TANH_VJP = "tanh_vjp"
    SIGMOID_VJP = "sigmoid_vjp"
    RELU_VJP = "relu_vjp"
    ABS_VJP = "abs_vjp"
    CLIP_VJP = "clip_vjp"
    MIN_VJP = "min_vjp"
    MAX_VJP = "max_vjp"
    SOFTMAX_VJP = "softmax_vjp"
    LOG_SOFTMAX_VJP = "log_softmax_vjp"
    CROSS_ENTROPY_VJP = "cross_entropy_vjp"
    MSE_VJP = "mse_vjp"
    CTC_VJP = "ctc_vjp"
    MATMUL_VJP = "matmul_vjp"
    EMBED_VJP = "embed_vjp"
    RESHAPE_LIKE = "reshape_like"
    CONV2D_VJP_X = "conv2d_vjp_x"
    CONV2D_VJP_W = "conv2d_vjp_w"
    MAXPOOL2D_VJP = "maxpool2d_vjp"
    REDUCE_SUM_VJP = "reduce_sum_vjp"
    REDUCE_MEAN_VJP = "reduce_mean_vjp"
    REDUCE_EXTREME_VJP = "reduce_extreme_vjp"
    GATHER_VJP = "gather_vjp"


@dataclass(frozen=True)
class OpDef:
    op: Op
    arity: int                    # array arguments; -1 for any number (concat)
    forward: Callable             # (xp, *arrays, **attrs) -> array
    shape: Callable | None = None  # (arg types, attrs) -> Type, or raise ShapeError; None: internal
    vjp: Callable | None = None   # (VJP context) -> one adjoint per argument (None: no gradient)
    attrs: tuple = ()             # constant arguments: (name, default or None if required)
    ranked: bool = False          # forward also takes ranks=(spec rank of each argument)
    ufunc: str = ""               # a single NumPy function taking out= (attrs follow the arrays)
    context: str = ""             # "valid" or "lengths" of its sequence argument's axis, or
                                  # "seq_lengths": the lengths of every sequence argument's axis
    rank: Callable | None = None  # (arg ranks, attrs) -> result rank; None: elementwise (the max)
    out: bool = False             # forward takes out= (writes into a preallocated slot)
    doc: str = ""

    @property
    def kinks(self) -> Callable | None:
        """Where the op is non-smooth: its entry in KINKS (None: smooth)."""
        return KINKS[self.op]


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
        raise ShapeError(f"conv2d: the image has C={x.shape[0]} channels but the filters take {w.shape[1]}")
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


# ---- VJP rules: build the adjoint of each argument from ops (never numbers) -----------------------

def _vjp_unary(grad_op: Op, of_output: bool = True):
    return lambda v: [v.apply(grad_op, v.y if of_output else v.x[0], v.dy, **v.attrs)]


def _vjp_div(v):
    return [v.apply(Op.DIV, v.dy, v.x[1]),
            v.apply(Op.NEG, v.apply(Op.DIV, v.apply(Op.MUL, v.dy, v.y), v.x[1]))]


def _vjp_matmul(v):
    ra, rb = v.ranks
    return [v.param_sum(0, v.apply(Op.MATMUL_VJP, v.dy, v.x[1], side=0, ra=ra, rb=rb, summed=int(v.is_param(0)))),
            v.param_sum(1, v.apply(Op.MATMUL_VJP, v.dy, v.x[0], side=1, ra=ra, rb=rb, summed=int(v.is_param(1))))]


def _vjp_concat(v):
    starts = [0]
    for d in v.dims:
        starts.append(starts[-1] + d[0])
    return [v.apply(Op.SLICE, v.dy, start=a, stop=b) for a, b in zip(starts, starts[1:])]


def _vjp_conv2d(v):
    a = v.attrs
    return [v.apply(Op.CONV2D_VJP_X, v.dy, v.x[1], v.x[0], **a),
            v.param_sum(1, v.apply(Op.CONV2D_VJP_W, v.dy, v.x[0], v.x[1], summed=int(v.is_param(1)), **a))]


def _vjp_mse(v):
    g = v.apply(Op.MSE_VJP, v.x[0], v.x[1], v.dy)
    return [g, v.apply(Op.NEG, g)]


def _vjp_reduce(grad_op: Op):
    def rule(v):
        extra = (v.y,) if grad_op is Op.REDUCE_EXTREME_VJP else ()
        return [v.apply(grad_op, v.dy, v.x[0], *extra)]
    return rule


def _vjp_gather(v):
    parts = [v.apply(Op.GATHER_VJP, v.dy, v.x[0], fill=0, **v.attrs)]
    if len(v.x) == 2:
        parts.append(v.apply(Op.GATHER_VJP, v.dy, v.x[0], fill=1, **v.attrs))
    return parts


_IN_PLACE = {Op.TANH_VJP, Op.SIGMOID_VJP, Op.RELU_VJP}


def _ufunc(name: str):
    return lambda xp, *args: getattr(xp, name)(*args)


K = kernels
_CE_VJP = lambda v: [v.apply(Op.CROSS_ENTROPY_VJP, v.x[0], v.x[1], v.dy), None]

TABLE: dict[Op, OpDef] = {d.op: d for d in [
    OpDef(Op.ADD, 2, _ufunc("add"), _same("+"), lambda v: [v.dy, v.dy], ufunc="add"),
    OpDef(Op.SUB, 2, _ufunc("subtract"), _same("-"), lambda v: [v.dy, v.apply(Op.NEG, v.dy)], ufunc="subtract"),
    OpDef(Op.MUL, 2, _ufunc("multiply"), _same("*"),
          lambda v: [v.apply(Op.MUL, v.dy, v.x[1]), v.apply(Op.MUL, v.dy, v.x[0])], ufunc="multiply"),
    OpDef(Op.DIV, 2, _ufunc("divide"), _same("/"), _vjp_div, ufunc="divide"),
    OpDef(Op.NEG, 1, _ufunc("negative"), _unary, lambda v: [v.apply(Op.NEG, v.dy)], ufunc="negative"),
    OpDef(Op.MATMUL, 2, K.matmul, _matmul, _vjp_matmul, ranked=True,
          doc="[m,n] @ [n] -> [m]; also [n] @ [n,m] -> [m], [m,n] @ [n,k] -> [m,k], [n] @ [n] -> []"),
    OpDef(Op.TANH, 1, _ufunc("tanh"), _unary, _vjp_unary(Op.TANH_VJP), ufunc="tanh"),
    OpDef(Op.SIGMOID, 1, K.sigmoid, _unary, _vjp_unary(Op.SIGMOID_VJP), out=True),
    OpDef(Op.RELU, 1, K.relu, _unary, _vjp_unary(Op.RELU_VJP), out=True),
    OpDef(Op.EXP, 1, _ufunc("exp"), _unary, lambda v: [v.apply(Op.MUL, v.dy, v.y)], ufunc="exp"),
    OpDef(Op.LOG, 1, _ufunc("log"), _unary, lambda v: [v.apply(Op.DIV, v.dy, v.x[0])], ufunc="log"),
    OpDef(Op.SOFTPLUS, 1, K.softplus, _unary, lambda v: [v.apply(Op.MUL, v.dy, v.apply(Op.SIGMOID, v.x[0]))]),
    OpDef(Op.ABS, 1, _ufunc("absolute"), _unary, _vjp_unary(Op.ABS_VJP, of_output=False), ufunc="absolute"),
    OpDef(Op.CLIP, 1, lambda xp, x, lo, hi: xp.clip(x, lo, hi), _unary, _vjp_unary(Op.CLIP_VJP, of_output=False),
          attrs=(("lo", None), ("hi", None)), ufunc="clip"),
    OpDef(Op.MIN, 1, lambda xp, x, c: xp.minimum(x, c), _unary, _vjp_unary(Op.MIN_VJP, of_output=False),
          attrs=(("c", None),), ufunc="minimum"),
    OpDef(Op.MAX, 1, lambda xp, x, c: xp.maximum(x, c), _unary, _vjp_unary(Op.MAX_VJP, of_output=False),
          attrs=(("c", None),), ufunc="maximum"),
    OpDef(Op.SOFTMAX, 1, K.softmax, _vector, _vjp_unary(Op.SOFTMAX_VJP)),
    OpDef(Op.LOG_SOFTMAX, 1, K.log_softmax, _vector, _vjp_unary(Op.LOG_SOFTMAX_VJP)),
    OpDef(Op.CONCAT, -1, K.concat, _concat, _vjp_concat, ranked=True),
    OpDef(Op.FLATTEN, 1, K.flatten, _flatten, lambda v: [v.apply(Op.RESHAPE_LIKE, v.dy, v.x[0])], ranked=True),
    OpDef(Op.CONV2D, 2, K.conv2d, _conv2d, _vjp_conv2d, attrs=(("stride", 1), ("pad", 0))),
    OpDef(Op.MAXPOOL2D, 1, K.maxpool2d, _maxpool2d,
          lambda v: [v.apply(Op.MAXPOOL2D_VJP, v.x[0], v.y, v.dy, **v.attrs)], attrs=(("size", 2), ("stride", 0))),
    OpDef(Op.CROSS_ENTROPY, 2, K.cross_entropy, _cross_entropy, _CE_VJP),
    OpDef(Op.MSE, 2, K.mse, _mse, _vjp_mse, ranked=True),
    OpDef(Op.CTC, 2, K.ctc, _ctc, lambda v: [v.apply(Op.CTC_VJP, v.x[0], v.x[1], v.dy, **v.attrs), None],
          attrs=(("blank", 0),), context="seq_lengths", doc="whole sequences: ctc(y, labels, blank=0)"),
    OpDef(Op.SAMPLE, 1, K.sample, _sample),
    # program ops
    OpDef(Op.COPY, 1, lambda xp, x: x, None, lambda v: [v.dy]),
    OpDef(Op.EMBED, 2, K.embed, None,
          lambda v: [v.param_sum(0, v.apply(Op.EMBED_VJP, v.dy, v.x[1], classes=v.classes(1))), None]),
    OpDef(Op.REDUCE_SUM, 1, K.reduce_sum, None, _vjp_reduce(Op.REDUCE_SUM_VJP), context="valid"),
    OpDef(Op.REDUCE_MEAN, 1, K.reduce_mean, None, _vjp_reduce(Op.REDUCE_MEAN_VJP), context="valid"),
    OpDef(Op.REDUCE_MAX, 1, K.reduce_max, None, _vjp_reduce(Op.REDUCE_EXTREME_VJP), context="valid"),
    OpDef(Op.REDUCE_MIN, 1, K.reduce_min, None, _vjp_reduce(Op.REDUCE_EXTREME_VJP), context="valid"),
    OpDef(Op.GATHER, -1, K.gather_step, None, _vjp_gather, attrs=(("from_end", 1), ("offset", 0)),
          context="lengths", doc="x[end+offset] or x[offset]; outside the sequence the optional fill"),
    OpDef(Op.ONEHOT, 1, K.onehot, None, lambda v: [None], attrs=(("classes", None),)),
    OpDef(Op.SLICE, 1, K.slice_last, None, None, attrs=(("start", None), ("stop", None)), ranked=True),
    # backward ops (first order only: they have no VJP of their own)
    *[OpDef(op, n, fn, attrs=attrs, ranked=ranked, context=ctx, out=op in _IN_PLACE)
      for op, n, fn, attrs, ranked, ctx in [
        (Op.TANH_VJP, 2, K.tanh_vjp, (), False, ""),
        (Op.SIGMOID_VJP, 2, K.sigmoid_vjp, (), False, ""),
        (Op.RELU_VJP, 2, K.relu_vjp, (), False, ""),
        (Op.ABS_VJP, 2, K.abs_vjp, (), False, ""),
        (Op.CLIP_VJP, 2, K.clip_vjp, (("lo", None), ("hi", None)), False, ""),
        (Op.MIN_VJP, 2, K.min_vjp, (("c", None),), False, ""),
        (Op.MAX_VJP, 2, K.max_vjp, (("c", None),), False, ""),
        (Op.SOFTMAX_VJP, 2, K.softmax_vjp, (), False, ""),
        (Op.LOG_SOFTMAX_VJP, 2, K.log_softmax_vjp, (), False, ""),
        (Op.CROSS_ENTROPY_VJP, 3, K.cross_entropy_vjp, (), False, ""),
        (Op.MSE_VJP, 3, K.mse_vjp, (), True, ""),
        (Op.CTC_VJP, 3, K.ctc_vjp, (("blank", 0),), False, "seq_lengths"),
        (Op.MATMUL_VJP, 2, K.matmul_vjp, (("side", None), ("ra", None), ("rb", None), ("summed", 0)), False, ""),
        (Op.EMBED_VJP, 2, K.embed_vjp, (("classes", None),), False, ""),
        (Op.RESHAPE_LIKE, 2, K.reshape_like, (), True, ""),
        (Op.CONV2D_VJP_X, 3, K.conv2d_vjp_x, (("stride", 1), ("pad", 0)), False, ""),
        (Op.CONV2D_VJP_W, 3, K.conv2d_vjp_w, (("stride", 1), ("pad", 0), ("summed", 1)), False, ""),
        (Op.MAXPOOL2D_VJP, 3, K.maxpool2d_vjp, (("size", 2), ("stride", 0)), False, ""),
        (Op.REDUCE_SUM_VJP, 2, K.reduce_sum_vjp, (), False, "valid"),
        (Op.REDUCE_MEAN_VJP, 2, K.reduce_mean_vjp, (), False, "valid"),
        (Op.REDUCE_EXTREME_VJP, 3, K.reduce_extreme_vjp, (), False, "valid"),
        (Op.GATHER_VJP, 2, K.gather_vjp, (("from_end", 1), ("offset", 0), ("fill", 0)), False, "lengths"),
    ]],
]}

_RANKS = {                      # ops listed here are not elementwise (fusion must not join them)
    Op.MATMUL: lambda r, a: r[0] + r[1] - 2,
    Op.SOFTMAX: lambda r, a: r[0], Op.LOG_SOFTMAX: lambda r, a: r[0],
    Op.SOFTMAX_VJP: lambda r, a: r[0], Op.LOG_SOFTMAX_VJP: lambda r, a: r[0],
    Op.CONCAT: lambda r, a: r[0], Op.FLATTEN: lambda r, a: 1, Op.CONV2D: lambda r, a: 3,
    Op.CROSS_ENTROPY: lambda r, a: 0, Op.MSE: lambda r, a: 0, Op.CTC: lambda r, a: 0,
    Op.SAMPLE: lambda r, a: 0, Op.EMBED: lambda r, a: 1, Op.ONEHOT: lambda r, a: 1,
    Op.REDUCE_SUM: lambda r, a: r[0], Op.GATHER: lambda r, a: r[0], Op.SLICE: lambda r, a: r[0],
    Op.CROSS_ENTROPY_VJP: lambda r, a: r[0], Op.MSE_VJP: lambda r, a: r[0], Op.CTC_VJP: lambda r, a: 1,
    Op.MATMUL_VJP: lambda r, a: (a["ra"], a["rb"])[int(a["side"])],
    Op.EMBED_VJP: lambda r, a: 2, Op.RESHAPE_LIKE: lambda r, a: r[1], Op.CONV2D_VJP_X: lambda r, a: 3,
    Op.CONV2D_VJP_W: lambda r, a: 4, Op.MAXPOOL2D_VJP: lambda r, a: 3,
    Op.REDUCE_SUM_VJP: lambda r, a: r[1], Op.REDUCE_MEAN_VJP: lambda r, a: r[1],
    Op.REDUCE_EXTREME_VJP: lambda r, a: r[1], Op.GATHER_VJP: lambda r, a: r[1],
}
for _op in (Op.REDUCE_MEAN, Op.REDUCE_MAX, Op.REDUCE_MIN):
    _RANKS[_op] = _RANKS[Op.REDUCE_SUM]


def result_rank(op: Op, ranks: tuple, attrs: dict) -> int:
    """The spec rank of an op's result: elementwise ops broadcast to their largest argument."""
    rule = _RANKS.get(op)
    return rule(ranks, attrs) if rule else max(ranks, default=0)


def elementwise(op: Op) -> bool:
    return op not in _RANKS


SPEC_OPS = [op for op in Op if TABLE[op].shape is not None]
BY_SPELLING = {op.value: op for op in SPEC_OPS if op.value.isidentifier() and op is not Op.NEG}


# ---- where each op is non-smooth --------------------------------------------------------------
# For each op, None or a function of its forward arguments and attrs (as the forward takes them,
# without xp) returning the signed distances of those arguments to the op's kinks: zero at a
# kink, changing sign across one. For ties (max-pooling, max_t, min_t) it is the gap between the
# two largest (smallest) candidates, zero where they tie. Gradient checks keep their finite
# differences from straddling a kink with it. Poles (log, / at 0) are not kinks.

def _gap(values, axis: int):
    """Largest minus second largest along `axis` (inf with a single candidate)."""
    top = np.sort(np.moveaxis(np.asarray(values, np.float64), axis, -1), axis=-1)
    if top.shape[-1] < 2:
        return np.full(top.shape[:-1], np.inf)
    first, second = top[..., -1], top[..., -2]
    return np.where(np.isfinite(second), first - second, np.inf)


def _pool_gap(x, size=2, stride=0):
    win = kernels._windows(np, np.asarray(x, np.float64), int(size), int(size), int(stride or size), 0)
    return [_gap(win.reshape(win.shape[:-2] + (-1,)), -1)]


def _extreme_gap(sign: float):
    """max_t (sign 1) or min_t (-1) of time-major values; padded steps, if marked, never win."""
    def kinks(x, valid=None):
        x = sign * np.asarray(x, np.float64)
        if valid is not None:
            x = np.where(kernels._expand(valid, x), x, -np.inf)
        return [_gap(x, 0)]
    return kinks


_SMOOTH = (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.MATMUL, Op.TANH, Op.SIGMOID, Op.EXP, Op.LOG,
           Op.SOFTPLUS, Op.SOFTMAX, Op.LOG_SOFTMAX, Op.CONCAT, Op.FLATTEN, Op.CONV2D, Op.CROSS_ENTROPY,
           Op.MSE, Op.CTC, Op.COPY, Op.EMBED, Op.REDUCE_SUM, Op.REDUCE_MEAN, Op.GATHER, Op.SLICE, Op.ONEHOT)
# ops without a VJP (sample, the backward ops: first order only) are never differentiated
_UNDIFFERENTIATED = tuple(op for op in Op if TABLE[op].vjp is None)

KINKS: dict[Op, Callable | None] = {
    **{op: None for op in _SMOOTH + _UNDIFFERENTIATED},
    Op.RELU: lambda x: [x],
    Op.ABS: lambda x: [x],
    Op.CLIP: lambda x, lo, hi: [np.subtract(x, lo), np.subtract(x, hi)],
    Op.MIN: lambda x, c: [np.subtract(x, c)],
    Op.MAX: lambda x, c: [np.subtract(x, c)],
    Op.MAXPOOL2D: _pool_gap,
    Op.REDUCE_MAX: _extreme_gap(1.0),
    Op.REDUCE_MIN: _extreme_gap(-1.0),
}
