"""A batch of inputs, checked against a model: names, shapes, class ranges and lengths.

Arrays are time-major: a sequence input is (T, B, ...), a static input (B, ...); onehot and
index inputs are integer arrays. `lengths` is (B,) for a single axis or {axis: (B,)}.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frontend import ir
from ..core import limits
from ..core.errors import DataError
from ..core.ops import Kind


@dataclass(frozen=True)
class Batch:
    size: int
    steps: dict            # axis -> T (padded length)
    lengths: dict          # axis -> (B,) int array
    arrays: dict           # input name -> array


def prepare(model: ir.Model, inputs: dict) -> Batch:
    """Check a batch and fill in defaults (full lengths); raises DataError."""
    inputs = dict(inputs)
    lengths = inputs.pop("lengths", None)
    unknown = set(inputs) - {i.name for i in model.all_inputs}
    if unknown:
        raise DataError(f"unknown input {', '.join(sorted(unknown))}",
                        f"{model.name} takes {', '.join(i.name for i in model.inputs)}")
    arrays, sizes, steps = {}, {}, {}
    for inp in model.inputs:
        if inp.name not in inputs:
            raise DataError(f"missing input {inp.name}", f"{model.name} takes {_describe(inp)}")
        arrays[inp.name] = a = _array(inp, inputs[inp.name])
        sizes[inp.name] = a.shape[1] if inp.axis else a.shape[0]
        if inp.axis:
            steps.setdefault(inp.axis, {})[inp.name] = a.shape[0]
    if len(set(sizes.values())) > 1:
        raise DataError(f"inputs disagree on the batch size: {sizes}")
    for axis, ts in steps.items():
        if len(set(ts.values())) > 1:
            raise DataError(f"inputs on axis {axis} disagree on its length: {ts}",
                            "pad every sequence on one axis to the same length and pass lengths")
    size = next(iter(sizes.values()), 1)
    steps = {axis: next(iter(ts.values())) for axis, ts in steps.items()}
    arrays.update(_masks(model, inputs, steps, size))
    batch = Batch(size, steps, _lengths(model, lengths, steps, size), arrays)
    for inp in model.all_inputs:
        _check_values(inp, batch)
    return batch


def _masks(model: ir.Model, inputs: dict, steps: dict, size: int) -> dict:
    """The masks given (training), or ones (evaluation: dropout and masking are off)."""
    out = {}
    for m in model.masks:
        lead = (steps[m.axis], size) if m.axis else (size,)
        out[m.name] = _array(m, inputs[m.name]) if m.name in inputs else np.ones(lead + m.type.dims)
        if out[m.name].shape[:len(lead)] != lead:
            raise DataError(f"mask {m.name} has shape {out[m.name].shape}; expected {lead + m.type.dims}")
    return out


def training_masks(model: ir.Model, inputs: dict, rng: np.random.Generator, dtype="float64") -> dict:
    """Masks for one training batch, in the model's `dtype`. Dropout keeps each unit with
    probability 1-p and scales it by 1/(1-p) (inverted dropout), a new mask per step, or per
    sequence for `same=1`; its draws are float32 (a threshold needs no more, and they take half
    the time of float64's: a step of a speech model draws millions). mask_steps and mask_band
    zero n runs per sequence, each of a width drawn from 0..width and a start drawn so that it
    fits: steps within the sequence's own length, entries within the last dimension."""
    batch = prepare(model, inputs)
    return {m.name: _draw(m, batch, rng, dtype) for m in model.masks}


def _draw(m: ir.Input, batch: Batch, rng: np.random.Generator, dtype) -> np.ndarray:
    noise = m.noise
    shape = ((batch.steps[m.axis], batch.size) if m.axis else (batch.size,)) + m.type.dims
    if noise.kind == "dropout":
        mask = (rng.random(shape, dtype=np.float32) >= noise.p).astype(dtype)
        mask *= 1.0 / (1.0 - noise.p)
        return mask
    mask = np.ones(shape, dtype)
    for b in range(batch.size):
        size = int(batch.lengths[m.axis][b]) if noise.kind == "steps" else shape[-1]
        for _ in range(noise.n):
            width = int(rng.integers(0, min(noise.width, size) + 1))
            start = int(rng.integers(0, size - width + 1))
            if noise.kind == "steps":
                mask[start:start + width, b] = 0
            else:
                mask[b, ..., start:start + width] = 0
    return mask


def _describe(inp: ir.Input) -> str:
    lead = "(T, B" if inp.axis else "(B"
    trail = "".join(f", {d}" for d in inp.type.dims) if inp.type.kind is Kind.FLOAT else ""
    kind = "floats" if inp.type.kind is Kind.FLOAT else f"ints in [0, {inp.type.classes.value})"
    return f"{inp.name}: {lead}{trail}) {kind}"


def _array(inp: ir.Input, value) -> np.ndarray:
    a = np.asarray(value)
    want = (2 if inp.axis else 1) + (inp.type.rank if inp.type.kind is Kind.FLOAT else 0)
    trail = inp.type.dims if inp.type.kind is Kind.FLOAT else ()
    if a.ndim != want or tuple(a.shape[want - len(trail):]) != trail:
        raise DataError(f"input {inp.name} has shape {a.shape}; expected {_describe(inp)}")
    if inp.type.kind is not Kind.FLOAT and a.dtype.kind not in "iu":
        raise DataError(f"input {inp.name} must hold integer class indices, got {a.dtype}")
    if inp.type.kind is Kind.FLOAT and a.dtype.kind not in "fiu":
        raise DataError(f"input {inp.name} must hold numbers, got {a.dtype}")
    return a


def _lengths(model: ir.Model, lengths, steps: dict, size: int) -> dict:
    if lengths is None:
        lengths = {}
    elif not isinstance(lengths, dict):
        if len(model.axes) != 1:
            raise DataError("lengths must be a dict {axis: (B,) ints} for a model with several axes")
        lengths = {model.axes[0]: lengths}
    out = {}
    for axis in model.axes:
        n = np.asarray(lengths.get(axis, np.full(size, steps.get(axis, 0))))
        if n.shape != (size,) or n.dtype.kind not in "iu":
            raise DataError(f"lengths for axis {axis} must be {size} integers, got shape {n.shape}")
        if n.size and (n.min() < 1 or n.max() > steps.get(axis, 0)):
            raise DataError(f"lengths for axis {axis} must lie in [1, {steps.get(axis, 0)}], "
                            f"got {n.min()}..{n.max()}")
        out[axis] = n.astype(np.int64)
    return out


def _check_values(inp: ir.Input, batch: Batch) -> None:
    a = batch.arrays[inp.name]
    valid = np.ones(a.shape[:2 if inp.axis else 1], bool)
    if inp.axis:
        valid = np.arange(a.shape[0])[:, None] < batch.lengths[inp.axis][None, :]
    if inp.type.kind is Kind.FLOAT:
        bad = valid & ~np.isfinite(a).reshape(valid.shape + (-1,)).all(-1)
        what = "a NaN or infinite value"
    else:
        bad = valid & ((a < 0) | (a >= inp.type.classes.value))
        what = f"a class index outside [0, {inp.type.classes.value})"
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f"step {where[0]} of sequence {where[1]}" if inp.axis else f"example {where[0]}"
        raise DataError(f"input {inp.name} holds {what} at {at}")


def random_batch(model: ir.Model, steps: int = 5, batch: int = 2, seed: int = 0,
                 ragged: bool = True, lengths: dict | None = None, garbage: bool = False) -> dict:
    """Random inputs for `model` (gradient checks, benchmarks): `steps` per axis, random
    lengths when `ragged` unless `lengths` ({axis: B ints}) are given. CTC labels avoid the
    blank and fit their frames. `garbage`: padded steps hold garbage (see `fill_padding`)."""
    check_shape(model, steps, batch)
    rng, given = np.random.default_rng(seed), lengths
    blank, label_axes = ctc_labels(model)
    inputs = {}
    for inp in model.inputs:
        lead = (steps, batch) if inp.axis else (batch,)
        if inp.type.kind is Kind.FLOAT:
            inputs[inp.name] = rng.normal(size=lead + inp.type.dims)
        else:
            classes = [c for c in range(inp.type.classes.value) if not (inp.axis in label_axes and c == blank)]
            inputs[inp.name] = rng.choice(classes, size=lead)
    lengths = {}
    for axis in sorted(model.axes, key=lambda a: a not in label_axes):     # labels first
        if axis in label_axes:
            top = max(1, (steps - 1) // 2)          # 2U+1 frames fit any U labels, repeats included
            lengths[axis] = rng.integers(1, top + 1, size=batch) if ragged else np.full(batch, top)
        else:
            labels = lengths[next(iter(label_axes))] if label_axes else np.zeros(batch, int)
            low = np.minimum(2 * labels + 1, steps)
            lengths[axis] = rng.integers(low, steps + 1) if ragged else np.full(batch, steps)
    inputs["lengths"] = lengths
    if given is not None:
        inputs["lengths"] = {axis: np.asarray(given[axis], np.int64) for axis in model.axes}
    return fill_padding(model, inputs, rng) if garbage else inputs


GARBAGE_FLOATS = (1e6, -1e9, np.nan, np.inf, -np.inf, 3.0)
GARBAGE_CLASSES = (-7, 99, 2**31 - 1, 0)


def fill_padding(model: ir.Model, inputs: dict, rng: np.random.Generator) -> dict:
    """`inputs` with garbage in every padded step (huge values, NaN, infinities, class
    indices out of range): a model must never read past a sequence's length."""
    out = dict(inputs)
    for inp in (i for i in model.inputs if i.axis):
        a = np.asarray(inputs[inp.name])
        floats = inp.type.kind is Kind.FLOAT
        junk = rng.choice(GARBAGE_FLOATS if floats else GARBAGE_CLASSES, size=a.shape)
        pad = np.arange(len(a))[:, None] >= np.asarray(inputs["lengths"][inp.axis])[None, :]
        out[inp.name] = np.where(pad.reshape(pad.shape + (1,) * (a.ndim - 2)), junk, a).astype(a.dtype)
    return out


def ctc_labels(model: ir.Model) -> tuple:
    """(blank, axes of label sequences) of the model's ctc calls."""
    for e in ir.walk(model.loss):
        if isinstance(e, ir.Apply) and e.op.value == "ctc":
            return int(e.attr.get("blank", 0)), {e.args[1].axis}
    return None, set()


# ---- sizes, checked before anything is allocated -----------------------------------------------

def check_shape(model: ir.Model, steps: int, batch: int, itemsize: int = 8) -> None:
    """Raise a DataError unless `steps` and `batch` are whole numbers within limits.py's caps,
    and a batch of that shape fits in the machine's memory (`batch_bytes`)."""
    for what, value, top in (("steps", steps, limits.MAX_STEPS), ("batch", batch, limits.MAX_BATCH)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= top:
            raise DataError(f"{what} must be a whole number from 1 to {top:,}, got {value!r}")
    need = batch_bytes(model, steps, batch, itemsize)
    limits.check_memory(need, f"a batch of {batch:,} sequences of {steps:,} steps of {model.name}",
                        "use fewer steps or a smaller batch")


def batch_bytes(model: ir.Model, steps, batch: int, itemsize: int = 8) -> int:
    """About the bytes one forward and backward pass over a batch of `steps` (per axis, or
    {axis: T}) holds: the inputs, and each value the equations and the loss compute (every
    operation, not only the named ones), once on the forward tape and once as its adjoint."""
    per_axis = steps if isinstance(steps, dict) else {a: steps for a in model.axes}
    rows = lambda axis: per_axis.get(axis, 1) * batch if axis else batch
    values = sum(rows(i.axis) * (_entries(i.type) if i.type.kind is Kind.FLOAT else 1) for i in model.inputs)
    for e in [eq.expr for eq in model.equations] + [model.loss]:
        values += sum(rows(n.axis) * _entries(n.type) for n in ir.walk(e) if isinstance(n, (ir.Apply, ir.Reduce)))
    return 2 * itemsize * values


def _entries(t) -> int:
    return int(np.prod(t.dims, dtype=np.float64)) if t.dims else 1

