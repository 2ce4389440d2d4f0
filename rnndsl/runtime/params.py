"""Parameter initialisation from each param's `init:` (deterministic for a seed)."""
from __future__ import annotations

import zlib

import numpy as np

from ..frontend import ir
from ..core import limits

COPIES = 5      # training holds the parameters, their gradients, two optimizer slots (Adam) and a checkpoint's copy


def init_params(model: ir.Model, seed: int = 0, dtype="float64") -> dict:
    """name -> array with exactly the declared shape. Each parameter draws from its own
    stream (seeded by the seed and its name), so adding a parameter changes no other.
    The seed and the memory training needs are checked first."""
    limits.check_seed(seed)
    check_memory(model, dtype)
    return {p.name: initial_value(p, seed).astype(dtype) for p in model.params}


def check_memory(model: ir.Model, dtype="float64") -> None:
    """A SpecError, before anything is allocated, when training the parameters would not fit
    in the machine's memory (COPIES arrays of each); it names the size and the largest ones."""
    count = model.param_count()
    need = count * np.dtype(dtype).itemsize * COPIES
    largest = sorted(model.params, key=lambda p: -int(np.prod(p.type.dims, dtype=np.float64)))[:3]
    limits.check_memory(need, f"training {model.name}'s {count:,} parameter values ({np.dtype(dtype)}, with "
                        "gradients, optimizer state and a checkpoint's copy)",
                        "make the largest smaller (" + ", ".join(f"{p.name} {p.type}" for p in largest) + ")",
                        pos=largest[0].pos if largest else None)


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
