"""Where ops are non-smooth: the op table's `kinks` entries.

Each is a function of an op's forward arguments and attrs (as the forward takes them, without
xp) returning the signed distances of those arguments to the op's kinks: zero at a kink,
changing sign across one. For ties (max-pooling, max_t, min_t) it is the gap between the two
largest (smallest) candidates, zero where they tie. Gradient checks keep their finite
differences from straddling a kink with it. Poles (log, / at 0) are not kinks.
"""
import numpy as np

from . import kernels


def at_zero(x):
    """relu and abs bend at 0."""
    return [x]


def at_bounds(x, lo, hi):
    return [np.subtract(x, lo), np.subtract(x, hi)]


def at_constant(x, c):
    """min and max with a constant bend where x meets it."""
    return [np.subtract(x, c)]


def _gap(values, axis: int):
    """Largest minus second largest along `axis` (inf with a single candidate)."""
    top = np.sort(np.moveaxis(np.asarray(values, np.float64), axis, -1), axis=-1)
    if top.shape[-1] < 2:
        return np.full(top.shape[:-1], np.inf)
    first, second = top[..., -1], top[..., -2]
    return np.where(np.isfinite(second), first - second, np.inf)


def pool_gap(x, size=2, stride=0):
    win = kernels._windows(np, np.asarray(x, np.float64), int(size), int(size), int(stride or size), 0)
    return [_gap(win.reshape(win.shape[:-2] + (-1,)), -1)]


def extreme_gap(sign: float):
    """max_t (sign 1) or min_t (-1) of time-major values; padded steps, if marked, never win."""
    def kinks(x, valid=None):
        x = sign * np.asarray(x, np.float64)
        if valid is not None:
            x = np.where(kernels._expand(valid, x), x, -np.inf)
        return [_gap(x, 0)]
    return kinks


def last_gap(sign: float):
    """max (sign 1) or min (-1) over a value's entries: the gap between its two best entries."""
    return lambda x: [_gap(sign * np.asarray(x, np.float64), -1)]
