"""Parameter initialisation from each param's `init:` (deterministic for a seed)."""
from __future__ import annotations

import zlib

import numpy as np

from . import ir


def init_params(model: ir.Model, seed: int = 0, dtype="float64") -> dict:
    """name -> array with exactly the declared shape. Each parameter draws from its own
    stream (seeded by the seed and its name), so adding a parameter changes no other."""
    return {p.name: initial_value(p, seed).astype(dtype) for p in model.params}


def initial_value(p: ir.Param, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(p.name.encode())])
    shape = p.type.dims
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else max(1, int(np.prod(shape)))
    fan_out = shape[0] if shape else 1
    fn, args = p.init.fn, p.init.args
    if fn == "auto":
        fn, args = ("zeros", ()) if len(shape) <= 1 else ("uniform", (1 / np.sqrt(fan_in),))
    if fn == "zeros":
        return np.zeros(shape)
    if fn == "ones":
        return np.ones(shape)
    if fn == "constant":
        return np.full(shape, args[0])
    if fn == "normal":
        mean, std = (0.0, args[0]) if len(args) == 1 else args
        return rng.normal(mean, std, shape)
    if fn == "uniform":
        lo, hi = (-args[0], args[0]) if len(args) == 1 else args
        return rng.uniform(lo, hi, shape)
    if fn == "xavier":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if fn == "orthogonal":
        return _orthogonal(rng, shape)
    raise ValueError(f"unknown initialiser {fn}")


def _orthogonal(rng, shape) -> np.ndarray:
    rows, cols = shape
    q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))            # a uniform draw over orthogonal matrices
    return q if rows >= cols else q.T
