"""Typed IR x lengths -> the unrolled acyclic graph of `(variable, t)` nodes.

This graph is what a spec means: one node per input, parameter and variable at every
step of its axis (static values have t = None), and an edge from every value a node reads.
A read before the first or after the last step resolves to the variable's state init (a
parameter or a static variable) or, without one, to zeros (no edge). `interpret.py`
evaluates this graph node by node.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from . import ir


@dataclass(frozen=True, order=True)
class NodeId:
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
    state = model.state(var)
    return NodeId(state.source) if state and state.source else None


def dependencies(model: ir.Model, expr: ir.Expr, steps: dict, lengths: dict):
    """(NodeId, offset or None) for every value `expr` reads when its axes stand at `steps`."""
    if isinstance(expr, ir.Read):
        node = resolve(model, expr.var, steps[expr.axis] + expr.offset, lengths)
        if node:
            yield node, expr.offset
    elif isinstance(expr, ir.ReadAt):
        n = lengths[model.axis_of(expr.var)]
        node = resolve(model, expr.var, n - 1 + expr.offset if expr.from_end else expr.offset, lengths)
        if node:
            yield node, None
    elif isinstance(expr, ir.ReadStatic):
        yield NodeId(expr.var), None
    elif isinstance(expr, ir.Whole):
        yield from ((NodeId(expr.var, s), None) for s in range(lengths[expr.axis]))
    elif isinstance(expr, ir.Reduce):
        for s in range(lengths[expr.over]):
            yield from dependencies(model, expr.body, {**steps, expr.over: s}, lengths)
    else:
        for arg in ir.children(expr):
            yield from dependencies(model, arg, steps, lengths)


def unroll(model: ir.Model, lengths) -> nx.DiGraph:
    """The acyclic DAG for the given lengths (an int for every axis, or {axis: length})."""
    lengths = axis_lengths(model, lengths)
    g = nx.DiGraph()
    for inp in model.inputs:
        for node in _steps(inp.name, inp.axis, lengths):
            g.add_node(node, role="input")
    for p in model.params:
        g.add_node(NodeId(p.name), role="param")
    for eq in model.equations:
        for node in _steps(eq.name, eq.axis, lengths):
            g.add_node(node, role="var")
            for src, offset in dependencies(model, eq.expr, {eq.axis: node.t}, lengths):
                g.add_edge(src, node, offset=offset)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise ir.IRError(f"unrolled graph has a cycle {cycle}; time analysis should have caught it")
    return g


def _steps(var: str, axis: str | None, lengths: dict):
    return [NodeId(var)] if axis is None else [NodeId(var, t) for t in range(lengths[axis])]

