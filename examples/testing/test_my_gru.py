"""Property tests of a hand-written GRU (my_gru.yaml): copy this file and the spec into your
repository, `pip install 'rnndsl[testing]'`, run `pytest`. `pytest --rnndsl-spec my_gru.yaml`
runs the same battery without this file."""
from pathlib import Path

import pytest
from hypothesis import given, settings

import rnndsl
from rnndsl.testing import (assert_gradients, assert_matches_interpreter, assert_padding_invariant,
                            assert_truncation_exact, inputs_for, params_for)

SPEC = Path(__file__).with_name("my_gru.yaml")
MODEL = rnndsl.compile(SPEC, dtype="float64", dims={"V": 3, "H": 2})


@settings(max_examples=10, deadline=None)
@given(params=params_for(MODEL), inputs=inputs_for(MODEL.spec))
def test_forward_and_gradients(params, inputs):
    assert_matches_interpreter(MODEL, params, inputs)
    assert_gradients(MODEL, params, inputs)
    assert_padding_invariant(MODEL, params, inputs)


@pytest.mark.parametrize("window", [1, 2])
@settings(max_examples=5, deadline=None)
@given(params=params_for(MODEL), inputs=inputs_for(MODEL.spec))
def test_truncated_bptt(window, params, inputs):
    assert_truncation_exact(MODEL, params, inputs, window)
