"""Arguments for the ops, for tests/test_op_oracles.py: for each op a hypothesis strategy of
its arguments (CASES) as emitted code passes them, with batch axes, spec ranks, attributes,
parameters (no batch axes), sequence lengths and values at several scales."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rnndsl.core.ops import Op


@dataclass(frozen=True)
class Case:
    """An op's arguments as emitted code passes them: leading axes are batch (and time)."""
    args: tuple
    ranks: tuple                     # spec rank of each argument
    attrs: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)   # valid= or lengths=, as the emitter passes them
    params: frozenset = frozenset()  # arguments that are parameters: no batch axes
    diff: tuple = ()                 # arguments the VJP checks differentiate
    classes: int = 0

    def with_args(self, args) -> "Case":
        return replace(self, args=tuple(args))


# ---- drawing arguments ---------------------------------------------------------------------------
# mode "any": any floats in range (ties, zeros, the ends); "generic": distinct random values off
# the op's kinks (for gradients); "smooth": generic and moderate (for central differences)

LEAD = st.lists(st.integers(1, 3), max_size=2).map(tuple)
SCALES = [(-1.0, 1.0), (-10.0, 10.0), (-1e3, 1e3), (1e4 - 3, 1e4 + 3), (-1e4 - 3, -1e4 + 3)]


def _shape(draw, rank: int, lo: int = 1, hi: int = 4) -> tuple:
    return tuple(draw(st.lists(st.integers(lo, hi), min_size=rank, max_size=rank)))


def _values(draw, shape: tuple, lo: float, hi: float, mode: str, kinks=()) -> np.ndarray:
    if mode == "any":
        return draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False)))
    if mode == "smooth":
        lo, hi = (max(lo, 0.1), min(hi, 20.0)) if lo > 0 else (max(lo, -20.0), min(hi, 20.0))
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(lo, hi, shape)
    for k in kinks:
        x = np.where(np.abs(x - k) < 1e-3, k + 2e-3, x)
    return x


def _scaled(draw, shape: tuple, mode: str) -> np.ndarray:
    """Scores at several scales and far from zero: the stability of softmax-like ops."""
    lo, hi = draw(st.sampled_from(SCALES[:2] if mode == "smooth" else SCALES))
    return _values(draw, shape, lo, hi, mode)


UNARY = {Op.NEG: (-1e3, 1e3), Op.TANH: (-40, 40), Op.SIGMOID: (-800, 800), Op.RELU: (-1e3, 1e3),
         Op.EXP: (-700, 700), Op.LOG: (1e-6, 1e6), Op.SOFTPLUS: (-800, 800), Op.ABS: (-1e3, 1e3),
         Op.COPY: (-1e3, 1e3), Op.CLIP: (-10, 10), Op.MIN: (-10, 10), Op.MAX: (-10, 10),
         Op.SQRT: (1e-6, 1e6), Op.POW: (1e-2, 1e2)}
POWERS = [2.0, 3.0, 0.5, -1.0, 1.5, -0.5]


@st.composite
def _unary(draw, mode, op):
    attrs = {}
    if op is Op.CLIP:
        lo = draw(st.floats(-5, 5))
        attrs = {"lo": lo, "hi": lo + draw(st.floats(0.1, 5))}
    elif op in (Op.MIN, Op.MAX):
        attrs = {"c": draw(st.floats(-5, 5))}
    elif op is Op.POW:
        attrs = {"p": draw(st.sampled_from(POWERS))}
    kinks = ([] if op is Op.POW else list(attrs.values())) + ([0.0] if op in (Op.RELU, Op.ABS) else [])
    spec = _shape(draw, draw(st.integers(0, 2)))
    x = _values(draw, draw(LEAD) + spec, *UNARY[op], mode, kinks)
    return Case((x,), (len(spec),), attrs, diff=(0,))


def _away_from_zero(x):
    return np.where(np.abs(x) < 0.1, 0.5, x)


@st.composite
def _binary(draw, mode, op):
    """Same shapes, a parameter (no batch axes), a scalar variable, or a numeric constant."""
    lead, spec = draw(LEAD), _shape(draw, draw(st.integers(0, 2)))
    a = _away_from_zero(_values(draw, lead + spec, -100, 100, mode))
    form = draw(st.sampled_from(["same", "param", "scalar", "constant"]))
    b_shape, b_rank = {"param": (spec, len(spec)), "scalar": (lead, 0)}.get(form, (lead + spec, len(spec)))
    b = _away_from_zero(_values(draw, b_shape, -100, 100, mode))
    if form == "constant":
        c = float(_away_from_zero(np.array(draw(st.floats(-100, 100)))))
        swap = draw(st.booleans())
        return Case((c, a) if swap else (a, c), (0, len(spec)) if swap else (len(spec), 0), diff=(int(swap),))
    return Case((a, b), (len(spec), b_rank), params=frozenset({1} if form == "param" else ()), diff=(0, 1))


@st.composite
def _matmul(draw, mode):
    ra, rb = draw(st.sampled_from([(2, 1), (1, 2), (2, 2), (1, 1)]))
    m, n, k = _shape(draw, 3)
    lead, params = draw(LEAD), frozenset(i for i in (0, 1) if draw(st.booleans()))
    shapes = ((m, n) if ra == 2 else (n,), (n, k) if rb == 2 else (n,))
    a, b = (_values(draw, s if i in params else lead + s, -10, 10, mode) for i, s in enumerate(shapes))
    return Case((a, b), (ra, rb), params=params, diff=(0, 1))


@st.composite
def _rows(draw, mode, op):
    """softmax, log_softmax: over the last axis of a vector or matrix."""
    spec = _shape(draw, draw(st.integers(1, 2)), hi=5)
    return Case((_scaled(draw, draw(LEAD) + spec, mode),), (len(spec),), diff=(0,))


@st.composite
def _entries(draw, mode, op):
    """sum, mean, max, min and layer_norm: over the last axis of a vector or matrix; at
    several scales, and with a row of equal entries (layer_norm's variance 0) in "any"."""
    spec = _shape(draw, draw(st.integers(1, 2)), hi=5)
    x = _scaled(draw, draw(LEAD) + spec, mode)
    if mode == "any" and draw(st.booleans()):
        x[..., :] = x[..., :1]
    attrs = {"eps": draw(st.sampled_from([1e-5, 1e-3, 0.1]))} if op is Op.LAYER_NORM else {}
    return Case((x,), (len(spec),), attrs, diff=(0,))


@st.composite
def _concat(draw, mode):
    rank, lead = draw(st.integers(1, 2)), draw(LEAD)
    rest, parts, params = _shape(draw, rank - 1, hi=3), [], set()
    for i in range(draw(st.integers(1, 3))):
        spec = (draw(st.integers(1, 3)),) + rest
        if draw(st.booleans()):
            params.add(i)
        parts.append(_values(draw, spec if i in params else lead + spec, -10, 10, mode))
    return Case(tuple(parts), (rank,) * len(parts), params=frozenset(params), diff=tuple(range(len(parts))))


@st.composite
def _flatten(draw, mode):
    spec = _shape(draw, draw(st.integers(1, 3)), hi=3)
    return Case((_values(draw, draw(LEAD) + spec, -10, 10, mode),), (len(spec),), diff=(0,))


@st.composite
def _conv2d(draw, mode):
    stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    (c, o), (h, w) = _shape(draw, 2, hi=2), _shape(draw, 2, hi=5)
    kh, kw = draw(st.integers(1, min(3, h + 2 * pad))), draw(st.integers(1, min(3, w + 2 * pad)))
    lead, param = draw(LEAD), draw(st.booleans())
    x = _values(draw, lead + (c, h, w), -10, 10, mode)
    f = _values(draw, (() if param else lead) + (o, c, kh, kw), -10, 10, mode)
    return Case((x, f), (3, 4), {"stride": stride, "pad": pad}, params=frozenset({1} if param else ()),
                diff=(0, 1))


@st.composite
def _maxpool2d(draw, mode):
    size, stride = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    spec = (draw(st.integers(1, 2)),) + _shape(draw, 2, lo=size, hi=5)
    x = _values(draw, draw(LEAD) + spec, -10, 10, mode)
    return Case((x,), (3,), {"size": size, "stride": stride}, diff=(0,))


@st.composite
def _cross_entropy(draw, mode):
    k, lead = draw(st.integers(1, 5)), draw(LEAD)
    y = _scaled(draw, lead + (k,), mode)
    if draw(st.booleans()):                                  # a distribution, as from onehot
        return Case((y, _values(draw, lead + (k,), 0, 1, mode)), (1, 1), diff=(0,))
    target = draw(hnp.arrays(np.int64, lead, elements=st.integers(-1, k - 1)))
    return Case((y, target), (1, 0), diff=(0,))


@st.composite
def _mse(draw, mode):
    lead, spec = draw(LEAD), _shape(draw, draw(st.integers(0, 2)))
    y, target = (_values(draw, lead + spec, -10, 10, mode) for _ in range(2))
    return Case((y, target), (len(spec), len(spec)), diff=(0, 1))


def _frames_needed(labels) -> int:
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


@st.composite
def _ctc(draw, mode):
    """Labels that fit their frames (a repeated label needs a blank between)."""
    k, b, u = draw(st.integers(2, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    blank = draw(st.integers(0, k - 1))
    labels = np.array(draw(st.lists(st.lists(st.sampled_from([c for c in range(k) if c != blank]),
                                             min_size=b, max_size=b), min_size=u, max_size=u)))
    label_len = np.array([draw(st.integers(0, u)) for _ in range(b)])
    need = [_frames_needed(list(labels[:n, i])) for i, n in enumerate(label_len)]
    frames = draw(st.integers(max([1] + need), 4))
    y_len = np.array([draw(st.integers(max(1, n), frames)) for n in need])
    y = _scaled(draw, (frames, b, k), mode)
    return Case((y, labels), (1, 0), {"blank": blank}, {"lengths": (y_len, label_len)}, diff=(0,))


@st.composite
def _embed(draw, mode):
    m, classes = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    idx = draw(hnp.arrays(np.int64, draw(LEAD), elements=st.integers(-1, classes - 1)))
    return Case((_values(draw, (m, classes), -10, 10, mode), idx), (2, 0), params=frozenset({0}),
                diff=(0,), classes=classes)


def _lengths(draw, steps: int, batch: int) -> np.ndarray:
    return np.array([draw(st.integers(1, steps)) for _ in range(batch)])


@st.composite
def _reduce(draw, mode, op):
    steps, batch, spec = draw(st.integers(1, 4)), draw(st.integers(1, 3)), _shape(draw, draw(st.integers(0, 2)))
    valid = np.arange(steps)[:, None] < _lengths(draw, steps, batch)[None, :]
    x = _values(draw, (steps, batch) + spec, -10, 10, mode)
    return Case((x,), (len(spec),), context={"valid": valid}, diff=(0,))


@st.composite
def _gather(draw, mode):
    steps, batch, spec = draw(st.integers(1, 4)), draw(st.integers(1, 3)), _shape(draw, draw(st.integers(0, 2)))
    args = [_values(draw, (steps, batch) + spec, -10, 10, mode)]
    if draw(st.booleans()):
        args.append(_values(draw, (batch,) + spec, -10, 10, mode))
    attrs = {"from_end": draw(st.integers(0, 1)), "offset": draw(st.integers(-steps - 1, steps))}
    return Case(tuple(args), (len(spec),) * len(args), attrs, {"lengths": _lengths(draw, steps, batch)},
                diff=tuple(range(len(args))))


@st.composite
def _onehot(draw, mode):
    classes = draw(st.integers(1, 5))
    idx = draw(hnp.arrays(np.int64, draw(LEAD) + (1,), elements=st.integers(-1, classes - 1)))
    return Case((idx,), (0,), {"classes": classes})


@st.composite
def _slice(draw, mode):
    spec = _shape(draw, draw(st.integers(1, 2)))
    start = draw(st.integers(0, spec[0] - 1))
    attrs = {"start": start, "stop": draw(st.integers(start + 1, spec[0]))}
    return Case((_values(draw, draw(LEAD) + spec, -10, 10, mode),), (len(spec),), attrs, diff=(0,))


def _bind(strategy, *extra):
    return lambda mode: strategy(mode, *extra)


CASES = {**{op: _bind(_unary, op) for op in UNARY},
         **{op: _bind(_binary, op) for op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV)},
         **{op: _bind(_rows, op) for op in (Op.SOFTMAX, Op.LOG_SOFTMAX)},
         **{op: _bind(_reduce, op) for op in (Op.REDUCE_SUM, Op.REDUCE_MEAN, Op.REDUCE_MAX, Op.REDUCE_MIN,
                                              Op.SOFTMAX_OVER, Op.SUM_INNER)},
         **{op: _bind(_entries, op) for op in (Op.SUM, Op.MEAN, Op.MAX_OF, Op.MIN_OF, Op.LAYER_NORM)},
         Op.MATMUL: _matmul, Op.CONCAT: _concat, Op.FLATTEN: _flatten, Op.CONV2D: _conv2d,
         Op.MAXPOOL2D: _maxpool2d, Op.CROSS_ENTROPY: _cross_entropy, Op.MSE: _mse, Op.CTC: _ctc,
         Op.EMBED: _embed, Op.GATHER: _gather, Op.ONEHOT: _onehot, Op.SLICE: _slice}
