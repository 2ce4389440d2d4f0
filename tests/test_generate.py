"""Generation with feedback: one step at a time from the carried state where the spec allows it,
the whole sequence re-run otherwise, and the same samples either way."""
import time

import numpy as np
import pytest

import rnndsl
from rnndsl.training import generate

from conftest import ROOT


def model_of(name: str):
    return rnndsl.compile(str(ROOT / "specs" / f"{name}.yaml"), dtype="float64")


@pytest.mark.parametrize("name, carried", [("char_rnn", {"h"}), ("lstm", {"h", "c"}), ("rnn_lm", {"s"}),
                                           ("elman", {"h"}), ("ffnn_lm", None)])
def test_which_specs_generate_step_by_step(name, carried):
    spec = rnndsl.load_spec(str(ROOT / "specs" / f"{name}.yaml"))
    assert generate.stepwise(spec, *spec.generate.feed[0]) == carried


def test_a_window_over_past_inputs_or_a_lookahead_is_not_stepwise():
    spec = rnndsl.loads_spec("""
name: peek
dims: {V: 5, H: 4}
inputs:
  x: {onehot: V, axis: t}
  target: {index: V, axis: t}
params:
  W: {shape: [H, V]}
  U: {shape: [H, H]}
  Z: {shape: [V, H]}
state:
  h: {init: zeros}
equations: |
  h[t] = tanh(W @ x[t] + U @ h[t-1])
  a[t] = h[t] + h[t+1]
  y[t] = Z @ a[t]
loss: mean_t cross_entropy(y[t], target[t])
generate: {feed: {x: y}}
""")
    assert generate.stepwise(spec, "x", "y") is None


@pytest.mark.parametrize("name", ["char_rnn", "lstm", "rnn_lm", "captioning"])
def test_stepwise_and_whole_sequence_generation_sample_the_same(name, monkeypatch):
    model = model_of(name)
    params = model.init_params(3)
    for p in params.values():
        p *= 4.0                                   # a sharper distribution than the init's
    prime = [1, 2]
    fast = generate.generate(model, params, prime, 12, temperature=0.8, seed=5)
    monkeypatch.setattr(generate, "stepwise", lambda *a: None)
    slow = generate.generate(model, params, prime, 12, temperature=0.8, seed=5)
    assert fast == slow and len(fast) == 12


def test_stepwise_generation_is_linear_in_the_length():
    model = model_of("char_rnn")
    params = model.init_params(0)
    def seconds(n):
        start = time.perf_counter()
        generate.generate(model, params, [0], n, temperature=1.0, seed=0)
        return time.perf_counter() - start
    seconds(20)
    assert seconds(400) < 12 * seconds(40) + 0.05     # quadratic would be 100 times


@pytest.mark.parametrize("name", ["char_rnn", "lstm", "rnn_lm", "elman"])
def test_one_step_from_the_carry_scores_like_the_whole_sequence(name):
    model = model_of(name)
    params = model.init_params(1)
    spec = model.spec
    feed, output = spec.generate.feed[0]
    carried = generate.stepwise(spec, feed, output)
    seq = list(np.random.default_rng(0).integers(0, 4, 9))
    scores, carry = generate._scores(model, params, feed, output, seq[:1], {}, carried)
    for k in range(2, len(seq) + 1):
        scores, carry = generate._scores(model, params, feed, output, seq[k - 1:k], {}, carried, carry)
        whole, _ = generate._scores(model, params, feed, output, seq[:k], {}, None)
        np.testing.assert_allclose(scores, whole, rtol=1e-10, atol=1e-12)
