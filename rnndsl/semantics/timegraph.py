"""Typed IR -> time analysis: the offset graph, its strongly connected components and
their classes (static, time-parallel, forward or backward recurrence).

The offset graph has a node per input and variable and an edge u -> v for every read of
u in v's equation: `step` edges carry the offset k of `u[t+k]`, `whole` edges stand for
reads of a whole sequence (reductions, `u[end]`, ctc), `static` edges for reads of a
static value and `init` edges for a state's initial value. Direction is derived here,
never declared: a cycle through `t-k` runs forward, through `t+k` backward.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import networkx as nx

from ..frontend import ir
from ..core.errors import Diagnostic, SpecError
from ..core.ops import Op


class Class(enum.Enum):
    INPUT = "input"
    STATIC = "static"
    PARALLEL = "time-parallel"
    FORWARD = "forward recurrence"
    BACKWARD = "backward recurrence"


@dataclass(frozen=True)
class Recurrence:
    members: tuple           # variable names, in spec order
    axis: str
    direction: Class         # FORWARD or BACKWARD
    delays: tuple            # the distinct |k| of the offsets that close the loop


@dataclass(frozen=True)
class TimeAnalysis:
    graph: nx.MultiDiGraph
    classes: dict            # name -> Class
    recurrences: tuple       # Recurrence
    order: tuple             # groups of names (one SCC each) in dependency order


def reads(expr: ir.Expr, axis: str | None = None):
    """(name, kind, offset) for every variable read in an expression of an equation over `axis`.
    A read at a step of that axis is a `step` read, unless a reduction over the axis encloses
    it; any other read of a sequence (`enc[s]` inside attention over s) takes it whole."""
    if isinstance(expr, ir.Read):
        yield expr.var, "step" if axis is not None and expr.axis == axis else "whole", expr.offset
    elif isinstance(expr, (ir.ReadAt, ir.Whole)):
        yield expr.var, "whole", None
    elif isinstance(expr, ir.ReadStatic):
        yield expr.var, "static", None
    inside = None if _over_whole(expr, axis) else axis
    for child in ir.children(expr):
        yield from reads(child, inside)


def _over_whole(expr: ir.Expr, axis: str | None) -> bool:
    """A reduction or softmax over the axis the equation runs on: it reads every step."""
    if isinstance(expr, ir.Reduce):
        return expr.over == axis
    return isinstance(expr, ir.Apply) and expr.op is Op.SOFTMAX_OVER and expr.args[0].inner is None


def offset_graph(model: ir.Model) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for inp in model.all_inputs:
        g.add_node(inp.name, axis=inp.axis, role="input")
    for eq in model.equations:
        g.add_node(eq.name, axis=eq.axis, role="var", line=eq.pos.line if eq.pos else 0, text=eq.text,
                   pos=eq.pos)
    params = {p.name for p in model.params}
    for eq in model.equations:
        for var, kind, offset in reads(eq.expr, eq.axis):
            if var not in params:
                g.add_edge(var, eq.name, kind=kind, offset=offset)
    for s in model.states:
        if s.source and not s.learned:
            g.add_edge(s.source, s.var, kind="init", offset=None)
    return g


def analyse(model: ir.Model) -> TimeAnalysis:
    """Classify every variable; raise SpecError for cycles no schedule can run."""
    g = offset_graph(model)
    condensed = nx.condensation(nx.DiGraph(g))
    spec_order = {name: i for i, name in enumerate(g.nodes)}
    classes = {n: Class.INPUT for n, d in g.nodes(data=True) if d["role"] == "input"}
    recurrences, errors = [], []
    for scc_id in nx.topological_sort(condensed):
        members = sorted(condensed.nodes[scc_id]["members"], key=spec_order.get)
        try:
            rec = _classify(g, members)
        except SpecError as exc:
            errors += exc.diagnostics
            continue
        for m in members:
            if m not in classes:
                axis = g.nodes[m]["axis"]
                classes[m] = rec.direction if rec else (Class.PARALLEL if axis else Class.STATIC)
        if rec:
            recurrences.append(rec)
    if errors:
        raise SpecError(errors)
    order = tuple(tuple(sorted(condensed.nodes[c]["members"], key=spec_order.get))
                  for c in nx.topological_sort(condensed))
    return TimeAnalysis(g, classes, tuple(recurrences), order)


def _classify(g: nx.MultiDiGraph, members: list) -> Recurrence | None:
    sub = g.subgraph(members)
    if sub.number_of_edges() == 0:
        return None
    edges = list(sub.edges(data=True))
    not_step = next((e for e in edges if e[2]["kind"] != "step"), None)
    if not_step:
        raise _cycle_error(g, _cycle_through(sub, not_step), "depends on itself through a static value",
                           "a static value (a reduction, v[end], a state init) cannot read a variable "
                           "that reads it back; compute it from earlier values only")
    offsets = [d["offset"] for _, _, d in edges]
    if any(k > 0 for k in offsets) and any(k < 0 for k in offsets):
        raise _cycle_error(g, _mixed_cycle(sub), "mixes directions (it reads both earlier and later steps)",
                           "a recurrence runs one way; a bidirectional layer is two equations, "
                           "one reading v[t-1] and one reading w[t+1]")
    zero = nx.DiGraph([(u, v) for u, v, d in edges if d["offset"] == 0])
    zero.add_nodes_from(members)
    if not nx.is_directed_acyclic_graph(zero):
        cycle = [(u, v, {"kind": "step", "offset": 0}) for u, v in nx.find_cycle(zero)]
        raise _cycle_error(g, cycle, "is a cycle of zero total delay",
                           "a value cannot need itself at the same step: read one of these at an "
                           "earlier step (such as t-1) to make a recurrence")
    backward = any(k > 0 for k in offsets)
    return Recurrence(tuple(members), g.nodes[members[0]]["axis"],
                      Class.BACKWARD if backward else Class.FORWARD,
                      tuple(sorted({abs(k) for k in offsets if k})))


def _cycle_through(sub, edge, prefer=lambda d: False) -> list:
    """A cycle, as (u, v, edge data) triples, that starts with `edge` and returns to it by a
    shortest path, taking the edges that `prefer` likes where nodes are joined by several."""
    u, v, _ = edge
    path = nx.shortest_path(sub, v, u)
    back = []
    for a, b in zip(path, path[1:]):
        choices = list(sub.get_edge_data(a, b).values())
        back.append((a, b, next((d for d in choices if prefer(d)), choices[0])))
    return [edge] + back


def _mixed_cycle(sub) -> list:
    """A cycle through a forward read and a backward one (two loops joined if need be)."""
    edges = list(sub.edges(data=True))
    fwd = next(e for e in edges if e[2]["offset"] < 0)
    cycle = _cycle_through(sub, fwd, prefer=lambda d: d["offset"] > 0)
    if all(d["offset"] <= 0 for _, _, d in cycle):
        bwd = next(e for e in edges if e[2]["offset"] > 0)
        cycle += _cycle_through(sub, bwd)
    return cycle


def _cycle_error(g: nx.MultiDiGraph, edges: list, what: str, hint: str) -> SpecError:
    """A diagnostic naming the cycle as the chain of reads that forms it; the hint lists the
    equations it runs through with their lines."""
    first = min(range(len(edges)), key=lambda i: g.nodes[edges[i][0]]["line"])
    edges = edges[first:] + edges[:first]          # start from the earliest equation in the spec
    chain = ", ".join(_describe_read(g, u, v, d) for u, v, d in edges)
    flow = " -> ".join([u for u, _, _ in edges] + [edges[0][0]])
    members = sorted({n for u, v, _ in edges for n in (u, v)}, key=lambda n: g.nodes[n]["line"])
    listing = "\n".join(f"  line {g.nodes[n]['line']}: {g.nodes[n]['text']}" for n in members)
    return SpecError([Diagnostic(g.nodes[members[0]]["pos"], f"cycle {flow} {what}: {chain}",
                                 f"{hint}\nthe cycle runs through:\n{listing}")])


def _describe_read(g, u: str, v: str, data: dict) -> str:
    reader = _at(g, v, 0)
    kind = data["kind"]
    if kind == "step":
        return f"{reader} reads {_at(g, u, data['offset'])}"
    if kind == "init":
        return f"{reader} starts from {u}"
    return f"{reader} reads {u}" + (" as a whole sequence" if kind == "whole" else "")


def _at(g, name: str, offset) -> str:
    axis = g.nodes[name].get("axis")
    if offset is None or not axis:
        return name
    return f"{name}[{axis}{offset:+d}]" if offset else f"{name}[{axis}]"
