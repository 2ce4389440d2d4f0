"""A recurrent model compiled by rnndsl: forward(), backward() and loss_and_grad(); do not edit.

In forward() and backward() the spec's own names are used as written and the adjoint of v is
d_v; every other name there begins with _ (the checker refuses spec names that begin with _ or
d_), so no spec name can shadow the code's. Comments quote the spec through repr."""

import numpy as np

xp = np

SPEC_NAME = 'elman'
SPEC_FILE = 'elman.yaml'

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
_cross_entropy = cross_entropy
_cross_entropy_vjp = cross_entropy_vjp
_matmul_vjp = matmul_vjp
_embed = embed
_embed_vjp = embed_vjp
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
    target = _xp.asarray(_inputs['target']) if _full_t else _xp.where(_valid_t, _xp.asarray(_inputs['target']), -1)
    W_xh = _xp.asarray(_params['W_xh'], dtype=_dtype)
    W_hh = _xp.asarray(_params['W_hh'], dtype=_dtype)
    b_h = _xp.asarray(_params['b_h'], dtype=_dtype)
    W_hy = _xp.asarray(_params['W_hy'], dtype=_dtype)
    b_y = _xp.asarray(_params['b_y'], dtype=_dtype)
    _t3 = _xp.empty((_B,) + (16,), dtype=_dtype)
    _t4 = _xp.empty((_B,) + (16,), dtype=_dtype)
    h = _xp.empty((_T_t, _B) + (16,), dtype=_dtype)
    _carried_h = _carry is not None and 'h' in _carry
    _fill_h = _xp.asarray(_carry['h'], dtype=_dtype) if _carried_h else _xp.zeros((_B,) + (16,), dtype=_dtype)
    # h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)  (elman.yaml:16)
    _t1 = _embed(_xp, W_xh, x)
    _t2 = _xp.add(_t1, b_h)
    _wT_W_hh = _xp.ascontiguousarray(W_hh.T)
    # recurrence h, running forward over t
    for _t in _range(_T_t):
        # h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)  (elman.yaml:16)
        _xp.matmul((h[_t-1] if _t-1 >= 0 else _fill_h), _wT_W_hh, out=_t3)
        _xp.add(_t2[_t], _t3, out=_t4)
        _xp.tanh(_t4, out=h[_t])
    # y[t] = W_hy @ h[t] + b_y  (elman.yaml:17)
    _t5 = _gemm(_xp, h, W_hy.T)
    y = _xp.add(_t5, b_y)
    # loss: mean_t cross_entropy(y[t], target[t])
    _t6 = _cross_entropy(_xp, y, target)
    _loss = _reduce_mean(_xp, _t6, valid=_valid_t)
    _final = {'h': h[_len_t - 1, _xp.arange(_B)]}
    _tape = {'W_hh': W_hh, 'W_hy': W_hy, '_B': _B, '_T_t': _T_t, '_carried_h': _carried_h, '_dtype': _dtype, '_fill_h': _fill_h, '_final': _final, '_full_t': _full_t, '_len_t': _len_t, '_loss': _loss, '_t6': _t6, '_valid_t': _valid_t, 'h': h, 'target': target, 'x': x, 'y': y}
    _tape['_total_loss'] = _float(_loss.mean())
    return _tape

def backward(_params, _tape, _truncate=None, _buffers=None):
    """The gradient of the mean loss with respect to every parameter (truncate: BPTT window).
    _buffers: the caller's dict of adjoint buffers, reused from call to call (None: fresh ones)."""
    W_hh = _tape['W_hh']
    W_hy = _tape['W_hy']
    _B = _tape['_B']
    _T_t = _tape['_T_t']
    _carried_h = _tape['_carried_h']
    _dtype = _tape['_dtype']
    _fill_h = _tape['_fill_h']
    _full_t = _tape['_full_t']
    _len_t = _tape['_len_t']
    _t6 = _tape['_t6']
    _valid_t = _tape['_valid_t']
    h = _tape['h']
    target = _tape['target']
    x = _tape['x']
    y = _tape['y']
    d_W_xh = _xp.empty((16, 4), _dtype)
    d_W_hh = _xp.empty((16, 16), _dtype)
    d_b_h = _xp.empty((16,), _dtype)
    d_W_hy = _xp.empty((4, 16), _dtype)
    d_b_y = _xp.empty((4,), _dtype)
    d__loss = _scratch(_xp, _buffers, 'd__loss', (_B,) + (), _dtype, True)
    d__t6 = _scratch(_xp, _buffers, 'd__t6', (_T_t, _B) + (), _dtype, False)
    d_y = _scratch(_xp, _buffers, 'd_y', (_T_t, _B) + (4,), _dtype, False)
    d_h = _scratch(_xp, _buffers, 'd_h', (_T_t, _B) + (16,), _dtype, False)
    d__t4 = _scratch(_xp, _buffers, 'd__t4', (_T_t, _B) + (16,), _dtype, False)
    d__loss[...] = 1.0 / _B
    # loss: mean_t cross_entropy(y[t], target[t])
    d__t6[...] = _reduce_mean_vjp(_xp, d__loss, _t6, valid=_valid_t)
    d_y[...] = _cross_entropy_vjp(_xp, y, target, d__t6)
    # y[t] = W_hy @ h[t] + b_y  (elman.yaml:17)
    d_b_y[...] = _sum_to_param(_xp, d_y, 1)
    d_W_hy[...] = _matmul_vjp(_xp, d_y, h, ra=2, rb=1, side=0, summed=1)
    d_h[...] = _gemm(_xp, d_y, W_hy)
    _wT_W_hh = _xp.ascontiguousarray(W_hh.T)
    # adjoint of the recurrence h, running backward over t
    for _t in _range(_T_t - 1, -1, -1):
        # h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)  (elman.yaml:16)
        _tanh_vjp(_xp, h[_t], d_h[_t], out=d__t4[_t])
        _v = _xp.matmul(_wT_W_hh, d__t4[_t].T).T
        if _t-1 >= 0 and (_truncate is None or (_t-1) // _truncate == _t // _truncate):
            d_h[_t-1] += _v
    # h[t] = tanh(W_xh @ x[t] + W_hh @ h[t-1] + b_h)  (elman.yaml:16)
    d_W_hh[...] = _outer_sum_shifted(_xp, d__t4, h, -1, _fill_h)
    d_b_h[...] = _sum_to_param(_xp, d__t4, 1)
    d_W_xh[...] = _embed_vjp(_xp, d__t4, x, classes=4)
    return {'W_xh': d_W_xh, 'W_hh': d_W_hh, 'b_h': d_b_h, 'W_hy': d_W_hy, 'b_y': d_b_y}


def loss_and_grad(params, inputs, lengths=None, dtype=None, truncate=None, buffers=None):
    """Mean loss over the batch and the gradient of every parameter; `buffers`: a dict of yours
    that backward() keeps its adjoint buffers in between calls (faster), None for fresh ones."""
    tape = forward(params, inputs, lengths, *([dtype] if dtype else []))
    return tape["_total_loss"], backward(params, tape, truncate, buffers)
