"""Fusion over stacked products, round after round.

Hypothesis draws specs where several equations apply chains of elementwise ops to products of
(possibly repeated) parameters with one shared operand, read at an offset: the products stack
into one GEMM, and each link of the chains fuses over adjacent slices in a later round, so
results that became views become bases of views again. Every such program must pass the
verifier and agree with the interpreter and finite differences.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

import rnndsl
from test_backend import assert_forward_matches, fd_errors
from test_specs import random_inputs

OPS = ["relu({})", "sigmoid({})", "tanh({})", "1 - {}", "{} * 2"]


@st.composite
def stacked_chains(draw) -> str:
    """Equations v_i, each a chain over a product or a gate on its own recurrence (so chains
    are read by different loops), with weights drawn from a small pool (repeats stack twice)."""
    n = draw(st.integers(2, 4))
    offset = draw(st.sampled_from(["t", "t+1", "t-2", "t+2"]))

    def chain() -> str:
        e = f"(P{draw(st.integers(0, n - 1))} @ x[{offset}])"
        for op in draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=3)):
            e = op.format(e)
        return e
    eqs = []
    for i in range(n):
        recurrent = draw(st.booleans())
        eqs.append(f"  v{i}[t] = {chain()}" + (f" * tanh(v{i}[t-1]) + {chain()}" if recurrent else ""))
    total = " + ".join(f"v{i}[t]" for i in range(n))
    params = "\n".join(f"  P{i}: {{shape: [H, V], init: normal(0.5)}}" for i in range(n))
    return (f"name: chains\ndims: {{H: {draw(st.integers(1, 3))}, V: 3}}\ninputs:\n  x: {{onehot: V, axis: t}}\n"
            f"  tgt: {{float: [H], axis: t}}\nparams:\n{params}\nequations: |\n" + "\n".join(eqs)
            + f"\nloss: mean_t mse({total}, tgt[t])\n")


@given(stacked_chains(), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**16))
def test_fused_chains_over_stacked_products(text, steps, batch, seed):
    spec = rnndsl.loads_spec(text)
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.5, np.shape(v)) for k, v in rnndsl.init_params(spec, seed).items()}
    inputs = random_inputs(spec, {"t": steps}, batch, rng)
    model = rnndsl.compile(spec)
    assert_forward_matches(spec, model, params, inputs)
    grads = model.loss_and_grad(params, inputs)[1]
    bad = {k: e for k, e in fd_errors(spec, params, inputs, grads, seed).items() if e[0] > 1e-6}
    assert not bad, bad


def test_a_group_fused_again_keeps_its_views_pointing_at_what_is_written():
    """Found by random specs: two relu groups over slices of one stacked product fused in a
    later round left views of a buffer nothing wrote."""
    spec = rnndsl.loads_spec("""name: regression
dims: {H: 1, V: 3}
inputs:
  c: {onehot: V, axis: t}
  tgt: {float: [H], axis: t}
params:
  P0: {shape: [H]}
  P1: {shape: [H, V]}
  P2: {shape: [H]}
  P3: {shape: [H, V]}
  P5: {shape: [H, 2*H]}
equations: |
  v0[t] = sigmoid(relu((P1 @ c[t+2]))) * v0[t-1] + (1 - sigmoid(relu((P1 @ c[t+2])))) * tanh(P0)
  v1[t] = sigmoid(P5 @ concat(relu((P3 @ c[t+2])), P2 + v1[t-1])) * v1[t-1] + tanh(P5 @ concat(relu((P3 @ c[t+2])), P2 + v1[t-1]))
loss: mean_t mse(v0[t] + v1[t], tgt[t])
""")
    rng = np.random.default_rng(0)
    params = rnndsl.init_params(spec, 0)
    inputs = random_inputs(spec, {"t": 4}, 2, rng)
    assert_forward_matches(spec, rnndsl.compile(spec), params, inputs)
