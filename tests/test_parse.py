"""The expression grammar: precedence, time indices and positions in the YAML file."""
import pytest

import rnndsl
from rnndsl.frontend import ir


def model(equations: str, loss: str = "mean_t mse(y[t], y[t])", extra_params: str = ""):
    text = f"""dims: {{H: 3, C: 1}}
inputs:
  x: {{float: [H], axis: t}}
params:
  W: {{shape: [H, H]}}
  V: {{shape: [H, H*(2*C+1)]}}
  b: {{shape: [H]}}
{extra_params}equations: |
{equations}
loss: {loss}
"""
    return rnndsl.loads_spec(text, path="p.yaml")


def eq_text(m, name):
    eq = next(e for e in m.equations if e.name == name)
    return ir.show(eq.expr, eq.axis or "t")


@pytest.mark.parametrize("source,shown", [
    ("W @ x[t] + b", "W @ x[t] + b"),
    ("W @ x[t] * 2 - b", "W @ x[t] * 2 - b"),
    ("-W @ x[t]", "-W @ x[t]"),
    ("b * (x[t] + 1)", "b * (x[t] + 1)"),
    ("2 * 3 + x[t]", "6 + x[t]"),                         # constants fold
    ("V @ x[t-C:t+C]", "V @ concat(x[t-1], x[t], x[t+1])"),
    ("x[t-2*C+1] + x[t + (C+1)]", "x[t-1] + x[t+2]"),
])
def test_expressions(source, shown):
    m = model(f"  y[t] = {source}")
    assert eq_text(m, "y") == shown


def test_a_reduction_extends_over_a_product_and_stops_at_plus():
    m = model("  y[t] = x[t]\n  s = sum_t x[t] * x[t] + b", loss="mse(s, b)")
    s = next(e for e in m.equations if e.name == "s").expr
    assert isinstance(s, ir.Apply) and isinstance(s.args[0], ir.Reduce)
    assert ir.show(s) == "(sum_t x[t] * x[t]) + b"


def test_continuation_lines_and_comments():
    m = model("  y[t] = tanh(W @ x[t]   # the input\n         + b)\n  z[t] = y[t]\n    + b")
    assert eq_text(m, "y") == "tanh(W @ x[t] + b)"
    assert eq_text(m, "z") == "y[t] + b"


def test_positions_point_into_the_block_scalar():
    with pytest.raises(rnndsl.SpecError) as info:
        model("  y[t] = tanh(W @ x[t] + bb)")
    e = info.value
    assert (e.path, e.line, e.col) == ("p.yaml", 9, 26)
    assert e.message == "unknown name 'bb'"
    assert e.first.hint == "did you mean b?"


def test_absolute_and_end_indices():
    m = model("  y[t] = x[t]\n  first = x[0]\n  last = x[end]\n  prev = x[end-1]", loss="mse(first + last, prev)")
    shown = {e.name: ir.show(e.expr) for e in m.equations if e.axis is None}
    assert shown == {"first": "x[0]", "last": "x[end]", "prev": "x[end-1]"}
