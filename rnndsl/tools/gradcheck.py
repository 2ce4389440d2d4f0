"""A float64 compiled model against the meaning of its spec, on one random ragged batch.

Two checks, each reported per value: the forward (the loss, the per-sequence losses and every
variable) against the reference interpreter, and the derived gradient of every parameter
against finite differences of the compiled loss. A finite difference must not straddle a kink
of an op in the forward pass (the op table's KINKS: relu, clip, abs, min/max with a constant,
maxpool2d, max_t and min_t ties): the interpreter measures how far each direction can go
before an argument of such an op reaches its kink, and a direction without room on both sides
takes a one-sided difference on the side with room, or a shorter step, or is replaced.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frontend import ir
from ..core import limits
from ..semantics.inputs import check_shape, prepare, random_batch
from ..semantics.interpret import REDUCERS, Sequence, _order, interpret
from ..semantics.truncated import Windowed
from ..core.ops import KINKS, TABLE, Op

FORWARD_TOL = 1e-10        # largest |compiled - interpreted| / max(1, |interpreted|) accepted
RICHARDSON = 1e-3          # central steps 1e-3 and 5e-4, extrapolated: error O(step^4)
PLAIN = 1e-6               # a plain central step; also the shortest one-sided step
SMALLEST = 1e-7            # no central step below it: rounding (1e-16 |loss| / step) nears the tolerance
MARGIN = 4.0               # every point stays this many times closer than the nearest kink
SLOPE_STEP = 1e-5          # how far a direction is followed to see how the kinks move


@dataclass(frozen=True)
class ValueCheck:
    """A value of the compiled forward against the reference interpreter."""
    name: str              # "loss", "losses" or a variable
    shape: tuple
    error: float           # largest |compiled - interpreted| / max(1, |interpreted|)

    def ok(self, tol: float = FORWARD_TOL) -> bool:
        return self.error <= tol           # NaN fails


@dataclass(frozen=True)
class ParamCheck:
    """A parameter's derived gradient against central differences."""
    name: str
    shape: tuple
    worst: float           # worst relative error over the directions checked
    checked: int           # directions checked
    skipped: int = 0       # directions replaced: a kink closer than the smallest step
    where: str = ""        # the worst direction: "entry (0, 2)" or "a random direction"
    derived: float = np.nan   # <gradient, direction> there
    numeric: float = np.nan   # the finite difference there

    def ok(self, tol: float) -> bool:
        return self.checked > 0 and self.worst <= tol


@dataclass(frozen=True)
class Report:
    forward: tuple         # ValueCheck per value
    params: tuple          # ParamCheck per parameter

    def ok(self, tol: float, forward_tol: float = FORWARD_TOL) -> bool:
        return all(v.ok(forward_tol) for v in self.forward) and all(p.ok(tol) for p in self.params)


def gradcheck(model, steps: int = 5, batch: int = 2, seed: int = 0, entries: int = 8,
              lengths: dict | None = None, truncate: int | None = None) -> Report:
    """Check a float64 compiled model on a random ragged batch (random `lengths` unless given,
    garbage in the padding) with perturbed initial parameters: its forward against the
    interpreter, and `entries` random entries and one random direction of every parameter's
    gradient (truncated BPTT's with `truncate`) against finite differences."""
    limits.check_seed(seed)
    check_shape(model.spec, steps, batch)
    rng = np.random.default_rng(seed)
    inputs = random_batch(model.spec, steps, batch, seed, lengths=lengths, garbage=True)
    return check(model, perturbed_params(model, seed, rng), inputs, rng, entries, truncate)


def perturbed_params(model, seed: int, rng: np.random.Generator | None = None) -> dict:
    """The model's initial parameters (by `seed`) plus N(0, 0.1) noise from `rng` (by `seed`)."""
    rng = np.random.default_rng(seed) if rng is None else rng
    return {k: v + 0.1 * rng.normal(size=v.shape) for k, v in model.init_params(seed).items()}


def check(model, params: dict, inputs: dict, rng: np.random.Generator, entries: int = 8,
          truncate: int | None = None) -> Report:
    """Both checks at the given parameters and inputs."""
    forward = compare_forward(model, params, inputs)
    case = _Case(model, params, inputs, truncate)
    return Report(tuple(forward), tuple(_check_param(case, name, rng, entries) for name in params))


# ---- the forward against the interpreter ------------------------------------------------------

def compare_forward(model, params: dict, inputs: dict) -> list:
    """The loss, the per-sequence losses and every variable, compiled vs interpreted."""
    ref = interpret(model.spec, params, inputs)
    out = model.forward(params, inputs)
    wanted = {"loss": ref.loss, "losses": ref.losses, **ref.values}
    return [ValueCheck(name, np.shape(want), _difference(out.get(name), want)) for name, want in wanted.items()]


def _difference(got, want) -> float:
    """Largest |got - want| / max(1, |want|); inf for a wrong shape or a non-finite mismatch."""
    if got is None or np.shape(got) != np.shape(want):
        return np.inf
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    same = (got == want) | (np.isnan(got) & np.isnan(want))      # equal infinities and NaNs agree
    with np.errstate(invalid="ignore"):                           # inf - inf where they agree
        error = np.where(same, 0.0, np.abs(got - want) / np.maximum(1.0, np.abs(want)))
    return float(np.nan_to_num(error, nan=np.inf).max(initial=0.0))


# ---- gradients against central differences -----------------------------------------------------

class _Case:
    """One parameter point: its loss, derived gradient and the distances to every kink. With
    `truncate`, the loss is the one truncated BPTT differentiates (semantics/truncated.py)."""

    def __init__(self, model, params: dict, inputs: dict, truncate: int | None = None):
        self.model, self.params, self.inputs = model, params, inputs
        self.grads = model.loss_and_grad(params, inputs, truncate=truncate)[1]
        self.windowed = Windowed(model.spec, params, inputs, truncate) if truncate else None
        # below this a difference quotient is mostly rounding noise
        self.floor = 1e-6 * (1 + abs(self.loss(params)))
        self.kinks = kink_distances(model.spec, params, inputs)

    def loss(self, params: dict) -> float:
        if self.windowed:
            return self.windowed.loss(params)
        return self.model.forward(params, self.inputs)["loss"]

    def moved(self, name: str, d: np.ndarray, eps: float) -> dict:
        return {**self.params, name: self.params[name] + eps * d}

    def central(self, name: str, d: np.ndarray, eps: float) -> float:
        return (self.loss(self.moved(name, d, eps)) - self.loss(self.moved(name, d, -eps))) / (2 * eps)

    def rooms(self, name: str, d: np.ndarray) -> tuple:
        """How far the parameter can move along +d and along -d (in multiples of d) before an
        argument of a kinked op reaches its kink, to first order; kinks d does not move do not count."""
        moved = kink_distances(self.model.spec, self.moved(name, d, SLOPE_STEP), self.inputs)
        with np.errstate(invalid="ignore"):               # inf - inf: a lone candidate, no kink
            change = moved - self.kinks
        moving = np.abs(change) > 64 * np.finfo(np.float64).eps * (1 + np.abs(self.kinks))
        crossing = -self.kinks[moving] * SLOPE_STEP / change[moving]       # where each reaches 0
        return (float(np.min(crossing[crossing >= 0], initial=np.inf)),
                float(np.min(-crossing[crossing <= 0], initial=np.inf)))

    def estimates(self, name: str, d: np.ndarray) -> list:
        """Difference quotients along d whose points all stay clear of every kink: central ones
        where both sides have room, else one-sided ones on the side with more room."""
        ahead, behind = self.rooms(name, d)
        out = []
        if min(ahead, behind) > MARGIN * RICHARDSON:
            out.append((4 * self.central(name, d, RICHARDSON / 2) - self.central(name, d, RICHARDSON)) / 3)
        else:
            h = min(RICHARDSON, max(ahead, behind) / (4 * MARGIN))
            if h >= PLAIN:
                out.append(self.one_sided(name, d, 1.0 if ahead >= behind else -1.0, h))
        step = min(PLAIN, min(ahead, behind) / MARGIN)
        if step >= SMALLEST:
            out.append(self.central(name, d, step))
        return out

    def one_sided(self, name: str, d: np.ndarray, side: float, h: float) -> float:
        """The five-point one-sided difference (error O(h^4)) towards `side` (+1 or -1)."""
        f = [self.loss(self.moved(name, d, side * k * h)) for k in range(5)]
        return side * (-25 * f[0] + 48 * f[1] - 36 * f[2] + 16 * f[3] - 3 * f[4]) / (12 * h)

    def error(self, name: str, d: np.ndarray) -> tuple | None:
        """(relative error, derived, numeric) of the derived directional derivative along d
        against the better of the estimates clear of every kink; None if a kink leaves no
        room for any."""
        estimates = self.estimates(name, d)
        if not estimates:
            return None
        exact = float((self.grads[name] * d).sum())
        errors = [abs(n - exact) / max(abs(n), abs(exact), self.floor) for n in estimates]
        best = int(np.argmin(errors))
        return (errors[best] if all(np.isfinite(errors)) else np.inf), exact, estimates[best]   # NaN fails


def _check_param(case: _Case, name: str, rng: np.random.Generator, entries: int) -> ParamCheck:
    """`entries` random entries and one random direction, each replaced (up to twice as many
    tries again) when a kink leaves no room for a step."""
    value = case.params[name]
    want = min(entries, value.size)
    units = ((f"entry {tuple(int(j) for j in np.unravel_index(i, value.shape))}", _unit(value.shape, i))
             for i in rng.permutation(value.size)[:3 * want])
    randoms = (("a random direction", rng.normal(size=value.shape)) for _ in range(3))
    errors, skipped = [], 0
    for directions, count in ((units, want), (randoms, 1)):
        found = _errors(case, name, directions, count)
        errors += found[0]
        skipped += found[1]
    if not errors:
        return ParamCheck(name, value.shape, np.inf, 0, skipped)
    worst = max(errors, key=lambda e: np.nan_to_num(e[0], nan=np.inf))
    return ParamCheck(name, value.shape, worst[0], len(errors), skipped, *worst[1:])


def _errors(case: _Case, name: str, directions, count: int) -> tuple:
    """(error, where, derived, numeric) along the first `count` directions with room for a
    step, and how many were skipped."""
    errors, skipped = [], 0
    for where, d in directions:
        if len(errors) == count:
            break
        found = case.error(name, d)
        if found is None:
            skipped += 1
        else:
            errors.append((found[0], where, *found[1:]))
    return errors, skipped


def _unit(shape: tuple, flat_index: int) -> np.ndarray:
    d = np.zeros(int(np.prod(shape)))
    d[flat_index] = 1.0
    return d.reshape(shape)


# ---- where the kinks are -----------------------------------------------------------------------

_REDUCER_OPS = {ir.Reducer.SUM: Op.REDUCE_SUM, ir.Reducer.MEAN: Op.REDUCE_MEAN,
                ir.Reducer.MAX: Op.REDUCE_MAX, ir.Reducer.MIN: Op.REDUCE_MIN}


def kink_distances(model: ir.Model, params: dict, inputs: dict) -> np.ndarray:
    """The signed distance to its kink of every argument of a kinked op that the reference
    interpreter applies on this batch, flat, in evaluation order (the same order for any
    parameters, so two calls compare entry by entry)."""
    batch = prepare(model, inputs)
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    log: list = []
    for b in range(batch.size):
        lengths = {axis: int(n[b]) for axis, n in batch.lengths.items()}
        sequence = _Recording(model, params, batch, b, lengths, log)
        for node in _order(model, tuple(sorted(lengths.items()))):
            sequence.compute(node)
        sequence.eval(model.loss, {})
    flat = [np.ravel(np.asarray(d, np.float64)) for distances in log for d in distances]
    return np.concatenate(flat) if flat else np.zeros(0)


class _Recording(Sequence):
    """The interpreter's evaluation of one sequence, logging the kink distances of each
    kinked op (and max_t/min_t reduction) as it applies it."""

    def __init__(self, model, params, batch, b, lengths, log: list):
        super().__init__(model, params, batch, b, lengths)
        self.log = log

    def eval(self, e: ir.Expr, steps: dict):
        if not isinstance(e, ir.Reduce):
            return super().eval(e, steps)
        parts = np.stack([self.eval(e.body, {**steps, e.over: s}) for s in range(self.lengths[e.over])])
        self._record(_REDUCER_OPS[e.fn], [parts], {})
        return REDUCERS[e.fn](parts)

    def _apply(self, e: ir.Apply, args: list):
        self._record(e.op, args, {**{k: v for k, v in TABLE[e.op].attrs if v is not None}, **e.attr})
        return super()._apply(e, args)

    def _record(self, op: Op, args: list, attrs: dict) -> None:
        if KINKS[op] is not None:
            self.log.append(KINKS[op](*args, **attrs))
