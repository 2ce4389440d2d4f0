"""Dropout (`dropout(x, p)`, variational `dropout(x, p, same=1)`) and SpecAugment's masks
(`mask_steps(x, width, n)`, `mask_band(x, width, n)`) as products with mask inputs.

Hypothesis draws where the noise goes (an input, a recurrent state, an output), which op, its
rate or width, and whether one mask serves every step; with masks drawn and then fixed, the compiled model (numpy
and numba) must agree with the interpreter and its gradients with central differences, which is
dropout's gradient check. Without masks (evaluation) dropout is off; drawn masks keep each unit
with probability 1-p, scaled by 1/(1-p); training draws them from the seed and the step, so two
runs, or a run and its resumption, are identical.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnndsl
from rnndsl.semantics.inputs import training_masks
from test_backend import assert_forward_matches, fd_errors
from test_specs import random_inputs

SPEC = """name: drop
dims: {{F: 3, H: 4}}
inputs:
  x: {{float: [F], axis: t}}
  tgt: {{float: [H], axis: t}}
params:
  W: {{shape: [H, F], init: normal(0.5)}}
  U: {{shape: [H, H], init: normal(0.5)}}
equations: |
  h[t] = tanh(W @ {x} + U @ {h})
  y[t] = {y}
loss: mean_t mse(y[t], tgt[t])
"""


@st.composite
def dropout_specs(draw) -> str:
    def maybe(text: str) -> str:
        op = draw(st.sampled_from(["", "dropout", "mask_steps", "mask_band"]))
        if op == "dropout":
            p = draw(st.sampled_from([0.1, 0.25, 0.5]))
            return f"dropout({text}, {p}" + (", same=1)" if draw(st.booleans()) else ")")
        if op:
            return f"{op}({text}, {draw(st.integers(0, 3))}, n={draw(st.integers(1, 2))})"
        return text
    return SPEC.format(x=maybe("x[t]"), h=maybe("h[t-1]"), y=maybe("h[t]"))


def case(text: str, steps: int, batch: int, seed: int):
    spec = rnndsl.loads_spec(text)
    rng = np.random.default_rng(seed)
    params = rnndsl.init_params(spec, seed)
    inputs = random_inputs(spec, {"t": steps}, batch, rng)
    return spec, params, {**inputs, **training_masks(spec, inputs, rng)}


CASES = (dropout_specs(), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2**16))


@given(*CASES)
def test_fixed_masks_match_the_interpreter_and_finite_differences(text, steps, batch, seed):
    spec, params, inputs = case(text, steps, batch, seed)
    for backend in ("numpy", "numba"):
        if backend == "numba":
            pytest.importorskip("numba")
        assert_forward_matches(spec, rnndsl.compile(spec, backend=backend), params, inputs)
    grads = rnndsl.compile(spec).loss_and_grad(params, inputs)[1]
    bad = {name: e for name, e in fd_errors(spec, params, inputs, grads, seed).items() if e[0] > 1e-6}
    assert not bad, bad


@pytest.mark.parametrize("x,h,masks", [
    ("dropout(x[t], 0.5)", "dropout(h[t-1], 0.3, same=1)", [("_drop1", "t", "dropout 0.5"), ("_drop2", None, "dropout 0.3")]),
    ("mask_steps(mask_band(x[t], 2), 3, n=2)", "h[t-1]",
     [("_mask1", None, "1 run of up to 2 entries"), ("_mask2", "t", "2 runs of up to 3 steps")])])
def test_without_masks_the_noise_is_off(x, h, masks):
    spec = rnndsl.loads_spec(SPEC.format(x=x, h=h, y="h[t]"))
    plain = rnndsl.loads_spec(SPEC.format(x="x[t]", h="h[t-1]", y="h[t]"))
    params = rnndsl.init_params(spec, 0)
    inputs = random_inputs(spec, {"t": 5}, 2, np.random.default_rng(0))
    assert rnndsl.compile(spec).forward(params, inputs)["loss"] == rnndsl.compile(plain).forward(params, inputs)["loss"]
    assert [(m.name, m.axis, str(m.noise)) for m in spec.masks] == masks


def test_drawn_masks_keep_units_at_the_rate_and_scale_them():
    spec = rnndsl.loads_spec(SPEC.format(x="dropout(x[t], 0.25)", h="dropout(h[t-1], 0.5, same=1)", y="h[t]"))
    inputs = random_inputs(spec, {"t": 50}, 40, np.random.default_rng(0))
    masks = training_masks(spec, inputs, np.random.default_rng(1))
    step, same = masks["_drop1"], masks["_drop2"]
    assert step.shape == (50, 40, 3) and same.shape == (40, 4)
    assert set(np.unique(step)) == {0.0, 1 / 0.75} and set(np.unique(same)) == {0.0, 2.0}
    assert abs((step == 0).mean() - 0.25) < 0.03 and abs(step.mean() - 1.0) < 0.05


def test_drawn_runs_fit_each_sequence_and_its_entries():
    spec = rnndsl.loads_spec(SPEC.format(x="mask_band(x[t], 2, n=2)", h="mask_steps(h[t-1], 4, n=3)", y="h[t]"))
    inputs = random_inputs(spec, {"t": 12}, 200, np.random.default_rng(0))
    lengths = np.random.default_rng(1).integers(1, 13, 200)
    masks = training_masks(spec, {**inputs, "lengths": lengths}, np.random.default_rng(2))
    band, steps = masks["_mask1"], masks["_mask2"]
    assert band.shape == (200, 3) and steps.shape == (12, 200, 4)
    assert set(np.unique(band)) <= {0.0, 1.0} and set(np.unique(steps)) <= {0.0, 1.0}
    assert (steps == steps[..., :1]).all()                       # a step is zeroed whole
    for b, n in enumerate(lengths):
        zeroed = np.flatnonzero(steps[:, b, 0] == 0)
        assert zeroed.size <= 12 and (zeroed < n).all()          # inside the sequence, at most 3 runs of 4
        assert (band[b] == 0).sum() <= 4
    assert 4 < (steps[:, lengths >= 12, 0] == 0).sum(0).mean() <= 6      # 3 runs of 2 on average, some overlap
    assert (band == 0).any(axis=1).mean() > 0.5


@pytest.mark.parametrize("call,message", [("dropout(h[t-1], 1.0)", "must lie in [0, 1)"),
                                          ("dropout(h[t-1], 0.2, same=2)", "same is 0"),
                                          ("dropout(h[t-1])", "needs p"),
                                          ("mask_steps(h[t-1], 2.5)", "width is the longest run"),
                                          ("mask_band(h[t-1], 2, n=0)", "n is how many runs"),
                                          ("mask_band(sum(h[t-1]), 2)", "got a scalar"),
                                          ("mask_steps(h[t-1])", "needs width")])
def test_bad_dropout_is_a_located_error(call, message):
    with pytest.raises(rnndsl.SpecError, match=message.replace("[", r"\[").replace(")", r"\)")):
        rnndsl.loads_spec(SPEC.format(x="x[t]", h=call, y="h[t]"))


SERIES = """name: series_dropout
dims: {H: 4}
inputs:
  x: {float: [1], axis: t}
params:
  W: {shape: [H, 1]}
  U: {shape: [H, H]}
  V: {shape: [1, H]}
equations: |
  h[t] = tanh(W @ x[t] + U @ dropout(h[t-1], 0.3, same=1))
  y[t] = V @ dropout(h[t], 0.3)
loss: mean_t mse(y[t], x[t+1])
"""


def test_training_draws_masks_from_the_seed_and_resumes_exactly(tmp_path, monkeypatch):
    from test_train import assert_same_params, interrupt_at, params_of, write_series
    from rnndsl.training import train
    spec = tmp_path / "series_dropout.yaml"
    spec.write_text(SERIES)
    data = write_series(tmp_path / "series.npz", n=12)
    sets = {"batch": 4, "epochs": 3, "lr": 0.05}
    train.train(spec, data, tmp_path / "A", sets, quiet=True)
    train.train(spec, data, tmp_path / "C", sets, quiet=True)
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "C"))
    with monkeypatch.context() as m:
        interrupt_at(m, 4)
        with pytest.raises(KeyboardInterrupt):
            train.train(spec, data, tmp_path / "B", sets, quiet=True)
    train.resume(tmp_path / "B", quiet=True)
    assert_same_params(params_of(tmp_path / "A"), params_of(tmp_path / "B"))
    plain = tmp_path / "plain.yaml"
    plain.write_text(SERIES.replace("dropout(h[t-1], 0.3, same=1)", "h[t-1]").replace("dropout(h[t], 0.3)", "h[t]"))
    train.train(plain, data, tmp_path / "D", sets, quiet=True)
    assert not np.array_equal(params_of(tmp_path / "A")["U"], params_of(tmp_path / "D")["U"])


def test_variational_dropout_lstm_matches_torch_with_the_same_masks():
    """specs/lstm_dropout.yaml against the same LSTM written in torch, masks shared, float64."""
    torch = pytest.importorskip("torch")
    from conftest import SPECS
    path = next(p for p in SPECS if p.stem == "lstm_dropout")
    spec = rnndsl.load_spec(path, dims={"V": 7, "E": 3, "H": 4})
    rng = np.random.default_rng(0)
    params = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in rnndsl.init_params(spec, 0).items()}
    inputs = random_inputs(spec, {"t": 6}, 3, rng)
    inputs["lengths"] = np.full(3, 6)
    inputs.update(training_masks(spec, inputs, rng))
    loss, grads = rnndsl.compile(spec, backend="numpy").loss_and_grad(params, inputs)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    m_e, m_h, m_y = (torch.tensor(inputs[f"_drop{k}"]) for k in (1, 2, 3))
    x, target = torch.tensor(inputs["x"]), torch.tensor(inputs["target"])
    h, c, losses = torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64), []
    for t in range(6):
        e, r = P["E_x"][:, x[t]].T * m_e, h * m_h
        gate = lambda k, act: act(e @ P[f"W_{k}"].T + r @ P[f"U_{k}"].T + P[f"b_{k}"])
        i, f, o, g = gate("i", torch.sigmoid), gate("f", torch.sigmoid), gate("o", torch.sigmoid), gate("g", torch.tanh)
        c = f * c + i * g
        h = o * torch.tanh(c)
        y = (h * m_y) @ P["W_y"].T + P["b_y"]
        losses.append(torch.nn.functional.cross_entropy(y, target[t], reduction="none"))
    want = torch.stack(losses).mean(0).mean()
    want.backward()
    assert abs(loss - want.item()) < 1e-10
    for name, p in P.items():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
