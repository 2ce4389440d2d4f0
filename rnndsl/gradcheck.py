"""Derived gradients against float64 central differences, parameter by parameter."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import limits
from .inputs import check_shape, random_batch


@dataclass(frozen=True)
class ParamCheck:
    name: str
    shape: tuple
    worst: float          # worst relative error over the entries checked
    checked: int


def gradcheck(model, steps: int = 5, batch: int = 2, seed: int = 0, entries: int = 8) -> list:
    """Check `entries` random entries of every parameter (and one random direction) of a
    float64 compiled model on random ragged inputs.

    Each derivative is estimated twice: Richardson-extrapolated central differences at
    1e-3 (error O(eps^4)) and plain ones at 1e-6 (which rarely straddle a kink of relu or
    clip); the better agreement counts. The relative error's denominator has a floor of
    1e-6 (1 + |loss|): below it a difference quotient is mostly rounding noise."""
    limits.check_seed(seed)
    check_shape(model.spec, steps, batch)
    rng = np.random.default_rng(seed)
    inputs = random_batch(model.spec, steps, batch, seed)
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in model.init_params(seed).items()}
    _, grads = model.loss_and_grad(params, inputs)
    loss = lambda p: model.forward(p, inputs)["loss"]
    floor = 1e-6 * (1 + abs(model.forward(params, inputs)["loss"]))
    out = []
    for name, value in params.items():
        directions = [_unit(value.shape, i) for i in rng.choice(value.size, min(entries, value.size), replace=False)]
        directions.append(rng.normal(size=value.shape))
        worst = 0.0
        for d in directions:
            central = lambda eps: (loss({**params, name: value + eps * d})
                                   - loss({**params, name: value - eps * d})) / (2 * eps)
            exact = float((grads[name] * d).sum())
            estimates = [(4 * central(5e-4) - central(1e-3)) / 3, central(1e-6)]
            errors = [abs(n - exact) / max(abs(n), abs(exact), floor) for n in estimates]
            worst = max(worst, min(errors) if all(np.isfinite(errors)) else np.inf)   # NaN fails
        out.append(ParamCheck(name, value.shape, worst, len(directions)))
    return out


def _unit(shape: tuple, flat_index: int) -> np.ndarray:
    d = np.zeros(int(np.prod(shape)))
    d[flat_index] = 1.0
    return d.reshape(shape)
