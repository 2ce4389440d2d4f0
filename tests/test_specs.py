"""Every spec in specs/ parses, checks, verifies, unrolls and evaluates."""
import numpy as np
import pytest

import rnndsl
from rnndsl.frontend import ir
from rnndsl.semantics import timegraph
from rnndsl.core.ops import Kind
from rnndsl.semantics.unroll import axis_lengths

from conftest import SPECS

REQUIRED = {"autoregression", "tdnn", "elman", "char_rnn", "birnn", "lstm", "deepspeech"}


def test_the_lecture_specs_are_shipped():
    assert REQUIRED <= {p.stem for p in SPECS}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_checks(path):
    model = rnndsl.load_spec(path)
    ir.verify(model)
    assert model.name and model.doc, "every shipped spec has a name and a doc"
    assert ir.pretty(model).startswith(f"model {model.name}")
    timegraph.analyse(model)


def random_inputs(model, steps: dict, batch: int, rng) -> dict:
    """A batch for `model` with the given padded length per axis and random lengths."""
    inputs = {}
    for inp in model.inputs:
        lead = (steps[inp.axis], batch) if inp.axis else (batch,)
        if inp.type.kind is Kind.FLOAT:
            inputs[inp.name] = rng.normal(size=lead + inp.type.dims)
        else:
            low = 1 if inp.axis == "u" else 0      # CTC labels are never the blank
            inputs[inp.name] = rng.integers(low, inp.type.classes.value, size=lead)
    inputs["lengths"] = {a: rng.integers(1, steps[a] + 1, size=batch) for a in model.axes}
    return inputs


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_interprets(path):
    model = rnndsl.load_spec(path)
    small = {name: min(d.value, 6) for name, d in model.dims}
    try:
        model = rnndsl.load_spec(path, dims=small)
    except rnndsl.SpecError:
        pass                      # some dims are tied (an image size); keep the defaults
    rng = np.random.default_rng(0)
    steps = {a: 4 for a in model.axes}
    inputs = random_inputs(model, steps, 2, rng)
    if "u" in steps:              # CTC needs enough frames for the labels
        inputs["lengths"]["u"] = np.minimum(inputs["lengths"]["u"], 2)
    result = rnndsl.interpret(model, rnndsl.init_params(model, seed=1), inputs)
    assert np.isfinite(result.loss)
    assert result.losses.shape == (2,)
