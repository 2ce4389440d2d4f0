"""Array formulas of the ops over a value's own entries (its last spec axis), forward and backward:
sum, mean, max and min of a vector's entries, layer normalisation, and the adjoint of a slice.

Like rnndsl/core/kernels.py (which re-exports them, so emitters find them among its kernels),
every function takes the array module `xp` and is batch-polymorphic: leading axes are batch
(and time). Only xp's array methods are used, so CuPy runs the same code.
"""


def sum_last(xp, x):
    return x.sum(axis=-1)


def mean_last(xp, x):
    return x.mean(axis=-1)


def max_last(xp, x):
    return x.max(axis=-1)


def min_last(xp, x):
    return x.min(axis=-1)


def sum_last_vjp(xp, dy, x):
    """Every entry gets the sum's adjoint (a new array: the adjoint may be written into)."""
    return xp.zeros_like(x) + dy[..., None]


def mean_last_vjp(xp, dy, x):
    return xp.zeros_like(x) + dy[..., None] / x.shape[-1]


def extreme_last_vjp(xp, dy, x, y):
    """max and min send the adjoint to the entries that attain the extreme, shared equally
    among ties (as max_t does over steps)."""
    hit = x == y[..., None]
    share = dy / hit.sum(axis=-1)
    return xp.where(hit, share[..., None], 0.0).astype(x.dtype)


def layer_norm(xp, x, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over the last axis, with the biased variance (as torch)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / xp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)


def layer_norm_vjp(xp, x, dy, eps=1e-5):
    """With y = layer_norm(x) and s = sqrt(var + eps): dx = (dy - mean(dy) - y mean(dy y)) / s.
    Recomputed from x, so the forward keeps nothing but its input and output."""
    centred = x - x.mean(axis=-1, keepdims=True)
    s = xp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    y = centred / s
    return (dy - dy.mean(axis=-1, keepdims=True) - y * (dy * y).mean(axis=-1, keepdims=True)) / s


def slice_vjp(xp, dy, x, start, stop, ranks):
    """The adjoint of x in slice_last(x, start, stop): dy in its place, zeros elsewhere."""
    grad = xp.zeros(dy.shape[:dy.ndim - ranks[1]] + x.shape[x.ndim - ranks[1]:], dtype=dy.dtype)
    axis = grad.ndim - ranks[1]
    grad[(slice(None),) * axis + (slice(int(start), int(stop)),)] = dy
    return grad


KERNELS = (sum_last, mean_last, max_last, min_last, sum_last_vjp, mean_last_vjp, extreme_last_vjp,
           layer_norm, layer_norm_vjp, slice_vjp)
