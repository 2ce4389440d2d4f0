"""Parameters and equations that do not reach the loss (issue 9 item 5): `rnndsl check` warns,
naming the line; `--strict` makes it an error. A warned parameter's gradient is zero."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnndsl
from rnndsl.tools.cli import main
from rnndsl.semantics.usage import unused

from conftest import SPECS
from test_backend import CASES, setup

GRU = """name: gru
dims: {V: 4, H: 3}
inputs:
  x: {onehot: V, axis: t}
  target: {index: V, axis: t}
params:
  W_z: {shape: [H, V]}
  U_z: {shape: [H, H]}
  W_r: {shape: [H, V]}
  U_r: {shape: [H, H]}
  W_y: {shape: [V, H]}
state:
  h: {init: learned}
equations: |
  z[t] = sigmoid(W_z @ x[t] + U_z @ h[t-1])
  r[t] = sigmoid(W_r @ x[t] + U_r @ h[t-1])
  h[t] = (1 - z[t]) * h[t-1] + z[t] * tanh(W_z @ x[t])
  y[t] = W_y @ h[t]
loss: mean_t cross_entropy(y[t], target[t])
"""


def test_a_gru_whose_reset_gate_is_never_used():
    warnings = unused(rnndsl.loads_spec(GRU, "gru.yaml"))
    assert [(w.pos.line, w.message) for w in warnings] == [
        (9, "parameter W_r does not reach the loss: training never changes it"),
        (10, "parameter U_r does not reach the loss: training never changes it"),
        (16, "r is computed but nothing uses it (not the loss, an output or generation)")]
    assert all(w.severity == "warning" for w in warnings)


def test_check_warns_and_strict_fails(tmp_path, capsys):
    path = tmp_path / "gru.yaml"
    path.write_text(GRU)
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{path}:16:3: warning: r is computed but nothing uses it" in err
    assert main(["check", "--strict", str(path)]) == 1
    assert f"{path}:9:3: error: parameter W_r does not reach the loss" in capsys.readouterr().err


def test_an_output_or_a_fed_variable_is_used():
    text = GRU.replace("loss:", "outputs: [r]\nloss:")
    messages = [w.message for w in unused(rnndsl.loads_spec(text))]
    assert messages == [f"parameter {p} does not reach the loss: training never changes it" for p in ("W_r", "U_r")]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_shipped_specs_have_nothing_unused(path):
    assert unused(rnndsl.load_spec(path)) == []


@given(*CASES)
def test_a_parameter_that_does_not_reach_the_loss_has_no_gradient(text, T, B, seed):
    """Adding an unused parameter and equation to any spec: both are warned, the parameter's
    gradient is exactly zero, and every other warned parameter's too."""
    text = text.replace("params:\n", "params:\n  Q_dead: {shape: [2]}\n", 1)
    text = text.replace("equations: |\n", "equations: |\n  q_dead = tanh(Q_dead)\n", 1)
    spec, model, params, inputs = setup(text, T, B, seed)
    warned = {w.message.split()[1] for w in unused(spec) if w.message.startswith("parameter")}
    assert "Q_dead" in warned and any(w.message.startswith("q_dead ") for w in unused(spec))
    _, grads = model.loss_and_grad(params, inputs)
    for name in warned:
        assert not np.any(grads[name]), name
