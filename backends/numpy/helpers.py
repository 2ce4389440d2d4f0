"""Array helpers the emitted modules call (copied into each module, like the kernels):
reads of a whole sequence at an offset, and their adjoints."""


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


def shift(xp, a, k, fill=None, valid=None):
    """a[t + k] for every step t at once; outside the sequence, `fill` (a state init) or
    zeros. With `valid` (T, B), steps past each sequence's own end count as outside."""
    T = a.shape[0]
    out = xp.empty_like(a)
    empty = -1 if a.dtype.kind in "iu" else 0.0          # an absent class, or zeros
    out[...] = empty if fill is None else fill
    if abs(k) < T:
        if k >= 0:
            out[:T - k] = a[k:]
        else:
            out[-k:] = a[:T + k]
    if valid is not None and k > 0:
        inside = xp.zeros_like(valid)
        if k < T:
            inside[:T - k] = valid[k:]
        inside = inside.reshape(inside.shape + (1,) * (a.ndim - 2))
        out = xp.where(inside, out, empty if fill is None else fill)
    return out


def unshift_add(xp, d, v, k, valid=None):
    """The adjoint of shift: d[t + k] += v[t] where t + k lies inside; returns the sum over
    steps of what fell outside (the adjoint of the fill), (B, ...)."""
    T = d.shape[0]
    inside = xp.zeros(v.shape[:2], dtype=bool)
    if abs(k) < T:
        if k >= 0:
            inside[:T - k] = True if valid is None else valid[k:]
        else:
            inside[-k:] = True
    inside = inside.reshape(inside.shape + (1,) * (v.ndim - 2))
    kept = xp.where(inside, v, 0.0)
    if abs(k) < T:
        if k >= 0:
            d[k:] += kept[:T - k]
        else:
            d[:T + k] += kept[-k:]
    return xp.where(inside, 0.0, v).sum(axis=0)


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


