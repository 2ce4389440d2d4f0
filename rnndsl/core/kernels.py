"""Array formulas of the ops, forward and backward, for any NumPy-like module `xp`.

Every function is batch-polymorphic: the trailing axes of an argument are its spec shape,
leading axes are batch (and time). The reference interpreter calls them on single
examples, emitted modules on whole batches; `backends/numpy/emit.py` copies the source of the
ones a program uses into the module it writes, so these are the only copies.
`ranks` (where taken) are the spec ranks of the array arguments.

The elementwise ops are not written here as array code: each is a scalar template
(rnndsl/core/templates.py), and its NumPy function is rendered from it (DERIVED, at the end), as
its C and numba forms are (rnndsl/core/scalar.py). This folder's modules import only NumPy and
each other.
"""
import numpy as np

from . import features
from .scalar_numpy import numpy_function
from .templates import TEMPLATES


def log_softmax(xp, x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_MATMUL = {(2, 1): "...mn,...n->...m", (1, 2): "...n,...nm->...m",
           (2, 2): "...mn,...nk->...mk", (1, 1): "...n,...n->..."}


# A parameter matrix W (no batch axes) against a batch of vectors is one GEMM over the batch
# rows: W @ x is x @ W.T, and its adjoint for x is dout @ W. (spec ranks, side: None for the
# forward, else the argument of the adjoint) -> (the rows, the matrix, whether to transpose it),
# positions in the kernel's own arguments; emitters read it to write the same GEMM themselves.
_PARAM_GEMM = {(2, 1, None): (1, 0, True), (2, 1, 1): (0, 1, False)}
PARAM_GEMM = _PARAM_GEMM      # the emitters' name for it (emitted modules copy the private one)


def param_gemm(form, args):
    rows, matrix, transpose = form
    return args[rows] @ (args[matrix].T if transpose else args[matrix])


def matmul(xp, a, b, ranks):
    """Spec-level `a @ b` for vectors and matrices, with leading batch axes on either side."""
    if ranks[1] == 0:                            # W @ w[t] with w a class index: W's column
        return embed(xp, a, b)
    form = _PARAM_GEMM.get((*ranks, None))
    if form and (a, b)[form[1]].ndim == 2:       # a parameter times a batch: one GEMM
        return param_gemm(form, (a, b))
    return xp.einsum(_MATMUL[tuple(ranks)], a, b)


def concat(xp, *parts, ranks):
    """Parts joined along their first spec axis; leading (batch, time) axes broadcast, so a
    step can be joined with a static value or a parameter."""
    if all(p.ndim == r for p, r in zip(parts, ranks)):      # no leading axes (stacked weights)
        return xp.concatenate(parts, axis=0)
    lead = np.broadcast_shapes(*[p.shape[:p.ndim - r] for p, r in zip(parts, ranks)])
    parts = [xp.broadcast_to(p, lead + p.shape[p.ndim - r:]) for p, r in zip(parts, ranks)]
    return xp.concatenate(parts, axis=-ranks[0])


def flatten(xp, x, ranks):
    return x.reshape(x.shape[:x.ndim - ranks[0]] + (-1,))


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


def maxpool2d(xp, x, size=2, stride=0):
    size = int(size)
    return _windows(xp, x, size, size, int(stride or size), 0).max(axis=(-2, -1))


def sample(xp, y, rng=None, temperature=1.0):
    """Draw a class from softmax(y / temperature); greedy (argmax) when temperature is 0."""
    if temperature == 0:
        return y.argmax(axis=-1)
    p = softmax(xp, y / temperature)
    u = (rng or np.random.default_rng()).random(p.shape[:-1] + (1,))
    return (p.cumsum(axis=-1) < u).sum(axis=-1).clip(0, p.shape[-1] - 1)


# ---- CTC (Graves et al. 2006), batched, in log space --------------------------------------------

def _ctc_lattice(xp, y, labels, blank, y_len, label_len):
    """Log-probabilities on the extended label sequence (T, B, S) and the allowed skips."""
    T, B, K = y.shape
    logp = log_softmax(xp, y)
    U = labels.shape[0]
    ext = np.full((B, 2 * U + 1), int(blank), dtype=np.int64)
    ext[:, 1::2] = np.asarray(labels).T
    lp = np.take_along_axis(logp, np.broadcast_to(ext[None], (T,) + ext.shape), axis=-1)
    skip = np.zeros(ext.shape, bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return logp, ext, lp, skip


def _logsumexp3(a, b, c):
    m = np.maximum(np.maximum(a, b), c)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):                   # log(0) = -inf: an unreachable state
        return safe + np.log(np.exp(a - safe) + np.exp(b - safe) + np.exp(c - safe))


def _shift_right(a, k):
    """a moved k places to the right along the last axis, -inf filling."""
    out = np.full_like(a, -np.inf)
    out[..., k:] = a[..., :a.shape[-1] - k]
    return out


def _ctc_alpha(lp, skip):
    T = lp.shape[0]
    alpha = np.full(lp.shape, -np.inf)
    alpha[0, :, :2] = lp[0, :, :2]
    for t in range(1, T):
        prev = alpha[t - 1]
        two = np.where(skip, _shift_right(prev, 2), -np.inf)
        alpha[t] = _logsumexp3(prev, _shift_right(prev, 1), two) + lp[t]
    return alpha


def _ctc_beta(lp, skip, t_end, s_end):
    """beta[t, b, s]: log-probability of the paths from label s at frame t to the end of
    sequence b (frame t_end[b], label s_end[b] or the blank before it); -inf past the end."""
    T, B, S = lp.shape
    b = np.arange(B)
    skip_next = np.zeros_like(skip)
    skip_next[:, :-2] = skip[:, 2:]
    beta = np.full(lp.shape, -np.inf)
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            nxt = beta[t + 1]
            two = np.where(skip_next, _shift_right(nxt[..., ::-1], 2)[..., ::-1], -np.inf)
            beta[t] = _logsumexp3(nxt, _shift_right(nxt[..., ::-1], 1)[..., ::-1], two) + lp[t]
        ending = t_end == t
        init = np.full((B, S), -np.inf)
        init[b, s_end] = lp[t, b, s_end]
        init[b, np.maximum(s_end - 1, 0)] = np.where(s_end >= 1, lp[t, b, np.maximum(s_end - 1, 0)],
                                                     init[b, np.maximum(s_end - 1, 0)])
        beta[t] = np.where(ending[:, None], init, np.where((t > t_end)[:, None], -np.inf, beta[t]))
    return beta


def ctc(xp, y, labels, blank=0, lengths=None):
    """-log p(labels | y) per sequence. y (T, B, K) scores, labels (U, B) classes, with
    lengths = (frames (B,), labels (B,)); a single sequence y (T, K), labels (U,) gives a
    scalar."""
    if y.ndim == 2:
        return ctc(xp, y[:, None], np.asarray(labels).reshape(-1, 1), blank)[0]
    T, B, _ = y.shape
    y_len, label_len = lengths if lengths is not None else (None, None)
    y_len = np.full(B, T) if y_len is None else np.asarray(y_len)
    label_len = np.full(B, labels.shape[0]) if label_len is None else np.asarray(label_len)
    _, ext, lp, skip = _ctc_lattice(xp, y, labels, blank, y_len, label_len)
    return -_ctc_log_z(_ctc_alpha(lp, skip), y_len, label_len)


def _ctc_log_z(alpha, y_len, label_len):
    """log p(labels | y) per sequence: the paths ending in the last label or the blank after it."""
    t_end, s_end = np.asarray(y_len) - 1, 2 * np.asarray(label_len)
    b = np.arange(alpha.shape[1])
    final = alpha[t_end, b]
    last = final[b, s_end]
    before = np.where(s_end >= 1, final[b, np.maximum(s_end - 1, 0)], -np.inf)
    return np.logaddexp(last, before)


def ctc_vjp(xp, y, labels, dout, blank=0, lengths=None):
    """d ctc / d y (T, B, K) times dout (B,): softmax minus the label occupancy."""
    T, B, K = y.shape
    y_len, label_len = lengths if lengths is not None else (None, None)
    y_len = np.full(B, T) if y_len is None else np.asarray(y_len)
    label_len = np.full(B, labels.shape[0]) if label_len is None else np.asarray(label_len)
    logp, ext, lp, skip = _ctc_lattice(xp, y, labels, blank, y_len, label_len)
    alpha = _ctc_alpha(lp, skip)
    t_end, s_end = y_len - 1, 2 * label_len
    beta = _ctc_beta(lp, skip, t_end, s_end)
    log_z = _ctc_log_z(alpha, y_len, label_len)          # from this alpha: no second pass
    with np.errstate(invalid="ignore"):                 # -inf - -inf off the lattice: zeroed below
        occupancy_s = np.exp(alpha + beta - lp - log_z[None, :, None])
    occupancy_s = np.where(np.isfinite(occupancy_s), occupancy_s, 0.0)
    onehot = (ext[:, :, None] == np.arange(K)).astype(y.dtype)
    occupancy = np.einsum("tbs,bsk->tbk", occupancy_s, onehot)
    valid = (np.arange(T)[:, None] < y_len[None, :])[..., None]
    grad = np.where(valid, np.exp(logp) - occupancy, 0.0)
    return (grad * np.asarray(dout)[None, :, None]).astype(y.dtype)


# ---- backward formulas ----------------------------------------------------------------------

def softmax_vjp(xp, y, dy):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def log_softmax_vjp(xp, y, dy):
    return dy - xp.exp(y) * dy.sum(axis=-1, keepdims=True)


def cross_entropy_vjp(xp, y, target, dy):
    p = softmax(xp, y)
    if target.dtype.kind == "f":
        return (p * target.sum(axis=-1, keepdims=True) - target) * dy[..., None]
    if p.ndim <= target.ndim:                     # scores made of parameters only: one row per target
        p = xp.broadcast_to(p, target.shape + p.shape[-1:]).copy()
    p -= (xp.arange(y.shape[-1]) == target[..., None])
    return xp.where(target[..., None] >= 0, p * dy[..., None], 0.0)


def mse_vjp(xp, y, target, dy, ranks):
    n = 1
    for d in y.shape[y.ndim - ranks[0]:]:
        n *= d
    return (2.0 / n) * (y - target) * dy.reshape(dy.shape + (1,) * ranks[0])


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


# (ranks, side) -> (einsum, whether dout comes first)
_MATMUL_VJP = {(2, 1, 0): ("...m,...n->...mn", True), (2, 1, 1): ("...mn,...m->...n", False),
               (1, 2, 0): ("...nm,...m->...n", False), (1, 2, 1): ("...n,...m->...nm", False),
               (2, 2, 0): ("...mk,...nk->...mn", True), (2, 2, 1): ("...mn,...mk->...nk", False),
               (1, 1, 0): ("...,...n->...n", True), (1, 1, 1): ("...,...n->...n", True)}


def embed(xp, w, idx):
    """W @ onehot(idx): a column gather, (..., m); an absent class (-1) gives zeros."""
    return xp.where(idx[..., None] >= 0, w.T[idx], 0.0)


def embed_vjp(xp, dout, idx, classes):
    """The adjoint of W in W @ onehot(idx): a scatter-add of dout's rows into columns."""
    grad = xp.zeros((dout.shape[-1], int(classes)), dtype=dout.dtype)
    present = idx.reshape(-1) >= 0
    np.add.at(grad.T, idx.reshape(-1)[present], dout.reshape(-1, dout.shape[-1])[present])
    return grad


def onehot(xp, idx, classes, dtype=np.float64):
    """Class indices as vectors; no class (-1) is the zero vector."""
    return (idx[..., None] == xp.arange(int(classes))).astype(dtype)


def slice_last(xp, x, start, stop, ranks):
    """Part of x along its first spec axis (the inverse of concat)."""
    axis = x.ndim - ranks[0]
    index = (slice(None),) * axis + (slice(int(start), int(stop)),)
    return x[index]


def reshape_like(xp, d, x, ranks):
    """d with x's spec shape (the adjoint of flatten)."""
    return d.reshape(d.shape[:d.ndim - 1] + x.shape[x.ndim - ranks[1]:])


def conv2d_vjp_x(xp, dout, w, x, stride=1, pad=0):
    stride, pad = int(stride), int(pad)
    kh, kw = w.shape[-2:]
    H, W = x.shape[-2] + 2 * pad, x.shape[-1] + 2 * pad
    grad = xp.zeros(dout.shape[:-3] + (w.shape[-3], H, W), dtype=dout.dtype)
    contrib = xp.einsum("...ohw,...ocij->...chwij", dout, w)
    for i in range(kh):
        for j in range(kw):
            grad[..., i:i + stride * dout.shape[-2]:stride, j:j + stride * dout.shape[-1]:stride] += \
                contrib[..., i, j]
    return grad[..., pad:H - pad, pad:W - pad]


def conv2d_vjp_w(xp, dout, x, w, stride=1, pad=0, summed=1):
    win = _windows(xp, x, w.shape[-2], w.shape[-1], int(stride), int(pad))
    if summed:
        lead = dout.ndim - 3
        return xp.tensordot(dout, win, axes=(list(range(lead)) + [lead + 1, lead + 2],
                                             list(range(lead)) + [lead + 1, lead + 2]))
    return xp.einsum("...ohw,...chwij->...ocij", dout, win)


def maxpool2d_vjp(xp, x, y, dy, size=2, stride=0):
    size, stride = int(size), int(stride or size)
    win = _windows(xp, x, size, size, stride, 0)
    flat = win.reshape(win.shape[:-2] + (size * size,))
    first = (flat.argmax(axis=-1)[..., None] == xp.arange(size * size))     # one max per window
    first = first.reshape(win.shape)
    grad = xp.zeros_like(x)
    for i in range(size):
        for j in range(size):
            grad[..., i:i + stride * y.shape[-2]:stride, j:j + stride * y.shape[-1]:stride] += \
                first[..., i, j] * dy
    return grad


# ---- reductions over time and reads of one step, for batches with lengths ----------------------
# `valid` is (T, B): step t of sequence b is real; `lengths` is (B,).

def _expand(mask, x):
    return mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))


def softmax_over(xp, x, valid=None):
    """Softmax over the leading axis (the steps of an inner axis: attention weights), each
    example over its own steps only: padded steps get weight 0."""
    if valid is not None:
        x = xp.where(_expand(valid, x), x, -xp.inf)
    e = xp.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def softmax_over_vjp(xp, y, dy, valid=None):
    return y * (dy - (dy * y).sum(axis=0, keepdims=True))


def dropout_off(xp, x, p, same=0):
    """dropout as evaluation sees it (the checker replaces every call by x * mask)."""
    return x


def mask_off(xp, x, width, n=1):
    """mask_steps and mask_band as evaluation sees them (the checker makes them x * mask)."""
    return x


def sum_inner(xp, x):
    """The adjoint of a value broadcast over an inner axis (the leading one): its sum."""
    return x.sum(axis=0)


def reduce_sum(xp, x, valid):
    return xp.where(_expand(valid, x), x, 0.0).sum(axis=0)


def reduce_mean(xp, x, valid):
    count = valid.sum(axis=0).astype(x.dtype)
    return reduce_sum(xp, x, valid) / _expand(count, x[0])


def reduce_max(xp, x, valid):
    return xp.where(_expand(valid, x), x, -xp.inf).max(axis=0)


def reduce_min(xp, x, valid):
    return xp.where(_expand(valid, x), x, xp.inf).min(axis=0)


def reduce_sum_vjp(xp, dy, x, valid):
    return xp.where(_expand(valid, x), dy[None], 0.0).astype(x.dtype)


def reduce_mean_vjp(xp, dy, x, valid):
    count = valid.sum(axis=0).astype(dy.dtype)
    return reduce_sum_vjp(xp, dy / _expand(count, dy), x, valid)


def reduce_extreme_vjp(xp, dy, x, y, valid):
    """Max and min send the adjoint to the steps that attain the extreme, shared equally among
    tied steps: a value constant in time (`v[t] = P`) ties at every step, and all of them
    together move the extreme once, not once per step."""
    hit = _expand(valid, x) & (x == y[None])
    share = dy / xp.maximum(hit.sum(axis=0), 1)
    return xp.where(hit, share[None], 0.0).astype(x.dtype)


def _step_index(lengths, from_end, offset):
    return lengths - 1 + int(offset) if from_end else lengths * 0 + int(offset)


def gather_step(xp, x, *fill, lengths, from_end=1, offset=0):
    """x[end + offset] (from_end) or x[offset] for each sequence; outside it the fill
    (a state init, (B, ...)) or zeros. Class indices stay integers; outside it, -1 (no class)."""
    index = _step_index(lengths, from_end, offset)
    inside = (index >= 0) & (index < lengths)
    picked = x[xp.clip(index, 0, x.shape[0] - 1), xp.arange(x.shape[1])]
    absent = fill[0] if fill else (0.0 if picked.dtype.kind == "f" else -1)
    return xp.where(_expand(inside, picked), picked, absent)


def gather_vjp(xp, dy, x, lengths, from_end=1, offset=0, fill=0):
    """The adjoint of x (a sequence) or, with fill=1, of the fill (B, ...)."""
    index = _step_index(lengths, from_end, offset)
    inside = (index >= 0) & (index < lengths)
    if fill:
        return xp.where(_expand(inside, dy), 0.0, dy)
    grad = xp.zeros_like(x)
    b = xp.arange(x.shape[1])
    grad[xp.clip(index, 0, x.shape[0] - 1), b] = xp.where(_expand(inside, dy), dy, 0.0)
    return grad


# ---- elementwise ops: NumPy functions rendered from their scalar templates -----------------------

def _rendered(name: str):
    """The op's NumPy function, rendered from its template (`fn.__source__` is its source)."""
    fn = numpy_function(name, TEMPLATES[name])
    fn.__module__ = __name__                # found among this module's kernels by the emitter
    return fn


DERIVED = {name: _rendered(name) for name in TEMPLATES}
# the ones emitted code calls by name (the others are single NumPy ufuncs, called directly)
sigmoid, relu, softplus = DERIVED["sigmoid"], DERIVED["relu"], DERIVED["softplus"]
tanh_vjp, sigmoid_vjp, relu_vjp, abs_vjp = (DERIVED[n] for n in ("tanh_vjp", "sigmoid_vjp", "relu_vjp", "abs_vjp"))
clip_vjp, min_vjp, max_vjp = DERIVED["clip_vjp"], DERIVED["min_vjp"], DERIVED["max_vjp"]
sqrt_vjp, pow_vjp = DERIVED["sqrt_vjp"], DERIVED["pow_vjp"]


# ---- ops over a value's own entries (rnndsl/core/features.py), found here by the emitters ------

from .features import (extreme_last_vjp, layer_norm, layer_norm_vjp, max_last, mean_last,  # noqa: E402
                       mean_last_vjp, min_last, slice_vjp, sum_last, sum_last_vjp)
for _fn in features.KERNELS:
    _fn.__module__ = __name__
del _fn
