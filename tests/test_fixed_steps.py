"""Fixed-step reads, reductions over time, state inits and losses at fixed steps, for every
input kind (issue 9, item 1).

A onehot or index input is fed as (T, B) class indices; read at a step (`x[0]`, `x[end-k]`),
reduced (`mean_t x[t]`), held by a variable (`v = x[end]`) or used in a state init or a loss,
it must mean what the reference interpreter says: a one-hot vector, or a class index (-1, no
class, outside the sequence). Hypothesis draws specs made of exactly these reads over onehot,
index and float inputs with ragged lengths (`x[end]` is each sequence's own last step), and
checks the compiled forward against the interpreter (1e-10) and the gradients against central
differences of the interpreter's loss.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import rnndsl

from rnndsl.testing.assertions import near_a_kink
from test_backend import agrees_with_the_interpreter, assert_forward_matches, fd_errors, setup

HEAD = """name: fixed
dims: {{V: {V}, H: {H}}}
inputs:
  x: {{onehot: V, axis: t}}
  target: {{index: V, axis: t}}
  f: {{float: [V], axis: t}}
params:
  W: {{shape: [H, V]}}
  U: {{shape: [V, H]}}
  Q: {{shape: [H, H]}}
  P: {{shape: [V]}}
"""


# ---- the issue's examples, as written --------------------------------------------------------

ISSUE = {
    "matmul-at-step-0": ("  q = W @ x[0]\n", "mse(q, W @ P)"),
    "mean-of-onehots": ("  bag = mean_t x[t]\n  r = W @ bag\n", "mse(r, W @ P)"),
    "state-init": ("  h[t] = tanh(W @ x[t] + Q @ h[t-1])\n", "mean_t mse(h[t], W @ P)"),
    "cross-entropy-at-step-0": ("  h[t] = tanh(W @ x[t])\n  y = U @ h[0]\n", "cross_entropy(y, target[0])"),
    "mse-of-a-onehot-at-end": ("  m = P * mse(x[end], 0 * x[end])\n", "mse(m, 0 * P)"),
}


@pytest.mark.parametrize("name", ISSUE)
def test_the_issues_examples_agree_with_the_interpreter(name):
    equations, loss = ISSUE[name]
    state = "state:\n  h:\n    init: tanh(W @ x[end])\n" if name == "state-init" else ""
    text = HEAD.format(V=3, H=4) + state + "equations: |\n" + equations + f"loss: {loss}\n"
    agrees_with_the_interpreter(text, T=4, B=3)


# Found while fixing them: a variable or a state init holding a onehot value holds its vector
# (not the class index), a variable holding a class index keeps it an int in the interpreter
# (it was read as a distribution), and scores made of parameters only meet a batch of targets.
FOUND = {
    "onehot-variables": ("  v = x[end]\n  u[t] = x[t-1]\n  w[t] = x[0]\n",
                         "mse(v, P) + mean_t mse(u[t] + w[t], P)", ""),
    "onehot-state-init": ("  g[t] = tanh(U @ (W @ x[t]) + g[t+1])\n", "mean_t mse(g[t], P)",
                          "state:\n  g:\n    init: x[end-1]\n"),
    "index-variables": ("  w = target[end-3]\n  k[t] = target[t-1]\n  y[t] = U @ (W @ x[t])\n",
                        "cross_entropy(y[0], w) + mean_t cross_entropy(y[t], k[t])", ""),
    "parameter-scores": ("  s = W @ x[1]\n", "mse(s, W @ P) + cross_entropy(P, target[end]) "
                         "+ mean_t cross_entropy(P, target[t])", ""),
}


@pytest.mark.parametrize("name", FOUND)
def test_values_holding_classes_agree_with_the_interpreter(name):
    equations, loss, state = FOUND[name]
    text = HEAD.format(V=3, H=4) + state + "equations: |\n" + equations + f"loss: {loss}\n"
    agrees_with_the_interpreter(text, T=5, B=3)


# ---- the strategy ---------------------------------------------------------------------------

@st.composite
def fixed_step(draw) -> str:
    """A step index: k, end or end-k (k may lie past a short sequence's end)."""
    k = draw(st.integers(0, 4))
    return draw(st.sampled_from([str(k), "end" if k == 0 else f"end-{k}"]))


@st.composite
def vector_read(draw) -> str:
    """A [V] value without time from a onehot or float input: a fixed step or a reduction."""
    var = draw(st.sampled_from(["x", "f"]))
    if draw(st.booleans()):
        return f"{var}[{draw(fixed_step())}]"
    fn = draw(st.sampled_from(["sum", "mean", "max", "min"]))
    offset = draw(st.integers(-1, 1))
    return f"{fn}_t {var}[t{offset:+d}]" if offset else f"{fn}_t {var}[t]"


@st.composite
def vector_use(draw, read: str) -> str:
    """An [H] value made from a [V] read: a column gather, elementwise work, a loss."""
    forms = [f"W @ {read}", f"tanh(W @ (P * {read}))", f"W @ ({read} - P)",
             f"mse({read}, P) * (W @ {read})", f"({read} @ U) @ Q"]
    return draw(st.sampled_from(forms))


@st.composite
def _statics(draw) -> list:
    """Static values s0, s1, ... of [H] from reads, some through a variable holding the read."""
    lines = []
    for i in range(draw(st.integers(1, 3))):
        read = draw(vector_read())
        if draw(st.booleans()):                 # a variable holding a onehot (or float) read
            lines.append(f"v{i} = {read}")
            read = f"v{i}"
        lines.append(f"s{i} = {draw(vector_use(read))}")
    return lines


@st.composite
def fixed_step_specs(draw) -> str:
    """A spec whose static values, recurrence, state init and loss read inputs at fixed steps."""
    lines = draw(_statics())
    statics = " + ".join(line.split(" = ")[0] for line in lines if line.startswith("s"))
    back = draw(st.booleans())                  # the recurrence runs backward: h[0] is its end
    inside = draw(st.sampled_from(["", f" + W @ x[{draw(fixed_step())}]", " + s0"]))
    lines.append(f"h[t] = tanh(W @ x[t] + Q @ h[{'t+1' if back else 't-1'}]{inside})")
    lines.append(f"y = U @ (h[{'0' if back else 'end'}] + {statics})")
    terms = [draw(_class_target()), f"mse(tanh({statics}), W @ {draw(vector_read())})"]
    if draw(st.booleans()):
        terms.append(f"mean_t mse(h[t], W @ f[{draw(fixed_step())}])")
    if draw(st.booleans()):                     # a variable holding a class index
        lines.append(f"w = target[{draw(fixed_step())}]")
        terms.append("cross_entropy(y, w)")
    state = _state(draw(st.sampled_from(["zeros", "learned", "read"])), draw(vector_use(draw(vector_read()))))
    text = HEAD.format(V=draw(st.integers(2, 4)), H=draw(st.integers(2, 3))) + state
    text += "equations: |\n" + "".join(f"  {line}\n" for line in lines)
    return text + f"loss: {' + '.join(terms)}\n"


@st.composite
def _class_target(draw) -> str:
    """cross_entropy of the scores against a class read at a fixed step (index or onehot)."""
    var = draw(st.sampled_from(["target", "x"]))
    return f"cross_entropy(y, {var}[{draw(fixed_step())}])"


def _state(init: str, expr: str) -> str:
    if init == "zeros":
        return ""
    if init == "learned":
        return "state:\n  h: {init: learned}\n"
    return f"state:\n  h:\n    init: {expr}\n"


CASES = (fixed_step_specs(), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**16))


# ---- the properties ---------------------------------------------------------------------------

@given(*CASES)
def test_fixed_step_reads_agree_with_the_interpreter(text, T, B, seed):
    assert_forward_matches(*setup(text, T, B, seed))


@given(*CASES)
def test_fixed_step_reads_have_the_gradients_of_finite_differences(text, T, B, seed):
    spec, model, params, inputs = setup(text, T, B, seed)
    assume(not near_a_kink(spec, params, inputs))
    loss, grads = model.loss_and_grad(params, inputs)
    assert loss == pytest.approx(rnndsl.interpret(spec, params, inputs).loss, rel=1e-10, abs=1e-10)
    bad = {name: e for name, e in fd_errors(spec, params, inputs, grads, seed).items() if e[0] > 1e-6}
    assert not bad, bad
