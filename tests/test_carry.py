"""Truncated BPTT over a stream cut into windows: carrying the state from one window to the
next gives the same values as one long sequence, and the same gradient as the long
sequence truncated at the window edges."""
import numpy as np
import pytest

import rnndsl

from conftest import ROOT


@pytest.mark.parametrize("spec", ["elman", "lstm"])
def test_windows_with_carry_equal_one_truncated_sequence(spec):
    model = rnndsl.compile(ROOT / f"specs/{spec}.yaml", dims={"H": 6} if spec == "lstm" else None)
    V = model.spec.dim["V"].value
    rng = np.random.default_rng(0)
    T, W, B = 12, 4, 3
    ids = rng.integers(0, V, (T + 1, B))
    full = {"x": ids[:-1], "target": ids[1:]}
    P = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in model.init_params(1).items()}
    whole = model.step(P, full, truncate=W)
    carry, steps = None, []
    for start in range(0, T, W):
        steps.append(model.step(P, {k: v[start:start + W] for k, v in full.items()}, carry=carry))
        carry = steps[-1].final
    assert whole.loss == pytest.approx(np.mean([s.loss for s in steps]), rel=1e-12)
    for name in P:
        np.testing.assert_allclose(np.mean([s.grads[name] for s in steps], axis=0), whole.grads[name],
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def test_final_state_is_taken_at_each_sequences_own_end():
    model = rnndsl.compile(ROOT / "specs/elman.yaml")
    x = np.random.default_rng(0).integers(0, 4, (5, 2))
    P = model.init_params(0)
    step = model.step(P, {"x": x, "target": x, "lengths": np.array([5, 2])}, grad=False)
    h = model.forward(P, {"x": x, "target": x, "lengths": np.array([5, 2])})["h"]
    np.testing.assert_allclose(step.final["h"], [h[4, 0], h[1, 1]])


def test_a_carried_start_gives_the_learned_init_no_gradient():
    spec = """
dims: {F: 2, H: 3}
inputs:
  x: {float: [F], axis: t}
params:
  W: {shape: [H, F]}
  U: {shape: [H, H]}
state:
  h: {init: learned}
equations: |
  h[t] = tanh(W @ x[t] + U @ h[t-1])
loss: mean_t mse(h[t], h[t] * 0)
"""
    model = rnndsl.compile(spec)
    x = np.random.default_rng(0).normal(size=(3, 2, 2))
    P = {k: v + 0.5 for k, v in model.init_params(0).items()}
    assert np.abs(model.step(P, {"x": x}).grads["h_init"]).sum() > 0
    carried = model.step(P, {"x": x}, carry={"h": np.ones((2, 3))})
    assert not carried.grads["h_init"].any()
