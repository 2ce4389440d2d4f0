"""The reference interpreter: evaluates the unrolled DAG node by node, in float64.

It defines what a spec means, so it is deliberately plain: each sequence of the batch is
unrolled for its own lengths and evaluated on its own (no masks, no batching), every
value has exactly the shape the spec declares, and every op is the op table's forward
formula. Emitted code must agree with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import networkx as nx
import numpy as np

from ..frontend import ir
from .inputs import Batch, prepare
from ..core.ops import TABLE, Kind, Op
from .unroll import NodeId, axis_lengths, resolve, unroll


@dataclass(frozen=True)
class Result:
    loss: float                # mean over the batch of the per-sequence losses
    losses: np.ndarray         # (B,)
    values: dict               # variable -> (T, B, ...) zero-padded, or (B, ...) if static


def interpret(model: ir.Model, params: dict, inputs: dict) -> Result:
    """Forward values and loss of `model` on a batch (DESIGN.md's time-major layout)."""
    batch = prepare(model, inputs)
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    values = {eq.name: np.zeros(_padded(eq, batch), np.float64) for eq in model.equations}
    losses = np.zeros(batch.size)
    for b in range(batch.size):
        lengths = {axis: int(n[b]) for axis, n in batch.lengths.items()}
        env = Sequence(model, params, batch, b, lengths)
        for node in _order(model, tuple(sorted(lengths.items()))):
            env.compute(node)
        losses[b] = env.eval(model.loss, {})
        for node, value in env.values.items():      # one pass, not one per equation
            if node.var in values:
                values[node.var][_place(model, node, b, value)] = value
    return Result(float(losses.mean()), losses, values)


def _padded(eq: ir.Equation, batch: Batch) -> tuple:
    lead = (batch.steps[eq.axis], batch.size) if eq.axis else (batch.size,)
    if eq.inner is not None:
        lead = (batch.steps[eq.axis], batch.steps[eq.inner], batch.size)
    return lead + eq.type.dims


def _place(model: ir.Model, node: NodeId, b: int, value) -> tuple:
    """Where a node's value goes in the batch's (T, [S,] B, ...) array."""
    if node.t is None:
        return (b,)
    if model.inner_of(node.var) is not None:
        return (node.t, slice(0, len(value)), b)
    return (node.t, b)


@lru_cache(maxsize=256)
def _order(model: ir.Model, lengths: tuple) -> tuple:
    """Evaluation order of the unrolled graph (cached: a batch repeats few lengths)."""
    return tuple(nx.lexicographical_topological_sort(unroll(model, dict(lengths))))


class Sequence:
    """One sequence's values, filled in topological order of its unrolled graph."""

    def __init__(self, model: ir.Model, params: dict, batch: Batch, b: int, lengths: dict):
        self.model, self.params, self.batch, self.b = model, params, batch, b
        self.lengths = axis_lengths(model, lengths)
        self.values: dict = {}
        self.roles = {i.name: i for i in model.all_inputs}
        self.equations = {eq.name: eq for eq in model.equations}

    def compute(self, node: NodeId) -> None:
        if node.var in self.params:
            self.values[node] = self.params[node.var]
        elif node.var in self.roles:
            self.values[node] = self._input(self.roles[node.var], node.t)
        else:
            eq = self.equations[node.var]       # a variable of class indices keeps them as ints
            dtype = np.int64 if eq.type.kind is Kind.INDEX else np.float64
            if eq.inner is not None:            # e[t, s]: every step of s at this step of t
                steps = [{eq.axis: node.t, eq.inner: s} for s in range(self.lengths[eq.inner])]
                self.values[node] = np.stack([np.asarray(self.eval(eq.expr, st), dtype) for st in steps])
            else:
                self.values[node] = np.asarray(self.eval(eq.expr, {eq.axis: node.t}), dtype)

    def _input(self, inp: ir.Input, t: int | None) -> np.ndarray:
        a = self.batch.arrays[inp.name]
        raw = a[t, self.b] if inp.axis else a[self.b]
        if inp.type.kind is Kind.ONEHOT:
            return np.eye(inp.type.classes.value)[int(raw)]
        if inp.type.kind is Kind.INDEX:
            return np.asarray(int(raw))
        return np.asarray(raw, np.float64)

    def read(self, var: str, step: int):
        """`var` at `step`, or its state init (zeros without one) outside the sequence."""
        node = resolve(self.model, var, step, self.lengths)
        if node is not None:
            return self.values[node]
        item = self.model.lookup(var)
        return np.zeros(item.type.dims) if item.type.kind is not Kind.INDEX else np.asarray(-1)

    def eval(self, e: ir.Expr, steps: dict):
        if isinstance(e, ir.Const):
            return e.value
        if isinstance(e, ir.Read) and e.inner is not None:     # a[t-k, s]: its row at this s
            row = self.read(e.var, steps[e.axis] + e.offset)
            return row[steps[e.inner]] if row.ndim > e.type.rank else row
        if isinstance(e, ir.Read):
            return self.read(e.var, steps[e.axis] + e.offset)
        if isinstance(e, ir.ReadAt):
            n = self.lengths[self.model.axis_of(e.var)]
            return self.read(e.var, n - 1 + e.offset if e.from_end else e.offset)
        if isinstance(e, ir.ReadStatic):
            return self.values[NodeId(e.var)]
        if isinstance(e, ir.Whole):
            return np.stack([self.values[NodeId(e.var, s)] for s in range(self.lengths[e.axis])])
        if isinstance(e, ir.Reduce):
            parts = np.stack([self.eval(e.body, {**steps, e.over: s}) for s in range(self.lengths[e.over])])
            return REDUCERS[e.fn](parts)
        if e.op is Op.SOFTMAX_OVER:            # needs its argument at every step of its axis
            inner = e.args[0].inner or e.args[0].axis
            parts = np.stack([self.eval(e.args[0], {**steps, inner: s}) for s in range(self.lengths[inner])])
            return TABLE[e.op].forward(np, parts)[steps[inner]]
        return self._apply(e, [self.eval(a, steps) for a in e.args])

    def _apply(self, e: ir.Apply, args: list):
        d = TABLE[e.op]
        attrs = {**{k: v for k, v in d.attrs if v is not None}, **e.attr}
        if d.ranked:
            attrs["ranks"] = tuple(a.type.rank for a in e.args)
        return d.forward(np, *args, **attrs)


REDUCERS = {
    ir.Reducer.SUM: lambda v: v.sum(axis=0),
    ir.Reducer.MEAN: lambda v: v.mean(axis=0),
    ir.Reducer.MAX: lambda v: v.max(axis=0),
    ir.Reducer.MIN: lambda v: v.min(axis=0),
}
