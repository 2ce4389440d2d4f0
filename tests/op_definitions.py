"""Independent definitions of the ops, for tests/test_op_oracles.py: a scalar definition of
each op written with Python floats and `math`, one element, row, window or alignment at a time
(SCALAR), and where torch has the op, torch's version (TORCH). Both take a Case (op_cases.py);
nothing here calls rnndsl's formulas."""
from __future__ import annotations

import itertools
import math
import operator

import numpy as np

from rnndsl.core.ops import Op


def _aligned(case) -> list:
    """Arguments of an elementwise op with lower spec ranks aligned (a scalar broadcasts)."""
    top = max(case.ranks)
    return [a[(...,) + (None,) * (top - r)] if isinstance(a, np.ndarray) and r < top else a
            for a, r in zip(case.args, case.ranks)]


def each(f, *args) -> np.ndarray:
    """f on Python floats, element by element, over the broadcast arguments."""
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in args])
    out = np.empty(arrays[0].shape)
    for i in np.ndindex(out.shape):
        out[i] = f(*(float(a[i]) for a in arrays))
    return out


def _leads(x, rank: int):
    return np.ndindex(np.shape(x)[:np.ndim(x) - rank])


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def softplus(v: float) -> float:
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


def log_softmax_row(row: list) -> list:
    top = max(row)
    log_total = math.log(math.fsum(math.exp(v - top) for v in row))
    return [v - top - log_total for v in row]


def softmax_row(row: list) -> list:
    return [math.exp(v) for v in log_softmax_row(row)]


def _rows(f, x) -> np.ndarray:
    out = np.empty(x.shape)
    for i in np.ndindex(x.shape[:-1]):
        out[i] = f([float(v) for v in x[i]])
    return out


def _logsumexp(values: list) -> float:
    top = max(values, default=-math.inf)
    return top + math.log(math.fsum(math.exp(v - top) for v in values)) if top > -math.inf else -math.inf


# ---- scalar definitions ---------------------------------------------------------------------------

UNARY = {Op.NEG: operator.neg, Op.TANH: math.tanh, Op.SIGMOID: sigmoid, Op.RELU: lambda v: max(v, 0.0),
         Op.EXP: math.exp, Op.LOG: math.log, Op.SOFTPLUS: softplus, Op.ABS: abs, Op.COPY: lambda v: v,
         Op.SQRT: math.sqrt}
BINARY = {Op.ADD: operator.add, Op.SUB: operator.sub, Op.MUL: operator.mul, Op.DIV: operator.truediv}


def _unary(op):
    return lambda c: each(UNARY[op], c.args[0])


def _binary(op):
    return lambda c: each(BINARY[op], *_aligned(c))


def _matmul(c) -> np.ndarray:
    """sum_n a[m, n] b[n, k], a vector being a one-row (a) or one-column (b) matrix."""
    (a, b), (ra, rb) = c.args, c.ranks
    lead = np.broadcast_shapes(a.shape[:a.ndim - ra], b.shape[:b.ndim - rb])
    a2 = np.broadcast_to(a, lead + a.shape[a.ndim - ra:])
    b2 = np.broadcast_to(b, lead + b.shape[b.ndim - rb:])
    a2 = a2 if ra == 2 else a2[..., None, :]
    b2 = b2 if rb == 2 else b2[..., :, None]
    m, n, k = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    out = np.empty(lead + (m, k))
    for i in np.ndindex(lead):
        for r, s in itertools.product(range(m), range(k)):
            out[i + (r, s)] = math.fsum(float(a2[i + (r, j)]) * float(b2[i + (j, s)]) for j in range(n))
    out = out if rb == 2 else out[..., 0]
    return out if ra == 2 else out[..., 0, :] if rb == 2 else out[..., 0]


def _concat(c) -> np.ndarray:
    rank = c.ranks[0]
    lead = np.broadcast_shapes(*[p.shape[:p.ndim - rank] for p in c.args])
    rest = c.args[0].shape[c.args[0].ndim - rank + 1:]
    out = np.empty(lead + (sum(p.shape[p.ndim - rank] for p in c.args),) + rest)
    row = 0
    for p in c.args:
        p = np.broadcast_to(p, lead + p.shape[p.ndim - rank:])
        for j in range(p.shape[len(lead)]):
            out[(Ellipsis, row) + (slice(None),) * (rank - 1)] = p[(Ellipsis, j) + (slice(None),) * (rank - 1)]
            row += 1
    return out


def _flatten(c) -> np.ndarray:
    x, rank = c.args[0], c.ranks[0]
    spec = x.shape[x.ndim - rank:]
    out = np.empty(x.shape[:x.ndim - rank] + (math.prod(spec),))
    for i in _leads(x, rank):
        for j, s in enumerate(itertools.product(*map(range, spec))):
            out[i + (j,)] = x[i + s]
    return out


def _conv2d(c) -> np.ndarray:
    """out[o, r, s] = sum over c, i, j of x[c, r*stride + i - pad, s*stride + j - pad] w[o, c, i, j]."""
    (x, w), stride, pad = c.args, c.attrs["stride"], c.attrs["pad"]
    lead = x.shape[:-3]
    (ch, h, wd), (o, _, kh, kw) = x.shape[-3:], w.shape[-4:]
    w = np.broadcast_to(w, lead + w.shape[-4:])
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1

    def pixel(i, q, r, s):
        terms = [float(x[i + (z, y, v)]) * float(w[i + (q, z, a, b)])
                 for z, a, b in itertools.product(range(ch), range(kh), range(kw))
                 for y, v in [(r * stride + a - pad, s * stride + b - pad)] if 0 <= y < h and 0 <= v < wd]
        return math.fsum(terms)
    out = np.empty(lead + (o, oh, ow))
    for i in np.ndindex(lead):
        for q, r, s in itertools.product(range(o), range(oh), range(ow)):
            out[i + (q, r, s)] = pixel(i, q, r, s)
    return out


def _maxpool2d(c) -> np.ndarray:
    x, size = c.args[0], c.attrs["size"]
    stride = c.attrs["stride"] or size
    oh, ow = (x.shape[-2] - size) // stride + 1, (x.shape[-1] - size) // stride + 1
    out = np.empty(x.shape[:-2] + (oh, ow))
    for i in np.ndindex(x.shape[:-2]):
        for r, s in itertools.product(range(oh), range(ow)):
            out[i + (r, s)] = max(float(x[i + (r * stride + a, s * stride + b)])
                                  for a, b in itertools.product(range(size), range(size)))
    return out


def _cross_entropy(c) -> np.ndarray:
    y, target = c.args
    out = np.empty(y.shape[:-1])
    for i in np.ndindex(out.shape):
        logp = log_softmax_row([float(v) for v in y[i]])
        if target.dtype.kind == "f":
            out[i] = -math.fsum(float(t) * lp for t, lp in zip(target[i], logp))
        else:
            out[i] = -logp[int(target[i])] if target[i] >= 0 else 0.0
    return out


def _mse(c) -> np.ndarray:
    (y, target), rank = c.args, c.ranks[0]
    out = np.empty(y.shape[:y.ndim - rank])
    for i in np.ndindex(out.shape):
        d = [float(a) - float(b) for a, b in zip(np.ravel(y[i]), np.ravel(target[i]))]
        out[i] = math.fsum(v * v for v in d) / len(d)
    return out


def _collapse(path) -> tuple:
    return tuple(k for k, _ in itertools.groupby(path))


def _ctc(c) -> np.ndarray:
    """-log of the total probability of every frame-by-frame path that collapses (repeats
    merged, then blanks removed) to the labels: all K^T paths, for tiny T."""
    (y, labels), blank = c.args, c.attrs["blank"]
    y_len, label_len = c.context["lengths"]
    out = np.empty(y.shape[1])
    for b in range(y.shape[1]):
        logp = [log_softmax_row([float(v) for v in y[t, b]]) for t in range(y_len[b])]
        want = tuple(int(v) for v in labels[:label_len[b], b])
        paths = [p for p in itertools.product(range(y.shape[2]), repeat=int(y_len[b]))
                 if tuple(k for k in _collapse(p) if k != blank) == want]
        out[b] = -_logsumexp([math.fsum(logp[t][k] for t, k in enumerate(p)) for p in paths])
    return out


def _embed(c) -> np.ndarray:
    w, idx = c.args
    out = np.zeros(idx.shape + (w.shape[0],))
    for i in np.ndindex(idx.shape):
        if idx[i] >= 0:
            for m in range(w.shape[0]):
                out[i + (m,)] = w[m, idx[i]]
    return out


def _reduce(pick):
    """Over the valid steps of each sequence (axis 0 is time, axis 1 batch)."""
    def reduce(c):
        x, valid = c.args[0], c.context["valid"]
        out = np.empty(x.shape[1:])
        for i in np.ndindex(out.shape):
            out[i] = pick([float(x[(t,) + i]) for t in range(x.shape[0]) if valid[t, i[0]]])
        return out
    return reduce


def _softmax_over(c) -> np.ndarray:
    """Over the valid steps of the leading axis (an inner axis: attention weights); 0 elsewhere."""
    x, valid = c.args[0], c.context["valid"]
    out = np.zeros(x.shape)
    for i in np.ndindex(x.shape[1:]):
        steps = [t for t in range(x.shape[0]) if valid[t, i[0]]]
        top = max(float(x[(t,) + i]) for t in steps)
        total = math.fsum(math.exp(float(x[(t,) + i]) - top) for t in steps)
        for t in steps:
            out[(t,) + i] = math.exp(float(x[(t,) + i]) - top) / total
    return out


def _sum_inner(c) -> np.ndarray:
    x = c.args[0]
    out = np.empty(x.shape[1:])
    for i in np.ndindex(out.shape):
        out[i] = math.fsum(float(x[(t,) + i]) for t in range(x.shape[0]))
    return out


def _gather(c) -> np.ndarray:
    """x[end + offset] or x[offset] of each sequence; outside it the fill, or zeros."""
    x, lengths = c.args[0], c.context["lengths"]
    out = np.zeros(x.shape[1:])
    for b, n in enumerate(lengths):
        step = n - 1 + c.attrs["offset"] if c.attrs["from_end"] else c.attrs["offset"]
        if 0 <= step < n:
            out[b] = x[step, b]
        elif len(c.args) == 2:
            out[b] = c.args[1][b]
    return out


def _onehot(c) -> np.ndarray:
    idx, classes = c.args[0], c.attrs["classes"]
    out = np.zeros(idx.shape + (classes,))
    for i in np.ndindex(idx.shape):
        if idx[i] >= 0:
            out[i + (int(idx[i]),)] = 1.0
    return out


def _over_entries(f):
    """f of each row of entries (the last axis), a number per row."""
    def of_rows(c):
        x = c.args[0]
        out = np.empty(x.shape[:-1])
        for i in np.ndindex(out.shape):
            out[i] = f([float(v) for v in x[i]])
        return out
    return of_rows


def layer_norm_row(row: list, eps: float) -> list:
    mean = math.fsum(row) / len(row)
    var = math.fsum((v - mean) ** 2 for v in row) / len(row)
    return [(v - mean) / math.sqrt(var + eps) for v in row]


def _slice(c) -> np.ndarray:
    x, rank = c.args[0], c.ranks[0]
    rows = range(c.attrs["start"], c.attrs["stop"])
    return np.stack([x[(Ellipsis, j) + (slice(None),) * (rank - 1)] for j in rows], axis=x.ndim - rank)


SCALAR = {**{op: _unary(op) for op in UNARY}, **{op: _binary(op) for op in BINARY},
          Op.CLIP: lambda c: each(lambda v: min(max(v, c.attrs["lo"]), c.attrs["hi"]), c.args[0]),
          Op.MIN: lambda c: each(lambda v: min(v, c.attrs["c"]), c.args[0]),
          Op.MAX: lambda c: each(lambda v: max(v, c.attrs["c"]), c.args[0]),
          Op.SOFTMAX: lambda c: _rows(softmax_row, c.args[0]),
          Op.LOG_SOFTMAX: lambda c: _rows(log_softmax_row, c.args[0]),
          Op.MATMUL: _matmul, Op.CONCAT: _concat, Op.FLATTEN: _flatten, Op.CONV2D: _conv2d,
          Op.MAXPOOL2D: _maxpool2d, Op.CROSS_ENTROPY: _cross_entropy, Op.MSE: _mse, Op.CTC: _ctc,
          Op.EMBED: _embed, Op.REDUCE_SUM: _reduce(math.fsum), Op.REDUCE_MEAN: _reduce(lambda v: math.fsum(v) / len(v)),
          Op.REDUCE_MAX: _reduce(max), Op.REDUCE_MIN: _reduce(min), Op.GATHER: _gather, Op.ONEHOT: _onehot,
          Op.SOFTMAX_OVER: _softmax_over, Op.SUM_INNER: _sum_inner,
          Op.SLICE: _slice, Op.POW: lambda c: each(lambda v: math.pow(v, c.attrs["p"]), c.args[0]),
          Op.SUM: _over_entries(math.fsum), Op.MEAN: _over_entries(lambda r: math.fsum(r) / len(r)),
          Op.MAX_OF: _over_entries(max), Op.MIN_OF: _over_entries(min),
          Op.LAYER_NORM: lambda c: _rows(lambda r: layer_norm_row(r, c.attrs["eps"]), c.args[0])}


# ---- torch's ops: (torch, tensors, case) -> tensor -------------------------------------------------

def _t_aligned(args, case) -> list:
    top = max(case.ranks)
    return [a[(...,) + (None,) * (top - r)] if not isinstance(a, float) and r < top else a
            for a, r in zip(args, case.ranks)]


def _t_matmul(torch, args, case):
    (a, b), (ra, rb) = args, case.ranks
    a = a if ra == 2 else a.unsqueeze(-2)
    b = b if rb == 2 else b.unsqueeze(-1)
    out = torch.matmul(a, b)
    out = out if rb == 2 else out.squeeze(-1)
    return out if ra == 2 else out.squeeze(-2) if rb == 2 else out.squeeze(-1)


def _t_concat(torch, args, case):
    rank = case.ranks[0]
    lead = torch.broadcast_shapes(*[p.shape[:p.ndim - rank] for p in args])
    return torch.cat([p.expand(lead + p.shape[p.ndim - rank:]) for p in args], dim=-rank)


def _t_conv2d(torch, args, case):
    (x, w), a = args, case.attrs
    lead = x.shape[:-3]
    conv = lambda x, w: torch.nn.functional.conv2d(x, w, stride=a["stride"], padding=a["pad"])
    if w.ndim == 4:
        out = conv(x.reshape((-1,) + x.shape[-3:]), w)
        return out.reshape(lead + out.shape[1:])
    flat_x, flat_w = x.reshape((-1,) + x.shape[-3:]), w.reshape((-1,) + w.shape[-4:])
    out = torch.stack([conv(flat_x[i:i + 1], flat_w[i])[0] for i in range(flat_x.shape[0])])
    return out.reshape(lead + out.shape[1:])


def _t_maxpool2d(torch, args, case):
    x, size = args[0], case.attrs["size"]
    out = torch.nn.functional.max_pool2d(x.reshape((-1,) + x.shape[-3:]), size, case.attrs["stride"] or size)
    return out.reshape(x.shape[:-3] + out.shape[1:])


def _t_cross_entropy(torch, args, case):
    y, target = args
    flat = y.reshape(-1, y.shape[-1])
    if target.dtype.is_floating_point:
        out = torch.nn.functional.cross_entropy(flat, target.reshape(flat.shape), reduction="none")
        return out.reshape(y.shape[:-1])
    out = torch.nn.functional.cross_entropy(flat, target.clamp(min=0).reshape(-1), reduction="none")
    return (out * (target.reshape(-1) >= 0)).reshape(y.shape[:-1])


def _t_mse(torch, args, case):
    squared = torch.nn.functional.mse_loss(*args, reduction="none")
    rank = case.ranks[0]
    return squared.mean(dim=tuple(range(-rank, 0))) if rank else squared


def _t_ctc(torch, args, case):
    y, labels = args
    y_len, label_len = case.context["lengths"]
    return torch.nn.functional.ctc_loss(y.log_softmax(-1), labels.T, torch.tensor(y_len), torch.tensor(label_len),
                                        blank=case.attrs["blank"], reduction="none", zero_infinity=False)


def _t_embed(torch, args, case):
    w, idx = args
    return torch.nn.functional.embedding(idx.clamp(min=0), w.T) * (idx >= 0).unsqueeze(-1)


def _t_unary(name, **kw):
    return lambda torch, args, case: getattr(torch, name)(args[0], **kw)


TORCH = {Op.NEG: _t_unary("neg"), Op.TANH: _t_unary("tanh"), Op.SIGMOID: _t_unary("sigmoid"),
         Op.RELU: _t_unary("relu"), Op.EXP: _t_unary("exp"), Op.LOG: _t_unary("log"), Op.ABS: _t_unary("abs"),
         Op.SOFTPLUS: lambda torch, args, case: torch.nn.functional.softplus(args[0], threshold=50),
         Op.CLIP: lambda torch, args, case: torch.clamp(args[0], case.attrs["lo"], case.attrs["hi"]),
         Op.MIN: lambda torch, args, case: torch.clamp(args[0], max=case.attrs["c"]),
         Op.MAX: lambda torch, args, case: torch.clamp(args[0], min=case.attrs["c"]),
         **{op: (lambda f: lambda torch, args, case: f(*_t_aligned(args, case)))(BINARY[op]) for op in BINARY},
         Op.SOFTMAX: lambda torch, args, case: torch.softmax(args[0], -1),
         Op.LOG_SOFTMAX: lambda torch, args, case: torch.log_softmax(args[0], -1),
         Op.FLATTEN: lambda torch, args, case: args[0].flatten(start_dim=args[0].ndim - case.ranks[0]),
         Op.MATMUL: _t_matmul, Op.CONCAT: _t_concat, Op.CONV2D: _t_conv2d, Op.MAXPOOL2D: _t_maxpool2d,
         Op.CROSS_ENTROPY: _t_cross_entropy, Op.MSE: _t_mse, Op.CTC: _t_ctc, Op.EMBED: _t_embed,
         Op.SQRT: _t_unary("sqrt"), Op.POW: lambda torch, args, case: torch.pow(args[0], case.attrs["p"]),
         Op.SUM: lambda torch, args, case: args[0].sum(-1), Op.MEAN: lambda torch, args, case: args[0].mean(-1),
         Op.MAX_OF: lambda torch, args, case: args[0].amax(-1), Op.MIN_OF: lambda torch, args, case: args[0].amin(-1),
         Op.LAYER_NORM: lambda torch, args, case: torch.nn.functional.layer_norm(
             args[0], args[0].shape[-1:], eps=case.attrs["eps"]),
         Op.SLICE: lambda torch, args, case: args[0].narrow(args[0].ndim - case.ranks[0], case.attrs["start"],
                                                             case.attrs["stop"] - case.attrs["start"])}
