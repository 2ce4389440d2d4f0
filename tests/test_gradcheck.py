"""`rnndsl gradcheck`: the compiled forward against the interpreter, gradients against finite
differences that never straddle a kink, and every shipped spec passing its own check.

The op table's KINKS is checked against the forward formulas themselves: where an entry puts
a kink, the left and right slopes differ; where it puts none (or the op is declared smooth),
they agree."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnndsl
from rnndsl.tools import gradcheck as gc
from rnndsl.tools.cli import main
from rnndsl.semantics.inputs import random_batch
from rnndsl.runtime.model import CompiledModel
from rnndsl.core.ops import KINKS, TABLE, Op

from conftest import SPECS

# ---- the op table knows where each op is non-smooth ----------------------------------------------

ELEMENTWISE_KINKS = {Op.RELU: ({}, [0.0]), Op.ABS: ({}, [0.0]), Op.CLIP: ({"lo": -0.5, "hi": 2.0}, [-0.5, 2.0]),
                     Op.MIN: ({"c": 0.3}, [0.3]), Op.MAX: ({"c": -1.5}, [-1.5])}
SMOOTH_UNARY = [Op.NEG, Op.TANH, Op.SIGMOID, Op.EXP, Op.SOFTPLUS]


def test_every_op_has_a_kink_entry():
    assert set(KINKS) == set(Op)
    assert all(TABLE[op].kinks is KINKS[op] for op in Op)
    kinked = {op for op, entry in KINKS.items() if entry is not None}
    assert kinked == set(ELEMENTWISE_KINKS) | {Op.MAXPOOL2D, Op.REDUCE_MAX, Op.REDUCE_MIN, Op.MAX_OF, Op.MIN_OF}


def test_max_and_min_of_entries_kink_where_two_entries_tie_for_the_extreme():
    x = np.array([[1.0, 3.0, 3.0], [1.0, 1.0, 3.0], [-2.0, 0.5, -2.0]])
    np.testing.assert_array_equal(KINKS[Op.MAX_OF](x)[0], [0.0, 2.0, 2.5])
    np.testing.assert_array_equal(KINKS[Op.MIN_OF](x)[0], [2.0, 0.0, 0.0])


def slopes(op: Op, x: float, attrs: dict, h: float = 1e-7) -> tuple:
    f = lambda v: float(TABLE[op].forward(np, np.float64(v), **attrs))
    return (f(x) - f(x - h)) / h, (f(x + h) - f(x)) / h


@pytest.mark.parametrize("op", list(ELEMENTWISE_KINKS), ids=lambda op: op.value)
def test_a_kink_entry_is_zero_exactly_where_the_slope_jumps(op):
    attrs, kinks = ELEMENTWISE_KINKS[op]
    rng = np.random.default_rng(0)
    distances = lambda x: np.concatenate([np.ravel(d) for d in KINKS[op](np.float64(x), **attrs)])
    for x in [*kinks, *rng.normal(0, 2, 20)]:
        left, right = slopes(op, x, attrs)
        assert (abs(left - right) > 0.5) == bool((distances(x) == 0).any()), (op, x)
    for x in kinks:                                   # a signed distance: it changes sign across
        assert (np.sign(distances(x - 1e-3)) != np.sign(distances(x + 1e-3))).any()


@pytest.mark.parametrize("op", SMOOTH_UNARY, ids=lambda op: op.value)
def test_an_op_without_kinks_has_no_slope_jump(op):
    assert KINKS[op] is None
    for x in [0.0, 0.3, -0.5, 2.0, -1.5, 1.0]:
        left, right = slopes(op, x, {}, h=1e-6)
        assert left == pytest.approx(right, rel=1e-4, abs=1e-5), (op, x)


def test_ties_are_kinks_of_max_pooling_and_max_t():
    image = np.array([[[1.0, 1.0, 0.0, 2.0], [0.5, 0.0, 3.0, -1.0]]])        # [C=1, H=2, W=4]
    np.testing.assert_array_equal(KINKS[Op.MAXPOOL2D](image, size=2, stride=0)[0], [[[0.0, 1.0]]])   # a tie: 0
    steps = np.array([[1.0, 4.0], [3.0, 4.0], [2.0, -1.0]])                    # (T=3, 2 units)
    np.testing.assert_array_equal(KINKS[Op.REDUCE_MAX](steps)[0], [1.0, 0.0])
    np.testing.assert_array_equal(KINKS[Op.REDUCE_MIN](steps)[0], [1.0, 5.0])
    valid = np.array([True, False, True])                                     # a padded step never wins
    np.testing.assert_array_equal(KINKS[Op.REDUCE_MAX](steps, valid)[0], [1.0, 5.0])


# ---- the forward against the interpreter, gradients against differences, each reported ----------

def elman():
    return rnndsl.compile(str(SPECS[0].parent / "elman.yaml"), dtype="float64", dims={"H": 4})


def test_a_correct_model_passes_both_checks():
    report = gc.gradcheck(elman(), steps=4, batch=3, seed=2)
    assert [v.name for v in report.forward] == ["loss", "losses", "h", "y"]
    assert all(v.ok() for v in report.forward) and all(p.ok(1e-6) for p in report.params)
    assert all(p.checked == min(8, np.prod(p.shape)) + 1 for p in report.params)
    assert report.ok(1e-6)


def shifted(method, key: str, by: float):
    """A miscompiled forward: `key` of its result off by `by`, the backward untouched."""
    def forward(self, params, inputs):
        out = dict(method(self, params, inputs))
        out[key] = out[key] + by
        return out
    return forward


@pytest.mark.parametrize("key", ["loss", "losses", "h", "y"])
def test_a_wrong_forward_fails_though_its_gradients_pass(key, monkeypatch):
    monkeypatch.setattr(CompiledModel, "forward", shifted(CompiledModel.forward, key, 1e-6))
    report = gc.gradcheck(elman(), seed=1)
    assert [v.name for v in report.forward if not v.ok()] == [key]
    assert next(v for v in report.forward if v.name == key).error == pytest.approx(1e-6, rel=0.5)
    assert all(p.ok(1e-6) for p in report.params) and not report.ok(1e-6)


def test_a_wrong_gradient_fails_though_the_forward_passes(monkeypatch):
    method = CompiledModel.loss_and_grad

    def loss_and_grad(self, params, inputs, truncate=None):
        loss, grads = method(self, params, inputs, truncate)[:2]
        return loss, {**grads, "W_hh": grads["W_hh"] * (1 + 1e-4)}
    monkeypatch.setattr(CompiledModel, "loss_and_grad", loss_and_grad)
    report = gc.gradcheck(elman(), seed=1)
    assert all(v.ok() for v in report.forward)
    assert [p.name for p in report.params if not p.ok(1e-6)] == ["W_hh"]


def test_a_nan_or_a_missing_value_fails():
    assert gc._difference(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == np.inf
    assert gc._difference(np.array([np.inf, 1.0]), np.array([np.inf, 1.0])) == 0.0
    assert gc._difference(None, np.zeros(3)) == np.inf
    assert gc._difference(np.zeros((2, 3)), np.zeros((3, 2))) == np.inf
    assert not gc.ValueCheck("loss", (), np.nan).ok() and not gc.ParamCheck("W", (2,), np.nan, 3).ok(1e-6)


def test_cli_says_which_check_failed(capsys, monkeypatch):
    spec = str(SPECS[0].parent / "elman.yaml")
    assert main(["gradcheck", spec, "--set", "H=4"]) == 0
    out = capsys.readouterr().out
    assert "forward: 4 of 4 values within 1e-10; gradient: 5 of 5 parameters within 1e-06" in out
    monkeypatch.setattr(CompiledModel, "forward", shifted(CompiledModel.forward, "y", 1e-3))
    assert main(["gradcheck", spec, "--set", "H=4"]) == 1
    out = capsys.readouterr().out
    forward, gradient = out.split("gradient vs finite differences")
    assert [line.split()[0] for line in forward.splitlines() if line.endswith("FAIL")] == ["y"]
    assert "FAIL" not in gradient.split("forward:")[0]
    assert "forward: 3 of 4 values within 1e-10; gradient: 5 of 5 parameters within 1e-06" in out


# ---- kinks: differences never straddle one ----------------------------------------------------------

RELU = """
name: kinked
dims: {F: 3, H: 2}
inputs:
  x: {float: [F], axis: t}
  target: {float: [H], axis: t}
params:
  W: {shape: [H, F]}
  b: {shape: [H]}
equations: |
  h[t] = relu(W @ x[t] + b)
loss: mean_t mse(h[t], target[t])
"""


def kink_case(b0: float):
    """relu's argument at every step of unit 0 is b0 (W = 0): a kink |b0| away along b[0]."""
    model = rnndsl.compile(RELU, dtype="float64")
    inputs = random_batch(model.spec, 4, 2, seed=0)
    return model, {"W": np.zeros((2, 3)), "b": np.array([b0, 0.7])}, inputs


def test_a_kink_within_the_step_is_not_straddled():
    model, params, inputs = kink_case(3e-7)
    case = gc._Case(model, params, inputs)
    d = gc._unit((2,), 0)
    exact = float(case.grads["b"] @ d)
    assert abs(case.central("b", d, 1e-6) - exact) > 0.1 * abs(exact)        # the old estimate fails
    assert case.rooms("b", d) == (np.inf, pytest.approx(3e-7, rel=1e-3))
    report = gc.check(model, params, inputs, np.random.default_rng(0))
    assert report.ok(1e-6), report.params
    assert report.params[1].skipped == 0      # b moves unit 0 one way at every step: one-sided differences


def test_directions_on_a_kink_are_replaced_and_counted():
    model, params, inputs = kink_case(0.0)
    report = gc.check(model, params, inputs, np.random.default_rng(0))
    W, b = report.params
    assert (W.checked, W.skipped) == (3, 6)           # the W[0, :] entries and 3 random directions
    assert (b.checked, b.skipped) == (1, 4)           # b[0] and 3 random directions
    assert report.ok(1e-6)


def test_a_parameter_with_every_direction_on_a_kink_fails():
    model = rnndsl.compile(RELU.replace("H: 2", "H: 1"), dtype="float64")
    params = {"W": np.zeros((1, 3)), "b": np.zeros(1)}
    report = gc.check(model, params, random_batch(model.spec, 4, 2, seed=0), np.random.default_rng(0))
    assert [(p.checked, p.ok(1e-6)) for p in report.params] == [(0, False), (0, False)]


KINKED = {"relu": ("relu({})", 0.0), "abs": ("abs({})", 0.0), "clip": ("clip({}, -0.5, 0.5)", 0.5),
          "max": ("max({}, 0.1)", 0.1), "min": ("min({}, -0.2)", -0.2)}
MAX_T = """
name: kinked
dims: {F: 2, H: 3}
inputs:
  x: {float: [F], axis: t}
  z: {float: [H]}
params:
  W: {shape: [H, F]}
  U: {shape: [H, H]}
  b: {shape: [H]}
equations: |
  h[t] = ACT
  m = REDUCE h[t]
loss: mse(m, z)
"""


@given(act=st.sampled_from(sorted(KINKED)), reduce=st.sampled_from(["max_t", "min_t", "mean_t"]),
       near=st.integers(2, 10), side=st.sampled_from([-1.0, 1.0]), seed=st.integers(0, 2**16),
       steps=st.integers(2, 5), batch=st.integers(1, 3))
def test_gradcheck_passes_near_any_kink(act, reduce, near, side, seed, steps, batch):
    """The first step's activation sits 10^-near from its kink (x[0] = 0, so it is b alone)."""
    form, kink = KINKED[act]
    text = MAX_T.replace("ACT", form.format("W @ x[t] + U @ h[t-1] + b")).replace("REDUCE", reduce)
    model = rnndsl.compile(text, dtype="float64")
    rng = np.random.default_rng(seed)
    inputs = random_batch(model.spec, steps, batch, seed)
    inputs["x"][0] = 0.0
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in model.init_params(seed).items()}
    params["b"][0] = kink + side * 10.0 ** -near
    report = gc.check(model, params, inputs, rng, entries=4)
    assert report.ok(1e-6), (report.forward, report.params)


# ---- a shipped spec never fails its own gradcheck -------------------------------------------------

SMALL = {"H": 4, "E": 4, "D": 4, "F": 4, "H1": 4}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_passes_its_gradcheck(path):
    dims = {k: v for k, v in SMALL.items() if k in dict(rnndsl.load_spec(path).dims)}
    model = rnndsl.compile(str(path), dtype="float64", dims=dims)
    for seed in range(3):
        report = gc.gradcheck(model, seed=seed)
        assert report.ok(1e-6), (seed, [v for v in report.forward if not v.ok()],
                                 [p for p in report.params if not p.ok(1e-6)])
