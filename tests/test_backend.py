"""The emitted NumPy backend against the reference interpreter, over random specs and the corpus.

Hypothesis draws random valid specs (expression trees over the op table, reads of other
variables at offsets in both directions, context windows, concat, static values, state
inits, mse and cross_entropy losses), random dims, T in 1..7, B in 1..3 and random lengths.
For each, the compiled model must

  (a) agree with the interpreter on the loss and every variable at valid steps (1e-10),
  (b) have gradients equal to central differences of the interpreter's loss (rel. 1e-6),
  (c) give full BPTT when truncated at k >= T, and cut gradients only at window edges,
  (d) ignore padding: extra masked steps full of garbage change neither loss nor gradients,
  (e) agree between float32 and float64 to float32 precision.

Every spec in specs/ is also compiled, checked against the interpreter and finite
differences (`rnndsl gradcheck` over the corpus), and timed (compiling takes under 0.5 s).
Hypothesis settings come from the profile in conftest.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import rnndsl
from rnndsl.backends.numpy import runtime as numpy_runtime
from rnndsl.testing.assertions import (assert_float32_close, assert_grads_close, assert_matches_interpreter,
                                       assert_padding_invariant, assert_truncation_exact, near_a_kink)
from rnndsl.testing.specgen import specs as random_specs

from conftest import SPECS
from test_specs import random_inputs


# ---- helpers ------------------------------------------------------------------------------------

def setup(text: str, T: int, B: int, seed: int, dtype: str = "float64"):
    """(checked spec, compiled model, params, inputs with random lengths) for a drawn case."""
    spec = rnndsl.loads_spec(text)
    model = rnndsl.compile(spec, dtype=dtype)
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.5, np.shape(v)) for k, v in rnndsl.init_params(spec, seed).items()}
    return spec, model, params, random_inputs(spec, {a: T for a in spec.axes}, B, rng)


def loss_of(spec, params: dict, inputs: dict) -> float:
    return rnndsl.interpret(spec, params, inputs).loss


def fd_errors(spec, params: dict, inputs: dict, grads: dict, seed: int, eps: float = 1e-5) -> dict:
    """Per parameter: (relative error, <grad, u>, central difference of the interpreter's loss
    along u) for a random direction u. Derivatives far below the loss itself drown in the
    rounding of the differences (about 1e-16 |loss| / eps), so the error is relative to at
    least 1e-4 |loss|: an absolute error of 1e-10 |loss| still fails."""
    rng = np.random.default_rng(seed)
    floor = max(1e-4 * abs(loss_of(spec, params, inputs)), 1e-8)
    out = {}
    for name, value in params.items():
        u = rng.normal(size=np.shape(value))
        plus = loss_of(spec, {**params, name: value + eps * u}, inputs)
        minus = loss_of(spec, {**params, name: value - eps * u}, inputs)
        analytic, numeric = float(np.sum(grads[name] * u)), (plus - minus) / (2 * eps)
        out[name] = (abs(analytic - numeric) / max(abs(analytic) + abs(numeric), floor), analytic, numeric)
    return out


CASES = (random_specs(), st.integers(1, 7), st.integers(1, 3), st.integers(0, 2**16))


# ---- (a) forward ------------------------------------------------------------------------------

@given(*CASES)
def test_forward_matches_the_interpreter(text, T, B, seed):
    assert_forward_matches(*setup(text, T, B, seed))


def assert_forward_matches(spec, model, params: dict, inputs: dict) -> None:
    """The loss, per-sequence losses and every variable equal the interpreter's (1e-10)."""
    assert_matches_interpreter(model, params, inputs)


# ---- (b) gradients ------------------------------------------------------------------------------

@given(*CASES)
def test_gradients_match_finite_differences(text, T, B, seed):
    spec, model, params, inputs = setup(text, T, B, seed)
    assume(not near_a_kink(spec, params, inputs))
    loss, grads = model.loss_and_grad(params, inputs)
    assert loss == pytest.approx(loss_of(spec, params, inputs), rel=1e-10, abs=1e-10)
    errors = fd_errors(spec, params, inputs, grads, seed)
    bad = {name: e for name, e in errors.items() if e[0] > 1e-6}
    assert not bad, bad


# ---- (c) truncated BPTT -------------------------------------------------------------------------

@given(*CASES, st.integers(0, 3))
def test_truncation_at_the_length_or_beyond_is_full_bptt(text, T, B, seed, extra):
    spec, model, params, inputs = setup(text, T, B, seed)
    loss, full = model.loss_and_grad(params, inputs)
    truncated_loss, truncated = model.loss_and_grad(params, inputs, truncate=T + extra)
    assert truncated_loss == loss
    assert_grads_close(truncated, full, rtol=1e-12, atol=1e-14)


@given(*CASES, st.integers(1, 6))
def test_truncated_bptt_is_exact_for_its_windows(text, T, B, seed, k):
    """Any window: the loss is unchanged; gradients equal finite differences of the loss with
    the recurrent reads across window edges held constant (none without a recurrence)."""
    spec, model, params, inputs = setup(text, T, B, seed)
    assume(not near_a_kink(spec, params, inputs))
    assert_truncation_exact(model, params, inputs, k, seed=seed, entries=1)


# A two-member recurrence (an LSTM-like pair) whose state outside the sequence is an input:
# truncated BPTT with windows [0, k), [k, 2k), ... is then exactly the sum over windows of the
# full gradient of that window's loss, run from the true state next to the window (held
# constant), which the interpreter and finite differences give independently.
WINDOWED = """
name: windowed
dims: {F: 2, H: 3}
inputs:
  x:  {float: [F], axis: t}
  y:  {float: [H], axis: t}
  h0: {float: [H]}
  c0: {float: [H]}
params:
  W: {shape: [H, F], init: normal(0.5)}
  U: {shape: [H, H], init: normal(0.5)}
  G: {shape: [H, F], init: normal(0.5)}
  b: {shape: [H], init: normal(0.5)}
state:
  h:
    init: h0
  c:
    init: c0
equations: |
  c[t] = sigmoid(G @ x[t]) * c[t-1] + (1 - sigmoid(G @ x[t])) * tanh(W @ x[t] + U @ h[t-1] + b)
  h[t] = tanh(c[t])
loss: sum_t mse(h[t], y[t])
"""


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_truncated_bptt_is_the_sum_of_gradients_over_windows(direction, k):
    T, B = 7, 2
    text = WINDOWED if direction == "forward" else WINDOWED.replace("[t-1]", "[t+1]")
    spec = rnndsl.loads_spec(text)
    model = rnndsl.compile(spec)
    rng = np.random.default_rng(k)
    params = {name: rng.normal(0, 0.5, np.shape(v)) for name, v in model.init_params(0).items()}
    inputs = {"x": rng.normal(size=(T, B, 2)), "y": rng.normal(size=(T, B, 3)),
              "h0": rng.normal(size=(B, 3)), "c0": rng.normal(size=(B, 3))}
    states = model.forward(params, inputs)
    windows = []
    for start in range(0, T, k):
        stop = min(start + k, T)
        outside = start - 1 if direction == "forward" else stop      # the step the window starts from
        windows.append({"x": inputs["x"][start:stop], "y": inputs["y"][start:stop],
                        **{f"{v}0": states[v][outside] if 0 <= outside < T else inputs[f"{v}0"] for v in "hc"}})
    _, truncated = model.loss_and_grad(params, inputs, truncate=k)
    for name, value in params.items():
        u = rng.normal(size=value.shape)
        eps = 1e-5
        numeric = sum((loss_of(spec, {**params, name: value + eps * u}, w)
                       - loss_of(spec, {**params, name: value - eps * u}, w)) / (2 * eps) for w in windows)
        assert float(np.sum(truncated[name] * u)) == pytest.approx(numeric, rel=1e-6, abs=1e-9), name
    _, full = model.loss_and_grad(params, inputs)
    assert not np.allclose(truncated["U"], full["U"]), "cutting a 7-step recurrence changes its gradient"


# ---- (d) padding --------------------------------------------------------------------------------

@given(*CASES, st.integers(1, 3))
def test_padding_changes_nothing(text, T, B, seed, extra):
    spec, model, params, inputs = setup(text, T, B, seed)
    assert_padding_invariant(model, params, inputs, extra, seed + 1)


# ---- (e) float32 ----------------------------------------------------------------------------------

@given(*CASES)
def test_float32_agrees_with_float64(text, T, B, seed):
    spec, model, params, inputs = setup(text, T, B, seed)
    assume(not near_a_kink(spec, params, inputs))
    assert_float32_close(model, params, inputs)


# ---- the corpus -----------------------------------------------------------------------------------

def corpus_case(path, seed: int):
    """A spec of specs/ with small dims, T = 4, B = 3, random lengths (CTC labels short
    enough for the frames) and parameters moved off their initial values."""
    spec = rnndsl.load_spec(path)
    try:
        spec = rnndsl.load_spec(path, dims={name: min(d.value, 6) for name, d in spec.dims})
    except rnndsl.SpecError:
        pass                      # some dims are tied (an image size); keep the defaults
    rng = np.random.default_rng(seed)
    inputs = random_inputs(spec, {a: 4 for a in spec.axes}, 3, rng)
    if "u" in spec.axes:
        inputs["lengths"] = {a: np.minimum(n, 2) if a == "u" else np.maximum(n, 3)
                             for a, n in inputs["lengths"].items()}
    params = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in rnndsl.init_params(spec, seed).items()}
    return spec, params, inputs


def smooth_corpus_case(path):
    """The first corpus case whose kinked ops stay clear of their kinks."""
    for seed in range(10):
        spec, params, inputs = corpus_case(path, seed)
        if not near_a_kink(spec, params, inputs):
            return spec, params, inputs
    raise AssertionError("every seed lands near a kink")


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_corpus_forward_matches_the_interpreter(path):
    spec, params, inputs = corpus_case(path, 0)
    ref = rnndsl.interpret(spec, params, inputs)
    out = rnndsl.compile(spec).forward(params, inputs)
    assert np.isfinite(ref.loss)
    assert out["loss"] == pytest.approx(ref.loss, rel=1e-10, abs=1e-10)
    for eq in spec.equations:
        np.testing.assert_allclose(out[eq.name], ref.values[eq.name], rtol=1e-10, atol=1e-10, err_msg=eq.name)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_corpus_gradcheck(path):
    spec, params, inputs = smooth_corpus_case(path)
    loss, grads = rnndsl.compile(spec).loss_and_grad(params, inputs)
    assert set(grads) == set(params)
    errors = fd_errors(spec, params, inputs, grads, seed=1)
    bad = {name: e for name, e in errors.items() if e[0] > 1e-6}
    assert not bad, bad
    assert any(abs(e[1]) > 1e-6 for e in errors.values()), "the loss depends on the parameters"


@pytest.fixture(scope="module")
def warm_compiler():
    """The first compile in a process pays for imports and parser tables."""
    rnndsl.compile(rnndsl.load_spec(SPECS[0]))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_corpus_compiles_in_under_half_a_second(path, warm_compiler, monkeypatch):
    spec = rnndsl.load_spec(path)
    times = []
    for _ in range(3):                         # the best of three: the machine may be busy
        monkeypatch.setattr(numpy_runtime, "_CACHE", {})        # compile the module, not fetch it
        start = time.perf_counter()
        rnndsl.compile(spec)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.5, f"{path.stem}: {min(times):.3f} s"


# ---- regressions: bugs these properties found, reduced to small specs ------------------------------

def agrees_with_the_interpreter(text: str, T: int = 3, B: int = 2, seed: int = 0) -> None:
    spec, model, params, inputs = setup(text, T, B, seed)
    assert_forward_matches(spec, model, params, inputs)
    _, grads = model.loss_and_grad(params, inputs)
    bad = {name: e for name, e in fd_errors(spec, params, inputs, grads, seed).items() if e[0] > 1e-6}
    assert not bad, bad


def bug_spec(inputs: str, params: str, equations: str, loss: str, state: str = "") -> str:
    return (f"dims: {{F: 2, H: 3, V: 3}}\ninputs:\n{inputs}\nparams:\n{params}\n"
            + (f"state:\n{state}\n" if state else "") + f"equations: |\n{equations}\nloss: {loss}\n")


X = "  x: {float: [F], axis: t}"


@pytest.mark.parametrize("inputs, params, equations, state", [
    (X + "\n  z: {float: [H]}", "  W: {shape: [H, F+H]}", "  h[t] = W @ concat(x[t], z)", ""),
    (X, "  W: {shape: [H, F+H]}", "  h[t] = tanh(W @ concat(x[t], h[t-1]))", "  h: {init: learned}"),
    (X, "  W: {shape: [H, H*2]}", "  h[t] = tanh(W @ h[t-2:t-1])", "  h: {init: learned}"),
], ids=["static-input", "learned-init-fill", "window-over-learned-init"])
def test_concat_of_a_step_and_a_value_without_time(inputs, params, equations, state):
    agrees_with_the_interpreter(bug_spec(inputs, params, equations, "mean_t h[t] @ h[t]", state), T=2, B=3)


@pytest.mark.parametrize("inputs, equations, loss", [
    ("  y: {float: [H], axis: t}", "  v[t] = tanh(b)", "mean_t mse(v[t], y[t])"),
    ("  y: {float: [H], axis: t}\n  z: {float: [H]}", "  v[t] = tanh(z)\n  s = mean_t v[t]", "mse(s, z)"),
    ("  y: {float: [H], axis: t}\n  z: {float: [H]}", "  v[t] = tanh(b)\n  s = max_t v[t]", "mse(s, z)"),
    ("  y: {float: [H], axis: t}\n  z: {float: [H]}", "  v[t] = b * z\n  s = min_t v[t]", "mse(s, z)"),
], ids=["params-only", "static-only", "max-over-steps-that-tie", "min-over-steps-that-tie"])
def test_a_sequence_variable_constant_in_time(inputs, equations, loss):
    agrees_with_the_interpreter(bug_spec(inputs, "  b: {shape: [H]}", equations, loss))


def test_a_gate_of_parameters_only_used_twice():
    """sigmoid(P1 @ P2) twice in a step fuses into one parameter value whose members are views:
    their adjoints must still be summed over batch and time (they were over time only)."""
    agrees_with_the_interpreter(bug_spec(X + "\n  y: {float: [H], axis: t}",
                                         "  P1: {shape: [H, H]}\n  P2: {shape: [H]}\n  P0: {shape: [H, F]}",
                                         "  v[t] = sigmoid(P1 @ P2) * v[t-2] + (1 - sigmoid(P1 @ P2)) * tanh(P0 @ x[t])",
                                         "mean_t mse(v[t], y[t])", "  v: {init: zeros}"), T=4, B=3)


def test_softmax_of_fused_matmuls():
    agrees_with_the_interpreter(bug_spec(X + "\n  y: {float: [H], axis: t}",
                                         "  Wu: {shape: [H, F]}\n  Wv: {shape: [H, F]}",
                                         "  u[t] = softmax(Wu @ x[t])\n  v[t] = softmax(Wv @ x[t])",
                                         "mean_t mse(u[t], y[t]) + mean_t mse(v[t], y[t])"))


def test_a_fused_result_nothing_reads():
    agrees_with_the_interpreter(bug_spec(X + "\n  y: {float: [H], axis: t}",
                                         "  Wu: {shape: [H, F]}\n  Wv: {shape: [H, F]}",
                                         "  u[t] = Wu @ x[t]\n  v[t] = Wv @ x[t]", "mean_t mse(u[t], y[t])"))


@pytest.mark.parametrize("inputs, params, equations", [
    (X, "  U: {shape: [H, H]}\n  W: {shape: [H, F]}",
     "  u[t] = tanh(W @ x[t])\n  h[t] = tanh(u[t+1] + U @ h[t-1])"),
    ("  c: {onehot: V, axis: t}", "  W: {shape: [H, H+V]}", "  h[t] = tanh(W @ concat(h[t-1], c[t+1]))"),
], ids=["time-parallel-variable", "onehot-as-vector"])
def test_a_loop_reads_a_hoisted_value_at_an_offset(inputs, params, equations):
    agrees_with_the_interpreter(bug_spec(inputs, params, equations, "mean_t h[t] @ h[t]"))


@pytest.mark.parametrize("params, equations", [
    ("  P: {shape: [H, H]}\n  Q: {shape: [H, F]}\n  W: {shape: [H, F]}",
     "  u[t] = (P @ Q) @ x[t]\n  v[t] = W @ x[t]"),
    ("  Wu: {shape: [H, F]}\n  Wv: {shape: [H, F]}\n  a: {shape: [H]}\n  b: {shape: [H]}",
     "  u[t] = a + Wu @ x[t]\n  v[t] = relu(b) + Wv @ x[t]"),
], ids=["matmul-of-params", "relu-of-param"])
def test_a_value_of_parameters_only_in_a_fusion(params, equations):
    agrees_with_the_interpreter(bug_spec(X, params, equations, "mean_t u[t] @ v[t]"))


def test_a_read_further_ahead_than_the_sequence():
    agrees_with_the_interpreter(bug_spec(X, "  W: {shape: [H, F]}", "  u[t] = tanh(W @ x[t])\n  v[t] = u[t+3]",
                                         "mean_t v[t] @ v[t]"), T=2, B=1)


@pytest.mark.parametrize("equation", ["u[t] = x[t] + c[t]", "s = mean_t x[t]"], ids=["onehot", "mean_t"])
def test_float32_values_stay_float32(equation):
    text = bug_spec("  x: {float: [V], axis: t}\n  c: {onehot: V, axis: t}", "  W: {shape: [V, V]}",
                    f"  {equation}\n  w[t] = W @ x[t]", "sum_t w[t] @ w[t]")
    spec, model, params, inputs = setup(text, 3, 2, 0, dtype="float32")
    out = model.forward(params, inputs)
    assert {name: out[name].dtype for name in out if name != "loss"} == \
        {name: np.float32 for name in out if name != "loss"}
