"""Typed IR x time analysis -> the forward program (instructions, loops, buffers).

Each equation becomes one instruction per op. In a recurrence, the parts that do not read
the recurrence's own variables are hoisted out of the loop and done for all steps at once
(SEQ mode: one GEMM over T*B rows); sums are reassociated first so that, in
`W @ x[t] + U @ h[t-1] + b`, `W @ x[t] + b` is hoisted whole. What remains runs per step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from ..frontend import ir
from ..core.ops import TABLE, Kind, Op
from .program import Buf, Instr, Loop, LoopNote, Mode, Ref, Role
from ..semantics.timegraph import Class, TimeAnalysis

REDUCE_OPS = {ir.Reducer.SUM: Op.REDUCE_SUM, ir.Reducer.MEAN: Op.REDUCE_MEAN,
              ir.Reducer.MAX: Op.REDUCE_MAX, ir.Reducer.MIN: Op.REDUCE_MIN}


@dataclass
class Lowered:
    items: list                        # Instr | Loop, in execution order
    bufs: dict                         # name -> Buf (inputs, params, values)
    loss: Buf
    notes: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)   # buffer name -> the spec expression it holds


def lower(model: ir.Model, analysis: TimeAnalysis) -> Lowered:
    low = _Lowerer(model, analysis)
    for group in analysis.order:
        low.group(group)
    loss = low.bufs["_loss"] = Buf("_loss", (), None, Role.VALUE)    # generated names begin with _
    low.equation_root(model.loss, loss, Mode.STATIC, frozenset(), low.items, "loss: " + ir.show(model.loss))
    return Lowered(low.items, low.bufs, loss, low.notes, low.labels)


def buf_for(name: str, t, axis, role: Role, inner: str | None = None) -> Buf:
    """Inputs keep class indices as ints; a variable holding a onehot value (`v = x[end]`,
    a state init `x[end]`) holds the vectors the spec means, as a fill or an output must."""
    if t.kind is Kind.FLOAT or (t.kind is Kind.ONEHOT and role is not Role.INPUT):
        return Buf(name, t.dims, axis, role, inner=inner)
    return Buf(name, t.dims, axis, role, t.kind, t.classes.value, inner=inner)


class _Lowerer:
    def __init__(self, model: ir.Model, analysis: TimeAnalysis):
        self.model, self.analysis = model, analysis
        self.items: list = []
        self.notes: list = []
        self.bufs = {i.name: buf_for(i.name, i.type, i.axis, Role.INPUT) for i in model.all_inputs}
        self.bufs.update({p.name: Buf(p.name, p.type.dims, None, Role.PARAM) for p in model.params})
        self.bufs.update({e.name: buf_for(e.name, e.type, e.axis, Role.VALUE, e.inner) for e in model.equations})
        self.eqs = {e.name: e for e in model.equations}
        self.temps = 0
        self.labels: dict = {}

    def where(self, eq: ir.Equation) -> str:
        """An equation's line as the emitted comments show it: its text, then file:line."""
        if eq.pos is None:
            return eq.text
        return f"{eq.text.strip()}  ({Path(self.model.path).name}:{eq.pos.line})"

    # -- groups -----------------------------------------------------------------------------
    def group(self, members: tuple) -> None:
        cls = self.analysis.classes[members[0]]
        if cls is Class.INPUT:
            return
        if cls in (Class.FORWARD, Class.BACKWARD) or _over_two_axes(self.eqs[members[0]].expr):
            return self.recurrence(members, cls)      # attention runs step by step, recurrent or not
        eq = self.eqs[members[0]]
        mode = Mode.SEQ if eq.axis else Mode.STATIC
        self.equation_root(eq.expr, self.bufs[eq.name], mode, frozenset(), self.items, self.where(eq))

    def recurrence(self, members: tuple, cls: Class) -> None:
        body: list = []
        hoisted_before = len(self.items)
        for name in self._step_order(members):
            eq = self.eqs[name]
            expr = reassociate(eq.expr, frozenset(members))
            self.equation_root(expr, self.bufs[name], Mode.STEP, frozenset(members), body, self.where(eq))
        axis = self.eqs[members[0]].axis
        read = {r.buf.name for i in body for r in i.refs}
        hoisted = [self.labels[i.out.name] for i in self.items[hoisted_before:]
                   if isinstance(i, Instr) and i.out.name in read and i.out.name in self.labels]
        self.items.append(Loop(axis, cls is Class.BACKWARD, tuple(body), tuple(members)))
        direction = cls.value if cls in (Class.FORWARD, Class.BACKWARD) else "step by step (attention)"
        self.notes.append(LoopNote(tuple(members), direction, axis, tuple(hoisted), len(body)))

    def _step_order(self, members: tuple) -> list:
        """Members in an order that respects the same-step (offset 0) reads."""
        g = nx.DiGraph()
        g.add_nodes_from(members)
        for u, v, d in self.analysis.graph.subgraph(members).edges(data=True):
            if d["offset"] == 0:
                g.add_edge(u, v)
        return list(nx.lexicographical_topological_sort(g, key=members.index))

    # -- expressions ------------------------------------------------------------------------
    def equation_root(self, e: ir.Expr, target: Buf, mode: Mode, members, out: list, line: str) -> None:
        """Lower an equation into its variable's buffer; a value with fewer leading axes than
        the variable (`v[t] = tanh(b)`: no time) is computed once and broadcast by a copy."""
        fewer = (target.axis and e.axis is None) or (target.axis is None and self._mode(e, mode, members)
                                                     is Mode.PARAM)
        vectors = e.type.kind is Kind.ONEHOT and target.kind is Kind.FLOAT
        ref = self.expr(e, mode, members, out, line, None if fewer or vectors else target)
        if vectors:
            ref = self._as_vector(ref)
        if not (isinstance(ref, Ref) and ref.buf == target):
            sink = out if mode is Mode.STEP else self.items
            sink.append(Instr(target, Op.COPY, (ref,), mode, line=line))

    def expr(self, e: ir.Expr, mode: Mode, members, out: list, line: str, target: Buf | None = None):
        """Lower `e`; returns a Ref (or a float). Invariant parts go to self.items."""
        if isinstance(e, ir.Const):
            return e.value
        if isinstance(e, (ir.ReadStatic, ir.Whole)):
            return Ref(self.bufs[e.var])
        if isinstance(e, ir.Read):
            return Ref(self.bufs[e.var], e.offset, self._fill(e.var))
        my_mode = self._mode(e, mode, members)
        sink = out if my_mode is Mode.STEP else self.items
        if isinstance(e, ir.ReadAt):
            args = (Ref(self.bufs[e.var]),) + ((Ref(self._fill(e.var)),) if self._fill(e.var) else ())
            return self._emit(Op.GATHER, args, (("from_end", int(e.from_end)), ("offset", e.offset)),
                              e, my_mode, sink, line, target)
        if isinstance(e, ir.Reduce) and e.body.inner == e.over and mode is not Mode.STEP:
            return self._stepwise(e, line)
        if isinstance(e, ir.Reduce) and e.body.inner == e.over:      # over an inner axis, at each step
            body = self.expr(e.body, Mode.STEP, members, out, line)
            return self._emit(REDUCE_OPS[e.fn], (body,), (), e, my_mode, sink, line, target)
        if isinstance(e, ir.Reduce):
            body = self.expr(e.body, Mode.SEQ, frozenset(), out, line)
            body = self._as_vector(body) if _is_onehot(body) else body      # sums of one-hot vectors
            return self._emit(REDUCE_OPS[e.fn], (body,), (), e, my_mode, sink, line, target)
        args = tuple(self.expr(a, my_mode, members, out, line) for a in e.args)
        op, args, attrs = self._specialise(e, args)
        return self._emit(op, args, attrs, e, my_mode, sink, line, target)

    def _stepwise(self, e: ir.Reduce, line: str) -> Ref:
        """A reduction over an inner axis outside any loop (in the loss: mean_t sum_s a[t, s]):
        a loop of its own over the outer axis computes it step by step."""
        body: list = []
        ref = self.expr(e, Mode.STEP, frozenset(), body, line)
        self.items.append(Loop(e.axis, False, tuple(body), (ref.buf.name,)))
        self.notes.append(LoopNote((ref.buf.name,), "step by step (attention)", e.axis, (), len(body)))
        return ref

    def _specialise(self, e: ir.Apply, args: tuple) -> tuple:
        """W @ onehot(x) or W @ index becomes a gather; other uses of a onehot become vectors
        (and an index multiplied by a matrix that is not a parameter, a onehot vector)."""
        if e.op is Op.MATMUL and _is_class(args[1]) and args[0].buf.role is Role.PARAM:
            return Op.EMBED, args, e.attrs
        if e.op is Op.MATMUL and _is_class(args[1]):
            return e.op, (args[0], self._as_vector(args[1])), e.attrs
        if e.op not in (Op.CROSS_ENTROPY, Op.CTC):
            args = tuple(self._as_vector(a) if _is_onehot(a) else a for a in args)
        return e.op, args, e.attrs

    def _as_vector(self, ref: Ref) -> Ref:
        mode = Mode.SEQ if ref.buf.axis else Mode.STATIC
        out = self._temp(ref.buf.dims or (ref.buf.classes,), ref.buf.axis)    # an index: no dims
        self.items.append(Instr(out, Op.ONEHOT, (Ref(ref.buf),), mode, (("classes", ref.buf.classes),)))
        return Ref(out, ref.offset, ref.fill)

    def _emit(self, op, args, attrs, e: ir.Expr, mode: Mode, sink: list, line: str, target) -> Ref:
        axis = e.axis if mode in (Mode.SEQ, Mode.STEP) else None
        out = target if target is not None else self._temp(e.type.dims, axis, e.type, e.inner)
        self.labels[out.name] = ir.show(e, e.axis or "t")
        if mode is Mode.PARAM:
            out = Buf(out.name, out.dims, None, Role.PARAM)
        sink.append(Instr(out, op, args, mode, tuple(attrs), line=line))
        return Ref(out)

    def _temp(self, dims: tuple, axis, t=None, inner=None) -> Buf:
        """A new buffer; one holding class indices (`target[0]`, a onehot `x[end]`) keeps
        them as ints, like its input, so that W @ x[end] is still a column gather."""
        self.temps += 1
        if t is not None and t.kind is not Kind.FLOAT:
            return Buf(f"_t{self.temps}", dims, axis, Role.VALUE, t.kind, t.classes.value, inner=inner)
        return Buf(f"_t{self.temps}", dims, axis, Role.VALUE, inner=inner)

    def _fill(self, var: str) -> Buf | None:
        state = self.model.state(var)
        return self.bufs[state.source] if state and state.source else None

    def _mode(self, e: ir.Expr, mode: Mode, members) -> Mode:
        if e.axis is None:
            return Mode.PARAM if _params_only(e, self.model) else Mode.STATIC
        if mode is Mode.STEP and (reads_any(e, members) or _over_two_axes(e)):
            return Mode.STEP
        return Mode.SEQ


def _over_two_axes(e: ir.Expr) -> bool:
    """Whether computing `e` takes a value over two axes (attention): done at each step of the
    outer axis, holding one value per step of the inner one."""
    return any(n.inner is not None for n in ir.walk(e))


def _is_onehot(a) -> bool:
    return isinstance(a, Ref) and a.buf.kind is Kind.ONEHOT


def _is_class(a) -> bool:
    """A onehot or an index value: class indices, which W @ gathers a column by."""
    return isinstance(a, Ref) and a.buf.kind in (Kind.ONEHOT, Kind.INDEX)


def _params_only(e: ir.Expr, model: ir.Model) -> bool:
    params = {p.name for p in model.params}
    leaves = [n for n in ir.walk(e) if not isinstance(n, (ir.Apply, ir.Const))]
    return all(isinstance(n, ir.ReadStatic) and n.var in params for n in leaves)


def reads_any(e: ir.Expr, names) -> bool:
    """Whether `e` reads one of `names` at a step (reductions read whole sequences)."""
    if isinstance(e, ir.Read):
        return e.var in names
    if isinstance(e, ir.Reduce):
        return False
    return any(reads_any(c, names) for c in ir.children(e))


def reassociate(e: ir.Expr, members) -> ir.Expr:
    """Reorder a chain of + so the terms that do not read `members` come first:
    ((W @ x[t] + b) + U @ h[t-1]) lets the first part be hoisted out of the loop."""
    if not isinstance(e, ir.Apply):
        return e
    if e.op is not Op.ADD:
        return ir.Apply(e.type, e.axis, e.op, tuple(reassociate(a, members) for a in e.args), e.attrs, pos=e.pos,
                        inner=e.inner)
    terms = [reassociate(t, members) for t in _terms(e)]
    ordered = sorted(terms, key=lambda t: reads_any(t, members))
    total = ordered[0]
    for term in ordered[1:]:
        shape = TABLE[Op.ADD].shape([total.type, term.type], {})
        axis, inner = _axes_of_sum(total, term, e)
        total = ir.Apply(shape, axis, Op.ADD, (total, term), pos=e.pos, inner=inner)
    return total


def _axes_of_sum(a: ir.Expr, b: ir.Expr, whole: ir.Expr) -> tuple:
    """(axis, inner) of a partial sum of `whole`'s terms: over both of whole's axes where its
    terms vary over both, else over the one they vary over (key[s] + b is over s alone)."""
    axes = {x for x in (a.axis, a.inner, b.axis, b.inner) if x}
    if len(axes) == 2:
        return whole.axis, whole.inner
    return (axes.pop() if axes else None), None


def _terms(e: ir.Expr) -> list:
    if isinstance(e, ir.Apply) and e.op is Op.ADD:
        return _terms(e.args[0]) + _terms(e.args[1])
    return [e]
