"""A recurrent model compiled by rnndsl: forward(), backward() and loss_and_grad(); do not edit.

In forward() and backward() the spec's own names are used as written and the adjoint of v is
d_v; every other name there begins with _ (the checker refuses spec names that begin with _ or
d_), so no spec name can shadow the code's. Comments quote the spec through repr."""

import numpy as np

xp = np

SPEC_NAME = 'birnn'
SPEC_FILE = 'birnn.yaml'

# ---- kernels (rnndsl/core/kernels.py) and helpers (backends/numpy/helpers.py) ----

def log_softmax(xp, x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))

def softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

_PARAM_GEMM = {(2, 1, None): (1, 0, True), (2, 1, 1): (0, 1, False)}

def param_gemm(form, args):
    rows, matrix, transpose = form
    return args[rows] @ (args[matrix].T if transpose else args[matrix])

def concat(xp, *parts, ranks):
    """Parts joined along their first spec axis; leading (batch, time) axes broadcast, so a
    step can be joined with a static value or a parameter."""
    if all(p.ndim == r for p, r in zip(parts, ranks)):      # no leading axes (stacked weights)
        return xp.concatenate(parts, axis=0)
    lead = np.broadcast_shapes(*[p.shape[:p.ndim - r] for p, r in zip(parts, ranks)])
    parts = [xp.broadcast_to(p, lead + p.shape[p.ndim - r:]) for p, r in zip(parts, ranks)]
    return xp.concatenate(parts, axis=-ranks[0])

def cross_entropy(xp, y, target):
    """-log softmax(y)[target]; a float target is a onehot (or any) distribution. A target
    of -1 (read outside its sequence) is absent and costs nothing."""
    logp = log_softmax(xp, y)
    if target.dtype.kind == "f":
        return -(logp * target).sum(axis=-1)
    target = xp.asarray(target)
    logp = xp.broadcast_to(logp, target.shape + logp.shape[-1:])   # scores made of parameters only
    picked = xp.take_along_axis(logp, xp.maximum(target, 0)[..., None].astype(np.int64), axis=-1)[..., 0]
    return xp.where(target >= 0, -picked, 0.0)

def cross_entropy_vjp(xp, y, target, dy):
    p = softmax(xp, y)
    if target.dtype.kind == "f":
        return (p * target.sum(axis=-1, keepdims=True) - target) * dy[..., None]
    if p.ndim <= target.ndim:                     # scores made of parameters only: one row per target
        p = xp.broadcast_to(p, target.shape + p.shape[-1:]).copy()
    p -= (xp.arange(y.shape[-1]) == target[..., None])
    return xp.where(target[..., None] >= 0, p * dy[..., None], 0.0)

def matmul_vjp(xp, dout, other, side, ra, rb, summed=0):
    """The adjoint of argument `side` of a @ b (of spec ranks ra, rb), given dout and the
    other argument. `summed`: the argument is a parameter, so the batch axes are summed
    (one GEMM)."""
    ranks = (ra, rb)
    form = _PARAM_GEMM.get((ra, rb, side))
    if form and other.ndim == 2:                                  # dx = dout W: one GEMM
        return param_gemm(form, (dout, other))
    if summed and (ra, rb) == (2, 1) and side == 0:              # dW = dout^T x over all rows
        return dout.reshape(-1, dout.shape[-1]).T @ other.reshape(-1, other.shape[-1])
    if summed and (ra, rb) == (1, 2) and side == 1:              # dW = x^T dout over all rows
        return other.reshape(-1, other.shape[-1]).T @ dout.reshape(-1, dout.shape[-1])
    spec, dout_first = _MATMUL_VJP[(ra, rb, side)]
    out = xp.einsum(spec, dout, other) if dout_first else xp.einsum(spec, other, dout)
    if summed:
        rank = ranks[side]
        out = out.reshape((-1,) + out.shape[out.ndim - rank:]).sum(axis=0)
    return out

_MATMUL_VJP = {(2, 1, 0): ('...m,...n->...mn', True), (2, 1, 1): ('...mn,...m->...n', False), (1, 2, 0): ('...nm,...m->...n', False), (1, 2, 1): ('...n,...m->...nm', False), (2, 2, 0): ('...mk,...nk->...mn', True), (2, 2, 1): ('...mn,...mk->...nk', False), (1, 1, 0): ('...,...n->...n', True), (1, 1, 1): ('...,...n->...n', True)}

def embed(xp, w, idx):
    """W @ onehot(idx): a column gather, (..., m); an absent class (-1) gives zeros."""
    return xp.where(idx[..., None] >= 0, w.T[idx], 0.0)

def embed_vjp(xp, dout, idx, classes):
    """The adjoint of W in W @ onehot(idx): a scatter-add of dout's rows into columns."""
    grad = xp.zeros((dout.shape[-1], int(classes)), dtype=dout.dtype)
    present = idx.reshape(-1) >= 0
    np.add.at(grad.T, idx.reshape(-1)[present], dout.reshape(-1, dout.shape[-1])[present])
    return grad

def slice_last(xp, x, start, stop, ranks):
    """Part of x along its first spec axis (the inverse of concat)."""
    axis = x.ndim - ranks[0]
    index = (slice(None),) * axis + (slice(int(start), int(stop)),)
    return x[index]

def _expand(mask, x):
    return mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))

def reduce_sum(xp, x, valid):
    return xp.where(_expand(valid, x), x, 0.0).sum(axis=0)

def reduce_mean(xp, x, valid):
    count = valid.sum(axis=0).astype(x.dtype)
    return reduce_sum(xp, x, valid) / _expand(count, x[0])

def reduce_sum_vjp(xp, dy, x, valid):
    return xp.where(_expand(valid, x), dy[None], 0.0).astype(x.dtype)

def reduce_mean_vjp(xp, dy, x, valid):
    count = valid.sum(axis=0).astype(dy.dtype)
    return reduce_sum_vjp(xp, dy / _expand(count, dy), x, valid)

def tanh_vjp(xp, y, dy, out=None):
    """dy * (1 - y * y): from a scalar template."""
    if out is None:
        return xp.multiply(dy, xp.subtract(1.0, xp.multiply(y, y)))
    xp.multiply(y, y, out=out)
    xp.subtract(1.0, out, out=out)
    xp.multiply(dy, out, out=out)
    return out

def outer_sum_shifted(xp, dy, x, k, fill=None, valid=None):
    """The sum over steps and rows of dy[t] x[t + k]^T, x outside the sequence being `fill`
    (B, n) or (n,) before its start (k < 0), zeros after its end (k > 0; with `valid` (T, B),
    also past each sequence's own end): a recurrent weight's gradient as one GEMM over the
    rows that have an x, plus the fill's share, without copying x shifted."""
    T, m, n = dy.shape[0], dy.shape[-1], x.shape[-1]
    lo, hi = max(-k, 0), min(T, T - k)                   # the steps whose t + k is inside
    if lo < hi:
        rows, inside = dy[lo:hi], None if valid is None or k < 0 else valid[lo + k:hi + k]
        if inside is not None and not inside.all():
            rows = rows * inside.reshape(inside.shape + (1,))
        g = rows.reshape(-1, m).T @ x[lo + k:hi + k].reshape(-1, n)
    else:
        g = xp.zeros((m, n), dtype=dy.dtype)
    if fill is not None and k < 0 and fill.any():             # a zero start (the usual) adds nothing
        head = dy[:min(-k, T)].sum(axis=0)                    # (B, m): the steps that read the fill
        g += head.T @ xp.broadcast_to(fill, head.shape[:-1] + (n,))
    return g

def sum_to_param(xp, value, rank):
    """A parameter's share of a batched value: summed over every leading axis."""
    return value.reshape((-1,) + value.shape[value.ndim - rank:]).sum(axis=0)

def gemm(xp, a, b):
    """a @ b for every leading (time, batch) axis of a at once: one (rows, k) x (k, n) GEMM,
    where matmul's broadcasting would run one small GEMM per step."""
    flat = xp.matmul(a.reshape(-1, a.shape[-1]), b)
    return flat.reshape(a.shape[:-1] + (b.shape[-1],))

def scratch(xp, buffers, name, shape, dtype, zero):
    """An adjoint buffer from `buffers`, the caller's dict kept between its calls of backward()
    (fresh memory costs a page fault per 4 KiB, about a third of a small model's time), or a
    fresh one when `buffers` is None; zeroed when it accumulates. The dict belongs to one caller
    (a model and a thread, a worker process), never to the module: models that share a module
    share no buffers. Only the adjoints backward() does not return are kept there, so no caller
    ever sees one change."""
    a = None if buffers is None else buffers.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = xp.empty(shape, dtype)
        if buffers is not None:
            buffers[name] = a
    if zero:
        a.fill(0)
    return a

# ---- the names forward() and backward() use: spec names never begin with _ ----
_np = np
_xp = xp
_range = range
_len = len
_dict = dict
_float = float
_bool = bool
_concat = concat
_cross_entropy = cross_entropy
_cross_entropy_vjp = cross_entropy_vjp
_matmul_vjp = matmul_vjp
_embed = embed
_embed_vjp = embed_vjp
_slice_last = slice_last
_reduce_mean = reduce_mean
_reduce_mean_vjp = reduce_mean_vjp
_tanh_vjp = tanh_vjp
_outer_sum_shifted = outer_sum_shifted
_sum_to_param = sum_to_param
_gemm = gemm
_scratch = scratch

def forward(_params, _inputs, _lengths=None, _dtype=np.float64, _carry=None):
    """Every value of the forward pass (the tape), and the loss. Inputs are
    time-major; lengths {axis: (B,) ints} default to the padded length; carry
    {variable: (B, ...)} replaces a recurrence's start (the last window's
    tape["_final"]), and no gradient flows into it."""
    _lengths = _dict(_lengths or {})
    _lengths.setdefault('t', _np.full(_np.shape(_inputs['x'])[1], _np.shape(_inputs['x'])[0]))
    _B = _len(_lengths['t'])
    _len_t = _xp.asarray(_lengths['t'])
    _T_t = _inputs['x'].shape[0]
    _valid_t = _xp.arange(_T_t)[:, None] < _len_t[None, :]
    _full_t = _bool(_valid_t.all())          # no padding: reads past t need no mask
    # inputs, with padded steps zeroed (when there are any): what a pad holds never matters
    x = _xp.asarray(_inputs['x']) if _full_t else _xp.where(_valid_t, _xp.asarray(_inputs['x']), -1)
    tag = _xp.asarray(_inputs['tag']) if _full_t else _xp.where(_valid_t, _xp.asarray(_inputs['tag']), -1)
    W_f = _xp.asarray(_params['W_f'], dtype=_dtype)
    U_f = _xp.asarray(_params['U_f'], dtype=_dtype)
    b_f = _xp.asarray(_params['b_f'], dtype=_dtype)
    W_b = _xp.asarray(_params['W_b'], dtype=_dtype)
    U_b = _xp.asarray(_params['U_b'], dtype=_dtype)
    b_b = _xp.asarray(_params['b_b'], dtype=_dtype)
    V_f = _xp.asarray(_params['V_f'], dtype=_dtype)
    V_b = _xp.asarray(_params['V_b'], dtype=_dtype)
    c = _xp.asarray(_params['c'], dtype=_dtype)
    _t3 = _xp.empty((_B,) + (8,), dtype=_dtype)
    _t4 = _xp.empty((_B,) + (8,), dtype=_dtype)
    hf = _xp.empty((_T_t, _B) + (8,), dtype=_dtype)
    _t7 = _xp.empty((_B,) + (8,), dtype=_dtype)
    _t8 = _xp.empty((_B,) + (8,), dtype=_dtype)
    hb = _xp.empty((_T_t, _B) + (8,), dtype=_dtype)
    _zero_hb = _xp.zeros((_B,) + (8,), dtype=_dtype)
    _carried_hf = _carry is not None and 'hf' in _carry
    _fill_hf = _xp.asarray(_carry['hf'], dtype=_dtype) if _carried_hf else _xp.zeros((_B,) + (8,), dtype=_dtype)
    # stacked weights: W_f, W_b
    _w1 = _concat(_xp, W_f, W_b, ranks=(2, 2))
    # hf[t] = tanh(W_f @ x[t] + U_f @ hf[t-1] + b_f)  (birnn.yaml:24)
    # hb[t] = tanh(W_b @ x[t] + U_b @ hb[t+1] + b_b)  (birnn.yaml:25)
    _z1 = _embed(_xp, _w1, x)
    _t1 = _z1[..., 0:8]
    _t5 = _z1[..., 8:16]
    # hf[t] = tanh(W_f @ x[t] + U_f @ hf[t-1] + b_f)  (birnn.yaml:24)
    _t2 = _xp.add(_t1, b_f)
    _wT_U_f = _xp.ascontiguousarray(U_f.T)
    # recurrence hf, running forward over t
    for _t in _range(_T_t):
        # hf[t] = tanh(W_f @ x[t] + U_f @ hf[t-1] + b_f)  (birnn.yaml:24)
        _xp.matmul((hf[_t-1] if _t-1 >= 0 else _fill_hf), _wT_U_f, out=_t3)
        _xp.add(_t2[_t], _t3, out=_t4)
        _xp.tanh(_t4, out=hf[_t])
    # hb[t] = tanh(W_b @ x[t] + U_b @ hb[t+1] + b_b)  (birnn.yaml:25)
    _t6 = _xp.add(_t5, b_b)
    _wT_U_b = _xp.ascontiguousarray(U_b.T)
    # recurrence hb, running backward over t
    for _t in _range(_T_t - 1, -1, -1):
        # hb[t] = tanh(W_b @ x[t] + U_b @ hb[t+1] + b_b)  (birnn.yaml:25)
        _xp.matmul(((hb[_t+1] if _full_t else _xp.where(_valid_t[_t+1][:, None], hb[_t+1], _zero_hb)) if _t+1 < _T_t else _zero_hb), _wT_U_b, out=_t7)
        _xp.add(_t6[_t], _t7, out=_t8)
        _xp.tanh(_t8, out=hb[_t])
    # y[t] = V_f @ hf[t] + V_b @ hb[t] + c  (birnn.yaml:26)
    _t9 = _gemm(_xp, hf, V_f.T)
    _t10 = _gemm(_xp, hb, V_b.T)
    _t11 = _xp.add(_t9, _t10)
    y = _xp.add(_t11, c)
    # loss: mean_t cross_entropy(y[t], tag[t])
    _t12 = _cross_entropy(_xp, y, tag)
    _loss = _reduce_mean(_xp, _t12, valid=_valid_t)
    _final = {'hf': hf[_len_t - 1, _xp.arange(_B)]}
    _tape = {'U_b': U_b, 'U_f': U_f, 'V_b': V_b, 'V_f': V_f, '_B': _B, '_T_t': _T_t, '_carried_hf': _carried_hf, '_dtype': _dtype, '_fill_hf': _fill_hf, '_final': _final, '_full_t': _full_t, '_len_t': _len_t, '_loss': _loss, '_t12': _t12, '_valid_t': _valid_t, 'hb': hb, 'hf': hf, 'tag': tag, 'x': x, 'y': y}
    _tape['_total_loss'] = _float(_loss.mean())
    return _tape

def backward(_params, _tape, _truncate=None, _buffers=None):
    """The gradient of the mean loss with respect to every parameter (truncate: BPTT window).
    _buffers: the caller's dict of adjoint buffers, reused from call to call (None: fresh ones)."""
    U_b = _tape['U_b']
    U_f = _tape['U_f']
    V_b = _tape['V_b']
    V_f = _tape['V_f']
    _B = _tape['_B']
    _T_t = _tape['_T_t']
    _carried_hf = _tape['_carried_hf']
    _dtype = _tape['_dtype']
    _fill_hf = _tape['_fill_hf']
    _full_t = _tape['_full_t']
    _len_t = _tape['_len_t']
    _t12 = _tape['_t12']
    _valid_t = _tape['_valid_t']
    hb = _tape['hb']
    hf = _tape['hf']
    tag = _tape['tag']
    x = _tape['x']
    y = _tape['y']
    d_W_f = _xp.empty((8, 10), _dtype)
    d_U_f = _xp.empty((8, 8), _dtype)
    d_b_f = _xp.empty((8,), _dtype)
    d_W_b = _xp.empty((8, 10), _dtype)
    d_U_b = _xp.empty((8, 8), _dtype)
    d_b_b = _xp.empty((8,), _dtype)
    d_V_f = _xp.empty((5, 8), _dtype)
    d_V_b = _xp.empty((5, 8), _dtype)
    d_c = _xp.empty((5,), _dtype)
    d__loss = _scratch(_xp, _buffers, 'd__loss', (_B,) + (), _dtype, True)
    d__t12 = _scratch(_xp, _buffers, 'd__t12', (_T_t, _B) + (), _dtype, False)
    d_y = _scratch(_xp, _buffers, 'd_y', (_T_t, _B) + (5,), _dtype, False)
    d_hb = _scratch(_xp, _buffers, 'd_hb', (_T_t, _B) + (8,), _dtype, False)
    d_hf = _scratch(_xp, _buffers, 'd_hf', (_T_t, _B) + (8,), _dtype, False)
    d__t8 = _scratch(_xp, _buffers, 'd__t8', (_T_t, _B) + (8,), _dtype, False)
    d__z1 = _scratch(_xp, _buffers, 'd__z1', (_T_t, _B) + (16,), _dtype, False)
    d__t4 = _scratch(_xp, _buffers, 'd__t4', (_T_t, _B) + (8,), _dtype, False)
    d__w1 = _scratch(_xp, _buffers, 'd__w1', (16, 10), _dtype, False)
    d__t5 = d__z1[..., 8:16]
    d__t1 = d__z1[..., 0:8]
    d__loss[...] = 1.0 / _B
    # loss: mean_t cross_entropy(y[t], tag[t])
    d__t12[...] = _reduce_mean_vjp(_xp, d__loss, _t12, valid=_valid_t)
    d_y[...] = _cross_entropy_vjp(_xp, y, tag, d__t12)
    # y[t] = V_f @ hf[t] + V_b @ hb[t] + c  (birnn.yaml:26)
    d_c[...] = _sum_to_param(_xp, d_y, 1)
    d_V_b[...] = _matmul_vjp(_xp, d_y, hb, ra=2, rb=1, side=0, summed=1)
    d_hb[...] = _gemm(_xp, d_y, V_b)
    d_V_f[...] = _matmul_vjp(_xp, d_y, hf, ra=2, rb=1, side=0, summed=1)
    d_hf[...] = _gemm(_xp, d_y, V_f)
    _wT_U_b = _xp.ascontiguousarray(U_b.T)
    # adjoint of the recurrence hb, running forward over t
    for _t in _range(_T_t):
        # hb[t] = tanh(W_b @ x[t] + U_b @ hb[t+1] + b_b)  (birnn.yaml:25)
        _tanh_vjp(_xp, hb[_t], d_hb[_t], out=d__t8[_t])
        _v = _xp.matmul(_wT_U_b, d__t8[_t].T).T
        if _t+1 < _T_t and (_truncate is None or (_t+1) // _truncate == _t // _truncate):
            d_hb[_t+1] += (_v if _full_t else _xp.where(_valid_t[_t+1][:, None], _v, 0.0))
    # hb[t] = tanh(W_b @ x[t] + U_b @ hb[t+1] + b_b)  (birnn.yaml:25)
    d_U_b[...] = _outer_sum_shifted(_xp, d__t8, hb, 1, None, _valid_t)
    d__t5[...] = d__t8
    d_b_b[...] = _sum_to_param(_xp, d__t8, 1)
    _wT_U_f = _xp.ascontiguousarray(U_f.T)
    # adjoint of the recurrence hf, running backward over t
    for _t in _range(_T_t - 1, -1, -1):
        # hf[t] = tanh(W_f @ x[t] + U_f @ hf[t-1] + b_f)  (birnn.yaml:24)
        _tanh_vjp(_xp, hf[_t], d_hf[_t], out=d__t4[_t])
        _v = _xp.matmul(_wT_U_f, d__t4[_t].T).T
        if _t-1 >= 0 and (_truncate is None or (_t-1) // _truncate == _t // _truncate):
            d_hf[_t-1] += _v
    # hf[t] = tanh(W_f @ x[t] + U_f @ hf[t-1] + b_f)  (birnn.yaml:24)
    d_U_f[...] = _outer_sum_shifted(_xp, d__t4, hf, -1, _fill_hf)
    d__t1[...] = d__t4
    d_b_f[...] = _sum_to_param(_xp, d__t4, 1)
    # hf[t] = tanh(W_f @ x[t] + U_f @ hf[t-1] + b_f)  (birnn.yaml:24)
    # hb[t] = tanh(W_b @ x[t] + U_b @ hb[t+1] + b_b)  (birnn.yaml:25)
    d__w1[...] = _embed_vjp(_xp, d__z1, x, classes=10)
    # stacked weights: W_f, W_b
    d_W_f[...] = _slice_last(_xp, d__w1, start=0, stop=8, ranks=(2,))
    d_W_b[...] = _slice_last(_xp, d__w1, start=8, stop=16, ranks=(2,))
    return {'W_f': d_W_f, 'U_f': d_U_f, 'b_f': d_b_f, 'W_b': d_W_b, 'U_b': d_U_b, 'b_b': d_b_b, 'V_f': d_V_f, 'V_b': d_V_b, 'c': d_c}


def loss_and_grad(params, inputs, lengths=None, dtype=None, truncate=None, buffers=None):
    """Mean loss over the batch and the gradient of every parameter; `buffers`: a dict of yours
    that backward() keeps its adjoint buffers in between calls (faster), None for fresh ones."""
    tape = forward(params, inputs, lengths, *([dtype] if dtype else []))
    return tape["_total_loss"], backward(params, tape, truncate, buffers)
