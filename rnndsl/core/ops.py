"""The op table: for each op, everything about it, written once (TABLE).

An entry (OpDef) holds the op's shape rule (rnndsl/core/shapes.py), the rank of its result,
its category (as TVM's op patterns: elementwise ops are what a fuser joins), its forward
formula, its VJP rule, where it is non-smooth (rnndsl/core/kinks.py), whether its forward
writes into out=, and for an elementwise op its scalar template (rnndsl/core/templates.py),
from which the NumPy function, the NumPy ufunc an emitter may call directly, the
numba and the C/CUDA forms are all rendered (rnndsl/core/scalar.py, scalar_numpy.py).

Forward formulas are batch-polymorphic NumPy-style functions of an array module `xp`: the
trailing axes of every argument are the spec's shape, any leading axes are batch (and time),
so the reference interpreter calls them on single examples and emitted code calls them on
whole batches. Scalars are aligned to the result's rank by the caller. Value types (Dim, Kind,
Type, ...) are defined in rnndsl/core/types.py and importable from here.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

from . import kernels as K
from . import kinks, shapes
from .scalar import Template, ufunc
from .templates import TEMPLATES
from .types import SCALAR, Dim, Kind, ShapeError, Type, floats  # noqa: F401  (the table's vocabulary)


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
    SOFTMAX_OVER = "softmax_<axis>"     # softmax_s(e[t, s]): over the steps of an inner axis
    DROPOUT = "dropout"                 # the checker makes it a product with a mask (frontend/noise.py)
    MASK_STEPS = "mask_steps"           # SpecAugment's time and frequency masks: products with masks too
    MASK_BAND = "mask_band"
    SQRT = "sqrt"
    POW = "pow"
    SUM = "sum"                        # of a vector's entries (over time: sum_t, a Reduce)
    MEAN = "mean"
    MAX_OF = "max(x)"                  # max(x) of one argument: spelt max, as max(x, c)
    MIN_OF = "min(x)"
    LAYER_NORM = "layer_norm"
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
    SUM_INNER = "sum_inner"            # the adjoint of a value broadcast over an inner axis
    # backward ops, introduced by VJP rules
    TANH_VJP = "tanh_vjp"
    SIGMOID_VJP = "sigmoid_vjp"
    RELU_VJP = "relu_vjp"
    ABS_VJP = "abs_vjp"
    CLIP_VJP = "clip_vjp"
    MIN_VJP = "min_vjp"
    MAX_VJP = "max_vjp"
    SOFTMAX_VJP = "softmax_vjp"
    SOFTMAX_OVER_VJP = "softmax_over_vjp"
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
    SQRT_VJP = "sqrt_vjp"
    POW_VJP = "pow_vjp"
    SUM_VJP = "sum_vjp"
    MEAN_VJP = "mean_vjp"
    EXTREME_OF_VJP = "extreme_of_vjp"
    LAYER_NORM_VJP = "layer_norm_vjp"
    SLICE_VJP = "slice_vjp"


class Category(enum.Enum):
    """What an op does to its elements (TVM's op patterns), for fusion and kernel backends."""
    ELEMENTWISE = "elementwise"    # each result element from the same element of each argument
    REDUCTION = "reduction"        # over an axis: time (reduce_*), classes or features (losses)
    CONTRACTION = "contraction"    # products: matmul, conv2d and their adjoints (GEMMs)
    INJECTIVE = "injective"        # data movement: slice, concat, gather, copy, flatten, broadcast
    OPAQUE = "opaque"              # anything else (softmax, ctc, pooling, sampling, scatters)


@dataclass(frozen=True)
class OpDef:
    op: Op
    arity: int                    # array arguments; -1 for any number (concat)
    forward: Callable             # (xp, *arrays, **attrs) -> array
    category: Category
    shape: Callable | None = None  # (arg types, attrs) -> Type, or raise ShapeError; None: internal
    vjp: Callable | None = None   # (VJP context) -> one adjoint per argument (None: no gradient)
    attrs: tuple = ()             # constant arguments: (name, default or None if required)
    ranked: bool = False          # forward also takes ranks=(spec rank of each argument)
    context: str = ""             # "valid" or "lengths" of its sequence argument's axis, or
                                  # "seq_lengths": the lengths of every sequence argument's axis
    rank: Callable | None = None  # (arg ranks, attrs) -> result rank; None: elementwise (the max)
    kinks: Callable | None = None  # where it is non-smooth (kinks.py); None: smooth
    out: bool = False             # forward takes out= (writes into a preallocated slot)
    scalar: Template | None = None   # an elementwise op's formula for one element (templates.py)
    doc: str = ""
    ufunc: str = field(init=False, default="")   # a NumPy ufunc computing it in one call, with
                                                 # out= (attrs follow the arrays): from `scalar`

    def __post_init__(self):
        if (self.category is Category.ELEMENTWISE) != (self.scalar is not None) or \
                (self.rank is None) != (self.category is Category.ELEMENTWISE):
            raise ValueError(f"{self.op}: an op is elementwise exactly when it has a scalar template "
                             "and no rank rule of its own")
        object.__setattr__(self, "ufunc", ufunc(self.scalar) if self.scalar else "")


def _elementwise(op: Op, shape=None, vjp=None, kink=None) -> OpDef:
    """An op computed element by element: its template gives its arguments, attributes and
    NumPy function (which writes into out=)."""
    name = op.name.lower()
    t = TEMPLATES[name]
    return OpDef(op, len(t.args), K.DERIVED[name], Category.ELEMENTWISE, shape, vjp,
                 attrs=tuple((a, None) for a in t.attrs), kinks=kink, out=True, scalar=t)


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


def _vjp_of(grad_op: Op):
    """sum, mean, max, min of a vector's entries."""
    def rule(v):
        extra = (v.y,) if grad_op is Op.EXTREME_OF_VJP else ()
        return [v.apply(grad_op, v.dy, v.x[0], *extra)]
    return rule


def _fixed(rank: int):
    return lambda r, a: rank


def _first(r, a):
    return r[0]


def _less(r, a):
    return r[0] - 1


def _second(r, a):
    return r[1]


E, R, C, I, X = (Category.ELEMENTWISE, Category.REDUCTION, Category.CONTRACTION, Category.INJECTIVE,
                 Category.OPAQUE)
_CE_VJP = lambda v: [v.apply(Op.CROSS_ENTROPY_VJP, v.x[0], v.x[1], v.dy), None]

TABLE: dict[Op, OpDef] = {d.op: d for d in [
    _elementwise(Op.ADD, shapes.same("+"), lambda v: [v.dy, v.dy]),
    _elementwise(Op.SUB, shapes.same("-"), lambda v: [v.dy, v.apply(Op.NEG, v.dy)]),
    _elementwise(Op.MUL, shapes.same("*"), lambda v: [v.apply(Op.MUL, v.dy, v.x[1]), v.apply(Op.MUL, v.dy, v.x[0])]),
    _elementwise(Op.DIV, shapes.same("/"), _vjp_div),
    _elementwise(Op.NEG, shapes.unary, lambda v: [v.apply(Op.NEG, v.dy)]),
    OpDef(Op.MATMUL, 2, K.matmul, C, shapes.matmul, _vjp_matmul, ranked=True, rank=lambda r, a: r[0] + r[1] - 2,
          doc="[m,n] @ [n] -> [m]; also [n] @ [n,m] -> [m], [m,n] @ [n,k] -> [m,k], [n] @ [n] -> []"),
    _elementwise(Op.TANH, shapes.unary, _vjp_unary(Op.TANH_VJP)),
    _elementwise(Op.SIGMOID, shapes.unary, _vjp_unary(Op.SIGMOID_VJP)),
    _elementwise(Op.RELU, shapes.unary, _vjp_unary(Op.RELU_VJP), kinks.at_zero),
    _elementwise(Op.EXP, shapes.unary, lambda v: [v.apply(Op.MUL, v.dy, v.y)]),
    _elementwise(Op.LOG, shapes.unary, lambda v: [v.apply(Op.DIV, v.dy, v.x[0])]),
    _elementwise(Op.SOFTPLUS, shapes.unary, lambda v: [v.apply(Op.MUL, v.dy, v.apply(Op.SIGMOID, v.x[0]))]),
    _elementwise(Op.ABS, shapes.unary, _vjp_unary(Op.ABS_VJP, of_output=False), kinks.at_zero),
    _elementwise(Op.CLIP, shapes.unary, _vjp_unary(Op.CLIP_VJP, of_output=False), kinks.at_bounds),
    _elementwise(Op.MIN, shapes.unary, _vjp_unary(Op.MIN_VJP, of_output=False), kinks.at_constant),
    _elementwise(Op.MAX, shapes.unary, _vjp_unary(Op.MAX_VJP, of_output=False), kinks.at_constant),
    OpDef(Op.SOFTMAX, 1, K.softmax, X, shapes.vector, _vjp_unary(Op.SOFTMAX_VJP), rank=_first),
    OpDef(Op.LOG_SOFTMAX, 1, K.log_softmax, X, shapes.vector, _vjp_unary(Op.LOG_SOFTMAX_VJP), rank=_first),
    OpDef(Op.CONCAT, -1, K.concat, I, shapes.concat, _vjp_concat, ranked=True, rank=_first),
    OpDef(Op.FLATTEN, 1, K.flatten, I, shapes.flatten, lambda v: [v.apply(Op.RESHAPE_LIKE, v.dy, v.x[0])],
          ranked=True, rank=_fixed(1)),
    OpDef(Op.CONV2D, 2, K.conv2d, C, shapes.conv2d, _vjp_conv2d, attrs=(("stride", 1), ("pad", 0)), rank=_fixed(3)),
    OpDef(Op.MAXPOOL2D, 1, K.maxpool2d, X, shapes.maxpool2d,
          lambda v: [v.apply(Op.MAXPOOL2D_VJP, v.x[0], v.y, v.dy, **v.attrs)], attrs=(("size", 2), ("stride", 0)),
          rank=_fixed(3), kinks=kinks.pool_gap),
    OpDef(Op.CROSS_ENTROPY, 2, K.cross_entropy, R, shapes.cross_entropy, _CE_VJP, rank=_fixed(0)),
    OpDef(Op.MSE, 2, K.mse, R, shapes.mse, _vjp_mse, ranked=True, rank=_fixed(0)),
    OpDef(Op.CTC, 2, K.ctc, X, shapes.ctc, lambda v: [v.apply(Op.CTC_VJP, v.x[0], v.x[1], v.dy, **v.attrs), None],
          attrs=(("blank", 0),), context="seq_lengths", rank=_fixed(0), doc="whole sequences: ctc(y, labels, blank=0)"),
    OpDef(Op.SAMPLE, 1, K.sample, X, shapes.sample, rank=_fixed(0)),
    OpDef(Op.DROPOUT, 1, K.dropout_off, X, shapes.dropout, attrs=(("p", None), ("same", 0)), rank=_first,
          doc="dropout(x, p, same=0): x * mask; rewritten into a product with a mask input"),
    OpDef(Op.MASK_STEPS, 1, K.mask_off, X, shapes.mask_steps, attrs=(("width", None), ("n", 1)), rank=_first,
          doc="mask_steps(x, width, n=1): while training, n runs of up to width steps zeroed"),
    OpDef(Op.MASK_BAND, 1, K.mask_off, X, shapes.mask_band, attrs=(("width", None), ("n", 1)), rank=_first,
          doc="mask_band(x, width, n=1): while training, n runs of up to width entries zeroed"),
    OpDef(Op.SOFTMAX_OVER, 1, K.softmax_over, X, shapes.unary, _vjp_unary(Op.SOFTMAX_OVER_VJP), context="valid",
          rank=_first, doc="softmax_s(e[t, s]): over the steps of s, each example over its own"),
    _elementwise(Op.SQRT, shapes.unary, _vjp_unary(Op.SQRT_VJP)),
    _elementwise(Op.POW, shapes.unary, _vjp_unary(Op.POW_VJP, of_output=False)),
    *[OpDef(op, 1, fn, R, shapes.last_axis, _vjp_of(grad), rank=_less, kinks=kink, doc=doc)
      for op, fn, grad, kink, doc in [
        (Op.SUM, K.sum_last, Op.SUM_VJP, None, "sum(x): of x's entries, [n] -> [], [m, n] -> [m]"),
        (Op.MEAN, K.mean_last, Op.MEAN_VJP, None, "mean(x): of x's entries"),
        (Op.MAX_OF, K.max_last, Op.EXTREME_OF_VJP, kinks.last_gap(1.0), "max(x): x's largest entry"),
        (Op.MIN_OF, K.min_last, Op.EXTREME_OF_VJP, kinks.last_gap(-1.0), "min(x): x's smallest entry")]],
    OpDef(Op.LAYER_NORM, 1, K.layer_norm, X, shapes.vector,
          lambda v: [v.apply(Op.LAYER_NORM_VJP, v.x[0], v.dy, **v.attrs)], attrs=(("eps", 1e-5),), rank=_first,
          doc="(x - mean) / sqrt(var + eps) over the last axis"),
    # program ops
    OpDef(Op.COPY, 1, lambda xp, x: x, I, None, lambda v: [v.dy], rank=_first),
    OpDef(Op.EMBED, 2, K.embed, I, None,
          lambda v: [v.param_sum(0, v.apply(Op.EMBED_VJP, v.dy, v.x[1], classes=v.classes(1))), None], rank=_fixed(1)),
    *[OpDef(op, 1, fn, R, None, _vjp_reduce(grad), context="valid", rank=_first, kinks=kink)
      for op, fn, grad, kink in [
        (Op.REDUCE_SUM, K.reduce_sum, Op.REDUCE_SUM_VJP, None),
        (Op.REDUCE_MEAN, K.reduce_mean, Op.REDUCE_MEAN_VJP, None),
        (Op.REDUCE_MAX, K.reduce_max, Op.REDUCE_EXTREME_VJP, kinks.extreme_gap(1.0)),
        (Op.REDUCE_MIN, K.reduce_min, Op.REDUCE_EXTREME_VJP, kinks.extreme_gap(-1.0))]],
    OpDef(Op.GATHER, -1, K.gather_step, I, None, _vjp_gather, attrs=(("from_end", 1), ("offset", 0)),
          context="lengths", rank=_first, doc="x[end+offset] or x[offset]; outside the sequence the optional fill"),
    OpDef(Op.ONEHOT, 1, K.onehot, I, None, lambda v: [None], attrs=(("classes", None),), rank=_fixed(1)),
    OpDef(Op.SUM_INNER, 1, K.sum_inner, R, None, None, rank=_first),
    OpDef(Op.SLICE, 1, K.slice_last, I, shapes.slice_vector,
          lambda v: [v.apply(Op.SLICE_VJP, v.dy, v.x[0], **v.attrs)], attrs=(("start", None), ("stop", None)),
          ranked=True, rank=_first, doc="slice(x, start, stop); also a part of a fused buffer"),
    # backward ops (first order only: they have no VJP of their own)
    *[_elementwise(op) for op in (Op.TANH_VJP, Op.SIGMOID_VJP, Op.RELU_VJP, Op.ABS_VJP, Op.CLIP_VJP,
                                  Op.MIN_VJP, Op.MAX_VJP, Op.SQRT_VJP, Op.POW_VJP)],
    *[OpDef(op, n, fn, category, attrs=attrs, ranked=ranked, context=ctx, rank=rank)
      for op, n, fn, category, attrs, ranked, ctx, rank in [
        (Op.SOFTMAX_VJP, 2, K.softmax_vjp, X, (), False, "", _first),
        (Op.SOFTMAX_OVER_VJP, 2, K.softmax_over_vjp, X, (), False, "valid", _first),
        (Op.LOG_SOFTMAX_VJP, 2, K.log_softmax_vjp, X, (), False, "", _first),
        (Op.CROSS_ENTROPY_VJP, 3, K.cross_entropy_vjp, X, (), False, "", _first),
        (Op.MSE_VJP, 3, K.mse_vjp, X, (), True, "", _first),
        (Op.CTC_VJP, 3, K.ctc_vjp, X, (("blank", 0),), False, "seq_lengths", _fixed(1)),
        (Op.MATMUL_VJP, 2, K.matmul_vjp, C, (("side", None), ("ra", None), ("rb", None), ("summed", 0)), False, "",
         lambda r, a: (a["ra"], a["rb"])[int(a["side"])]),
        (Op.EMBED_VJP, 2, K.embed_vjp, X, (("classes", None),), False, "", _fixed(2)),
        (Op.RESHAPE_LIKE, 2, K.reshape_like, I, (), True, "", _second),
        (Op.CONV2D_VJP_X, 3, K.conv2d_vjp_x, C, (("stride", 1), ("pad", 0)), False, "", _fixed(3)),
        (Op.CONV2D_VJP_W, 3, K.conv2d_vjp_w, C, (("stride", 1), ("pad", 0), ("summed", 1)), False, "", _fixed(4)),
        (Op.MAXPOOL2D_VJP, 3, K.maxpool2d_vjp, X, (("size", 2), ("stride", 0)), False, "", _fixed(3)),
        (Op.REDUCE_SUM_VJP, 2, K.reduce_sum_vjp, I, (), False, "valid", _second),
        (Op.REDUCE_MEAN_VJP, 2, K.reduce_mean_vjp, I, (), False, "valid", _second),
        (Op.REDUCE_EXTREME_VJP, 3, K.reduce_extreme_vjp, X, (), False, "valid", _second),
        (Op.GATHER_VJP, 2, K.gather_vjp, I, (("from_end", 1), ("offset", 0), ("fill", 0)), False, "lengths", _second),
        (Op.SUM_VJP, 2, K.sum_last_vjp, I, (), False, "", _second),
        (Op.MEAN_VJP, 2, K.mean_last_vjp, I, (), False, "", _second),
        (Op.EXTREME_OF_VJP, 3, K.extreme_last_vjp, X, (), False, "", _second),
        (Op.LAYER_NORM_VJP, 2, K.layer_norm_vjp, X, (("eps", 1e-5),), False, "", _first),
        (Op.SLICE_VJP, 2, K.slice_vjp, I, (("start", None), ("stop", None)), True, "", _second),
    ]],
]}


def result_rank(op: Op, ranks: tuple, attrs: dict) -> int:
    """The spec rank of an op's result: elementwise ops broadcast to their largest argument."""
    rule = TABLE[op].rank
    return rule(ranks, attrs) if rule else max(ranks, default=0)


def elementwise(op: Op) -> bool:
    return TABLE[op].category is Category.ELEMENTWISE


SPEC_OPS = [op for op in Op if TABLE[op].shape is not None]
BY_SPELLING = {op.value: op for op in SPEC_OPS if op.value.isidentifier() and op is not Op.NEG}
KINKS: dict[Op, Callable | None] = {op: d.kinks for op, d in TABLE.items()}   # for gradient checks
