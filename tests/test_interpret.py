"""The reference interpreter against hand-written NumPy loops and brute-force oracles."""
import itertools

import numpy as np
import pytest

import rnndsl
from rnndsl.core import kernels

from conftest import ROOT


def log_softmax(y):
    y = y - y.max()
    return y - np.log(np.exp(y).sum())


def elman_by_hand(P, x, target, n):
    h, losses, ys = np.zeros(P["W_hh"].shape[0]), [], []
    for t in range(n):
        h = np.tanh(P["W_xh"][:, x[t]] + P["W_hh"] @ h + P["b_h"])
        y = P["W_hy"] @ h + P["b_y"]
        ys.append(y)
        losses.append(-log_softmax(y)[target[t]])
    return np.mean(losses), ys


def test_elman_matches_a_numpy_loop_with_variable_lengths():
    model = rnndsl.load_spec(ROOT / "specs/elman.yaml")
    P = rnndsl.init_params(model, seed=3)
    rng = np.random.default_rng(0)
    T, B = 6, 4
    x, target = rng.integers(0, 4, (T, B)), rng.integers(0, 4, (T, B))
    lengths = np.array([6, 1, 3, 5])
    result = rnndsl.interpret(model, P, {"x": x, "target": target, "lengths": lengths})
    for b in range(B):
        loss, ys = elman_by_hand(P, x[:, b], target[:, b], lengths[b])
        assert result.losses[b] == pytest.approx(loss, abs=1e-12)
        np.testing.assert_allclose(result.values["y"][:lengths[b], b], ys, atol=1e-12)
        assert not result.values["y"][lengths[b]:, b].any(), "padded steps stay zero"
    assert result.loss == pytest.approx(result.losses.mean())


BIRNN = """
name: birnn_test
dims: {F: 3, H: 5, K: 4}
inputs:
  x: {float: [F], axis: t}
  target: {index: K, axis: t}
params:
  Wf: {shape: [H, F], init: normal(0.5)}
  Uf: {shape: [H, H], init: normal(0.5)}
  Wb: {shape: [H, F], init: normal(0.5)}
  Ub: {shape: [H, H], init: normal(0.5)}
  hb0: {shape: [H], init: normal(0.5)}
  Vf: {shape: [K, H], init: normal(0.5)}
  Vb: {shape: [K, H], init: normal(0.5)}
state:
  hb: {init: learned}
equations: |
  hf[t] = tanh(Wf @ x[t] + Uf @ hf[t-1])
  hb[t] = sigmoid(Wb @ x[t] + Ub @ hb[t+1])
  y[t] = Vf @ hf[t] + Vb @ hb[t]
loss: mean_t cross_entropy(y[t], target[t])
"""


def test_bidirectional_matches_a_numpy_loop_with_variable_lengths():
    model = rnndsl.loads_spec(BIRNN)
    P = rnndsl.init_params(model, seed=0)
    P["hb_init"] = np.random.default_rng(5).normal(size=5)      # a learned init, not zeros
    rng = np.random.default_rng(1)
    T, B = 5, 3
    x, target = rng.normal(size=(T, B, 3)), rng.integers(0, 4, (T, B))
    lengths = np.array([5, 2, 4])
    result = rnndsl.interpret(model, P, {"x": x, "target": target, "lengths": lengths})
    sig = lambda z: 1 / (1 + np.exp(-z))
    for b in range(B):
        n = lengths[b]
        hf, hb = np.zeros((n, 5)), np.zeros((n, 5))
        prev = np.zeros(5)
        for t in range(n):
            prev = hf[t] = np.tanh(P["Wf"] @ x[t, b] + P["Uf"] @ prev)
        nxt = P["hb_init"]                    # the backward chain starts after the last real step
        for t in reversed(range(n)):
            nxt = hb[t] = sig(P["Wb"] @ x[t, b] + P["Ub"] @ nxt)
        y = hf @ P["Vf"].T + hb @ P["Vb"].T
        loss = np.mean([-log_softmax(y[t])[target[t, b]] for t in range(n)])
        np.testing.assert_allclose(result.values["y"][:n, b], y, atol=1e-12)
        assert result.losses[b] == pytest.approx(loss, abs=1e-12)


def test_seq2seq_decoder_starts_from_the_encoders_last_real_state():
    model = rnndsl.load_spec(ROOT / "specs/seq2seq.yaml", dims={"V": 5, "W": 4, "H": 3})
    P = rnndsl.init_params(model, seed=2)
    rng = np.random.default_rng(2)
    S, T, B = 4, 3, 2
    src, tin, tout = rng.integers(0, 5, (S, B)), rng.integers(0, 4, (T, B)), rng.integers(0, 4, (T, B))
    lengths = {"s": np.array([4, 2]), "t": np.array([1, 3])}
    result = rnndsl.interpret(model, P, {"src": src, "tgt_in": tin, "tgt_out": tout, "lengths": lengths})
    for b in range(B):
        enc = np.zeros(3)
        for s in range(lengths["s"][b]):
            enc = np.tanh(P["E_s"][:, src[s, b]] + P["U_s"] @ enc)
        dec, losses = enc, []
        for t in range(lengths["t"][b]):
            dec = np.tanh(P["E_t"][:, tin[t, b]] + P["U_t"] @ dec)
            losses.append(-log_softmax(P["V_o"] @ dec + P["b_o"])[tout[t, b]])
        assert result.losses[b] == pytest.approx(np.mean(losses), abs=1e-12)


def ctc_brute_force(logits, labels, blank):
    """-log of the summed probability of every frame labelling that collapses to `labels`."""
    T, K = logits.shape
    logp = np.array([log_softmax(row) for row in logits])
    total = 0.0
    for path in itertools.product(range(K), repeat=T):
        collapsed = [k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])]
        if collapsed == list(labels):
            total += np.exp(sum(logp[t, k] for t, k in enumerate(path)))
    return -np.log(total)


@pytest.mark.parametrize("labels,T,blank", [([1], 1, 0), ([1, 2], 3, 0), ([1, 1], 3, 0),
                                            ([2, 1, 2], 5, 0), ([0, 1], 4, 2), ([], 3, 0)])
def test_ctc_matches_brute_force(labels, T, blank):
    logits = np.random.default_rng(len(labels) + T).normal(size=(T, 3))
    assert kernels.ctc(np, logits, np.array(labels, int), blank) == pytest.approx(
        ctc_brute_force(logits, labels, blank), rel=1e-10)


def test_deepspeech_window_reads_zeros_outside_the_sequence():
    model = rnndsl.load_spec(ROOT / "specs/deepspeech.yaml", dims={"F": 2, "C": 1, "H": 3, "K": 3})
    P = rnndsl.init_params(model, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1, 2))
    labels = np.array([[1], [2]])
    result = rnndsl.interpret(model, P, {"x": x, "labels": labels,
                                         "lengths": {"t": np.array([3]), "u": np.array([2])}})
    window = np.concatenate([np.zeros(2), x[0, 0], x[1, 0]])      # x[t-1:t+1] at t = 0
    h1 = np.clip(P["W1"] @ window + P["b1"], 0, 20)
    np.testing.assert_allclose(result.values["h1"][0, 0], h1, atol=1e-12)
    window = np.concatenate([x[1, 0], x[2, 0], np.zeros(2)])      # at t = 2: x[3] is padding
    np.testing.assert_allclose(result.values["h1"][2, 0], np.clip(P["W1"] @ window + P["b1"], 0, 20),
                               atol=1e-12)
    assert np.isfinite(result.loss)


def test_reductions_and_static_reads():
    spec = """
dims: {F: 2}
inputs:
  x: {float: [F], axis: t}
  y: {float: [F]}
equations: |
  s = sum_t x[t] * x[t]
  m = max_t x[t] + min_t x[t]
  e = x[end] - x[0] + x[end-1]
loss: mse(s + m + e, y)
"""
    model = rnndsl.loads_spec(spec)
    x = np.random.default_rng(0).normal(size=(3, 2, 2))
    y = np.zeros((2, 2))
    r = rnndsl.interpret(model, {}, {"x": x, "y": y, "lengths": np.array([3, 2])})
    for b, n in enumerate([3, 2]):
        xs = x[:n, b]
        np.testing.assert_allclose(r.values["s"][b], (xs * xs).sum(0))
        np.testing.assert_allclose(r.values["m"][b], xs.max(0) + xs.min(0))
        np.testing.assert_allclose(r.values["e"][b], xs[-1] - xs[0] + xs[-2])


def test_bad_inputs_are_data_errors():
    model = rnndsl.load_spec(ROOT / "specs/elman.yaml")
    P = rnndsl.init_params(model)
    x = np.zeros((3, 2), int)
    cases = [({"x": x}, "missing input target"),
             ({"x": x, "target": x, "extra": x}, "unknown input extra"),
             ({"x": x, "target": x + 4}, "class index outside [0, 4) at step 0 of sequence 0"),
             ({"x": x.astype(float), "target": x}, "must hold integer class indices"),
             ({"x": x, "target": x[:2]}, "disagree on its length"),
             ({"x": x, "target": x, "lengths": np.array([4, 1])}, "must lie in [1, 3]")]
    for inputs, message in cases:
        with pytest.raises(rnndsl.DataError, match=None) as info:
            rnndsl.interpret(model, P, inputs)
        assert message in str(info.value)
