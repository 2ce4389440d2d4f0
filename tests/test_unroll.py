"""Random valid specs (expression trees with offsets in both directions) unroll to acyclic
graphs whose nodes and edges are exactly those the offsets imply, the time analysis finds
the directions they were built with, and the interpreter agrees with a direct evaluation."""
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnndsl
from rnndsl.semantics import timegraph
from rnndsl.semantics.unroll import NodeId

from conftest import ROOT

ACTS = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0),
        "softplus": lambda z: np.logaddexp(0, z), "abs": np.abs}


@dataclass
class Term:
    source: str        # "x" or a variable name
    offset: int
    param: str


@dataclass
class Var:
    name: str
    act: str
    direction: int     # -1 forward, +1 backward, 0 none (time-parallel)
    terms: list
    learned: bool


@st.composite
def random_specs(draw):
    n = draw(st.integers(1, 4))
    vars_ = []
    for i in range(n):
        direction = draw(st.sampled_from([-1, 0, 1]))
        sources = ["x"] + [v.name for v in vars_]
        terms = [Term(draw(st.sampled_from(sources)), draw(st.integers(-3, 3)), f"A{i}_{j}")
                 for j in range(draw(st.integers(1, 3)))]
        if direction:
            terms.append(Term(f"v{i}", direction * draw(st.integers(1, 3)), f"U{i}"))
        vars_.append(Var(f"v{i}", draw(st.sampled_from(sorted(ACTS))), direction, terms,
                         draw(st.booleans())))
    return vars_, draw(st.integers(1, 3)), draw(st.integers(1, 4))    # vars, F, H


def spec_text(vars_, F, H) -> str:
    params = [f"  b{v.name}: {{shape: [H], init: normal(0.3)}}" for v in vars_]
    params += [f"  {t.param}: {{shape: [H, {'F' if t.source == 'x' else 'H'}], init: normal(0.5)}}"
               for v in vars_ for t in v.terms]
    eqs = [f"  {v.name}[t] = {v.act}(" + " + ".join(f"{t.param} @ {t.source}[t{t.offset:+d}]"
                                                    for t in v.terms) + f" + b{v.name})" for v in vars_]
    states = [f"  {v.name}: {{init: learned}}" for v in vars_ if v.learned]
    loss = " + ".join(f"mean_t mse({v.name}[t], y[t])" for v in vars_)
    return "\n".join([f"dims: {{F: {F}, H: {H}}}", "inputs:", "  x: {float: [F], axis: t}",
                      "  y: {float: [H], axis: t}", "params:", *params,
                      *(["state:", *states] if states else []), "equations: |", *eqs, f"loss: {loss}"])


@given(random_specs(), st.integers(1, 7))
def test_unrolled_graph_matches_the_offsets(case, T):
    vars_, F, H = case
    model = rnndsl.loads_spec(spec_text(vars_, F, H))
    g = rnndsl.unroll(model, T)
    assert nx.is_directed_acyclic_graph(g)
    expected_nodes = {NodeId(name, t) for name in ["x", "y"] + [v.name for v in vars_] for t in range(T)}
    expected_nodes |= {NodeId(p.name) for p in model.params}
    assert set(g.nodes) == expected_nodes
    expected_edges = set()
    for v in vars_:
        for t in range(T):
            me = NodeId(v.name, t)
            expected_edges |= {(NodeId(t_.param), me) for t_ in v.terms} | {(NodeId(f"b{v.name}"), me)}
            for term in v.terms:
                s = t + term.offset
                if 0 <= s < T:
                    expected_edges.add((NodeId(term.source, s), me))
                elif term.source != "x" and next(w for w in vars_ if w.name == term.source).learned:
                    expected_edges.add((NodeId(f"{term.source}_init"), me))
    assert set(g.edges) == expected_edges


@given(random_specs())
def test_time_analysis_finds_the_directions(case):
    vars_, F, H = case
    analysis = timegraph.analyse(rnndsl.loads_spec(spec_text(vars_, F, H)))
    want = {-1: timegraph.Class.FORWARD, 0: timegraph.Class.PARALLEL, 1: timegraph.Class.BACKWARD}
    for v in vars_:
        assert analysis.classes[v.name] is want[v.direction]


def evaluate_directly(vars_, P, x, n):
    """Each variable over its whole sequence, in its own direction; zeros or the learned
    init outside the sequence."""
    values = {"x": x[:n]}
    for v in vars_:
        out = np.zeros((n, len(P[f"b{v.name}"])))
        values[v.name] = out
        steps = range(n) if v.direction <= 0 else reversed(range(n))
        for t in steps:
            z = P[f"b{v.name}"].copy()
            for term in v.terms:
                s = t + term.offset
                if 0 <= s < n:
                    src = values[term.source][s]
                elif term.source != "x" and next(w for w in vars_ if w.name == term.source).learned:
                    src = P[f"{term.source}_init"]
                else:
                    src = np.zeros(P[term.param].shape[1])
                z = z + P[term.param] @ src
            out[t] = ACTS[v.act](z)
    return values


@given(random_specs(), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2**16))
def test_interpreter_matches_a_direct_evaluation(case, T, B, seed):
    vars_, F, H = case
    model = rnndsl.loads_spec(spec_text(vars_, F, H))
    rng = np.random.default_rng(seed)
    P = {name: value + rng.normal(size=value.shape) * 0.1
         for name, value in rnndsl.init_params(model, seed=seed).items()}
    x, y = rng.normal(size=(T, B, F)), rng.normal(size=(T, B, H))
    lengths = rng.integers(1, T + 1, size=B)
    result = rnndsl.interpret(model, P, {"x": x, "y": y, "lengths": lengths})
    for b in range(B):
        n = lengths[b]
        values = evaluate_directly(vars_, P, x[:, b], n)
        loss = sum(np.mean((values[v.name] - y[:n, b]) ** 2) for v in vars_)
        for v in vars_:
            np.testing.assert_allclose(result.values[v.name][:n, b], values[v.name], atol=1e-12)
        assert result.losses[b] == pytest.approx(loss, abs=1e-12)


def test_birnn_graph_runs_forward_up_and_backward_down():
    model = rnndsl.load_spec(ROOT / "specs/birnn.yaml")
    g = rnndsl.unroll(model, 4)
    rec = {r.direction: r.members for r in timegraph.analyse(model).recurrences}
    (fwd,), (bwd,) = rec[timegraph.Class.FORWARD], rec[timegraph.Class.BACKWARD]
    for t in range(3):
        assert g.has_edge(NodeId(fwd, t), NodeId(fwd, t + 1))
        assert g.has_edge(NodeId(bwd, t + 1), NodeId(bwd, t))
        assert not g.has_edge(NodeId(fwd, t + 1), NodeId(fwd, t))


def test_two_axes_meet_only_through_a_static_value():
    model = rnndsl.load_spec(ROOT / "specs/seq2seq.yaml", dims={"V": 3, "W": 3, "H": 2})
    g = rnndsl.unroll(model, {"s": 3, "t": 2})
    assert g.has_edge(NodeId("enc", 2), NodeId("dec_init"))
    assert g.has_edge(NodeId("dec_init"), NodeId("dec", 0))
    assert not any(u.var == "enc" and v.var == "dec" for u, v in g.edges)


@st.composite
def windowed(draw):
    lo = draw(st.integers(-3, 3))
    hi = draw(st.integers(lo, lo + 3))
    depth, direction = draw(st.integers(1, 3)), draw(st.sampled_from([-1, 1]))
    return lo, hi, depth, direction, draw(st.booleans()), draw(st.integers(1, 8))


def _t(k: int) -> str:
    return "t" if k == 0 else f"t{k:+d}"


@given(windowed())
def test_window_reads_unroll_to_exactly_the_steps_they_name(case):
    lo, hi, depth, direction, learned, T = case
    back = (-depth, -1) if direction < 0 else (1, depth)
    text = "\n".join([
        "dims: {F: 2, H: 2}", "inputs:", "  x: {float: [F], axis: t}", "  y: {float: [H], axis: t}",
        "params:", f"  W: {{shape: [H, F*{hi - lo + 1}]}}", f"  U: {{shape: [H, H*{depth}]}}",
        "  c: {shape: [H]}", *(["state:", "  h: {init: learned}"] if learned else []), "equations: |",
        f"  h[t] = tanh(W @ x[{_t(lo)}:{_t(hi)}] + U @ h[{_t(back[0])}:{_t(back[1])}] + c)",
        "loss: mean_t mse(h[t], y[t])"])
    g = rnndsl.unroll(rnndsl.loads_spec(text), T)
    for t in range(T):
        me = NodeId("h", t)
        want = {NodeId("W"), NodeId("U"), NodeId("c")}
        want |= {NodeId("x", s) for s in range(t + lo, t + hi + 1) if 0 <= s < T}
        inside = [s for s in range(t + back[0], t + back[1] + 1) if 0 <= s < T]
        want |= {NodeId("h", s) for s in inside}
        if learned and len(inside) < depth:
            want.add(NodeId("h_init"))
        assert set(g.predecessors(me)) == want
        for src in want - {NodeId("W"), NodeId("U"), NodeId("c"), NodeId("h_init")}:
            assert g.edges[src, me]["offset"] == src.t - t
