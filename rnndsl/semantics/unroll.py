"""Typed IR x lengths -> the unrolled acyclic graph of `(variable, t)` nodes.

This graph is what a spec means: one node per input, parameter and variable at every
step of its axis (static values have t = None), and an edge from every value a node reads.
A variable over two axes, `e[t, s]`, has a node per step of t holding all its steps of s.
A read before the first or after the last step resolves to the variable's state init (a
parameter or a static variable) or, without one, to zeros (no edge). `interpret.py`
evaluates this graph node by node.

Unrolling costs time and memory in proportion to the graph it builds: each equation's reads
are collected once (`_pattern`), then instantiated at every step. The graph itself can be
large: a window `x[t-C:t+C]` read by a variable over T steps is T*(2C+1) edges, and a
reduction over another axis inside a per-step equation is T*S edges; that size is the
meaning, not overhead.
"""
from __future__ import annotations

from typing import NamedTuple

import networkx as nx

from ..core.ops import Op
from ..frontend import ir


class NodeId(NamedTuple):
    """A value at one step, `h@3`; a static value (parameter, static variable) has t = None.
    A tuple, so that hashing one (millions of times in a large graph) is cheap."""
    var: str
    t: int | None = None

    def __str__(self) -> str:
        return self.var if self.t is None else f"{self.var}@{self.t}"


def axis_lengths(model: ir.Model, lengths) -> dict:
    """{axis: length} from an int (every axis) or a dict; every length at least 1."""
    out = {a: lengths for a in model.axes} if isinstance(lengths, int) else dict(lengths)
    missing = [a for a in model.axes if a not in out]
    if missing:
        raise ValueError(f"no length for axis {', '.join(missing)}")
    if any(int(n) < 1 for n in out.values()):
        raise ValueError(f"every sequence needs at least one step, got {out}")
    return {a: int(n) for a, n in out.items()}


def resolve(model: ir.Model, var: str, step: int, lengths: dict) -> NodeId | None:
    """The node that `var` at `step` reads: itself if in range, else its state init (or None)."""
    axis = model.axis_of(var)
    if 0 <= step < lengths[axis]:
        return NodeId(var, step)
    return _outside(model, var)


def _outside(model: ir.Model, var: str) -> NodeId | None:
    """What a read of `var` outside its sequence gives: its state init's node, or None (zeros)."""
    state = model.state(var)
    return NodeId(state.source) if state and state.source else None


class _Read(NamedTuple):
    """`var[axis + offset]`: in range it is `var@step`, outside it is `fill` (or no edge)."""
    var: str
    axis: str
    offset: int
    length: int
    fill: NodeId | None


class _Fixed(NamedTuple):
    """Reads that do not depend on the step: (node, offset) pairs."""
    deps: tuple


class _Over(NamedTuple):
    """A reduction's body, read at every step of axis `over`."""
    over: str
    length: int
    body: tuple


def _pattern(model: ir.Model, expr: ir.Expr, lengths: dict) -> tuple:
    """An expression's reads, in the order it reads them, as _Read, _Fixed and _Over items."""
    if isinstance(expr, ir.Read):
        length = lengths[model.axis_of(expr.var)]
        return (_Read(expr.var, expr.axis, expr.offset, length, _outside(model, expr.var)),)
    if isinstance(expr, ir.ReadAt):
        n = lengths[model.axis_of(expr.var)]
        node = resolve(model, expr.var, n - 1 + expr.offset if expr.from_end else expr.offset, lengths)
        return (_Fixed(((node, None),) if node else ()),)
    if isinstance(expr, ir.ReadStatic):
        return (_Fixed(((NodeId(expr.var), None),)),)
    if isinstance(expr, ir.Whole):
        return (_Fixed(tuple((NodeId(expr.var, s), None) for s in range(lengths[expr.axis]))),)
    if isinstance(expr, ir.Reduce):
        return (_Over(expr.over, lengths[expr.over], _pattern(model, expr.body, lengths)),)
    if isinstance(expr, ir.Apply) and expr.op is Op.SOFTMAX_OVER:      # every step of its axis
        over = expr.args[0].inner or expr.args[0].axis
        return (_Over(over, lengths[over], _pattern(model, expr.args[0], lengths)),)
    return tuple(item for arg in ir.children(expr) for item in _pattern(model, arg, lengths))


def _instantiate(pattern: tuple, steps: dict, deps: dict) -> None:
    """Add the pattern's reads with the axes at `steps` to deps {node: offset}: a node read
    twice keeps its first place and its last offset, as repeated add_edge calls would."""
    for item in pattern:
        if type(item) is _Read:
            step = steps[item.axis] + item.offset
            node = NodeId(item.var, step) if 0 <= step < item.length else item.fill
            if node is not None:
                deps[node] = item.offset
        elif type(item) is _Fixed:
            deps.update(item.deps)
        else:
            for s in range(item.length):
                _instantiate(item.body, {**steps, item.over: s}, deps)


def unroll(model: ir.Model, lengths) -> nx.DiGraph:
    """The acyclic DAG for the given lengths (an int for every axis, or {axis: length})."""
    lengths = axis_lengths(model, lengths)
    g = nx.DiGraph()
    for inp in model.all_inputs:
        g.add_nodes_from(_steps(inp.name, inp.axis, lengths), role="input")
    g.add_nodes_from((NodeId(p.name) for p in model.params), role="param")
    for eq in model.equations:
        pattern = _pattern(model, eq.expr, lengths)
        if eq.inner is not None:          # e[t, s]: the node at t holds every step of s
            pattern = (_Over(eq.inner, lengths[eq.inner], pattern),)
        for node in _steps(eq.name, eq.axis, lengths):
            deps: dict = {}
            _instantiate(pattern, {eq.axis: node.t}, deps)
            g.add_node(node, role="var")
            g.add_edges_from((src, node, {"offset": k}) for src, k in deps.items())
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise ir.IRError(f"unrolled graph has a cycle {cycle}; time analysis should have caught it")
    return g


def _steps(var: str, axis: str | None, lengths: dict):
    return [NodeId(var)] if axis is None else [NodeId(var, t) for t in range(lengths[axis])]
