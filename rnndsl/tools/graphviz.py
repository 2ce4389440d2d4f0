"""The unrolled graph as text, Graphviz DOT or JSON (`rnndsl graph`, `compile --dump unrolled`).

Node names are `var@t` (static values just `var`), made of the spec's identifiers; the spec's
name, free text, is escaped (textsafe) and, in DOT, quoted so that no character ends the string.
"""
from __future__ import annotations

import json

import networkx as nx

from ..frontend import ir
from ..core.textsafe import printable


def graph_text(model: ir.Model, g: nx.DiGraph, params: bool = False) -> str:
    lines = [f"# {printable(model.name)}: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges"]
    for node in nx.lexicographical_topological_sort(g, key=str):
        if g.nodes[node]["role"] == "param" and not params:
            continue
        srcs = [str(s) for s in g.predecessors(node) if params or g.nodes[s]["role"] != "param"]
        lines.append(f"{node}" + (f" <- {', '.join(sorted(srcs))}" if srcs else ""))
    return "\n".join(lines)


def graph_dot(model: ir.Model, g: nx.DiGraph, params: bool = False) -> str:
    """Time runs left to right, one column per step; forward recurrences in blue (t rising),
    backward ones in red (t falling)."""
    out = [f"digraph {dot_string(model.name)} {{", "  rankdir=LR; node [shape=box, style=rounded, fontname=Helvetica];"]
    steps = {}
    for node, data in g.nodes(data=True):
        if data["role"] == "param" and not params:
            continue
        shape = {"input": "ellipse", "param": "note"}.get(data["role"], "box")
        out.append(f'  "{node}" [shape={shape}];')
        if node.t is not None:
            steps.setdefault((model.axis_of(node.var), node.t), []).append(f'"{node}"')
    for (axis, t), names in sorted(steps.items()):
        out.append(f"  {{ rank=same; {' '.join(sorted(names))} }}  // {axis}={t}")
    for u, v, data in g.edges(data=True):
        if g.nodes[u]["role"] == "param" and not params:
            continue
        k = data.get("offset")
        style = ("color=blue" if k and k < 0 else "color=red" if k and k > 0 else
                 "style=dashed, color=gray40" if u.t is None or v.t is None else "color=black")
        out.append(f'  "{u}" -> "{v}" [{style}];')
    out.append("}")
    return "\n".join(out)


def graph_json(model: ir.Model, g: nx.DiGraph, params: bool = False) -> str:
    """networkx node-link data, in the form the installed networkx's own node_link_data writes
    (its edges under "edges" since networkx 3.4, "links" before), so that its node_link_graph
    reads it back with no arguments; nodes are named `var@t` (static ones just `var`)."""
    data = {"directed": True, "multigraph": False, "graph": g.graph,      # nx.node_link_data's form,
            "nodes": [{**d, "var": n.var, "t": n.t, "id": str(n)} for n, d in g.nodes(data=True)],
            EDGES: [{**d, "source": str(u), "target": str(v)} for u, v, d in g.edges(data=True)]}
    return json.dumps(data, indent=1)      # without a relabelled copy of the graph (half the memory)


EDGES = "edges" if "edges" in nx.node_link_data(nx.DiGraph()) else "links"


def dot_string(text: str) -> str:
    """`text` as a DOT quoted string: printable, and with no backslash or quote left raw (DOT
    reads \\" as a quote inside the string, so a name ending in a backslash would not end it)."""
    return '"' + printable(str(text).replace("\\", "\\x5c").replace('"', "\\x22")) + '"'
