"""Attention: variables over two axes (e[t, s]), softmax_s and reductions over an inner axis.

Hypothesis draws attention specs: an encoder over s (time-parallel, or recurrent either way), a
query over t that is plain or recurrent through the attention's own context (q[t] reads
ctx[t-1] or ctx[t+1], so the recurrence runs through e, a and ctx), dot, general, scaled or
additive scores, location-aware scores that read the last alignment a[t-1, s] (or a[t+1, s]), softmax_s or a sigmoid gate, sum_s or mean_s readouts, the scores named as
variables or written inline, and an alignment term in the loss; lengths are ragged on both
axes. Each spec must agree with the interpreter (numpy and numba, 1e-10), and its gradients
with central differences of the interpreter's loss. The checker's errors for misuse are
checked below. Hypothesis settings come from the profile in conftest.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnndsl
from test_backend import assert_forward_matches, fd_errors
from test_specs import random_inputs

SCORES = {"dot": "q[t] @ k[s]", "scaled": "q[t] @ k[s] / H", "general": "q[t] @ (W_g @ k[s])",
          "additive": "v_a @ tanh(W_a @ k[s] + U_a @ q[t] + b_a)"}


@st.composite
def attention_specs(draw) -> str:
    enc = draw(st.sampled_from(["parallel", "forward", "backward"]))
    query = draw(st.sampled_from(["parallel", "self", "through_ctx_forward", "through_ctx_backward"]))
    score, norm = draw(st.sampled_from(sorted(SCORES))), draw(st.sampled_from(["softmax_s", "sigmoid"]))
    reduce, named = draw(st.sampled_from(["sum_s", "mean_s"])), draw(st.booleans())
    k_rec = {"parallel": "", "forward": " + U_k @ k[s-1]", "backward": " + U_k @ k[s+1]"}[enc]
    q_rec = {"parallel": "", "self": " + U_q @ q[t-1]", "through_ctx_forward": " + U_q @ ctx[t-1]",
             "through_ctx_backward": " + U_q @ ctx[t+1]"}[query]
    eqs = [f"k[s] = tanh(W_k @ x[s]{k_rec})", f"q[t] = tanh(W_q @ u[t]{q_rec})"]
    weights = f"{norm}(e[t, s])" if named else f"{norm}({SCORES[score]})"
    location = named and draw(st.booleans())      # location-aware: the score reads the last alignment
    if named:
        step = "t+1" if query == "through_ctx_backward" else "t-1"
        eqs += [f"e[t, s] = {SCORES[score]}" + (f" + 0.5 * a[{step}, s]" if location else ""), f"a[t, s] = {weights}"]
        weights = "a[t, s]"
    eqs += [f"ctx[t] = {reduce} {weights} * k[s]", "y[t] = W_o @ ctx[t] + q[t]"]
    loss = "mean_t mse(y[t], tgt[t])" + (" + mean_t sum_s a[t, s] * a[t, s]" if named and draw(st.booleans()) else "")
    h, f = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    params = {"W_k": "[H, F]", "U_k": "[H, H]", "W_q": "[H, F]", "U_q": "[H, H]", "W_g": "[H, H]",
              "W_a": "[A, H]", "U_a": "[A, H]", "b_a": "[A]", "v_a": "[A]", "W_o": "[H, H]"}
    lines = ["name: attention", f"dims: {{F: {f}, H: {h}, A: 2}}", "inputs:",
             "  x: {float: [F], axis: s}", "  u: {float: [F], axis: t}", "  tgt: {float: [H], axis: t}",
             "params:", *[f"  {n}: {{shape: {shape}, init: normal(0.5)}}" for n, shape in params.items()],
             *(["state:", "  a: {shape: []}"] if location else []), "equations: |", *[f"  {e}" for e in eqs], f"loss: {loss}"]
    return "\n".join(lines) + "\n"


def case(text: str, steps: dict, batch: int, seed: int):
    spec = rnndsl.loads_spec(text)
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.5, np.shape(v)) for k, v in rnndsl.init_params(spec, seed).items()}
    return spec, params, random_inputs(spec, steps, batch, rng)


CASES = (attention_specs(), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**16))


@given(*CASES)
def test_attention_matches_the_interpreter(text, s, t, batch, seed):
    spec, params, inputs = case(text, {"s": s, "t": t}, batch, seed)
    for backend in ("numpy", "numba"):
        if backend == "numba":
            pytest.importorskip("numba")
        assert_forward_matches(spec, rnndsl.compile(spec, backend=backend), params, inputs)


@given(*CASES)
def test_attention_gradients_match_finite_differences(text, s, t, batch, seed):
    spec, params, inputs = case(text, {"s": s, "t": t}, batch, seed)
    loss, grads = rnndsl.compile(spec).loss_and_grad(params, inputs)
    bad = {name: e for name, e in fd_errors(spec, params, inputs, grads, seed).items() if e[0] > 1e-6}
    assert not bad, bad


@given(*CASES)
def test_numba_gradients_equal_numpys(text, s, t, batch, seed):
    pytest.importorskip("numba")
    spec, params, inputs = case(text, {"s": s, "t": t}, batch, seed)
    want = rnndsl.compile(spec, backend="numpy").loss_and_grad(params, inputs)[1]
    got = rnndsl.compile(spec, backend="numba").loss_and_grad(params, inputs)[1]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_padded_source_steps_get_no_weight():
    spec = rnndsl.loads_spec(HEAD + "  e[t, s] = q[t] @ k[s]\n  a[t, s] = softmax_s(e[t, s])\n"
                             "  ctx[t] = sum_s a[t, s] * k[s]\nloss: mean_t mse(ctx[t], tgt[t])\n")
    rng = np.random.default_rng(0)
    params = rnndsl.init_params(spec, 0)
    inputs = random_inputs(spec, {"s": 5, "t": 3}, 2, rng)
    inputs["lengths"] = {"s": np.array([5, 2]), "t": np.array([3, 3])}
    a = rnndsl.compile(spec).forward(params, inputs)["a"]          # (T, S, B)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert (a[:, 2:, 1] == 0).all()


HEAD = """name: att
dims: {F: 2, H: 3}
inputs:
  x: {float: [F], axis: s}
  u: {float: [F], axis: t}
  tgt: {float: [H], axis: t}
params:
  W_k: {shape: [H, F]}
  W_q: {shape: [H, F]}
equations: |
  k[s] = tanh(W_k @ x[s])
  q[t] = tanh(W_q @ u[t])
"""

ERRORS = [
    ("  ctx[t] = a[t, s] * k[s]\n  a[t, s] = q[t] @ k[s]\n", "is read where t and s do not both run"),
    ("  ctx[t] = q[t] * k[s]\n", "or by attention, inside a reduction over s"),
    ("  a[t, s] = q[t] @ k[s]\n  ctx[t] = sum_s a[t] * k[s]\n", "read it as a[t, s]"),
    ("  a[t, s] = sum_s q[t] @ k[s]\n", "s already runs here"),
    ("  ctx[t] = softmax_s(q[t])\n", "softmax_s normalises over the steps of s"),
    ("  a[t, t] = q[t] @ q[t]\n", "the two axes must differ"),
    ("  a[t, s] = q[t] @ k[s]\n  ctx[t] = sum_s a[t, s-1] * k[s]\n", "the second is s itself"),
    ("  a[t, s] = q[t] @ k[s]\n  z = a[0, s]\n", "read as a[t-k, s]"),
    ("  a[t, s] = q[t] @ q[t]\n", "is defined from values over t"),
    ("  ctx[t] = sum_s q[t] @ k[s-1] * k[s]\n", "is read at s itself"),
]


@pytest.mark.parametrize("equations,message", ERRORS, ids=[m for _, m in ERRORS])
def test_misused_attention_is_a_located_error(equations, message):
    text = HEAD + equations + "loss: mean_t mse(q[t], tgt[t])\n"
    with pytest.raises(rnndsl.SpecError) as info:
        rnndsl.loads_spec(text)
    text = info.value.format()
    assert message in text and text.startswith("<spec>:1") and "hint:" in text


POOL = """name: pool
dims: {F: 3, H: 4, K: 2}
inputs:
  x: {float: [F], axis: t}
  label: {index: K}
params:
  W: {shape: [H, F]}
  U: {shape: [H, H]}
  v: {shape: [H], init: normal(0.5)}
  W_y: {shape: [K, H]}
equations: |
  h[t] = tanh(W @ x[t] + U @ h[t-1])
  a[t] = softmax_t(v @ h[t])
  z = sum_t a[t] * h[t]
  y = W_y @ z
loss: cross_entropy(y, label)
outputs: [y, a]
"""


@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**16))
def test_attention_pooling_over_one_axis(steps, batch, seed):
    spec, params, inputs = case(POOL, {"t": steps}, batch, seed)
    out = rnndsl.compile(spec).forward(params, inputs)
    assert_forward_matches(spec, rnndsl.compile(spec), params, inputs)
    np.testing.assert_allclose(out["a"].sum(axis=0), 1.0)
    grads = rnndsl.compile(spec).loss_and_grad(params, inputs)[1]
    bad = {name: e for name, e in fd_errors(spec, params, inputs, grads, seed).items() if e[0] > 1e-6}
    assert not bad, bad


def test_a_recurrence_cannot_run_through_a_softmax_over_its_axis():
    text = POOL.replace("U @ h[t-1])", "U @ h[t-1] + a[t-1])")
    with pytest.raises(rnndsl.SpecError, match="as a whole sequence"):
        rnndsl.loads_spec(text)
