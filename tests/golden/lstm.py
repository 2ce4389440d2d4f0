"""A recurrent model compiled by rnndsl: forward(), backward() and loss_and_grad(); do not edit.

In forward() and backward() the spec's own names are used as written and the adjoint of v is
d_v; every other name there begins with _ (the checker refuses spec names that begin with _ or
d_), so no spec name can shadow the code's. Comments quote the spec through repr."""

import numpy as np

xp = np

SPEC_NAME = 'lstm'
SPEC_FILE = 'lstm.yaml'

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

def sigmoid(xp, x, out=None):
    """sigmoid(x): from a scalar template."""
    with np.errstate(over="ignore"):
        if out is None:
            return xp.divide(1.0, xp.add(1.0, xp.exp(xp.negative(x))))
        xp.negative(x, out=out)
        xp.exp(out, out=out)
        xp.add(1.0, out, out=out)
        xp.divide(1.0, out, out=out)
        return out

def tanh_vjp(xp, y, dy, out=None):
    """dy * (1 - y * y): from a scalar template."""
    if out is None:
        return xp.multiply(dy, xp.subtract(1.0, xp.multiply(y, y)))
    xp.multiply(y, y, out=out)
    xp.subtract(1.0, out, out=out)
    xp.multiply(dy, out, out=out)
    return out

def sigmoid_vjp(xp, y, dy, out=None):
    """dy * (y * (1 - y)): from a scalar template."""
    if out is None:
        return xp.multiply(dy, xp.multiply(y, xp.subtract(1.0, y)))
    xp.subtract(1.0, y, out=out)
    xp.multiply(y, out, out=out)
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
_sigmoid = sigmoid
_tanh_vjp = tanh_vjp
_sigmoid_vjp = sigmoid_vjp
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
    target = _xp.asarray(_inputs['target']) if _full_t else _xp.where(_valid_t, _xp.asarray(_inputs['target']), -1)
    W_i = _xp.asarray(_params['W_i'], dtype=_dtype)
    U_i = _xp.asarray(_params['U_i'], dtype=_dtype)
    b_i = _xp.asarray(_params['b_i'], dtype=_dtype)
    W_f = _xp.asarray(_params['W_f'], dtype=_dtype)
    U_f = _xp.asarray(_params['U_f'], dtype=_dtype)
    b_f = _xp.asarray(_params['b_f'], dtype=_dtype)
    W_o = _xp.asarray(_params['W_o'], dtype=_dtype)
    U_o = _xp.asarray(_params['U_o'], dtype=_dtype)
    b_o = _xp.asarray(_params['b_o'], dtype=_dtype)
    W_g = _xp.asarray(_params['W_g'], dtype=_dtype)
    U_g = _xp.asarray(_params['U_g'], dtype=_dtype)
    b_g = _xp.asarray(_params['b_g'], dtype=_dtype)
    W_y = _xp.asarray(_params['W_y'], dtype=_dtype)
    b_y = _xp.asarray(_params['b_y'], dtype=_dtype)
    _z2 = _xp.empty((_B,) + (128,), dtype=_dtype)
    _e4 = _xp.empty((_B,) + (128,), dtype=_dtype)
    _e5 = _xp.empty((_T_t, _B) + (96,), dtype=_dtype)
    g = _xp.empty((_T_t, _B) + (32,), dtype=_dtype)
    _t17 = _xp.empty((_B,) + (32,), dtype=_dtype)
    _t18 = _xp.empty((_B,) + (32,), dtype=_dtype)
    c = _xp.empty((_T_t, _B) + (32,), dtype=_dtype)
    _t19 = _xp.empty((_T_t, _B) + (32,), dtype=_dtype)
    h = _xp.empty((_T_t, _B) + (32,), dtype=_dtype)
    _t3 = _z2[..., 0:32]
    _t7 = _z2[..., 32:64]
    _t11 = _z2[..., 64:96]
    _t15 = _z2[..., 96:128]
    _t4 = _e4[..., 0:32]
    _t8 = _e4[..., 32:64]
    _t12 = _e4[..., 64:96]
    _t16 = _e4[..., 96:128]
    _e4_0_96 = _e4[..., 0:96]
    i = _e5[..., 0:32]
    f = _e5[..., 32:64]
    o = _e5[..., 64:96]
    _carried_c = _carry is not None and 'c' in _carry
    _fill_c = _xp.asarray(_carry['c'], dtype=_dtype) if _carried_c else _xp.zeros((_B,) + (32,), dtype=_dtype)
    _carried_h = _carry is not None and 'h' in _carry
    _fill_h = _xp.asarray(_carry['h'], dtype=_dtype) if _carried_h else _xp.zeros((_B,) + (32,), dtype=_dtype)
    # stacked: b_i, b_f, b_o, b_g
    _p3_1 = _concat(_xp, b_i, b_f, b_o, b_g, ranks=(1, 1, 1, 1))
    # stacked weights: W_i, W_f, W_o, W_g
    _w1 = _concat(_xp, W_i, W_f, W_o, W_g, ranks=(2, 2, 2, 2))
    # stacked weights: U_i, U_f, U_o, U_g
    _w2 = _concat(_xp, U_i, U_f, U_o, U_g, ranks=(2, 2, 2, 2))
    # i[t] = sigmoid(W_i @ x[t] + U_i @ h[t-1] + b_i)  (lstm.yaml:30)
    # f[t] = sigmoid(W_f @ x[t] + U_f @ h[t-1] + b_f)  (lstm.yaml:31)
    # o[t] = sigmoid(W_o @ x[t] + U_o @ h[t-1] + b_o)  (lstm.yaml:32)
    # g[t] = tanh(W_g @ x[t] + U_g @ h[t-1] + b_g)  (lstm.yaml:33)
    _z1 = _embed(_xp, _w1, x)
    _t1 = _z1[..., 0:32]
    _t5 = _z1[..., 32:64]
    _t9 = _z1[..., 64:96]
    _t13 = _z1[..., 96:128]
    _e3 = _xp.add(_z1, _p3_1)
    _t2 = _e3[..., 0:32]
    _t6 = _e3[..., 32:64]
    _t10 = _e3[..., 64:96]
    _t14 = _e3[..., 96:128]
    _wT__w2 = _xp.ascontiguousarray(_w2.T)
    # recurrence i, f, o, g, c, h, running forward over t
    for _t in _range(_T_t):
        # i[t] = sigmoid(W_i @ x[t] + U_i @ h[t-1] + b_i)  (lstm.yaml:30)
        # f[t] = sigmoid(W_f @ x[t] + U_f @ h[t-1] + b_f)  (lstm.yaml:31)
        # o[t] = sigmoid(W_o @ x[t] + U_o @ h[t-1] + b_o)  (lstm.yaml:32)
        # g[t] = tanh(W_g @ x[t] + U_g @ h[t-1] + b_g)  (lstm.yaml:33)
        _xp.matmul((h[_t-1] if _t-1 >= 0 else _fill_h), _wT__w2, out=_z2)
        _xp.add(_e3[_t], _z2, out=_e4)
        # i[t] = sigmoid(W_i @ x[t] + U_i @ h[t-1] + b_i)  (lstm.yaml:30)
        # f[t] = sigmoid(W_f @ x[t] + U_f @ h[t-1] + b_f)  (lstm.yaml:31)
        # o[t] = sigmoid(W_o @ x[t] + U_o @ h[t-1] + b_o)  (lstm.yaml:32)
        _sigmoid(_xp, _e4_0_96, out=_e5[_t])
        # g[t] = tanh(W_g @ x[t] + U_g @ h[t-1] + b_g)  (lstm.yaml:33)
        _xp.tanh(_t16, out=g[_t])
        # c[t] = f[t] * c[t-1] + i[t] * g[t]  (lstm.yaml:34)
        _xp.multiply(f[_t], (c[_t-1] if _t-1 >= 0 else _fill_c), out=_t17)
        _xp.multiply(i[_t], g[_t], out=_t18)
        _xp.add(_t17, _t18, out=c[_t])
        # h[t] = o[t] * tanh(c[t])  (lstm.yaml:35)
        _xp.tanh(c[_t], out=_t19[_t])
        _xp.multiply(o[_t], _t19[_t], out=h[_t])
    # y[t] = W_y @ h[t] + b_y  (lstm.yaml:36)
    _t20 = _gemm(_xp, h, W_y.T)
    y = _xp.add(_t20, b_y)
    # loss: mean_t cross_entropy(y[t], target[t])
    _t21 = _cross_entropy(_xp, y, target)
    _loss = _reduce_mean(_xp, _t21, valid=_valid_t)
    _final = {'c': c[_len_t - 1, _xp.arange(_B)], 'h': h[_len_t - 1, _xp.arange(_B)]}
    _tape = {'W_y': W_y, '_B': _B, '_T_t': _T_t, '_carried_c': _carried_c, '_carried_h': _carried_h, '_dtype': _dtype, '_e5': _e5, '_fill_c': _fill_c, '_fill_h': _fill_h, '_final': _final, '_full_t': _full_t, '_len_t': _len_t, '_loss': _loss, '_t19': _t19, '_t21': _t21, '_valid_t': _valid_t, '_w2': _w2, 'c': c, 'f': f, 'g': g, 'h': h, 'i': i, 'o': o, 'target': target, 'x': x, 'y': y}
    _tape['_total_loss'] = _float(_loss.mean())
    return _tape

def backward(_params, _tape, _truncate=None, _buffers=None):
    """The gradient of the mean loss with respect to every parameter (truncate: BPTT window).
    _buffers: the caller's dict of adjoint buffers, reused from call to call (None: fresh ones)."""
    W_y = _tape['W_y']
    _B = _tape['_B']
    _T_t = _tape['_T_t']
    _carried_c = _tape['_carried_c']
    _carried_h = _tape['_carried_h']
    _dtype = _tape['_dtype']
    _e5 = _tape['_e5']
    _fill_c = _tape['_fill_c']
    _fill_h = _tape['_fill_h']
    _full_t = _tape['_full_t']
    _len_t = _tape['_len_t']
    _t19 = _tape['_t19']
    _t21 = _tape['_t21']
    _valid_t = _tape['_valid_t']
    _w2 = _tape['_w2']
    c = _tape['c']
    f = _tape['f']
    g = _tape['g']
    h = _tape['h']
    i = _tape['i']
    o = _tape['o']
    target = _tape['target']
    x = _tape['x']
    y = _tape['y']
    d_W_i = _xp.empty((32, 65), _dtype)
    d_U_i = _xp.empty((32, 32), _dtype)
    d_b_i = _xp.empty((32,), _dtype)
    d_W_f = _xp.empty((32, 65), _dtype)
    d_U_f = _xp.empty((32, 32), _dtype)
    d_b_f = _xp.empty((32,), _dtype)
    d_W_o = _xp.empty((32, 65), _dtype)
    d_U_o = _xp.empty((32, 32), _dtype)
    d_b_o = _xp.empty((32,), _dtype)
    d_W_g = _xp.empty((32, 65), _dtype)
    d_U_g = _xp.empty((32, 32), _dtype)
    d_b_g = _xp.empty((32,), _dtype)
    d_W_y = _xp.empty((65, 32), _dtype)
    d_b_y = _xp.empty((65,), _dtype)
    d__loss = _scratch(_xp, _buffers, 'd__loss', (_B,) + (), _dtype, True)
    d__t21 = _scratch(_xp, _buffers, 'd__t21', (_T_t, _B) + (), _dtype, False)
    d_y = _scratch(_xp, _buffers, 'd_y', (_T_t, _B) + (65,), _dtype, False)
    d_h = _scratch(_xp, _buffers, 'd_h', (_T_t, _B) + (32,), _dtype, False)
    d__e5 = _scratch(_xp, _buffers, 'd__e5', (_B,) + (96,), _dtype, False)
    d__t19 = _scratch(_xp, _buffers, 'd__t19', (_B,) + (32,), _dtype, False)
    d_c = _scratch(_xp, _buffers, 'd_c', (_T_t, _B) + (32,), _dtype, True)
    d_g = _scratch(_xp, _buffers, 'd_g', (_B,) + (32,), _dtype, False)
    d__e4 = _scratch(_xp, _buffers, 'd__e4', (_T_t, _B) + (128,), _dtype, False)
    d__w2 = _scratch(_xp, _buffers, 'd__w2', (128, 32), _dtype, False)
    d__p3_1 = _scratch(_xp, _buffers, 'd__p3_1', (128,), _dtype, False)
    d__w1 = _scratch(_xp, _buffers, 'd__w1', (128, 65), _dtype, False)
    d_o = d__e5[..., 64:96]
    d_i = d__e5[..., 0:32]
    d_f = d__e5[..., 32:64]
    d__t16 = d__e4[..., 96:128]
    d__e4_0_96 = d__e4[..., 0:96]
    d__loss[...] = 1.0 / _B
    # loss: mean_t cross_entropy(y[t], target[t])
    d__t21[...] = _reduce_mean_vjp(_xp, d__loss, _t21, valid=_valid_t)
    d_y[...] = _cross_entropy_vjp(_xp, y, target, d__t21)
    # y[t] = W_y @ h[t] + b_y  (lstm.yaml:36)
    d_b_y[...] = _sum_to_param(_xp, d_y, 1)
    d_W_y[...] = _matmul_vjp(_xp, d_y, h, ra=2, rb=1, side=0, summed=1)
    d_h[...] = _gemm(_xp, d_y, W_y)
    _wT__w2 = _xp.ascontiguousarray(_w2.T)
    # adjoint of the recurrence i, f, o, g, c, h, running backward over t
    for _t in _range(_T_t - 1, -1, -1):
        # h[t] = o[t] * tanh(c[t])  (lstm.yaml:35)
        _xp.multiply(d_h[_t], _t19[_t], out=d_o[...])
        _xp.multiply(d_h[_t], o[_t], out=d__t19[...])
        d_c[_t] += _tanh_vjp(_xp, _t19[_t], d__t19)
        # c[t] = f[t] * c[t-1] + i[t] * g[t]  (lstm.yaml:34)
        _xp.multiply(d_c[_t], g[_t], out=d_i[...])
        _xp.multiply(d_c[_t], i[_t], out=d_g[...])
        _xp.multiply(d_c[_t], (c[_t-1] if _t-1 >= 0 else _fill_c), out=d_f[...])
        _v = _xp.multiply(d_c[_t], f[_t])
        if _t-1 >= 0 and (_truncate is None or (_t-1) // _truncate == _t // _truncate):
            d_c[_t-1] += _v
        # g[t] = tanh(W_g @ x[t] + U_g @ h[t-1] + b_g)  (lstm.yaml:33)
        _tanh_vjp(_xp, g[_t], d_g, out=d__t16[_t])
        # i[t] = sigmoid(W_i @ x[t] + U_i @ h[t-1] + b_i)  (lstm.yaml:30)
        # f[t] = sigmoid(W_f @ x[t] + U_f @ h[t-1] + b_f)  (lstm.yaml:31)
        # o[t] = sigmoid(W_o @ x[t] + U_o @ h[t-1] + b_o)  (lstm.yaml:32)
        _sigmoid_vjp(_xp, _e5[_t], d__e5, out=d__e4_0_96[_t])
        # i[t] = sigmoid(W_i @ x[t] + U_i @ h[t-1] + b_i)  (lstm.yaml:30)
        # f[t] = sigmoid(W_f @ x[t] + U_f @ h[t-1] + b_f)  (lstm.yaml:31)
        # o[t] = sigmoid(W_o @ x[t] + U_o @ h[t-1] + b_o)  (lstm.yaml:32)
        # g[t] = tanh(W_g @ x[t] + U_g @ h[t-1] + b_g)  (lstm.yaml:33)
        _v = _xp.matmul(_wT__w2, d__e4[_t].T).T
        if _t-1 >= 0 and (_truncate is None or (_t-1) // _truncate == _t // _truncate):
            d_h[_t-1] += _v
    # i[t] = sigmoid(W_i @ x[t] + U_i @ h[t-1] + b_i)  (lstm.yaml:30)
    # f[t] = sigmoid(W_f @ x[t] + U_f @ h[t-1] + b_f)  (lstm.yaml:31)
    # o[t] = sigmoid(W_o @ x[t] + U_o @ h[t-1] + b_o)  (lstm.yaml:32)
    # g[t] = tanh(W_g @ x[t] + U_g @ h[t-1] + b_g)  (lstm.yaml:33)
    d__w2[...] = _outer_sum_shifted(_xp, d__e4, h, -1, _fill_h)
    d__p3_1[...] = _sum_to_param(_xp, d__e4, 1)
    d__w1[...] = _embed_vjp(_xp, d__e4, x, classes=65)
    # stacked weights: U_i, U_f, U_o, U_g
    d_U_i[...] = _slice_last(_xp, d__w2, start=0, stop=32, ranks=(2,))
    d_U_f[...] = _slice_last(_xp, d__w2, start=32, stop=64, ranks=(2,))
    d_U_o[...] = _slice_last(_xp, d__w2, start=64, stop=96, ranks=(2,))
    d_U_g[...] = _slice_last(_xp, d__w2, start=96, stop=128, ranks=(2,))
    # stacked weights: W_i, W_f, W_o, W_g
    d_W_i[...] = _slice_last(_xp, d__w1, start=0, stop=32, ranks=(2,))
    d_W_f[...] = _slice_last(_xp, d__w1, start=32, stop=64, ranks=(2,))
    d_W_o[...] = _slice_last(_xp, d__w1, start=64, stop=96, ranks=(2,))
    d_W_g[...] = _slice_last(_xp, d__w1, start=96, stop=128, ranks=(2,))
    # stacked: b_i, b_f, b_o, b_g
    d_b_i[...] = _slice_last(_xp, d__p3_1, start=0, stop=32, ranks=(1,))
    d_b_f[...] = _slice_last(_xp, d__p3_1, start=32, stop=64, ranks=(1,))
    d_b_o[...] = _slice_last(_xp, d__p3_1, start=64, stop=96, ranks=(1,))
    d_b_g[...] = _slice_last(_xp, d__p3_1, start=96, stop=128, ranks=(1,))
    return {'W_i': d_W_i, 'U_i': d_U_i, 'b_i': d_b_i, 'W_f': d_W_f, 'U_f': d_U_f, 'b_f': d_b_f, 'W_o': d_W_o, 'U_o': d_U_o, 'b_o': d_b_o, 'W_g': d_W_g, 'U_g': d_U_g, 'b_g': d_b_g, 'W_y': d_W_y, 'b_y': d_b_y}


def loss_and_grad(params, inputs, lengths=None, dtype=None, truncate=None, buffers=None):
    """Mean loss over the batch and the gradient of every parameter; `buffers`: a dict of yours
    that backward() keeps its adjoint buffers in between calls (faster), None for fresh ones."""
    tape = forward(params, inputs, lengths, *([dtype] if dtype else []))
    return tape["_total_loss"], backward(params, tape, truncate, buffers)
