"""Hypothesis strategies for property tests of a spec's compiled model.

    specs()             the text of a random valid spec (specgen.py)
    dims_for(spec)      small dims the spec's dim arithmetic accepts
    inputs_for(model)   a ragged batch: padded steps, batch sizes from 1, lengths per axis,
                        garbage in the padding, values each input kind allows
    params_for(model)   parameters moved off their initial values
    cases_for(spec)     a Case: all of the above for a spec file, plus a truncation window,
                        as the flags of an `rnndsl gradcheck` command that repeats it

Values come from a drawn seed (NumPy), the shape of the case from hypothesis, so a failure
shrinks to few steps, a small batch, short lengths and small dims.
"""
from __future__ import annotations

from hypothesis import strategies as st

from ..core.errors import SpecError
from ..frontend import ir
from ..pipeline import load_spec
from ..semantics.inputs import ctc_labels, random_batch
from ..tools.gradcheck import perturbed_params
from .case import Case
from .specgen import specs

__all__ = ["specs", "dims_for", "inputs_for", "params_for", "cases_for", "lengths_for"]

SEEDS = st.integers(0, 2**16)
SMALLEST_DIM, LARGEST_DIM = 2, 4      # a dim of 1 hides transposes; 4 keeps each check fast


@st.composite
def dims_for(draw, spec, held: dict | None = None) -> dict:
    """Dims for `spec` (a path or YAML text): each between 2 and 4 (or its own value, if
    smaller), those in `held` as given; if the spec's dim arithmetic refuses the draw (dims
    tied to each other, like an image side and a kernel), each at most 6, or else the
    spec's own."""
    held = dict(held or {})
    model = load_spec(spec, dims=held or None)
    drawn = {name: held[name] if name in held else draw(st.integers(min(SMALLEST_DIM, d.value), min(LARGEST_DIM, d.value)))
             for name, d in model.dims}
    for dims in (drawn, {name: held.get(name, min(d.value, 6)) for name, d in model.dims}):
        if _accepts(spec, dims):
            return dims
    return held


def _accepts(spec, dims: dict) -> bool:
    try:
        load_spec(spec, dims=dims)
    except SpecError:
        return False
    return True


@st.composite
def lengths_for(draw, model: ir.Model, steps: int, batch: int) -> dict:
    """{axis: `batch` lengths from 1 to `steps`}; CTC labels short enough for their frames
    (2U+1 frames fit any U labels), labels drawn first."""
    _, label_axes = ctc_labels(model)
    out = {}
    for axis in sorted(model.axes, key=lambda a: a not in label_axes):
        if axis in label_axes:
            top = max(1, (steps - 1) // 2)
            out[axis] = draw(st.lists(st.integers(1, top), min_size=batch, max_size=batch))
        else:
            labels = out.get(next(iter(label_axes), None), [0] * batch)
            out[axis] = [draw(st.integers(min(2 * u + 1, steps), steps)) for u in labels]
    return out


def _least_steps(model: ir.Model) -> int:
    """CTC needs 3 frames for one label; anything else runs from 1 step."""
    return 3 if ctc_labels(model)[1] else 1


@st.composite
def inputs_for(draw, model: ir.Model, steps=st.integers(1, 5), batch=st.integers(1, 3)) -> dict:
    """A random ragged batch for `model` (a checked spec): time-major arrays, `lengths`."""
    t = max(draw(steps), _least_steps(model))
    b = draw(batch)
    lengths = draw(lengths_for(model, t, b))
    return random_batch(model, t, b, draw(SEEDS), lengths=lengths, garbage=True)


def params_for(model) -> st.SearchStrategy:
    """Parameters of a compiled `model`: its initial ones plus N(0, 0.1) noise, by seed."""
    return SEEDS.map(lambda seed: perturbed_params(model, seed))


@st.composite
def cases_for(draw, path, truncation: bool = True, steps=st.integers(1, 5), batch=st.integers(1, 3),
              dims: dict | None = None) -> Case:
    """A Case of the spec file at `path`: dims (those in `dims` held), steps, batch, lengths,
    seed and (if `truncation`) a window from 1 to the steps."""
    dims = draw(dims_for(path, dims))
    model = load_spec(path, dims=dims)
    t = max(draw(steps), _least_steps(model))
    b = draw(batch)
    lengths = draw(lengths_for(model, t, b))
    window = draw(st.integers(1, t)) if truncation else None
    return Case(str(path), tuple(sorted(dims.items())), t, b,
                tuple((axis, tuple(n)) for axis, n in sorted(lengths.items())), draw(SEEDS), window)
